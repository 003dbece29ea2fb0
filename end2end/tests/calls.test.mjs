// Calls and the walkie-talkie between real headless chromium pages, with chromium's fake
// camera and microphone: WebRTC on loopback (host candidates only), signalled through a real
// server that sees only sealed signals.
import assert from 'node:assert/strict';
import { readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPage, Server, launchBrowser } from '../support.mjs';

const MEDIA = ['--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required'];

let server;
let browser;
let logFile;

before(async () => {
  logFile = join(tmpdir(), `fieldmesh-calls-log-${process.pid}-${Date.now()}.txt`);
  server = await Server.start({ logFile });
  // The fake "allow" answers every camera and microphone prompt.
  browser = await launchBrowser({ args: [...MEDIA, '--use-fake-ui-for-media-stream'] });
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  await rm(logFile, { force: true });
});

/** Three people in one room: Ana made it, Ben and Cara came by her invite. */
async function threeInARoom(room) {
  const ana = await ChatPage.open(await browser.newContext(), server.url);
  await ana.join('Ana', room);
  const link = await ana.inviteLink();
  const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
  const cara = await ChatPage.acceptInvite(await browser.newContext(), link, 'Cara');
  for (const chat of [ana, ben, cara]) await chat.waitOnline();
  // Everyone's presence card is in: names show on tiles.
  for (const chat of [ana, ben, cara]) {
    await chat.page.waitForFunction(
      () => document.querySelector('[data-testid=presence]')?.textContent.startsWith('3 here'),
      null,
      { timeout: 15_000 },
    );
  }
  return [ana, ben, cara];
}

/** The tiles of the call on `chat`'s page: name → {state, audio, video} bytes received. */
async function tiles(chat) {
  return chat.page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('[data-testid=call-tile]')].map((t) => [
        t.dataset.name,
        { state: t.dataset.state, audio: Number(t.dataset.audioBytes), video: Number(t.dataset.videoBytes) },
      ]),
    ),
  );
}

/** Waits until `chat` receives at least `bytes` of voice from each of `names`. */
async function hears(chat, names, bytes = 4_000) {
  await chat.page.waitForFunction(
    ({ names, bytes }) =>
      names.every((name) => {
        const tile = document.querySelector(`[data-testid=call-tile][data-name="${name}"]`);
        return tile && tile.dataset.state === '' && Number(tile.dataset.audioBytes) >= bytes;
      }),
    { names, bytes },
    { timeout: 30_000 },
  );
}

test('three pages in a call each receive the others, a camera is seen, and messages still go', async () => {
  const [ana, ben, cara] = await threeInARoom('Camp Call');
  await ana.byTestId('call-button').click();
  await ana.byTestId('call-panel').waitFor();
  // The others are rung, with the caller's name.
  for (const chat of [ben, cara]) {
    await chat.byTestId('call-invite').getByText('Ana is calling').waitFor({ timeout: 15_000 });
  }
  await ben.byTestId('call-join').click();
  await cara.byTestId('call-join-video').click();

  // Everyone receives everyone else's voice (the connections' statistics).
  await hears(ana, ['Ben', 'Cara']);
  await hears(ben, ['Ana', 'Cara']);
  await hears(cara, ['Ana', 'Ben']);
  // Cara's camera reaches both others.
  for (const chat of [ana, ben]) {
    await chat.page.waitForFunction(
      () => Number(document.querySelector('[data-testid=call-tile][data-name=Cara]')?.dataset.videoBytes) > 20_000,
      null,
      { timeout: 30_000 },
    );
  }
  assert.equal(await ana.byTestId('call-status').textContent(), 'In the call · 3 people');

  // A call never blocks messaging.
  await ben.send('talking to you now');
  await ana.messageWithText('talking to you now').waitFor();

  // The server goes away for a while: the call goes on (its media goes between the phones),
  // and after the server is back the call is as it was.
  const audioFrom = (chat, name) =>
    chat.page.evaluate((name) => Number(document.querySelector(`[data-testid=call-tile][data-name="${name}"]`)?.dataset.audioBytes), name);
  await server.stop();
  await ana.waitOffline();
  const during = await audioFrom(ana, 'Ben');
  await ana.page.waitForTimeout(3_000);
  assert.ok((await audioFrom(ana, 'Ben')) > during + 2_000, 'Ben is still heard with the server away');
  await server.restart();
  for (const chat of [ana, ben, cara]) await chat.waitOnline();
  await ana.page.waitForTimeout(5_000);
  assert.deepEqual(Object.values(await tiles(ana)).map((t) => t.state), ['', '']);

  // Ben mutes: the control says so; Ana turns her camera on and Ben sees it.
  await ben.byTestId('call-mute').click();
  assert.equal(await ben.byTestId('call-mute').textContent(), 'Unmute');
  // Ben taps his camera on and at once off again, before it could open: it stays off, and
  // nobody receives a picture from him.
  await ben.page.evaluate(() => {
    const button = document.querySelector('[data-testid=call-camera]');
    button.click();
    button.click();
  });
  await ben.page.waitForTimeout(3_000);
  assert.equal(await ben.byTestId('call-camera').getAttribute('aria-pressed'), 'false');
  assert.equal(await ben.byTestId('call-camera').textContent(), 'Camera on');
  assert.equal(
    await ben.page.evaluate(() =>
      [...document.querySelectorAll('[data-testid=call-own] video')].some((v) =>
        v.srcObject?.getVideoTracks().some((t) => t.readyState === 'live'),
      ),
    ),
    false,
    'no camera of his is running',
  );
  assert.equal((await tiles(ana)).Ben.video, 0, 'Ana received no picture from Ben');
  // A tap later opens it as usual, and takes it off again.
  await ben.byTestId('call-camera').click();
  await ana.page.waitForFunction(
    () => Number(document.querySelector('[data-testid=call-tile][data-name=Ben]')?.dataset.videoBytes) > 5_000,
    null,
    { timeout: 30_000 },
  );
  await ben.byTestId('call-camera').click();
  assert.equal(await ben.byTestId('call-camera').textContent(), 'Camera on');
  await ana.byTestId('call-camera').click();
  await ben.page.waitForFunction(
    () => Number(document.querySelector('[data-testid=call-tile][data-name=Ana]')?.dataset.videoBytes) > 20_000,
    null,
    { timeout: 30_000 },
  );

  // Cara's page dies without a word: the others show her reconnecting, then gone.
  const cdp = await cara.page.context().newCDPSession(cara.page);
  cdp.send('Page.crash').catch(() => {});
  for (const chat of [ana, ben]) {
    await chat.page.waitForFunction(
      () => document.querySelector('[data-testid=call-tile][data-name=Cara]')?.dataset.state === 'reconnecting…',
      null,
      { timeout: 30_000 },
    );
  }
  for (const chat of [ana, ben]) {
    await chat.page.waitForFunction(
      () => ['left', undefined].includes(document.querySelector('[data-testid=call-tile][data-name=Cara]')?.dataset.state),
      null,
      { timeout: 30_000 },
    );
  }
  // Ben hangs up: Ana sees him leave at once, and is alone in the call.
  await ben.byTestId('call-hang-up').click();
  await ben.byTestId('call-panel').waitFor({ state: 'detached' });
  await ana.page.waitForFunction(
    () => ['left', undefined].includes(document.querySelector('[data-testid=call-tile][data-name=Ben]')?.dataset.state),
    null,
    { timeout: 10_000 },
  );
  await ana.byTestId('call-status').getByText('waiting for others').waitFor({ timeout: 15_000 });
  for (const chat of [ana, ben]) assert.deepEqual(chat.errors, []);
  await ana.byTestId('call-hang-up').click();
});

test('push-to-talk reaches the listeners, one speaker at a time', async () => {
  const [ana, ben, cara] = await threeInARoom('Camp Radio Check');
  for (const chat of [ana, ben, cara]) {
    await chat.menu('walkie-talkie');
    await chat.byTestId('talk-bar').waitFor();
  }
  for (const chat of [ana, ben, cara]) {
    await chat.byTestId('talk-speaking').getByText('2 others listening').waitFor({ timeout: 30_000 });
  }
  const fromAna = (chat) =>
    chat.page.evaluate(() => Number(document.querySelector('[data-testid=talk-listener][data-name=Ana]')?.dataset.audioBytes ?? 0));
  const before = { ben: await fromAna(ben), cara: await fromAna(cara) };

  // Ana holds the button: the others see who speaks, and cannot speak over her.
  const button = ana.byTestId('talk-button');
  await button.hover();
  await ana.page.mouse.down();
  await ana.byTestId('talk-button').getByText('Speaking… let go to listen').waitFor();
  for (const chat of [ben, cara]) {
    await chat.byTestId('talk-speaking').getByText('Speaking: Ana').waitFor({ timeout: 10_000 });
    assert.ok(await chat.byTestId('talk-button').isDisabled(), 'one speaker at a time');
    assert.equal(await chat.byTestId('talk-button').textContent(), 'Ana is speaking');
  }
  // Her voice reaches them: it is heard (the audio level of what arrives).
  for (const chat of [ben, cara]) {
    await chat.page.waitForFunction(
      () => document.querySelector('[data-testid=talk-listener][data-name=Ana]')?.classList.contains('speaking'),
      null,
      { timeout: 20_000 },
    );
  }
  assert.ok((await fromAna(ben)) > before.ben, 'Ben received Ana’s voice');
  assert.ok((await fromAna(cara)) > before.cara, 'Cara received Ana’s voice');
  await ana.page.mouse.up();
  for (const chat of [ben, cara]) {
    await chat.byTestId('talk-speaking').getByText('2 others listening').waitFor({ timeout: 10_000 });
    assert.equal(await chat.byTestId('talk-button').isDisabled(), false);
  }
  // Then Ben, with the keyboard: space held down.
  await ben.byTestId('talk-button').focus();
  await ben.page.keyboard.down(' ');
  await ana.byTestId('talk-speaking').getByText('Speaking: Ben').waitFor({ timeout: 10_000 });
  await ben.page.keyboard.up(' ');
  await ana.byTestId('talk-speaking').getByText('2 others listening').waitFor({ timeout: 10_000 });

  // Cara stops listening: the others see one fewer.
  await cara.byTestId('talk-stop').click();
  await ana.byTestId('talk-speaking').getByText('1 other listening').waitFor({ timeout: 15_000 });
  for (const chat of [ana, ben, cara]) assert.deepEqual(chat.errors, []);
});

test('a phone that refuses the microphone is told why and still hears the others', async () => {
  // No fake "allow": the prompt is refused, as a person who taps "Block" refuses it.
  const refusing = await launchBrowser({ args: MEDIA });
  try {
    const ana = await ChatPage.open(await browser.newContext(), server.url);
    await ana.join('Ana', 'Camp Quiet');
    const dan = await ChatPage.acceptInvite(await refusing.newContext(), await ana.inviteLink(), 'Dan');
    await dan.waitOnline();
    await ana.byTestId('call-button').click();
    await dan.byTestId('call-join').click({ timeout: 15_000 });
    await dan.byTestId('call-status').getByText('may not use the microphone').waitFor({ timeout: 15_000 });
    // Dan still hears Ana.
    await hears(dan, ['Ana']);
    // And the walkie-talkie says he can listen but not talk.
    await dan.byTestId('call-hang-up').click();
    await dan.menu('walkie-talkie');
    await dan.byTestId('talk-notice').getByText('may not use the microphone').waitFor({ timeout: 15_000 });
    await dan.byTestId('talk-button').hover();
    await dan.page.mouse.down();
    await dan.byTestId('talk-notice').getByText('listen but not talk').waitFor();
    await dan.page.mouse.up();
    assert.deepEqual(dan.errors, []);
  } finally {
    await refusing.close();
  }
});

test('the server kept no session description: not in its database, not in its debug log', async () => {
  await server.stop();
  const files = [logFile];
  for (const name of await readdir(server.dataDir)) {
    if (name.startsWith('messages.sqlite3')) files.push(join(server.dataDir, name));
  }
  const kept = Buffer.concat(await Promise.all(files.map((f) => readFile(f))));
  assert.ok(kept.length > 1_000, 'the log and database hold something');
  for (const sdp of ['v=0', 'a=fingerprint', 'a=ice-ufrag', 'a=candidate', 'IN IP4', 'Camp Call']) {
    assert.equal(kept.indexOf(Buffer.from(sdp)), -1, `"${sdp}" found on the server`);
  }
  await server.restart();
});

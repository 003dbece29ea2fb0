// Two camps whose laptops hear each other only by (simulated) LoRa radio: a phone at each camp
// in the public Emergency room, in headless chromium.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatPage, RadioSim, Server, launchBrowser } from '../support.mjs';

let sim;
let campA;
let campB;
let browser;

before(async () => {
  sim = await RadioSim.start('bitrate 20000\nduty-cycle 1\nlink A B latency=20\n');
  const radio = (name) => ['--radio', sim.port(name), '--radio-bitrate', '20000', '--camp-name', `Camp ${name}`];
  campA = await Server.start({ args: radio('A') });
  campB = await Server.start({ args: radio('B') });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await campA?.dispose();
  await campB?.dispose();
  await sim?.dispose();
});

/** Ana at camp A (her browser made with `anaOptions`) and Ben at camp B, in the Emergency
 * room, both radios on. */
async function oneAtEachCamp(anaOptions = {}) {
  const ana = await ChatPage.open(await browser.newContext(anaOptions), campA.url);
  await ana.join('Ana', 'Emergency');
  const ben = await ChatPage.open(await browser.newContext(), campB.url);
  await ben.join('Ben', 'Emergency');
  for (const chat of [ana, ben]) {
    await chat.waitOnline();
    await chat.byTestId('radio-status').getByText('📡 Radio on').waitFor();
  }
  return [ana, ben];
}

test('a photo sent at one camp is announced over the radio at the other, with where it is', async () => {
  const [ana, ben] = await oneAtEachCamp();
  const png = Buffer.from(await ana.page.evaluate(async () => {
    const canvas = new OffscreenCanvas(640, 480);
    canvas.getContext('2d').fillRect(0, 0, 320, 240);
    return [...new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer())];
  }));
  await ana.byTestId('attach-photo').setInputFiles({ name: 'bridge.png', mimeType: 'image/png', buffer: png });
  await ana.send('the bridge from the east bank');
  const atB = ben.byTestId('message').filter({ hasText: 'the bridge from the east bank' });
  await atB.waitFor({ timeout: 20_000 });
  await atB.getByText('📡 via radio').waitFor();
  assert.match(
    await atB.getByTestId('message-text').textContent(),
    /^the bridge from the east bank\n\[photo, \d+ (bytes|KB) · at Camp A\]$/,
  );
  await ana.page.context().close();
  await ben.page.context().close();
});

test('a position sent at one camp crosses the radio in ten bytes and shows at the other', async () => {
  const [ana, ben] = await oneAtEachCamp({
    geolocation: { latitude: -33.856784, longitude: 151.215297, accuracy: 9 },
    permissions: ['geolocation'],
  });
  await ana.byTestId('attach-place').click();
  await ana.byTestId('place-status').getByText(/±9 m/).waitFor();
  await ana.send('at the opera house steps');
  const atB = ben.messageWithText('at the opera house steps');
  await atB.waitFor({ timeout: 20_000 });
  await atB.getByText('📡 via radio').waitFor();
  assert.equal(await atB.getByTestId('message-place').textContent(), '-33.85678, 151.21530 · ±9 m');
  await ana.page.context().close();
  await ben.page.context().close();
});

test('a live position crosses the radio: it moves the other camp\'s list and is no message there, not even out of sight', async () => {
  // A room of their own, Ana at camp A, Ben at camp B by its invite (the key is in the link).
  const ana = await ChatPage.open(
    await browser.newContext({ geolocation: { latitude: -33.856784, longitude: 151.215297, accuracy: 9 }, permissions: ['geolocation'] }),
    campA.url,
  );
  await ana.join('Ana', 'Camp Walkers');
  const invite = (await ana.inviteLink()).replace(campA.url, campB.url);
  const ben = await ChatPage.acceptInvite(await browser.newContext({ permissions: ['notifications'] }), invite, 'Ben');
  for (const chat of [ana, ben]) {
    await chat.waitOnline();
    await chat.byTestId('radio-status').getByText('📡 Radio on').waitFor();
  }
  await ben.waitControlled();
  // Ben's app is out of sight (another app in front).
  await ben.page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    window.dispatchEvent(new Event('visibilitychange'));
  });
  await ana.menu('share-live');
  await ana.byTestId('live-15').click();
  await ana.byTestId('live-bar').waitFor();
  // Then a message, which is news: it comes after the live position on the same radio.
  await ana.send('walking to the bridge');
  await ben.messageWithText('walking to the bridge').getByText('📡 via radio').waitFor({ timeout: 20_000 });
  // One thing to read, one notification for it: the live position is neither.
  await ben.page.waitForFunction(() => /^\(\d+\)/.test(document.title));
  await ben.page.waitForTimeout(500);
  assert.equal(await ben.page.title(), '(1) FieldMesh');
  const bodies = await ben.page.evaluate(async () =>
    (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => n.body));
  assert.deepEqual(bodies, ['Ana: walking to the bridge']);
  assert.equal(await ben.byTestId('message').count(), 1);
  // It moved Ana on Ben's list of people nearby.
  await ben.menu('nearby');
  const entry = ben.byTestId('nearby-entry');
  await entry.waitFor();
  assert.equal(await entry.getByTestId('nearby-name').textContent(), 'Ana');
  await entry.getByTestId('nearby-live').waitFor();
  assert.deepEqual(ana.errors, []);
  assert.deepEqual(ben.errors, []);
  await ana.page.context().close();
  await ben.page.context().close();
});

test('a message crosses the radio to another camp, and the sender sees it relayed', async () => {
  const [ana, ben] = await oneAtEachCamp();

  await ana.send('Bridge out at km 12, use the north road');
  const atB = ben.messageWithText('Bridge out at km 12, use the north road');
  await atB.waitFor({ timeout: 20_000 });
  await atB.getByText('📡 via radio').waitFor();
  // Not signed over the radio: the name is shown as unconfirmed.
  assert.equal(await atB.getByTestId('message-author').textContent(), 'Ana (unconfirmed)');
  // Ben's phone opened it with the room key and said so over the radio: more than a relay.
  await ana
    .messageWithText('Bridge out at km 12, use the north road')
    .getByText('✓✓ delivered to Camp B')
    .waitFor({ timeout: 20_000 });

  await ben.send('Thanks, we will send the truck round');
  await ana.messageWithText('Thanks, we will send the truck round').getByText('📡 via radio').waitFor({ timeout: 20_000 });
  // Once each, after a reload too (the device store kept them).
  await ben.page.reload();
  await ben.messageWithText('Thanks, we will send the truck round').waitFor();
  assert.equal(await ben.messageWithText('Bridge out at km 12, use the north road').count(), 1);

  // The radio is pulled out: both apps say so.
  await sim.stop();
  for (const chat of [ana, ben]) {
    await chat.byTestId('radio-status').getByText('📡 Radio off').waitFor({ timeout: 20_000 });
  }
  assert.deepEqual(ana.errors, []);
  assert.deepEqual(ben.errors, []);
});

// End-to-end encryption in the browser: rooms by invite link, a third person without the link,
// the public Emergency room, and a server that holds no plaintext.
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChatPage, Server, launchBrowser } from '../support.mjs';

const SECRET = 'the spare key is under the blue rock';
const REPLY = 'got it, blue rock by the well';

test('people with the invite read each other; a third without it sees nothing; the server keeps no plaintext', async () => {
  const logFile = join(tmpdir(), `fieldmesh-log-${process.pid}-${Date.now()}.txt`);
  const server = await Server.start({ logFile });
  const browser = await launchBrowser();
  try {
    const ana = await ChatPage.open(await browser.newContext(), server.url);
    await ana.join('Ana', 'Camp Secret');
    await ana.waitOnline();
    const link = await ana.inviteLink();
    const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
    await ben.waitOnline();

    await ana.send(SECRET);
    await ben.messageWithText(SECRET).waitFor();
    await ben.send(REPLY);
    await ana.messageWithText(REPLY).waitFor();
    assert.deepEqual(await ana.texts(), [SECRET, REPLY]);
    assert.deepEqual(await ben.texts(), [SECRET, REPLY]);
    await ana.page.waitForFunction(() => /2 here/.test(document.querySelector('[data-testid=presence]')?.textContent));

    // Cleo is on the same server and types the same room name, without the link: she gets a
    // room of her own, and nothing of Ana's and Ben's.
    const cleo = await ChatPage.open(await browser.newContext(), server.url);
    await cleo.join('Cleo', 'Camp Secret');
    await cleo.waitOnline();
    await cleo.page.waitForTimeout(500);
    assert.deepEqual(await cleo.texts(), []);
    assert.equal(await cleo.byTestId('presence').textContent(), 'only you here');
    assert.notEqual(await cleo.inviteLink(), link);

    // The public Emergency room is for strangers, and says it is not private.
    await cleo.byTestId('leave').click();
    await cleo.join('Cleo', 'Emergency');
    await cleo.byTestId('public-room').waitFor();
    assert.equal(await ana.byTestId('public-room').count(), 0, 'a private room is not marked public');

    // Nothing readable on the server: not in its database files, not in its debug log.
    await ana.waitSynced();
    await ben.waitSynced();
    await server.stop();
    const files = [logFile];
    for (const name of await readdir(server.dataDir)) {
      if (name.startsWith('messages.sqlite3')) files.push(join(server.dataDir, name));
    }
    assert.ok(files.length >= 2, `database files: ${files}`);
    const stored = Buffer.concat(await Promise.all(files.map((f) => readFile(f))));
    assert.ok(stored.length > 10_000, 'the database and log hold something');
    for (const plaintext of [SECRET, REPLY, 'blue rock', 'Camp Secret', 'Ana', 'Ben']) {
      assert.equal(stored.indexOf(Buffer.from(plaintext)), -1, `"${plaintext}" found on the server`);
    }
  } finally {
    await browser.close();
    await server.dispose();
    await rm(logFile, { force: true });
  }
});

test('safety codes match across phones, verification sticks, and a known name with new keys is flagged', async () => {
  const server = await Server.start();
  const browser = await launchBrowser();
  try {
    const ana = await ChatPage.open(await browser.newContext(), server.url);
    await ana.join('Ana', 'Camp Codes');
    await ana.waitOnline();
    const link = await ana.inviteLink();
    const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
    await ben.waitOnline();
    await ana.page.waitForFunction(() => /2 here/.test(document.querySelector('[data-testid=presence]')?.textContent));

    // Ben reads his code from his phone; Ana sees the same code next to his name.
    await ben.byTestId('presence').click();
    const bensOwnCode = await ben.byTestId('own-code').textContent();
    assert.match(bensOwnCode, /^\d{4} \d{4} \d{4} \d{4} \d{4}$/);
    await ana.byTestId('presence').click();
    const benEntry = ana.byTestId('roster-entry').filter({ hasText: 'Ben' });
    assert.equal(await benEntry.getByTestId('roster-code').textContent(), bensOwnCode);
    await benEntry.getByTestId('mark-verified').click();
    await benEntry.getByTestId('verified').waitFor();
    await ana.byTestId('roster-close').click();
    // Ben's messages say so beside his name.
    await ben.send('it is really me');
    await ana.messageWithText('it is really me').getByTestId('message-verified').waitFor();

    // Someone else joins with the link under Ben's name, with other keys.
    const mallory = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
    await mallory.waitOnline();
    await mallory.send('trust me');
    await ana.messageWithText('trust me').waitFor();
    assert.equal(await ana.messageWithText('trust me').getByTestId('message-verified').count(), 0);
    await ana.byTestId('key-changed').waitFor();
    assert.match(await ana.byTestId('key-changed').textContent(), /Ben now has different keys/);
    await ana.byTestId('presence').click();
    const entries = ana.byTestId('roster-entry').filter({ hasText: 'Ben' });
    assert.equal(await entries.count(), 2);
    assert.equal(await entries.filter({ hasText: '⚠ new keys' }).count(), 1, 'only the newcomer is flagged');
    assert.equal(await entries.filter({ has: ana.page.getByTestId('verified') }).count(), 1);

    // Verification is kept on the device.
    await ana.page.reload();
    await ana.waitOnline();
    await ana.page.waitForFunction(() => /3 here/.test(document.querySelector('[data-testid=presence]')?.textContent));
    await ana.byTestId('presence').click();
    assert.equal(await ana.byTestId('roster-entry').filter({ has: ana.page.getByTestId('verified') }).count(), 1);
  } finally {
    await browser.close();
    await server.dispose();
  }
});

test('a private message reaches only its two people, and the other side is told', async () => {
  const server = await Server.start();
  const browser = await launchBrowser();
  try {
    const ana = await ChatPage.open(await browser.newContext(), server.url);
    await ana.join('Ana', 'Camp Direct');
    await ana.waitOnline();
    const link = await ana.inviteLink();
    const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
    const cleo = await ChatPage.acceptInvite(await browser.newContext(), link, 'Cleo');
    await ben.waitOnline();
    await cleo.waitOnline();
    await ana.page.waitForFunction(() => /3 here/.test(document.querySelector('[data-testid=presence]')?.textContent));

    await ana.byTestId('presence').click();
    await ana.byTestId('roster-entry').filter({ hasText: 'Ben' }).getByTestId('message-privately').click();
    await ana.byTestId('direct-room').waitFor();
    assert.equal(await ana.byTestId('room-title').textContent(), 'Ben');
    await ana.byTestId('room-menu').click();
    await ana.byTestId('mute').waitFor();
    assert.equal(await ana.byTestId('share').count(), 0, 'a private conversation has no invite');
    await ana.byTestId('room-menu').click();
    await ana.send('just between us: meet at the north gate');
    await ana.waitSynced();

    // Ben, still in the group room, is told and opens it.
    await ben.byTestId('direct-alert').waitFor({ timeout: 30_000 });
    assert.match(await ben.byTestId('direct-alert').textContent(), /Ana wrote to you privately/);
    await ben.byTestId('open-direct').click();
    await ben.messageWithText('just between us: meet at the north gate').waitFor();
    assert.equal(await ben.byTestId('room-title').textContent(), 'Ana');
    await ben.send('see you there');
    await ana.messageWithText('see you there').waitFor();

    // Cleo, in the same group room, sees none of it and is not told.
    await cleo.page.waitForTimeout(1000);
    assert.deepEqual(await cleo.texts(), []);
    assert.equal(await cleo.byTestId('direct-alert').count(), 0);
  } finally {
    await browser.close();
    await server.dispose();
  }
});

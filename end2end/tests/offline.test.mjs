// Offline-first: the service worker, IndexedDB and the outbox, against a real server process
// that the tests stop, kill and restart, in headless Debian chromium.
import assert from 'node:assert/strict';
import { cp, mkdtemp, appendFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPage, SITE, Server, launchBrowser } from '../support.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Joins `room` as `name` in a fresh browser profile and waits until the app works offline. */
async function installedChat(context, server, name, room) {
  const chat = await ChatPage.open(context, server.url);
  await chat.join(name, room);
  await chat.waitOnline();
  await chat.waitControlled();
  await joinedOnServer(chat);
  return chat;
}

/**
 * Waits until the server answered the page's join: its presence (relayed after the room's
 * first page) names the person. A page stopped before that has no cursor in the room yet and
 * starts over from the newest page, as it should; the tests here want the room followed.
 */
async function joinedOnServer(chat) {
  await chat.page.waitForFunction(() =>
    /\byou\b/.test(document.querySelector('[data-testid=presence]')?.textContent ?? ''));
}

/** Joins through an invite link and waits until the app works offline. */
async function acceptedChat(context, link, name) {
  const chat = await ChatPage.acceptInvite(context, link, name);
  await chat.waitOnline();
  await chat.waitControlled();
  await joinedOnServer(chat);
  return chat;
}

async function sendAll(chat, texts) {
  for (const text of texts) await chat.send(text);
}

test('with the server gone, a reload shows the shell and the room history from the device', async () => {
  const server = await Server.start();
  try {
    const context = await browser.newContext();
    const ana = await installedChat(context, server, 'Ana', 'Camp North');
    await sendAll(ana, ['first', 'second']);
    await ana.waitSynced();

    await server.stop();
    await ana.waitOffline();
    await ana.page.reload();
    await ana.ready();
    assert.equal(await ana.byTestId('room-title').textContent(), 'Camp North');
    assert.deepEqual(await ana.texts(), ['first', 'second']);
    await ana.waitOffline();
    assert.match(await ana.byTestId('sync-status').textContent(), /Offline/);
    assert.deepEqual(ana.errors, []);
  } finally {
    await server.dispose();
  }
});

test('twenty messages written offline survive closing the page and arrive once, in order', async () => {
  const server = await Server.start();
  try {
    const anaContext = await browser.newContext();
    const ana = await installedChat(anaContext, server, 'Ana', 'Camp East');
    const ben = await acceptedChat(await browser.newContext(), await ana.inviteLink(), 'Ben');

    await server.stop();
    await ana.waitOffline();
    const texts = Array.from({ length: 20 }, (_, n) => `offline ${n + 1}`);
    await sendAll(ana, texts);
    await ana.page.waitForFunction(() =>
      document.querySelector('[data-testid=sync-status]')?.textContent.includes('20 messages queued'),
    );
    assert.equal(await ana.byTestId('message-state').filter({ hasText: 'queued' }).count(), 20);

    // Close the tab; open the app again while the server is still down.
    await ana.page.close();
    const again = await ChatPage.open(anaContext, server.url);
    await again.ready();
    await again.messageWithText('offline 20').waitFor();
    assert.deepEqual(await again.texts(), texts);

    await server.restart();
    await again.waitSynced();
    await ben.waitOnline();
    await ben.messageWithText('offline 20').waitFor();
    assert.deepEqual(await ben.texts(), texts, 'each exactly once, in the order written');
    await ben.page.reload();
    await ben.messageWithText('offline 20').waitFor();
    assert.deepEqual(await ben.texts(), texts, 'still once each after a reload');
  } finally {
    await server.dispose();
  }
});

test('a server killed in the middle of a sync still ends with every message exactly once', async () => {
  const server = await Server.start();
  try {
    const ana = await installedChat(await browser.newContext(), server, 'Ana', 'Camp South');
    const ben = await acceptedChat(await browser.newContext(), await ana.inviteLink(), 'Ben');
    await server.stop();
    await ana.waitOffline();
    const texts = Array.from({ length: 300 }, (_, n) => `burst ${n + 1}`);
    await sendAll(ana, texts);

    await server.restart();
    // Kill the server the moment the page shows the outbox draining.
    const draining = await ana.page.waitForFunction(
      () => {
        const status = document.querySelector('[data-testid=sync-status]')?.textContent ?? '';
        return /sent [1-9]\d* of 300/.test(status) ? status : false;
      },
      null,
      { polling: 2, timeout: 30_000 },
    );
    await server.stop('SIGKILL');
    assert.match(await draining.jsonValue(), /sent \d+ of 300/);
    await server.restart();

    await ana.waitSynced();
    await ben.waitOnline();
    for (const chat of [ben, ana]) {
      if (chat === ana) await ana.page.reload();
      await chat.messageWithText('burst 300').waitFor();
      // The list shows the newest hundred; older ones are a tap away, from the device.
      assert.deepEqual(await chat.texts(), texts.slice(-100));
      while ((await chat.byTestId('message').count()) < 300) {
        const shown = await chat.byTestId('message').count();
        await chat.byTestId('load-older').click();
        await chat.page.waitForFunction((n) => document.querySelectorAll('[data-testid=message]').length > n, shown);
      }
      assert.deepEqual(await chat.texts(), texts, 'each exactly once, in order');
    }
  } finally {
    await server.dispose();
  }
});

test("a new release's service worker takes over cleanly from the old one", async () => {
  // A copy of the built site that the test can turn into "the next release".
  const site = await mkdtemp(join(tmpdir(), 'fieldmesh-site-'));
  await cp(SITE, site, { recursive: true });
  const server = await Server.start({ site });
  try {
    const ana = await installedChat(await browser.newContext(), server, 'Ana', 'Camp West');
    const oldCaches = await ana.page.evaluate(() => caches.keys());
    assert.equal(oldCaches.length, 1);

    await server.stop();
    await appendFile(join(site, 'pkg/fieldmesh.css'), '\nbody { --release: "next"; }\n');
    await server.restart();

    // The page still runs the old release; the browser finds the new worker on reload.
    await ana.page.reload();
    await ana.ready();
    await ana.byTestId('update-ready').waitFor({ timeout: 30_000 });
    const before = await ana.page.evaluate(() => getComputedStyle(document.body).getPropertyValue('--release'));
    assert.equal(before, '', 'the old release is still whole until the person reloads');

    await Promise.all([ana.page.waitForEvent('load'), ana.byTestId('apply-update').click()]);
    await ana.ready();
    const after = await ana.page.evaluate(() => getComputedStyle(document.body).getPropertyValue('--release'));
    assert.equal(after.trim(), '"next"');
    const newCaches = await ana.page.evaluate(() => caches.keys());
    assert.equal(newCaches.length, 1, 'the old release cache is gone');
    assert.notDeepEqual(newCaches, oldCaches);
    assert.equal(await ana.byTestId('room-title').textContent(), 'Camp West');
  } finally {
    await server.dispose();
    await rm(site, { recursive: true, force: true });
  }
});

test('a link that keeps dropping still delivers every message once, in order', async () => {
  const server = await Server.start();
  try {
    const anaContext = await browser.newContext();
    const ana = await installedChat(anaContext, server, 'Ana', 'Camp Flaky');
    const ben = await acceptedChat(await browser.newContext(), await ana.inviteLink(), 'Ben');
    const texts = [];
    for (let round = 0; round < 5; round++) {
      for (let n = 0; n < 4; n++) {
        const text = `round ${round} message ${n}`;
        texts.push(text);
        await ana.send(text);
        // Drop the link in the middle of a round, while messages are in flight.
        if (n === 1) await anaContext.setOffline(true);
      }
      await ana.waitOffline();
      await anaContext.setOffline(false);
      await ana.waitOnline();
    }
    await ana.waitSynced();
    await ben.messageWithText('round 4 message 3').waitFor();
    assert.deepEqual(await ben.texts(), texts);
    await ana.page.reload();
    await ana.messageWithText('round 4 message 3').waitFor();
    assert.deepEqual(await ana.texts(), texts);
  } finally {
    await server.dispose();
  }
});

test('when the server starts over with a new database, pages do not skip its messages', async () => {
  const server = await Server.start();
  const firstDataDir = server.dataDir;
  const replacement = await mkdtemp(join(tmpdir(), 'fieldmesh-replaced-'));
  try {
    const ana = await installedChat(await browser.newContext(), server, 'Ana', 'Camp Reset');
    const ben = await acceptedChat(await browser.newContext(), await ana.inviteLink(), 'Ben');
    await sendAll(ana, ['before 1', 'before 2', 'before 3']);
    await ben.messageWithText('before 3').waitFor();

    // The laptop's data folder is lost: same address, empty database.
    await server.stop();
    server.dataDir = replacement;
    await server.restart();
    await ben.waitOnline();
    await ben.send('after the swap');
    await ben.waitSynced();
    await ana.waitOnline();
    await ana.messageWithText('after the swap').waitFor();
  } finally {
    server.dataDir = firstDataDir;
    await server.dispose();
    await rm(replacement, { recursive: true, force: true });
  }
});

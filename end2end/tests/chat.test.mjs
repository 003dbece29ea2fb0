// Two people chat in one room through a real server, in headless chromium.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatPage, Server, launchBrowser } from '../support.mjs';

let server;
let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

test('two people in one room see each other, and markup stays text', async () => {
  const ana = await ChatPage.open(await browser.newContext(), server.url);
  await ana.join('Ana', 'Camp North');
  const ben = await ChatPage.acceptInvite(await browser.newContext(), await ana.inviteLink(), 'Ben');
  await ana.waitOnline();
  await ben.waitOnline();

  await ana.send('water at the school');
  await ben.messageWithText('water at the school').waitFor();
  await ana.messageWithText('water at the school').getByText('✓ stored').waitFor();
  // Confirmed by Ana's signed presence card, which may come a moment after the message
  // (presence lists are gathered for 250 ms).
  const author = ben.messageWithText('water at the school').getByTestId('message-author');
  await author.getByText('Ana', { exact: true }).waitFor();
  assert.equal(await author.textContent(), 'Ana');

  const markup = '<img src=x onerror=alert(1)>';
  await ben.send(markup);
  for (const chat of [ana, ben]) {
    await chat.messageWithText(markup).waitFor();
    assert.equal(await chat.byTestId('message-list').locator('img').count(), 0, 'no element made from text');
  }
  // Give an injected onerror handler the chance to run before checking it did not.
  await ana.page.waitForTimeout(300);
  for (const chat of [ana, ben]) {
    assert.deepEqual(chat.dialogs, []);
    assert.deepEqual(chat.errors, []);
  }
  assert.deepEqual(await ana.texts(), ['water at the school', markup]);
  assert.deepEqual(await ben.texts(), ['water at the school', markup]);
  // The app runs whole under its Content-Security-Policy.
  for (const chat of [ana, ben]) assert.deepEqual(await chat.cspViolations(), []);
});

test('a reloaded page shows the room history and people in other rooms see none of it', async () => {
  const context = await browser.newContext();
  const cleo = await ChatPage.open(context, server.url);
  await cleo.join('Cleo', 'Camp South');
  await cleo.waitOnline();
  await cleo.send('first aid tent is up');
  await cleo.messageWithText('first aid tent is up').getByText('✓ stored').waitFor();

  await cleo.page.reload();
  // The page remembers the name and room and shows the history again.
  await cleo.messageWithText('first aid tent is up').waitFor();
  assert.equal(await cleo.byTestId('room-title').textContent(), 'Camp South');

  const dan = await ChatPage.open(await browser.newContext(), server.url);
  await dan.join('Dan', 'Camp West');
  await dan.waitOnline();
  assert.deepEqual(await dan.texts(), []);
});

test('people in the room see who is here and who is typing', async () => {
  const eve = await ChatPage.open(await browser.newContext(), server.url);
  await eve.join('Eve', 'Camp Presence');
  const finn = await ChatPage.acceptInvite(await browser.newContext(), await eve.inviteLink(), 'Finn');
  await eve.page.waitForFunction(() =>
    document.querySelector('[data-testid=presence]')?.textContent === '2 here: Eve (you), Finn' ||
    document.querySelector('[data-testid=presence]')?.textContent === '2 here: Finn, Eve (you)',
  );

  await finn.byTestId('composer-input').pressSequentially('on my way', { delay: 20 });
  await eve.page.waitForFunction(() => document.querySelector('[data-testid=typing]')?.textContent === 'Finn is typing…');
  assert.equal(await finn.byTestId('typing').textContent(), '', 'nobody sees their own typing');

  await finn.page.close();
  await eve.page.waitForFunction(() => document.querySelector('[data-testid=presence]')?.textContent === 'only you here');
  // The typing notice fades on its own.
  await eve.page.waitForFunction(() => document.querySelector('[data-testid=typing]')?.textContent === '', null, {
    timeout: 10_000,
  });
});

test('the app is installable: manifest, icons, service worker and persistent storage', async () => {
  const context = await browser.newContext();
  // Count the app's requests for persistent storage.
  await context.addInitScript(() => {
    const persist = navigator.storage.persist.bind(navigator.storage);
    window.__persistRequests = 0;
    navigator.storage.persist = () => {
      window.__persistRequests += 1;
      return persist();
    };
  });
  const page = await context.newPage();
  await page.goto(server.url);
  const manifestHref = await page.locator('link[rel=manifest]').getAttribute('href');
  const manifest = await (await page.request.get(new URL(manifestHref, server.url).href)).json();
  assert.equal(manifest.name, 'FieldMesh');
  assert.equal(manifest.short_name, 'FieldMesh');
  assert.equal(manifest.display, 'standalone');
  assert.equal(manifest.start_url, '/');
  assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/i);
  const sizes = [];
  for (const icon of manifest.icons) {
    const response = await page.request.get(new URL(icon.src, server.url).href);
    assert.equal(response.headers()['content-type'], 'image/png');
    const png = await response.body();
    // PNG header: width and height are the big-endian words at bytes 16 and 20.
    const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
    assert.equal(`${width}x${height}`, icon.sizes);
    sizes.push(`${icon.sizes} ${icon.purpose}`);
  }
  assert.deepEqual(sizes.sort(), ['192x192 any', '512x512 any', '512x512 maskable']);

  const worker = await page.request.get(new URL('/sw.js', server.url).href);
  assert.match(worker.headers()['cache-control'], /no-cache/, 'browsers always look for a new release');
  assert.doesNotMatch(await worker.text(), /__FIELDMESH_BUILD__/, 'the build id is filled in');
  await page.waitForFunction(() => navigator.serviceWorker.controller != null, null, { timeout: 30_000 });
  assert.equal(await page.evaluate(() => window.__persistRequests), 1, 'the app asked to keep its storage');
});

test('a room invite shows as a QR code and its link brings the next phone into the room', async () => {
  const ana = await ChatPage.open(await browser.newContext(), server.url);
  await ana.join('Ana', 'Camp Invite');
  await ana.menu('share');
  await ana.byTestId('share-sheet').waitFor();
  const link = await ana.byTestId('invite-link').inputValue();
  assert.match(link, new RegExp(`^${server.url}/#room=Camp%20Invite&key=[0-9a-f]{64}$`));
  assert.equal(await ana.byTestId('invite-qr').locator('svg').count(), 1);
  await ana.byTestId('share-close').click();
  assert.equal(await ana.byTestId('share-sheet').count(), 0);

  // The key leaves the address bar (and the history) as soon as the app runs, before the
  // join form is even submitted.
  const benPage = await ChatPage.open(await browser.newContext(), link);
  await benPage.ready();
  await benPage.page.waitForFunction(() => document.querySelector('[data-testid=join-room]')?.value === 'Camp Invite');
  // Replaced, not pushed: the history entry of the link no longer holds the key either.
  assert.equal(new URL(benPage.page.url()).hash, '', 'the key is gone before the join');
  await benPage.page.close();
  const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
  assert.equal(await ben.byTestId('room-title').textContent(), 'Camp Invite');
  assert.equal(new URL(ben.page.url()).hash, '', 'the key does not stay in the address bar');
  await ben.waitOnline();
  await ana.send('welcome Ben');
  await ben.messageWithText('welcome Ben').waitFor();
});

test('a message sent online is written on the device twice: queued, then stored (its echo costs nothing)', async () => {
  const context = await browser.newContext();
  // Count the device store's write transactions by the object stores they touch.
  await context.addInitScript(() => {
    window.__writes = [];
    const open = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
      if (mode === 'readwrite') window.__writes.push([].concat(stores).sort().join('+'));
      return open.call(this, stores, mode, ...rest);
    };
  });
  const eve = await ChatPage.open(context, server.url);
  await eve.join('Eve', 'Camp Echo');
  await eve.waitOnline();
  await eve.send('warming up');
  await eve.messageWithText('warming up').getByText('✓ stored').waitFor();
  await eve.page.waitForTimeout(500);
  const before = await eve.page.evaluate(() => window.__writes.length);
  await eve.send('one write to queue it, one to store it');
  await eve.messageWithText('one write to queue it, one to store it').getByText('✓ stored').waitFor();
  // The server's copy of the message comes back too; it must not cost another write.
  await eve.page.waitForTimeout(1000);
  const writes = await eve.page.evaluate((n) => window.__writes.slice(n), before);
  const messageWrites = writes.filter((stores) => stores.includes('messages'));
  assert.deepEqual(messageWrites.length, 2, `writes: ${JSON.stringify(writes)}`);
  assert.deepEqual(await eve.texts(), ['warming up', 'one write to queue it, one to store it']);
});

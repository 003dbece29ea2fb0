// Benchmarks of the offline-first path (figures, not pass/fail): run with `./x bench`.
//  1. 1,000 messages queued in the outbox while the server is down; the server comes back:
//     time from the page's reconnect (its "online" mark) until the last acknowledgement.
//  2. A room of 10,000 messages stored on the device: time from navigation until the newest
//     messages are on screen, and the cost of "load older".
//  3. Sealing and opening 10,000 messages in the browser's Wasm.
//  Before them: what a first visit transfers, and how long it takes on an emulated slow phone.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChatPage, Server, homeTrusting, launchBrowser } from '../support.mjs';

const OUTBOX = Number(process.env.BENCH_OUTBOX ?? 1000);
const ROOM = Number(process.env.BENCH_ROOM ?? 10000);

const browser = await launchBrowser();
const server = await Server.start();
const results = [];

try {
  // 0. A first visit over HTTPS (browsers ask for brotli only there): every byte of the page,
  //    its files and the service worker's precache, as transferred.
  {
    // As a phone that installed the camp's certificate authority (a browser does not cache
    // what comes with a certificate error, so ignoring the error would hide the HTTP cache).
    const host = 'fieldmesh.test';
    const tlsServer = await Server.start({ tls: true, args: ['--hostname', host] });
    const caFile = join(tlsServer.dataDir, 'bench-ca.crt');
    const download = await fetch(new URL('/fieldmesh-ca.crt', tlsServer.landingUrl));
    await writeFile(caFile, Buffer.from(await download.arrayBuffer()));
    const home = await homeTrusting(caFile);
    const tlsBrowser = await launchBrowser({ home, args: [`--host-resolver-rules=MAP ${host} 127.0.0.1`] });
    try {
      const context = await tlsBrowser.newContext();
      const sizes = new Map();
      context.on('requestfinished', async (request) => {
        const size = await request.sizes().catch(() => null);
        const path = new URL(request.url()).pathname;
        const sent = size ? size.responseBodySize + size.responseHeadersSize : 0;
        sizes.set(path, (sizes.get(path) ?? 0) + sent);
      });
      const visit = await ChatPage.open(context, `https://${host}:${tlsServer.port}/`);
      await visit.ready();
      await visit.waitControlled();
      await visit.page.waitForTimeout(1_000);
      const total = [...sizes.values()].reduce((a, b) => a + b, 0);
      const app = ['/pkg/fieldmesh.wasm', '/pkg/fieldmesh.js', '/pkg/fieldmesh.css']
        .map((path) => sizes.get(path) ?? 0)
        .reduce((a, b) => a + b, 0);
      results.push([`first visit over HTTPS: everything transferred (page, files, precache)`, `${(total / 1024).toFixed(0)} KB`]);
      results.push([`  of which Wasm + JS + CSS (each counted every time it travelled)`, `${(app / 1024).toFixed(0)} KB`]);
      results.push([`  the Wasm as sent once (${await visit.page.evaluate(async () => {
        const entry = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/pkg/fieldmesh.wasm'));
        return entry ? `${(entry.encodedBodySize / 1024).toFixed(0)} KB encoded, ${(entry.decodedBodySize / 1024).toFixed(0)} KB raw` : 'not seen';
      })})`, '']);
      await context.close();

      // 0b. The same first visit on an emulated slow phone (CPU 4× slower, 1.6 Mbit/s down,
      //     150 ms latency): navigation until the app is ready; then, once its service worker
      //     holds the app, a reload with no network at all.
      const slow = await tlsBrowser.newContext();
      const page = await slow.newPage();
      const cdp = await slow.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
      const network = (offline) =>
        cdp.send('Network.emulateNetworkConditions', {
          offline,
          latency: offline ? 0 : 150,
          downloadThroughput: offline ? -1 : 1.6e6 / 8,
          uploadThroughput: offline ? -1 : 750e3 / 8,
        });
      // Until ready, and of that until the app's code began (the Wasm fetched and compiled).
      const ready = async () => {
        await page.waitForFunction(() => performance.getEntriesByName('fieldmesh:ready').length > 0, null, {
          timeout: 60_000,
        });
        return page.evaluate(() =>
          ['fieldmesh:ready', 'fieldmesh:start'].map((name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN),
        );
      };
      await network(false);
      await page.goto(`https://${host}:${tlsServer.port}/`);
      const [cold, coldStart] = await ready();
      await page.waitForFunction(() => navigator.serviceWorker?.controller != null, null, { timeout: 60_000 });
      await network(true);
      await page.reload();
      const [offline, offlineStart] = await ready();
      results.push([`slow phone (4× CPU, 1.6 Mbit/s, 150 ms): cold first visit until ready`, `${cold.toFixed(0)} ms`]);
      results.push([`  of which until the app's Wasm began to run`, `${coldStart.toFixed(0)} ms`]);
      results.push([`  reload with no network (service worker), CPU still 4× slower`, `${offline.toFixed(0)} ms`]);
      results.push([`  of which until the app's Wasm began to run`, `${offlineStart.toFixed(0)} ms`]);
      await slow.close();
    } finally {
      await tlsBrowser.close();
      await tlsServer.dispose();
      await rm(home, { recursive: true, force: true });
    }
  }

  // 1. Outbox drain.
  const chat = await ChatPage.open(await browser.newContext(), server.url);
  await chat.join('Bench', 'bench outbox');
  await chat.waitOnline();
  await server.stop();
  await chat.waitOffline();
  // Written in the page as a person would (the text, then Enter), each waiting until the list
  // shows it before the next: the app's own cost, without the test driver's round trips.
  const queueMs = await chat.page.evaluate(async (count) => {
    const input = document.querySelector('[data-testid=composer-input]');
    const shows = (text) =>
      new Promise((done) => {
        const check = () => {
          const all = document.querySelectorAll('[data-testid=message-text]');
          if (all.length && all[all.length - 1].textContent === text) {
            observer.disconnect();
            done();
          }
        };
        const observer = new MutationObserver(check);
        observer.observe(document.body, { childList: true, subtree: true, characterData: true });
        check();
      });
    const start = performance.now();
    for (let n = 0; n < count; n++) {
      const text = `queued message ${n}`;
      input.value = text;
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
      await shows(text);
    }
    return performance.now() - start;
  }, OUTBOX);
  await chat.page.waitForFunction(
    (count) => document.querySelector('[data-testid=sync-status]')?.textContent.includes(`${count} messages queued`),
    OUTBOX,
    { timeout: 120_000 },
  );
  await chat.page.evaluate(() => performance.clearMarks());
  await server.restart();
  await chat.page.evaluate(() => window.dispatchEvent(new Event('online')));
  await chat.page.waitForFunction(() => performance.getEntriesByName('fieldmesh:outbox-drained').length > 0, null, {
    timeout: 120_000,
  });
  const drainMs = await chat.page.evaluate(
    () =>
      performance.getEntriesByName('fieldmesh:outbox-drained').at(-1).startTime -
      performance.getEntriesByName('fieldmesh:online').at(-1).startTime,
  );
  await chat.waitSynced(120_000);
  results.push([
    `write ${OUTBOX} messages offline through the UI, each until it shows`,
    `${queueMs.toFixed(0)} ms (${(queueMs / OUTBOX).toFixed(1)} ms each)`,
  ]);
  results.push([`outbox of ${OUTBOX}: reconnect to last acknowledgement`, `${drainMs.toFixed(0)} ms`]);

  // 2. A large room on the device, written straight into IndexedDB in the app's record shape.
  const big = await ChatPage.open(await browser.newContext(), server.url);
  await big.join('Bench', 'bench big room');
  await big.waitOnline();
  const roomId = await big.page.evaluate(async (count) => {
    const db = await new Promise((ok, fail) => {
      const request = indexedDB.open('fieldmesh');
      request.onsuccess = () => ok(request.result);
      request.onerror = () => fail(request.error);
    });
    const room = await new Promise((ok) => {
      const get = db.transaction('rooms').objectStore('rooms').getAll();
      get.onsuccess = () => ok(get.result.find((r) => r.name === 'bench big room'));
    });
    await new Promise((ok, fail) => {
      const tx = db.transaction('messages', 'readwrite');
      const store = tx.objectStore('messages');
      const now = Date.now();
      for (let n = 1; n <= count; n++) {
        store.put({
          id: n.toString(16).padStart(32, '0'),
          room: room.id,
          order: n,
          seq: n,
          created_at: now - (count - n) * 1000,
          sender: 'ab'.repeat(32),
          author: 'Someone',
          text: `stored message ${n}: water and blankets at the school, volunteers welcome`,
          state: 'stored',
        });
      }
      tx.oncomplete = ok;
      tx.onerror = () => fail(tx.error);
    });
    db.close();
    return room.id;
  }, ROOM);
  await server.stop();
  // Offline, so the figure is the device alone: service worker, IndexedDB and rendering.
  await big.page.reload();
  await big.messageWithText(`stored message ${ROOM}: water and blankets at the school, volunteers welcome`).waitFor();
  const renderMs = await big.page.evaluate(() => {
    const rendered = performance.getEntriesByName('fieldmesh:room-rendered').at(-1).startTime;
    return { rendered, visible: performance.now() };
  });
  const olderStart = performance.now();
  await big.byTestId('load-older').click();
  await big.page.waitForFunction(() => document.querySelectorAll('[data-testid=message]').length >= 200);
  const olderMs = performance.now() - olderStart;
  const shown = await big.byTestId('message').count();
  results.push([`room of ${ROOM} on the device (offline): navigation to newest messages shown`, `${renderMs.rendered.toFixed(0)} ms`]);
  results.push([`  "load older" (100 more from the device)`, `${olderMs.toFixed(0)} ms, ${shown} shown`]);
  void roomId;

  // 3. Seal and open 10,000 messages in the browser's Wasm (the same code as the server's).
  const crypto = await big.page.evaluate(async (count) => {
    const app = await import('/pkg/fieldmesh.js');
    return Array.from(app.bench_seal_open(count));
  }, 10_000);
  results.push([`seal 10000 messages in Wasm (encrypt + sign)`, `${crypto[0].toFixed(0)} ms`]);
  results.push([`open 10000 messages in Wasm (verify + decrypt), ${crypto[2]} opened`, `${crypto[1].toFixed(0)} ms`]);
} finally {
  await browser.close();
  await server.dispose();
}

console.log('\nFieldMesh offline-first benchmark (headless chromium, loopback)');
for (const [what, figure] of results) console.log(`  ${what.padEnd(70)} ${figure}`);

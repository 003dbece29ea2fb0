// Benchmarks of the offline-first path (figures, not pass/fail): run with `./x bench`.
//  1. 1,000 messages queued in the outbox while the server is down; the server comes back:
//     time from the page's reconnect (its "online" mark) until the last acknowledgement.
//  2. A room of 10,000 messages stored on the device: time from navigation until the newest
//     messages are on screen, and the cost of "load older".
//  3. Sealing and opening 10,000 messages in the browser's Wasm.
import { ChatPage, Server, launchBrowser } from '../support.mjs';

const OUTBOX = Number(process.env.BENCH_OUTBOX ?? 1000);
const ROOM = Number(process.env.BENCH_ROOM ?? 10000);

const browser = await launchBrowser();
const server = await Server.start();
const results = [];

try {
  // 1. Outbox drain.
  const chat = await ChatPage.open(await browser.newContext(), server.url);
  await chat.join('Bench', 'bench outbox');
  await chat.waitOnline();
  await server.stop();
  await chat.waitOffline();
  const queueStart = performance.now();
  for (let n = 0; n < OUTBOX; n++) await chat.send(`queued message ${n}`);
  await chat.page.waitForFunction(
    (count) => document.querySelector('[data-testid=sync-status]')?.textContent.includes(`${count} messages queued`),
    OUTBOX,
    { timeout: 120_000 },
  );
  const queueMs = performance.now() - queueStart;
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
  results.push([`write ${OUTBOX} messages offline through the UI`, `${queueMs.toFixed(0)} ms`]);
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

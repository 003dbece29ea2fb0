// Shared files' sealed pieces in the browser: uploaded to the real server by content name,
// fetched back, and kept by the service worker so a piece once seen opens with no network
// (the pieces are immutable: a name is its content). The page's own fetch stands in for the
// app here; `attach.test.mjs` goes through the app's buttons.
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

/** Uploads `size` bytes filled with `fill` as a piece; returns its name (SHA-256, hex). */
async function upload(page, fill, size) {
  return page.evaluate(async ([fill, size]) => {
    const bytes = new Uint8Array(size).fill(fill);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    const name = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    const answer = await fetch(`/chunks/${name}`, { method: 'PUT', body: bytes });
    if (answer.status !== 201) throw new Error(`upload answered ${answer.status}: ${await answer.text()}`);
    return name;
  }, [fill, size]);
}

/** Fetches a piece from the page: its length and first byte, or the error. */
async function fetchPiece(page, name) {
  return page.evaluate(async (name) => {
    try {
      const answer = await fetch(`/chunks/${name}`);
      const bytes = new Uint8Array(await answer.arrayBuffer());
      return { status: answer.status, length: bytes.length, first: bytes[0] };
    } catch (error) {
      return { error: String(error) };
    }
  }, name);
}

test('a piece fetched once opens again with no network, and one never fetched does not', async () => {
  const context = await browser.newContext();
  const chat = await ChatPage.open(context, server.url);
  await chat.ready();
  await chat.waitControlled();
  const seen = await upload(chat.page, 7, 100_000);
  const unseen = await upload(chat.page, 9, 50_000);
  assert.deepEqual(await fetchPiece(chat.page, seen), { status: 200, length: 100_000, first: 7 });

  await context.setOffline(true);
  assert.deepEqual(await fetchPiece(chat.page, seen), { status: 200, length: 100_000, first: 7 });
  assert.match((await fetchPiece(chat.page, unseen)).error ?? '', /Failed to fetch/);
  // Kept by the service worker, apart from the app's own files (a new release does not throw
  // them away), not only by the browser's HTTP cache, which may drop them.
  const kept = await chat.page.evaluate(async ([seen, unseen]) => {
    const cache = await caches.open('fieldmesh-files');
    return [!!(await cache.match(`/chunks/${seen}`)), !!(await cache.match(`/chunks/${unseen}`))];
  }, [seen, unseen]);
  assert.deepEqual(kept, [true, false], 'the service worker kept the piece it served, only it');
  await context.close();
});

// FieldMesh service worker: serves the app shell from a versioned cache so the app opens with
// no network, keeps the shared files' sealed pieces it saw (immutable: a piece's name is its
// content), and never touches chat traffic (the WebSocket and any /api/ request).
//
// The server replaces BUILD with a hash of the release's files when it serves this script, so
// every release gets its own cache. A new release installs beside the old one and waits until
// the page asks it to take over (after the person taps "Reload"): a page never mixes the old
// release's files with the new one's.
const BUILD = '__FIELDMESH_BUILD__';
const PREFIX = 'fieldmesh-shell-';
const CACHE = PREFIX + BUILD;
// Pieces of shared files, kept across releases; the oldest go past MAX_PIECES (100 MB).
const FILES = 'fieldmesh-files';
const MAX_PIECES = 400;
// The regional map's tiles, kept across releases once seen; the oldest go past MAX_TILES.
const TILES = 'fieldmesh-map-tiles';
// The regional map's description, kept across releases (with the tiles it names).
const MAP_INFO = 'fieldmesh-map-info';
const MAX_TILES = 4000;
const SHELL = [
  '/',
  '/pkg/fieldmesh.js',
  '/pkg/fieldmesh.wasm',
  '/pkg/fieldmesh.css',
  '/early.js',
  '/manifest.webmanifest',
  '/icons/icon-192.png',
  '/icons/icon-512.png',
  '/icons/maskable-512.png',
];

self.addEventListener('install', (event) => {
  // `no-cache` asks the server whether the HTTP cache's copy is still current (its ETag): the
  // new cache holds exactly this release's files, and a first visit does not download again
  // what the page has just loaded (the server answers 304 Not Modified).
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: 'no-cache' })))),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname === '/ws' || url.pathname.startsWith('/api/') || url.pathname === '/sw.js') return;
  if (url.pathname.startsWith('/chunks/')) {
    event.respondWith(kept(request, FILES, MAX_PIECES));
    return;
  }
  // The map's code and world basemap are fetched the first time the map opens (never with
  // the app), then kept with this release's files; its tiles are kept across releases.
  if (url.pathname.startsWith('/map/tiles/')) {
    event.respondWith(kept(request, TILES, MAX_TILES));
    return;
  }
  if (url.pathname === '/map/tiles.json') {
    event.respondWith(mapDescription(request));
    return;
  }
  if (url.pathname.startsWith('/map/')) {
    event.respondWith(kept(request, CACHE, Infinity));
    return;
  }
  // Every page is the same shell; the app shows the right screen from the device's store.
  const key = request.mode === 'navigate' ? '/' : SHELL.includes(url.pathname) ? url.pathname : null;
  if (key === null) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => (await cache.match(key)) ?? fetch(request)),
  );
});

/** From the cache `name`, or fetched and kept there (only whole, good answers); past `max`
 * entries the oldest go. */
async function kept(request, name, max) {
  const cache = await caches.open(name);
  const held = await cache.match(request);
  if (held) return held;
  const answer = await fetch(request);
  if (answer.status === 200) {
    await cache.put(request, answer.clone());
    if (Number.isFinite(max)) {
      const keys = await cache.keys();
      for (const old of keys.slice(0, Math.max(0, keys.length - max))) await cache.delete(old);
    }
  }
  return answer;
}

/** The regional map's description: from the network when it answers, else as kept. A new
 * map (another version) drops the tiles kept of the one before. */
async function mapDescription(request) {
  const cache = await caches.open(MAP_INFO);
  try {
    const answer = await fetch(request);
    if (!answer.ok) {
      await cache.delete(request);
      return answer;
    }
    const before = await cache.match(request);
    const version = async (response) => (await response.clone().json().catch(() => ({}))).version;
    if (before && (await version(before)) !== (await version(answer))) await caches.delete(TILES);
    await cache.put(request, answer.clone());
    return answer;
  } catch (error) {
    return (await cache.match(request)) ?? Response.error();
  }
}

// A tapped notification opens its room: an open FieldMesh window is brought forward and told
// which room, or a new one opens in it.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const room = (event.notification.data && event.notification.data.room) || '';
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      if (windows.length > 0) {
        windows[0].postMessage({ type: 'fieldmesh-open-room', room });
        return windows[0].focus();
      }
      return self.clients.openWindow('/?open=' + encodeURIComponent(room));
    })(),
  );
});

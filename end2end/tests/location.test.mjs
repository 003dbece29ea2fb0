// Where people are, on 390 px phones in headless chromium with emulated GPS: a message carries
// the position its writer chose to send, and shows how far and which way it is; a phone that
// refuses location, or has no fix yet, says so and sends nothing it was not told to.
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPage, RadioSim, Server, launchBrowser } from '../support.mjs';

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

// Ben stands in London; Ana 0.0076° north and 0.0122° east of him: 1.2 km north-east.
const BEN = { latitude: 51.5, longitude: -0.12, accuracy: 12 };
const ANA = { latitude: 51.5076, longitude: -0.1078, accuracy: 8 };

/** A phone-sized browser context (390 × 844, touch) at `geolocation` (none: no fix), with
 * location allowed unless `allow` is false, and notifications when `notify`. */
function phone({ geolocation, allow = true, notify = false } = {}) {
  return browser.newContext({
    viewport: { width: 390, height: 844 },
    hasTouch: true,
    isMobile: true,
    ...(geolocation ? { geolocation } : {}),
    permissions: [...(allow ? ['geolocation'] : []), ...(notify ? ['notifications'] : [])],
  });
}

/** The titles of the notifications the service worker shows now. */
async function notificationTitles(chat) {
  return chat.page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    return (await registration.getNotifications()).map((n) => n.title);
  });
}

/** Ana in a new room `room`, and Ben in it by its invite. */
async function pair(room, anaPhone, benPhone) {
  const ana = await ChatPage.open(anaPhone, server.url);
  await ana.join('Ana', room);
  await ana.waitOnline();
  const ben = await ChatPage.acceptInvite(benPhone, await ana.inviteLink(), 'Ben');
  await ben.waitOnline();
  return { ana, ben };
}

test('a message carries the position its writer chose to send, with how far and which way', async () => {
  const { ana, ben } = await pair('Camp Compass', await phone({ geolocation: ANA }), await phone({ geolocation: BEN }));
  // Nothing is sent about where anyone is until they choose it.
  await ana.send('no place yet');
  await ben.messageWithText('no place yet').waitFor();
  assert.equal(await ben.messageWithText('no place yet').getByTestId('message-place').count(), 0);
  assert.equal(await ana.byTestId('attach-place').getAttribute('aria-pressed'), 'false');

  await ana.byTestId('attach-place').click();
  assert.equal(await ana.byTestId('attach-place').getAttribute('aria-pressed'), 'true');
  await ana.byTestId('place-status').getByText('Your position goes with your messages · ±8 m').waitFor();
  await ana.send('at the north gate');
  const atBen = ben.messageWithText('at the north gate');
  // Ben's phone does not know where he is: the coordinates.
  await atBen.getByTestId('message-place').getByText('51.50760, -0.10780 · ±8 m').waitFor();
  assert.equal(
    await ana.messageWithText('at the north gate').getByTestId('message-place').textContent(),
    'sent from here · ±8 m',
  );
  // Once his phone knows (he sends his own), how far and which way.
  await ben.byTestId('attach-place').click();
  await atBen.getByTestId('message-place').getByText('1.2 km NE · ±8 m').waitFor();

  // Turned off: the next message says nothing of a place, and the phone is no longer watched.
  await ana.byTestId('attach-place').click();
  assert.equal(await ana.byTestId('attach-place').getAttribute('aria-pressed'), 'false');
  assert.equal(await ana.byTestId('place-status').count(), 0);
  await ana.send('somewhere else');
  await ben.messageWithText('somewhere else').waitFor();
  assert.equal(await ben.messageWithText('somewhere else').getByTestId('message-place').count(), 0);
  // After a reload the position is still on the stored message, and sending it is off.
  await ben.page.reload();
  await ben.ready();
  await ben.messageWithText('at the north gate').getByTestId('message-place').getByText('51.50760, -0.10780 · ±8 m').waitFor();
  assert.equal(await ben.byTestId('attach-place').getAttribute('aria-pressed'), 'false');
  // Chosen for one room, not for the next: Ben goes to another room, and his position stays
  // behind until he chooses it there too.
  await ben.byTestId('attach-place').click();
  assert.equal(await ben.byTestId('attach-place').getAttribute('aria-pressed'), 'true');
  await ben.byTestId('leave').click();
  await ben.byTestId('join-room').fill('Ben Alone');
  await ben.byTestId('join-submit').click();
  await ben.byTestId('room-title').getByText('Ben Alone').waitFor();
  assert.equal(await ben.byTestId('attach-place').getAttribute('aria-pressed'), 'false');
  await ben.send('no place here');
  await ben.messageWithText('no place here').waitFor();
  assert.equal(await ben.messageWithText('no place here').getByTestId('message-place').count(), 0);
  assert.deepEqual(ana.errors, []);
  assert.deepEqual(ben.errors, []);
});

test('a phone that refuses location, or has no fix yet, says so and sends no position', async () => {
  const refused = await ChatPage.open(await phone({ geolocation: ANA, allow: false }), server.url);
  await refused.join('Ana', 'Camp Refused');
  await refused.waitOnline();
  await refused.byTestId('attach-place').click();
  await refused.byTestId('notice').getByText(/did not allow FieldMesh to know where it is/).waitFor();
  assert.equal(await refused.byTestId('attach-place').getAttribute('aria-pressed'), 'false');
  await refused.send('sent without a place');
  await refused.messageWithText('sent without a place').waitFor();
  assert.equal(await refused.messageWithText('sent without a place').getByTestId('message-place').count(), 0);

  // Allowed, but no fix yet: the message waits in the composer until there is one.
  const context = await phone();
  const searching = await ChatPage.open(context, server.url);
  await searching.join('Ben', 'Camp Searching');
  await searching.waitOnline();
  await searching.byTestId('attach-place').click();
  await searching.byTestId('place-status').getByText(/Finding your position/).waitFor();
  await searching.send('where am I');
  await searching.byTestId('notice').getByText(/your position is not known/).waitFor();
  assert.equal(await searching.byTestId('composer-input').inputValue(), 'where am I');
  assert.equal(await searching.byTestId('message').count(), 0);
  await context.setGeolocation(BEN);
  await searching.byTestId('place-status').getByText('Your position goes with your messages · ±12 m').waitFor();
  await searching.byTestId('composer-send').click();
  await searching.messageWithText('where am I').getByTestId('message-place').getByText('sent from here · ±12 m').waitFor();
});

/** Holds the SOS button down for `ms` and lets go. */
async function hold(chat, ms) {
  const button = chat.byTestId('sos-send');
  const box = await button.boundingBox();
  await chat.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await chat.page.mouse.down();
  await chat.page.waitForTimeout(ms);
  await chat.page.mouse.up();
}

test('an SOS reaches the room and the Emergency room with where it is, until someone comes and its sender is safe', async () => {
  const { ana, ben } = await pair('Camp Rescue', await phone({ geolocation: ANA }), await phone({ geolocation: BEN }));
  // Cara is only in the public Emergency room, far away (Paris).
  const cara = await ChatPage.open(
    await phone({ geolocation: { latitude: 48.8566, longitude: 2.3522, accuracy: 20 }, notify: true }),
    server.url,
  );
  await cara.join('Cara', 'Emergency');
  await cara.waitOnline();
  // Ben's phone knows where he is (he sends it): the banner says how far.
  await ben.byTestId('attach-place').click();
  await ben.byTestId('place-status').getByText(/±12 m/).waitFor();

  await ana.menu('sos');
  await ana.byTestId('sos-sheet').waitFor();
  await ana.byTestId('sos-note').fill('trapped by water, second floor');
  // A tap is not an SOS.
  await hold(ana, 200);
  await ana.page.waitForTimeout(1_800);
  assert.equal(await ana.byTestId('message').count(), 0);
  assert.equal(await ben.byTestId('sos-banner').count(), 0);
  // Held for a moment and a half, it goes.
  await hold(ana, 1_800);
  await ana.byTestId('sos-sheet').waitFor({ state: 'detached' });
  const own = ana.byTestId('sos-banner');
  await own.getByText('Your SOS is out').waitFor();
  assert.equal(await own.count(), 1, 'one banner for a call that went to two rooms');
  const sent = ana.byTestId('message').filter({ has: ana.byTestId('message-signal') });
  await sent.getByTestId('message-signal').getByText('SOS: needs help').waitFor();
  await sent.getByTestId('message-place').getByText('sent from here · ±8 m').waitFor();

  const atBen = ben.byTestId('sos-banner');
  await atBen.waitFor();
  assert.equal(await atBen.getByTestId('sos-author').textContent(), 'Ana');
  assert.match(await atBen.getByTestId('sos-where').textContent(), /^1\.2 km NE · now · in Camp Rescue$/);
  assert.equal(await atBen.getByTestId('sos-note').textContent(), 'trapped by water, second floor');
  const atCara = cara.byTestId('sos-banner');
  await atCara.waitFor();
  assert.match(await atCara.getByTestId('sos-where').textContent(), /^\d+ km NW · now · in Emergency$/);
  // Kept on the device: a reload still shows it.
  await cara.page.reload();
  await cara.ready();
  await cara.byTestId('sos-banner').waitFor();

  // Ben is on his way: his banner goes, Ana sees who comes.
  await atBen.getByTestId('sos-answer').click();
  await atBen.waitFor({ state: 'detached' });
  await ana.byTestId('sos-coming-line').getByText('On the way: Ben').waitFor();
  await ana.byTestId('message-signal').getByText('On the way to help').waitFor();
  // Ben chose to send where he is (the pin): his answer carries it.
  const benAnswer = ana.byTestId('message').filter({ has: ana.byTestId('message-signal').getByText('On the way to help') });
  await benAnswer.getByTestId('message-place').getByText(/km/).waitFor();
  // Cara is on her way too. Her phone knows where she is (to say how far the call is), but
  // she did not choose to send it: her answer goes without it.
  await atCara.getByTestId('sos-answer').click();
  await atCara.waitFor({ state: 'detached' });
  const caraAnswer = cara.byTestId('message').filter({ has: cara.byTestId('message-signal').getByText('On the way to help') });
  await caraAnswer.waitFor();
  assert.equal(await caraAnswer.getByTestId('message-place').count(), 0);

  // Ana is safe: her banner goes, and so does Cara's in the Emergency room.
  await ana.byTestId('sos-safe').click();
  await ana.byTestId('sos-banner').waitFor({ state: 'detached' });
  await cara.byTestId('sos-banner').waitFor({ state: 'detached' });
  await cara.byTestId('message-signal').getByText('✓ Safe now: the SOS is over').waitFor();
  // Cara was told once. Over, the call stays over: reading the room again (a reload) raises
  // neither its banner nor its notification.
  assert.deepEqual(await notificationTitles(cara), ['SOS from Ana']);
  await cara.page.evaluate(async () => {
    for (const n of await (await navigator.serviceWorker.ready).getNotifications()) n.close();
  });
  await cara.page.waitForFunction(async () => (await (await navigator.serviceWorker.ready).getNotifications()).length === 0);
  await cara.page.reload();
  await cara.ready();
  await cara.byTestId('message-signal').getByText('✓ Safe now: the SOS is over').waitFor();
  await cara.page.waitForTimeout(1_500);
  assert.equal(await cara.byTestId('sos-banner').count(), 0);
  assert.deepEqual(await notificationTitles(cara), []);
  for (const chat of [ana, ben, cara]) assert.deepEqual(chat.errors, []);
});

test('an SOS goes without a position when the phone never answers where it is (a question left unanswered)', async () => {
  const context = await phone();
  // Stands in for a location question the person never answers: Chrome's headless mode
  // answers every question at once, so the page's geolocation is made never to call back
  // (the one part of this test that is not the real browser's).
  await context.addInitScript(() => {
    navigator.geolocation.getCurrentPosition = () => {};
    navigator.geolocation.watchPosition = () => 1;
  });
  const ana = await ChatPage.open(context, server.url);
  await ana.join('Ana', 'Camp Unanswered');
  await ana.waitOnline();
  await ana.menu('sos');
  await ana.byTestId('sos-sheet').waitFor();
  const held = Date.now();
  await hold(ana, 1_800);
  await ana.byTestId('sos-banner').getByText('Your SOS is out').waitFor({ timeout: 15_000 });
  const waitedMs = Date.now() - held;
  console.log(`SOS out ${waitedMs} ms after the hold began, with no answer about the position`);
  const sent = ana.byTestId('message').filter({ has: ana.byTestId('message-signal') });
  await sent.getByTestId('message-signal').getByText('SOS: needs help').waitFor();
  assert.equal(await sent.getByTestId('message-place').count(), 0);
  assert.deepEqual(ana.errors, []);
});

test('a live position moves on the other phone, merged into one entry, and is gone when stopped', async () => {
  const anaPhone = await phone({ geolocation: ANA });
  const { ana, ben } = await pair('Camp Moving', anaPhone, await phone({ geolocation: BEN }));
  await ben.menu('nearby');
  await ben.byTestId('nearby-sheet').waitFor();
  await ben.byTestId('nearby-empty').waitFor();

  await ana.menu('share-live');
  await ana.byTestId('live-15').click();
  await ana.byTestId('live-bar').getByText(/^Sharing your live position here until \d\d:\d\d$/).waitFor();
  const entry = ben.byTestId('nearby-entry');
  await entry.getByTestId('nearby-where').getByText('1.2 km NE · ±8 m').waitFor();
  assert.equal(await entry.getByTestId('nearby-name').textContent(), 'Ana');
  await entry.getByTestId('nearby-live').waitFor();

  // Ana's phone reloads the app (a phone does that to a page in the background): she still
  // shares, until the time she chose.
  await ana.page.reload();
  await ana.ready();
  await ana.byTestId('live-bar').getByText(/^Sharing your live position here until \d\d:\d\d$/).waitFor();
  // Ana walks to 1 km south of Ben: his list follows, still one entry.
  await anaPhone.setGeolocation({ latitude: 51.491, longitude: -0.12, accuracy: 8 });
  await entry.getByTestId('nearby-where').getByText('1.0 km S · ±8 m').waitFor();
  assert.equal(await entry.count(), 1);
  // Ben's phone faces west: the arrow points to his left (south is 90° left of west).
  await ben.page.evaluate(() => {
    window.dispatchEvent(new DeviceOrientationEvent('deviceorientationabsolute', { alpha: 90, beta: 0, gamma: 0, absolute: true }));
  });
  await ben.page.waitForFunction(() => /rotate\(270deg\)/.test(document.querySelector('[data-testid=nearby-arrow]')?.getAttribute('style') ?? ''));
  // Live positions are not messages: the room holds none, and nothing is unread.
  await ben.byTestId('nearby-close').click();
  assert.equal(await ben.byTestId('message').count(), 0);
  assert.equal(await ana.byTestId('message').count(), 0);

  // Ana stops: it is gone from Ben's list at once.
  await ben.menu('nearby');
  await ben.byTestId('nearby-entry').waitFor();
  await ana.byTestId('live-stop').click();
  await ana.byTestId('live-bar').waitFor({ state: 'detached' });
  await ben.byTestId('nearby-empty').waitFor({ timeout: 10_000 });
  for (const chat of [ana, ben]) assert.deepEqual(chat.errors, []);
});

test('a live position shared while the server is away waits as one entry, not one per move', async () => {
  const anaPhone = await phone({ geolocation: ANA });
  const ana = await ChatPage.open(anaPhone, server.url);
  await ana.join('Ana', 'Camp Offline Walk');
  await ana.waitOnline();
  await server.stop();
  try {
    await ana.menu('share-live');
    await ana.byTestId('live-15').click();
    await ana.byTestId('live-bar').waitFor();
    // Ana walks on, 100 m at a time: each step is a newer live position.
    for (let step = 1; step <= 4; step++) {
      await anaPhone.setGeolocation({ ...ANA, latitude: ANA.latitude + step * 0.0009 });
      await ana.page.waitForTimeout(400);
    }
    // What waits: the first (it also goes over the radio) and the newest.
    const waiting = await ana.page.evaluate(() => new Promise((resolve, reject) => {
      const open = indexedDB.open('fieldmesh');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const count = open.result.transaction('outbox').objectStore('outbox').count();
        count.onsuccess = () => { resolve(count.result); open.result.close(); };
        count.onerror = () => reject(count.error);
      };
    }));
    assert.equal(waiting, 2);
  } finally {
    await server.restart();
  }
  await ana.waitOnline();
  assert.deepEqual(ana.errors, []);
});

test('over a radio chain of four camps, an SOS overtakes the messages queued before it', async () => {
  const sim = await RadioSim.start('bitrate 5470\nduty-cycle 1\nlink A B latency=20\nlink B C latency=20\nlink C D latency=20\n');
  const camps = [];
  try {
    for (const name of ['A', 'B', 'C', 'D']) {
      camps.push(await Server.start({ args: ['--radio', sim.port(name), '--radio-bitrate', '5470', '--camp-name', `Camp ${name}`] }));
    }
    const ana = await ChatPage.open(await phone({ geolocation: ANA }), camps[0].url);
    await ana.join('Ana', 'Emergency');
    const dan = await ChatPage.open(await phone({ geolocation: BEN }), camps[3].url);
    await dan.join('Dan', 'Emergency');
    for (const chat of [ana, dan]) {
      await chat.waitOnline();
      await chat.byTestId('radio-status').getByText('📡 Radio on').waitFor();
    }
    // A queue at camp A: long reports of 14 frames each, about 5 seconds of airtime apiece.
    const QUEUED = 6;
    for (let n = 1; n <= QUEUED; n++) await ana.send(`supply list ${n}: ${'rice, water, blankets; '.repeat(130)}`);
    await ana.menu('sos');
    await ana.byTestId('sos-note').fill('collapsed wall, north street');
    await hold(ana, 1_800);
    const sentAt = Date.now();
    // Relays still carry in turn what they heard before it: up to a minute here.
    await dan.byTestId('sos-banner').waitFor({ timeout: 180_000 });
    const sosMs = Date.now() - sentAt;
    const before = await dan.byTestId('message').filter({ hasText: 'supply list' }).count();
    console.log(`# SOS at camp D ${sosMs} ms after it was sent at camp A; ${before} of the ${QUEUED} reports queued before it were there`);
    assert.ok(before <= 1, `${before} of the ${QUEUED} reports queued first arrived before the SOS`);
    assert.match(await dan.byTestId('sos-note').textContent(), /collapsed wall, north street/);
    assert.match(await dan.byTestId('sos-where').textContent(), /^1\.2 km NE · (now|\d+ min ago) · in Emergency$/);
  } finally {
    for (const camp of camps) await camp.dispose();
    await sim.dispose();
  }
});

test('the map shows this phone, the others and placed messages from the server alone, also offline, and a tap opens the message', async () => {
  const benPhone = await phone({ geolocation: BEN });
  const requests = [];
  benPhone.on('request', (request) => requests.push(request.url()));
  const { ana, ben } = await pair('Camp Map', await phone({ geolocation: ANA }), benPhone);
  await ben.waitControlled();
  assert.deepEqual(requests.filter((url) => url.includes('/map/')), [], 'the map is not loaded with the app');
  await ana.byTestId('attach-place').click();
  await ana.byTestId('place-status').getByText(/±8 m/).waitFor();
  await ana.send('water at the north gate');
  await ben.byTestId('attach-place').click();
  await ben.messageWithText('water at the north gate').getByText('1.2 km NE · ±8 m').waitFor();

  await ben.menu('map-button');
  const canvas = ben.byTestId('map-canvas');
  await ben.page.waitForFunction(() => document.querySelector('[data-testid=map-canvas]')?.dataset.ready === 'true');
  const marker = (kind) => ben.page.locator(`[data-testid=map-marker][data-kind=${kind}]`);
  await marker('me').waitFor();
  await marker('message').getByText('Ana: water at the north gate').waitFor();
  await marker('person').getByText(/^Ana · /).waitFor();
  // Everything came from this server: no other address was asked for anything.
  const origin = new URL(server.url).origin;
  assert.deepEqual(requests.filter((url) => !url.startsWith(origin) && !url.startsWith('data:') && !url.startsWith('blob:')), []);
  // A tap on the message's marker opens it in the room.
  await marker('message').click();
  await ben.byTestId('map').waitFor({ state: 'detached' });
  await ben.messageWithText('water at the north gate').waitFor();

  // Offline, the map opens again from what the phone kept, from the message's place line.
  await benPhone.setOffline(true);
  await ben.messageWithText('water at the north gate').getByTestId('message-place').click();
  await ben.page.waitForFunction(() => document.querySelector('[data-testid=map-canvas]')?.dataset.ready === 'true');
  await marker('message').waitFor();
  await ben.byTestId('map-close').click();
  await ben.byTestId('map').waitFor({ state: 'detached' });
  await benPhone.setOffline(false);
  for (const chat of [ana, ben]) assert.deepEqual(chat.errors, []);
  assert.deepEqual(await ben.cspViolations(), []);
});

test('a regional map given to the server is drawn from its tiles, and its tiles stay on the phone for offline use', async () => {
  const fixture = new URL('../fixtures/region.pmtiles', import.meta.url).pathname;
  const camp = await Server.start({ args: ['--map', fixture] });
  try {
    const context = await phone({ geolocation: BEN });
    const tiles = [];
    context.on('response', (response) => {
      if (response.url().includes('/map/tiles/')) tiles.push(`${response.status()} ${new URL(response.url()).pathname}`);
    });
    const ben = await ChatPage.open(context, camp.url);
    await ben.join('Ben', 'Camp Regional');
    await ben.waitOnline();
    await ben.waitControlled();
    await ben.byTestId('attach-place').click();
    await ben.byTestId('place-status').getByText(/±12 m/).waitFor();
    await ben.menu('map-button');
    await ben.page.waitForFunction(() => document.querySelector('[data-testid=map-canvas]')?.dataset.ready === 'true');
    // London at zoom 3 is tile 3/3/2; the map draws it (scaled up) under the markers.
    const drawn = (version) =>
      ben.page.waitForFunction((version) =>
        [...document.querySelectorAll('img.leaflet-tile-loaded')].some((img) => img.src.endsWith(`/map/tiles/3/3/2?v=${version}`)), version);
    const described = async () => ben.page.evaluate(async () => (await (await fetch('/map/tiles.json')).json()).version);
    const first = await described();
    await drawn(first);
    assert.ok(tiles.includes('200 /map/tiles/3/3/2'), tiles.join(', '));
    await ben.byTestId('map-close').click();

    // Offline: the tile comes from the phone.
    await context.setOffline(true);
    await ben.menu('map-button');
    await drawn(first);
    await ben.byTestId('map-close').click();
    await context.setOffline(false);

    // The operator replaces the map (here: the same tiles, a newer file): the phone draws the
    // new one's tiles and drops what it kept of the old.
    await camp.stop();
    const replaced = join(camp.dataDir, 'replaced.pmtiles');
    await copyFile(fixture, replaced);
    camp.args = ['--map', replaced];
    await camp.restart();
    await ben.waitOnline();
    const second = await described();
    assert.notEqual(second, first);
    await ben.menu('map-button');
    await drawn(second);
    const kept = await ben.page.evaluate(async () =>
      (await (await caches.open('fieldmesh-map-tiles')).keys()).map((request) => request.url));
    assert.ok(kept.length > 0 && kept.every((url) => url.endsWith(`?v=${second}`)), kept.join(', '));
    await ben.byTestId('map-close').click();
    assert.deepEqual(ben.errors, []);
  } finally {
    await camp.dispose();
  }
});

test('a regional map of vector tiles (a Protomaps extract) is drawn on the phone, over the world map', async () => {
  const fixture = new URL('../fixtures/region-vector.pmtiles', import.meta.url).pathname;
  const camp = await Server.start({ args: ['--map', fixture] });
  try {
    const ben = await ChatPage.open(await phone({ geolocation: BEN }), camp.url);
    await ben.join('Ben', 'Camp Vector');
    await ben.waitOnline();
    await ben.byTestId('attach-place').click();
    await ben.byTestId('place-status').getByText(/±12 m/).waitFor();
    await ben.menu('map-button');
    await ben.page.waitForFunction(() => document.querySelector('[data-testid=map-canvas]')?.dataset.ready === 'true');
    // Every tile of the extract is land with a lake in its middle. Close in, the land around
    // Ben is drawn (the dark theme's earth, #1f1f1f); zoomed out (the extract's tiles of
    // zoom 3 and less), the lakes too (its water, #31353f).
    const drawn = (rgb) =>
      ben.page.evaluate((rgb) =>
        [...document.querySelectorAll('.leaflet-tile-pane canvas.leaflet-tile-loaded')].some((canvas) => {
          const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
          for (let i = 0; i < data.length; i += 4 * 31) {
            if (rgb.every((value, k) => Math.abs(data[i + k] - value) <= 2)) return true;
          }
          return false;
        }), rgb);
    await ben.page.waitForFunction(() => document.querySelector('.leaflet-tile-pane canvas.leaflet-tile-loaded'));
    assert.ok(await drawn([0x1f, 0x1f, 0x1f]), 'land drawn around Ben');
    let lake = false;
    for (let out = 0; out < 16 && !lake; out++) {
      await ben.page.locator('.leaflet-control-zoom-out').click();
      await ben.page.waitForTimeout(300);
      lake = await drawn([0x31, 0x35, 0x3f]);
    }
    assert.ok(lake, 'the lakes drawn, zoomed out');
    const [tilePane, worldPane] = await ben.page.evaluate(() =>
      ['.leaflet-tile-pane', '.leaflet-world-pane'].map((s) => Number(getComputedStyle(document.querySelector(s)).zIndex)));
    assert.ok(tilePane > worldPane, `tiles ${tilePane}, world ${worldPane}`);
    if (process.env.FIELDMESH_SHOTS) await ben.page.screenshot({ path: `${process.env.FIELDMESH_SHOTS}/map-vector.png` });
    await ben.byTestId('map-close').click();
    assert.deepEqual(ben.errors, []);
  } finally {
    await camp.dispose();
  }
});

// Photos and files through the app: attached in the composer, made small (photos) and sealed
// on the phone, uploaded before their message goes out, fetched, checked and opened on the
// other phone; offline first; and the server's folder holds none of their bytes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPage, Server, launchBrowser } from '../support.mjs';

let server;
let browser;

before(async () => {
  server = await Server.start();
  // Chromium's fake microphone (a beep) stands in for a real one, allowed without asking.
  browser = await launchBrowser({
    args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
  });
});

after(async () => {
  await browser?.close();
  await server?.dispose();
});

/** A document of `size` bytes no two 64-byte windows of which repeat (a counter, hashed). */
function documentBytes(size, seed) {
  const out = Buffer.alloc(size);
  for (let offset = 0, n = 0; offset < size; n += 1) {
    const block = createHash('sha256').update(`${seed}-${n}`).digest();
    block.copy(out, offset);
    offset += block.length;
  }
  return out;
}

/** A photo as a camera would give it: a `width` × `height` PNG drawn in the page. */
async function photoBytes(page, width, height) {
  const bytes = await page.evaluate(async ([width, height]) => {
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d');
    const gradient = context.createLinearGradient(0, 0, width, height);
    gradient.addColorStop(0, '#2a6');
    gradient.addColorStop(1, '#c42');
    context.fillStyle = gradient;
    context.fillRect(0, 0, width, height);
    context.fillStyle = '#fff';
    context.font = `${Math.round(height / 6)}px sans-serif`;
    context.fillText('ROAD CLOSED', width / 10, height / 2);
    const blob = await canvas.convertToBlob({ type: 'image/png' });
    return [...new Uint8Array(await blob.arrayBuffer())];
  }, [width, height]);
  return Buffer.from(bytes);
}

/** The bytes behind a `blob:` address of the page. */
async function blobBytes(page, url) {
  return Buffer.from(await page.evaluate(async (url) => [...new Uint8Array(await (await fetch(url)).arrayBuffer())], url));
}

/** Every file under `folder`, read. */
async function allFiles(folder) {
  const out = [];
  for (const entry of await readdir(folder, { recursive: true })) {
    const path = join(folder, entry);
    if ((await stat(path)).isFile()) out.push(await readFile(path));
  }
  return out;
}

/** 48-byte windows spread over `bytes`, to look for. */
function windows(bytes, count = 12) {
  const step = Math.floor((bytes.length - 48) / count);
  return Array.from({ length: count }, (_, i) => bytes.subarray(i * step, i * step + 48));
}

async function twoInARoom(room) {
  const ana = await ChatPage.open(await browser.newContext(), server.url);
  await ana.join('Ana', room);
  await ana.waitOnline();
  const link = await ana.inviteLink();
  const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
  await ben.waitOnline();
  return [ana, ben];
}

test('a photo and a file with a caption reach the other phone whole; the server holds none of their bytes', async () => {
  const [ana, ben] = await twoInARoom('Camp Files');
  const doc = documentBytes(600_000, 'names');
  const photo = await photoBytes(ana.page, 2000, 1500);

  await ana.byTestId('attach-photo').setInputFiles({ name: 'road.png', mimeType: 'image/png', buffer: photo });
  await ana.byTestId('attach-file').setInputFiles({ name: 'names.pdf', mimeType: 'application/pdf', buffer: doc });
  assert.equal(await ana.byTestId('draft').count(), 2);
  assert.equal(await ana.byTestId('photo-size').inputValue(), 'medium');
  await ana.send('the road at km 12');
  await ana.byTestId('drafts').waitFor({ state: 'detached' });
  await ana.waitSynced();

  const message = ben.messageWithText('the road at km 12');
  await message.waitFor();
  // The photo opens by itself, made small on Ana's phone (medium: 1,600 pixels at most).
  const img = message.getByTestId('file-photo');
  await ben.page.waitForFunction((img) => img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0, await img.elementHandle());
  const size = await img.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  assert.deepEqual(size, [1600, 1200]);
  const sentPhoto = await blobBytes(ben.page, await img.getAttribute('src'));
  assert.equal(sentPhoto.subarray(8, 12).toString(), 'WEBP', 'Chromium makes WebP');
  assert.match(await message.getByTestId('file-label').first().textContent(), /^Photo, 1600 × 1200 · \d+ KB$/);
  // A tap shows it whole, in a tab of its own.
  const [tab] = await Promise.all([ben.page.context().waitForEvent('page'), img.click()]);
  await tab.waitForLoadState();
  assert.ok(tab.url().startsWith('blob:'), tab.url());
  await tab.close();

  // The file waits for a tap, then opens whole, byte for byte.
  const file = message.getByTestId('file').filter({ has: ben.page.getByText('names.pdf · 600 KB') });
  await file.getByTestId('file-open').click();
  const save = file.getByTestId('file-save');
  await save.waitFor();
  assert.equal(await save.getAttribute('download'), 'names.pdf');
  const got = await blobBytes(ben.page, await save.getAttribute('href'));
  assert.ok(got.equals(doc), 'the file arrived whole');

  // Ana sees her own photo from her own device, and the list line names the files.
  await ana.page.waitForFunction(() => document.querySelector('[data-testid=file-photo]')?.src.startsWith('blob:'));
  assert.deepEqual(await ana.cspViolations(), []);
  assert.deepEqual(await ben.cspViolations(), []);
  assert.deepEqual([...ana.errors, ...ben.errors], []);

  // Nothing of either file in the server's folder: database, pieces, anything.
  const stored = await allFiles(server.dataDir);
  assert.ok(stored.reduce((n, b) => n + b.length, 0) > doc.length, 'the pieces are stored');
  for (const window of [...windows(doc), ...windows(sentPhoto), ...windows(photo)]) {
    assert.ok(!stored.some((b) => b.includes(window)), 'a piece of plaintext is on the server');
  }
  await ana.page.context().close();
  await ben.page.context().close();
});

test('a file attached offline waits on the phone, goes up when the server is back, and only then is sent', async () => {
  const [ana, ben] = await twoInARoom('Camp Offline Files');
  const doc = documentBytes(700_000, 'offline');
  await ana.page.context().setOffline(true);
  await ana.waitOffline();
  await ana.byTestId('attach-file').setInputFiles({ name: 'list.txt', mimeType: 'text/plain', buffer: doc });
  await ana.send('list of names');
  const mine = ana.messageWithText('list of names');
  await mine.getByTestId('upload-state').waitFor();
  assert.match(await mine.getByTestId('upload-state').textContent(), /wait/i);
  await ben.page.waitForTimeout(500);
  assert.equal(await ben.messageWithText('list of names').count(), 0, 'nothing is published before its file');

  // Reloaded while offline: the message and its sealed pieces are still on the phone.
  await ana.page.reload();
  await ana.ready();
  await mine.getByTestId('upload-state').waitFor();

  await ana.page.context().setOffline(false);
  await ana.waitSynced();
  const message = ben.messageWithText('list of names');
  await message.waitFor();
  await message.getByTestId('file-open').click();
  const save = message.getByTestId('file-save');
  await save.waitFor();
  assert.ok((await blobBytes(ben.page, await save.getAttribute('href'))).equals(doc));
  await ana.page.context().close();
  await ben.page.context().close();
});

test('a server killed at half an upload gets the rest after its restart, and no piece twice', async () => {
  const own = await Server.start();
  try {
    const ana = await ChatPage.open(await browser.newContext(), own.url);
    await ana.join('Ana', 'Camp Restart');
    await ana.waitOnline();
    // Every upload the page makes, with the server's answer.
    const puts = [];
    ana.page.on('response', (response) => {
      const request = response.request();
      if (request.method() === 'PUT' && request.url().includes('/chunks/')) {
        puts.push([request.url().split('/chunks/')[1], response.status()]);
      }
    });
    const doc = documentBytes(8_000_000, 'restart');
    const pieces = Math.ceil(doc.length / (256 * 1024));
    // A link of 4 MB/s up: the upload takes about two seconds, so the kill lands in it on a
    // fast machine too.
    const cdp = await ana.page.context().newCDPSession(ana.page);
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 4_000_000,
    });
    await ana.byTestId('attach-file').setInputFiles({ name: 'map.bin', mimeType: 'application/octet-stream', buffer: doc });
    await ana.send('the whole map');
    const mine = ana.messageWithText('the whole map');
    await ana.page.waitForFunction(
      () => /Uploading ([2-9]\d) %/.test(document.querySelector('[data-testid=upload-state]')?.textContent ?? ''),
      null,
      { polling: 5, timeout: 60_000 },
    );
    await own.stop('SIGKILL');
    const before = puts.filter(([, status]) => status === 201).length;
    assert.ok(before > 0 && before < pieces, `${before} of ${pieces} pieces stored before the kill`);
    await mine.getByTestId('upload-state').waitFor();
    await own.restart();
    await ana.waitSynced(90_000);
    const stored = puts.filter(([, status]) => status === 201).map(([id]) => id);
    assert.equal(new Set(stored).size, stored.length, 'no piece stored twice');
    // A piece stored as the server was killed may have lost its answer (then the phone,
    // asking after the restart, learns it is there): at most the two in flight.
    assert.ok(stored.length >= pieces - 2 && stored.length <= pieces, `${stored.length} of ${pieces} stored by answer`);
    // Only what was in flight at the kill may have gone again (answered "had it"); the
    // server's restart forgot the room ticket, which costs a refusal each for those in flight.
    const resent = puts.filter(([, status]) => status === 200).length;
    const expired = puts.filter(([, status]) => status === 412).length;
    assert.ok(resent <= 2, `${resent} pieces sent again`);
    assert.ok(expired <= 2, `${expired} uploads with a forgotten ticket`);
    assert.equal(puts.length, stored.length + resent + expired, `answers: ${puts.map(([, s]) => s)}`);
    // A large file leaves the phone's store once the server has it.
    const kept = await ana.page.evaluate(() => new Promise((ok, fail) => {
      const open = indexedDB.open('fieldmesh-files');
      open.onerror = () => fail(open.error);
      open.onsuccess = () => {
        const count = open.result.transaction('pieces').objectStore('pieces').count();
        count.onsuccess = () => ok(count.result);
      };
    }));
    assert.equal(kept, 0, 'pieces of a large sent file kept on the phone');

    // A second phone opens the whole file.
    const link = await ana.inviteLink();
    const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
    const message = ben.messageWithText('the whole map');
    await message.waitFor();
    await message.getByTestId('file-open').click();
    const save = message.getByTestId('file-save');
    await save.waitFor();
    assert.ok((await blobBytes(ben.page, await save.getAttribute('href'))).equals(doc));

    // Once fetched, the file opens again with no network (the service worker kept its pieces).
    await ben.waitControlled();
    await ben.page.context().setOffline(true);
    await ben.page.reload();
    await ben.ready();
    const again = ben.messageWithText('the whole map');
    await again.getByTestId('file-open').click();
    await again.getByTestId('file-save').waitFor();
    await ana.page.context().close();
    await ben.page.context().close();
  } finally {
    await own.dispose();
  }
});

test('a voice note recorded while the button is held is attached, sent, and plays on the other phone', async () => {
  const [ana, ben] = await twoInARoom('Camp Voice');
  // A tap is not a note.
  await ana.byTestId('record-voice').click();
  await ana.page.waitForFunction(() => /Hold the button/.test(document.querySelector('[data-testid=notice]')?.textContent ?? ''));
  assert.equal(await ana.byTestId('draft').count(), 0);

  await ana.byTestId('record-voice').hover();
  await ana.page.mouse.down();
  await ana.byTestId('recording').waitFor();
  await ana.page.waitForTimeout(2200);
  await ana.page.mouse.up();
  await ana.byTestId('recording').waitFor({ state: 'detached' });
  await ana.byTestId('draft').waitFor();
  assert.match(await ana.byTestId('draft').textContent(), /^Voice note 0:02/);
  await ana.byTestId('composer-send').click();
  await ana.byTestId('drafts').waitFor({ state: 'detached' });
  await ana.waitSynced();

  const note = ben.byTestId('file').and(ben.page.locator('[data-kind=voice]'));
  await note.waitFor();
  assert.match(await note.getByTestId('file-label').textContent(), /^Voice note, 0:02 · \d+ KB$/);
  assert.equal(await note.getAttribute('data-type'), 'audio/webm');
  await note.getByTestId('file-open').click();
  const audio = note.getByTestId('file-audio');
  await audio.waitFor();
  const bytes = await blobBytes(ben.page, await audio.getAttribute('src'));
  assert.equal(bytes.subarray(0, 4).toString('hex'), '1a45dfa3', 'a WebM recording');
  assert.ok(bytes.length > 2_000, `${bytes.length} bytes of sound`);
  assert.deepEqual([...ana.errors, ...ben.errors], []);
  await ana.page.context().close();
  await ben.page.context().close();
});

/** The sealed pieces in a server's folder (full paths). */
async function pieceFiles(dataDir) {
  const folder = join(dataDir, 'chunks');
  return (await readdir(folder, { recursive: true }))
    .filter((name) => /^[0-9a-f]{64}$/.test(name.split('/').at(-1)))
    .map((name) => join(folder, name));
}

test('a file over the server\'s limit is refused at once; a damaged or missing piece is refused with the reason, nothing shown broken', async () => {
  const own = await Server.start({ args: ['--max-file-mb', '1'] });
  try {
    const ana = await ChatPage.open(await browser.newContext(), own.url);
    await ana.join('Ana', 'Camp Limits');
    await ana.waitOnline();
    await ana.byTestId('attach-file').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: documentBytes(1_500_000, 'big') });
    await ana.page.waitForFunction(() =>
      document.querySelector('[data-testid=notice]')?.textContent.includes('big.bin is 1.5 MB: this server takes files up to 1.0 MB.'));
    assert.equal(await ana.byTestId('draft').count(), 0);
    // A "photo" the phone cannot draw is not sent as it is (it may say where it was taken);
    // the caption comes back and the file stays attached.
    await ana.byTestId('attach-photo').setInputFiles({ name: 'broken.jpg', mimeType: 'image/jpeg', buffer: documentBytes(5_000, 'broken') });
    await ana.send('the broken photo');
    await ana.page.waitForFunction(() =>
      /broken\.jpg could not be made small on this phone .*so it was not sent/.test(document.querySelector('[data-testid=notice]')?.textContent ?? ''));
    await ana.page.waitForFunction(() => document.querySelector('[data-testid=composer-input]').value === 'the broken photo');
    assert.equal(await ana.byTestId('draft').count(), 1);
    await ana.byTestId('draft-remove').click();
    await ana.byTestId('composer-input').fill('');
    assert.equal(await ana.texts().then((t) => t.length), 0, 'nothing was sent');

    const link = await ana.inviteLink();
    const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
    await ben.waitOnline();
    // One file whose piece is damaged on the server's disk, one whose piece is gone.
    const damaged = documentBytes(600_000, 'damaged');
    await ana.byTestId('attach-file').setInputFiles({ name: 'damaged.bin', mimeType: 'application/octet-stream', buffer: damaged });
    await ana.send('damaged');
    await ana.messageWithText('damaged').waitFor();
    await ana.waitSynced();
    const first = await pieceFiles(own.dataDir);
    const bytes = await readFile(first[1]);
    bytes[100] ^= 0xff;
    await writeFile(first[1], bytes);
    await ana.byTestId('attach-file').setInputFiles({ name: 'gone.bin', mimeType: 'application/octet-stream', buffer: documentBytes(600_000, 'gone') });
    await ana.send('gone');
    await ana.messageWithText('gone').waitFor();
    await ana.waitSynced();
    const second = (await pieceFiles(own.dataDir)).filter((p) => !first.includes(p));
    assert.equal(second.length, 3);
    await rm(second[2]);

    const bad = ben.messageWithText('damaged');
    await bad.getByTestId('file-open').click();
    await bad.getByTestId('file-error').waitFor();
    assert.match(await bad.getByTestId('file-error').textContent(), /did not pass its check and is not shown/);
    assert.equal(await bad.getByTestId('file-save').count(), 0, 'nothing to save of a damaged file');
    assert.equal(await bad.getByTestId('file-open').textContent(), 'Try again');

    const missing = ben.messageWithText('gone');
    await missing.getByTestId('file-open').click();
    await missing.getByTestId('file-error').waitFor();
    assert.match(await missing.getByTestId('file-error').textContent(), /The server does not have this file/);
    assert.equal(await missing.getByTestId('file-save').count(), 0);
    await ana.page.context().close();
    await ben.page.context().close();
  } finally {
    await own.dispose();
  }
});

test('a photo sent at its original size keeps its pixels and leaves its location behind', async () => {
  const [ana, ben] = await twoInARoom('Camp Original');
  const jpeg = Buffer.from(await ana.page.evaluate(async () => {
    const canvas = new OffscreenCanvas(1200, 900);
    const context = canvas.getContext('2d');
    context.fillStyle = '#357';
    context.fillRect(0, 0, 1200, 900);
    const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
    return [...new Uint8Array(await blob.arrayBuffer())];
  }));
  // A camera's notes: an Exif segment right after the start, holding where it was taken.
  const notes = Buffer.concat([Buffer.from('Exif\0\0'), Buffer.from('GPS 48.85837N 2.29448E FIELDMESH-WHERE')]);
  const segment = Buffer.concat([Buffer.from([0xff, 0xe1, 0, notes.length + 2]), notes]);
  const photo = Buffer.concat([jpeg.subarray(0, 2), segment, jpeg.subarray(2)]);
  assert.ok(photo.includes('FIELDMESH-WHERE'));

  await ana.byTestId('attach-photo').setInputFiles({ name: 'camera.jpg', mimeType: 'image/jpeg', buffer: photo });
  await ana.byTestId('photo-size').selectOption('original');
  await ana.send('as taken');
  await ana.byTestId('drafts').waitFor({ state: 'detached' });
  const message = ben.messageWithText('as taken');
  await message.waitFor();
  const img = message.getByTestId('file-photo');
  await ben.page.waitForFunction((img) => img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0, await img.elementHandle());
  assert.deepEqual(await img.evaluate((img) => [img.naturalWidth, img.naturalHeight]), [1200, 900]);
  const sent = await blobBytes(ben.page, await img.getAttribute('src'));
  assert.ok(!sent.includes('FIELDMESH-WHERE') && !sent.includes('GPS'), 'the location went with the photo');
  await ana.page.context().close();
  await ben.page.context().close();
});

test('a server with no room left for files says so; the message waits, failed, and goes when retried after space is made', async () => {
  const own = await Server.start({ args: ['--files-quota-mb', '1'] });
  try {
    const ana = await ChatPage.open(await browser.newContext(), own.url);
    await ana.join('Ana', 'Camp Full');
    await ana.waitOnline();
    await ana.byTestId('attach-file').setInputFiles({ name: 'first.bin', mimeType: 'application/octet-stream', buffer: documentBytes(700_000, 'first') });
    await ana.send('first');
    await ana.messageWithText('first').waitFor();
    await ana.waitSynced();
    await ana.byTestId('attach-file').setInputFiles({ name: 'second.bin', mimeType: 'application/octet-stream', buffer: documentBytes(700_000, 'second') });
    await ana.send('second');
    const second = ana.messageWithText('second');
    await second.getByTestId('message-retry').waitFor();
    assert.match(await ana.byTestId('notice').textContent(), /^A file was not sent: .*full/i);
    // Not counted as waiting any more: no sync bar stuck on it.
    await ana.page.waitForFunction(() => !document.querySelector('[data-testid=sync-status]'));

    // The operator makes room (here: a larger quota); a tap sends it.
    await own.stop();
    own.args = ['--files-quota-mb', '10'];
    await own.restart();
    await ana.waitOnline();
    await second.getByTestId('message-retry').click();
    await second.getByText('✓ stored on server').waitFor();
    await ana.page.context().close();
  } finally {
    await own.dispose();
  }
});

test('one room cannot take all the room for files: past its quota its files are refused, another room\'s are not', async () => {
  const own = await Server.start({ args: ['--files-room-quota-mb', '1'] });
  try {
    const ana = await ChatPage.open(await browser.newContext(), own.url);
    await ana.join('Ana', 'Camp Busy');
    await ana.waitOnline();
    const sendFile = async (caption, seed) => {
      await ana.byTestId('attach-file').setInputFiles({ name: `${seed}.bin`, mimeType: 'application/octet-stream', buffer: documentBytes(700_000, seed) });
      await ana.send(caption);
      return ana.messageWithText(caption);
    };
    await (await sendFile('busy one', 'one')).getByText('✓ stored on server').waitFor();
    const refused = await sendFile('busy two', 'two');
    await refused.getByTestId('message-retry').waitFor();
    assert.match(await ana.byTestId('notice').textContent(), /this room's files have reached the server's limit for one room \(1 MB\)/);

    await ana.byTestId('leave').click();
    await ana.join('Ana', 'Camp Quiet');
    await ana.waitOnline();
    await (await sendFile('quiet one', 'three')).getByText('✓ stored on server').waitFor();
    await ana.page.context().close();
  } finally {
    await own.dispose();
  }
});

// The PWA drives a radio over Web Serial. Headless chromium cannot open a real port, so the
// page gets a port object (addInitScript) whose streams this test connects to a pseudo-
// terminal of the radio simulator: the page's radio is a node of the same simulated mesh as
// the servers' radios.
import assert from 'node:assert/strict';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { after, before, test } from 'node:test';
import { ChatPage, MESH_WORDS, RadioSim, Server, launchBrowser } from '../support.mjs';

const TOPOLOGY = 'bitrate 20000\nduty-cycle 1\nlink A B latency=20\n';
const RADIO = ['--radio-bitrate', '20000'];

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** The fake Web Serial API, in the page: one port, streams bridged to the test. */
function fakeSerial() {
  const port = {
    readable: null,
    writable: null,
    async open(options) {
      await window.__serialOpen(options.baudRate);
      this.readable = new ReadableStream({
        start(controller) {
          window.__serialPush = (bytes) => controller.enqueue(new Uint8Array(bytes));
          window.__serialFail = (message) => controller.error(new Error(message));
        },
      });
      this.writable = new WritableStream({
        write: (chunk) => window.__serialWrite(Array.from(chunk)),
      });
    },
    async close() {
      this.readable = null;
      this.writable = null;
      await window.__serialClose();
    },
    getInfo: () => ({ usbVendorId: 0x1a86, usbProductId: 0x55d4 }),
  };
  window.__serialGranted = false;
  const serial = {
    onconnect: null,
    async requestPort() {
      window.__serialGranted = true;
      return port;
    },
    async getPorts() {
      return window.__serialGranted || localStorage.getItem('granted') ? [port] : [];
    },
  };
  Object.defineProperty(navigator, 'serial', { value: serial, configurable: true });
}

/** Connects a page's fake port to the simulator's pseudo-terminal at `path`. */
async function plugRadio(page, path) {
  const radio = { fd: null, stream: null, written: 0, bytes: [] };
  await page.exposeFunction('__serialOpen', () => {
    radio.fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    radio.stream = new ReadStream(radio.fd);
    radio.stream.on('data', (chunk) => {
      page.evaluate((bytes) => window.__serialPush?.(bytes), Array.from(chunk)).catch(() => {});
    });
    radio.stream.on('error', () => {});
  });
  await page.exposeFunction('__serialWrite', (bytes) => {
    if (radio.fd === null) throw new Error('the radio is unplugged');
    writeSync(radio.fd, Buffer.from(bytes));
    radio.written += bytes.length;
    if (radio.bytes.length < 4096) radio.bytes.push(...bytes.slice(0, 4096 - radio.bytes.length));
  });
  await page.exposeFunction('__serialClose', () => unplugFd(radio));
  return radio;
}

function unplugFd(radio) {
  if (radio.stream) radio.stream.destroy();
  radio.stream = null;
  radio.fd = null; // closed by the stream
}

async function connectRadio(chat) {
  await chat.menu('radio-button');
  await chat.byTestId('radio-connect').click();
  await chat.byTestId('radio-state').getByText('connected').or(chat.byTestId('radio-state').getByText('receiving')).waitFor();
}

async function openWithRadio(url, simPath) {
  const context = await browser.newContext();
  await context.addInitScript(fakeSerial);
  const page = await context.newPage();
  const radio = await plugRadio(page, simPath);
  const chat = new ChatPage(page);
  await page.goto(url);
  return { chat, radio };
}

/**
 * Two camps on the simulator: "home" (a server with no radio) where Ana's page has the
 * radio of node A, and "far" (a server with the radio of node B) where Ben chats. Both are
 * in the Emergency room and Ana is online when `body` runs.
 */
/** The home camp's join code, where lending is allowed. */
const CODE = 'lend with care';

async function withCamps(body, { code } = {}) {
  const sim = await RadioSim.start(TOPOLOGY);
  // Lending needs the operator's leave and a join code.
  const home = await Server.start({ args: code ? ['--radio-lend', '--join-code', code] : [] });
  const far = await Server.start({ args: ['--radio', sim.port('B'), ...RADIO, '--camp-name', 'Far camp'] });
  try {
    const { chat: ana, radio } = await openWithRadio(home.url, sim.port('A'));
    if (code) await ana.unlock(code);
    await ana.join('Ana', 'Emergency');
    await ana.waitOnline();
    const ben = await ChatPage.open(await browser.newContext(), far.url);
    await ben.join('Ben', 'Emergency');
    await ben.byTestId('radio-status').getByText('📡 Radio on').waitFor();
    await body({ home, ana, radio, ben });
  } finally {
    await home.dispose();
    await far.dispose();
    await sim.dispose();
  }
}

test('where there is no Web Serial, the radio panel says so', async () => {
  const server = await Server.start();
  try {
    const context = await browser.newContext();
    await context.addInitScript(() => {
      Object.defineProperty(navigator, 'serial', { value: undefined, configurable: true });
    });
    const chat = await ChatPage.open(context, server.url);
    await chat.join('Ana', 'Emergency');
    await chat.menu('radio-button');
    await chat.byTestId('radio-unsupported').getByText('Web Serial works in Chrome or Edge').waitFor();
  } finally {
    await server.dispose();
  }
});

test('direct mode: with no server, the page reaches a far camp over its own radio, and syncs later', async () => {
  await withCamps(async ({ home, ana, ben }) => {
    // The laptop at Ana's camp is gone; her browser has a radio.
    await home.stop();
    await ana.waitOffline();
    // The mesh key came from her camp's server while it was there; a mistyped one is caught.
    await ana.menu('radio-button');
    const key = ana.byTestId('radio-network-key');
    assert.equal((await key.inputValue()).trim(), MESH_WORDS);
    await key.fill(MESH_WORDS.replace('grace', 'graze'));
    await ana.byTestId('radio-connect').click();
    await ana.page.getByText('That is not a network key').waitFor();
    await key.fill(MESH_WORDS.toUpperCase());
    await ana.byTestId('radio-close').click();
    await connectRadio(ana);
    assert.match(await ana.byTestId('radio-mesh').textContent(), /^mesh key [0-9a-f]{4}-[0-9a-f]{4}$/);
    await ana.byTestId('radio-close').click();
    await ana.send('Need water at the bridge');
    const atBen = ben.messageWithText('Need water at the bridge');
    await atBen.getByText('📡 via radio').waitFor({ timeout: 20_000 });
    // Ben's phone at the far camp opened it and its camp's receipt came back over the radio.
    await ana.messageWithText('Need water at the bridge').getByText('✓✓ delivered to Far camp').waitFor({ timeout: 20_000 });

    await ben.send('Truck leaves at noon');
    await ana.messageWithText('Truck leaves at noon').getByText('📡 via radio').waitFor({ timeout: 20_000 });

    // The laptop is back: both messages reach it from Ana's device, once each.
    await home.restart();
    await ana.waitSynced();
    // Stored on the server now, and still shown as delivered: a state never moves back.
    await ana.messageWithText('Need water at the bridge').getByText('✓✓ delivered to Far camp').waitFor();
    const cleo = await ChatPage.open(await browser.newContext(), home.url);
    await cleo.join('Cleo', 'Emergency');
    await cleo.messageWithText('Need water at the bridge').waitFor();
    await cleo.messageWithText('Truck leaves at noon').waitFor();
    assert.equal(await cleo.messageWithText('Truck leaves at noon').count(), 1);
    assert.deepEqual(ana.errors, []);
  });
});

test('lend mode: a server without a radio reaches a far camp through a page\'s radio', async () => {
  await withCamps(async ({ home, ana, ben }) => {
    await connectRadio(ana);
    await ana.byTestId('radio-lend').check();
    await ana.byTestId('radio-lend-detail').getByText('now sends and hears through your radio').waitFor();
    await ana.byTestId('radio-close').click();

    // Another phone at the camp, with no radio of its own, sees the server's radio (Ana's)
    // once it entered the code.
    const cleo = await ChatPage.open(await browser.newContext(), home.url);
    await cleo.unlock(CODE);
    await cleo.join('Cleo', 'Emergency');
    await cleo.byTestId('radio-status').getByText("radio lent by Ana's browser").waitFor();

    await cleo.send('Generator needs diesel');
    await ben.messageWithText('Generator needs diesel').getByText('📡 via radio').waitFor({ timeout: 20_000 });
    await cleo.messageWithText('Generator needs diesel').getByText('✓✓ delivered to Far camp').waitFor({ timeout: 20_000 });
    await ben.send('Bringing 20 litres');
    await cleo.messageWithText('Bringing 20 litres').getByText('📡 via radio').waitFor({ timeout: 20_000 });

    // Ana closes her page: the server's radio is gone, cleanly, and another browser could
    // lend one now.
    await ana.page.context().close();
    await cleo.byTestId('radio-status').waitFor({ state: 'detached', timeout: 20_000 });
  }, { code: CODE });
});

test('unplugged mid-send and plugged back in: nothing lost, nothing twice', async () => {
  await withCamps(async ({ home, ana, radio, ben }) => {
    await home.stop();
    await ana.waitOffline();
    await connectRadio(ana);

    await ana.send('One: road blocked');
    // Pulled out right after the first frame left.
    while (radio.written === 0) await ana.page.waitForTimeout(10);
    await ana.page.evaluate(() => window.__serialFail('device lost'));
    unplugFd(radio);
    await ana.byTestId('radio-state').getByText('radio lost').waitFor();
    await ana.byTestId('radio-close').click();
    await ana.send('Two: take the east road');
    await ana.send('Three: bring blankets');
    await ana.page.waitForTimeout(500);

    // Plugged back in: the page reconnects by itself (a port it may use, no picker).
    await ana.page.evaluate(() => navigator.serial.onconnect?.());
    const texts = ['One: road blocked', 'Two: take the east road', 'Three: bring blankets'];
    for (const text of texts) {
      await ben.messageWithText(text).waitFor({ timeout: 30_000 });
    }
    await ana.page.waitForTimeout(2000);
    // Radio keeps no global order (a frame lost once arrives after the next one), so the
    // far side holds exactly these three, each once.
    assert.deepEqual((await ben.texts()).sort(), [...texts].sort());
  });
});

test('direct mode over a stock Meshtastic node: the page reaches a far camp through a node that runs no FieldMesh', async () => {
  // Ana's node A, a stock node B (only the default channel), the far camp's node C.
  const sim = await RadioSim.start(
    'bitrate 20000\nduty-cycle 1\nnode B channels=LongFast\nlink A B latency=20\nlink B C latency=20\n',
    { protocol: 'meshtastic' },
  );
  const home = await Server.start();
  const far = await Server.start({
    args: ['--radio', sim.port('C'), '--radio-protocol', 'meshtastic', '--meshtastic-channel', 'FieldMesh',
      '--radio-bitrate', '20000', '--camp-name', 'Far camp'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    await context.addInitScript(fakeSerial);
    const page = await context.newPage();
    await plugRadio(page, sim.port('A'));
    const ana = new ChatPage(page);
    await page.goto(home.url);
    await ana.join('Ana', 'Emergency');
    await ana.waitOnline();
    const ben = await ChatPage.open(await browser.newContext(), far.url);
    await ben.join('Ben', 'Emergency');
    await ben.byTestId('radio-status').getByText('📡 Radio on').waitFor();

    await home.stop();
    await ana.waitOffline();
    await ana.menu('radio-button');
    await ana.byTestId('radio-protocol').selectOption('meshtastic');
    assert.equal(await ana.byTestId('radio-frequency').count(), 0, 'no RNode settings for a Meshtastic node');
    await ana.byTestId('radio-channel').fill('FieldMesh');
    await ana.byTestId('radio-network-key').fill(MESH_WORDS);
    await page.screenshot({ path: '/tmp/radio-panel-meshtastic-phone.png' });
    await ana.byTestId('radio-connect').click();
    // Connected once the node answered its handshake: it says who it is and its channel.
    await ana.byTestId('radio-state').getByText(/connected · Meshtastic node "A" \(![0-9a-f]{8}, firmware 2\.6\.11\.sim\), channel FieldMesh \(#1\)/).waitFor();
    await ana.byTestId('radio-panel').getByText('A Meshtastic node is not lent').waitFor();
    await page.screenshot({ path: '/tmp/radio-panel-meshtastic-connected.png' });
    await ana.byTestId('radio-close').click();
    await ana.send('Need water at the bridge');
    await ben.messageWithText('Need water at the bridge').getByText('📡 via radio').waitFor({ timeout: 20_000 });
    await ana.messageWithText('Need water at the bridge').getByText('✓✓ delivered to Far camp').waitFor({ timeout: 20_000 });
    await ben.send('Truck leaves at noon');
    await ana.messageWithText('Truck leaves at noon').getByText('📡 via radio').waitFor({ timeout: 20_000 });
    assert.equal(await ben.messageWithText('Need water at the bridge').count(), 1);
    assert.deepEqual(ana.errors, []);
    await context.close();
  } finally {
    await home.dispose();
    await far.dispose();
    await sim.dispose();
  }
});

test('the Meshtastic channel\'s room: plain text with a warning and a 200-byte limit, across two camps through a stock node', async () => {
  const sim = await RadioSim.start(
    'bitrate 20000\nduty-cycle 1\nnode B channels=LongFast\nlink A B latency=20\nlink B C latency=20\n',
    { protocol: 'meshtastic' },
  );
  const camp = (node, name) => Server.start({
    args: ['--radio', sim.port(node), '--radio-protocol', 'meshtastic', '--meshtastic-channel', 'FieldMesh',
      '--radio-bitrate', '20000', '--camp-name', name],
  });
  const campA = await camp('A', 'Camp A');
  const campC = await camp('C', 'Camp C');
  try {
    const openChannel = async (chat, name) => {
      await chat.ready();
      await chat.byTestId('join-name').fill(name);
      await chat.byTestId('open-meshtastic').getByText('Meshtastic channel FieldMesh').click();
      await chat.byTestId('room-title').getByText('Meshtastic: FieldMesh').waitFor();
    };
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    const ana = await ChatPage.open(phone, campA.url);
    await openChannel(ana, 'Ana');
    await ana.byTestId('meshtastic-room').getByText('not end-to-end encrypted, sender not verified').waitFor();
    assert.equal(await ana.byTestId('public-room').count(), 0);
    const ben = await ChatPage.open(await browser.newContext({ viewport: { width: 1280, height: 800 } }), campC.url);
    await openChannel(ben, 'Ben');

    // Too long for a Meshtastic text with her name: said, and not sent.
    await ana.byTestId('composer-input').fill('x'.repeat(196));
    await ana.byTestId('meshtastic-send').getByText('201/200 bytes').waitFor();
    assert.equal(await ana.byTestId('composer-send').isDisabled(), true);
    await ana.page.screenshot({ path: '/tmp/meshtastic-room-over-phone.png' });
    await ana.send('On our way with the truck');
    await ana.byTestId('meshtastic-send').getByText('0/200').or(ana.byTestId('meshtastic-send').getByText('5/200')).waitFor();

    // Camp C's node hears it as plain text: in the channel's room there, from node A, one
    // hop through B, with Ana's name inside the text.
    const atBen = ben.messageWithText('Ana: On our way with the truck');
    await atBen.waitFor({ timeout: 20_000 });
    await atBen.getByText('A · 1 hop').waitFor();
    await ben.send('Thanks, gate is open');
    await ana.messageWithText('Ben: Thanks, gate is open').getByText('C · 1 hop').waitFor({ timeout: 20_000 });
    await ben.page.screenshot({ path: '/tmp/meshtastic-room-desktop.png' });
    await ana.page.screenshot({ path: '/tmp/meshtastic-room-phone.png' });
    assert.equal(await ben.messageWithText('Ana: On our way with the truck').count(), 1);
    assert.deepEqual(ana.errors, []);
    assert.deepEqual(ben.errors, []);
  } finally {
    await campA.dispose();
    await campC.dispose();
    await sim.dispose();
  }
});

test('an RNode gets the chosen frequency, bandwidth, spreading factor, coding rate and power', async () => {
  const sim = await RadioSim.start(TOPOLOGY);
  const server = await Server.start();
  try {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
    await context.addInitScript(fakeSerial);
    const page = await context.newPage();
    const radio = await plugRadio(page, sim.port('A'));
    const kim = new ChatPage(page);
    await page.goto(server.url);
    await kim.join('Kim', 'Emergency');
    await kim.menu('radio-button');
    assert.equal(await kim.byTestId('radio-rnode').count(), 0, 'RNode settings only for an RNode');
    await kim.byTestId('radio-frequency').fill('868.1');
    await kim.byTestId('radio-bandwidth').selectOption('250000');
    await kim.byTestId('radio-spreading').selectOption('10');
    await kim.byTestId('radio-coding').selectOption('7');
    await kim.byTestId('radio-power').fill('30');
    await kim.byTestId('radio-network-key').fill(MESH_WORDS);
    await kim.byTestId('radio-connect').click();
    await kim.byTestId('radio-panel').getByText('The power is in dBm').waitFor();
    await kim.byTestId('radio-power').fill('10');
    await page.screenshot({ path: '/tmp/radio-panel-phone.png' });
    await kim.byTestId('radio-connect').click();
    await kim.byTestId('radio-state').getByText('connected').or(kim.byTestId('radio-state').getByText('receiving')).waitFor();
    // The KISS configuration frames, as RNode firmware reads them: FEND, command, value, FEND.
    const frame = (command, value) => [0xc0, command, ...value, 0xc0];
    const be32 = (n) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
    const wrote = radio.bytes;
    const contains = (want) => wrote.some((_, i) => want.every((b, j) => wrote[i + j] === b));
    for (const [name, want] of [
      ['frequency', frame(0x01, be32(868_100_000))],
      ['bandwidth', frame(0x02, be32(250_000))],
      ['power', frame(0x03, [10])],
      ['spreading factor', frame(0x04, [10])],
      ['coding rate', frame(0x05, [7])],
    ]) {
      assert.ok(contains(want), `${name}: ${want} not in ${wrote.slice(0, 64)}`);
    }
    assert.deepEqual(kim.errors, []);
    await context.close();
  } finally {
    await server.dispose();
    await sim.dispose();
  }
});

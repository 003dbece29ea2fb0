// The terminal client (`fieldmesh-cli`) and a phone's page in one room, both ways; a message
// the terminal wrote while the server was away arrives once; the operator's archive moves a
// room to an empty camp and the page there shows the same history; the page's own export.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPage, Server, Terminal, launchBrowser } from '../support.mjs';

const here = new URL('.', import.meta.url).pathname;
const BIN = process.env.FIELDMESH_BIN ?? resolve(here, '../../target/debug/fieldmesh');

let server;
let browser;
let terminal;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
  terminal = await Terminal.create();
});

after(async () => {
  await browser?.close();
  await server?.dispose();
  await terminal?.dispose();
});

test('a terminal and a phone talk in one room both ways; what the terminal sends offline arrives once', async () => {
  const pia = await ChatPage.open(await browser.newContext({ viewport: { width: 390, height: 844 } }), server.url);
  await pia.join('Pia', 'River watch');
  await pia.waitOnline();
  const link = await pia.inviteLink();

  const joined = await terminal.run(['join', link, '--name', 'Gauge 3']);
  assert.equal(joined.code, 0, joined.stderr);
  assert.match(joined.stdout, /Joined River watch/);

  // A sensor script's reading, on standard input: it shows in the app like anyone's message.
  const sent = await terminal.run(['send', 'River watch'], 'Level 2.4 m, rising\n');
  assert.equal(sent.code, 0, sent.stderr);
  const reading = pia.messageWithText('Level 2.4 m, rising');
  await reading.waitFor();
  assert.equal(await reading.getByTestId('message-author').textContent(), 'Gauge 3');

  await pia.send('Thanks, moving the pumps');
  await pia.waitSynced();
  const read = await terminal.run(['read', 'River watch', '--json']);
  assert.equal(read.code, 0, read.stderr);
  const lines = read.stdout.trim().split('\n').map((line) => JSON.parse(line));
  assert.deepEqual(
    lines.map((m) => [m.author, m.text]),
    [
      ['Gauge 3', 'Level 2.4 m, rising'],
      ['Pia', 'Thanks, moving the pumps'],
    ],
  );
  assert.equal(lines[1].via_radio, false);

  // Private messages both ways: while the terminal follows the room, each sees the other's
  // signed card (with the key for private messages).
  const follower = terminal.start(['read', 'River watch', '--follow', '-n', '0']);
  try {
    let people = '';
    for (let i = 0; i < 50 && !people.includes('Pia: '); i++) {
      people = (await terminal.run(['people', 'River watch'])).stdout;
      if (!people.includes('Pia: ')) await pia.page.waitForTimeout(200);
    }
    assert.match(people, /^Pia: \d{4} \d{4} \d{4} \d{4} \d{4}  \(not verified/m);
    const dm = await terminal.run(['dm', 'Pia', 'The east pump is broken']);
    assert.equal(dm.code, 0, dm.stderr);
    await pia.byTestId('direct-alert').waitFor({ timeout: 30_000 });
    assert.match(await pia.byTestId('direct-alert').textContent(), /Gauge 3 wrote to you privately/);
    await pia.byTestId('open-direct').click();
    await pia.byTestId('direct-room').waitFor();
    await pia.messageWithText('The east pump is broken').waitFor();
    await pia.send('Sending a mechanic');
    await pia.waitSynced();
    const answer = await terminal.run(['read', '@Pia']);
    assert.equal(answer.code, 0, answer.stderr);
    assert.match(answer.stdout, /Gauge 3: The east pump is broken\n.*Pia: Sending a mechanic/);
  } finally {
    follower.kill();
  }
  await pia.byTestId('leave').click();
  await pia.byTestId('home').waitFor();
  await pia
    .byTestId('room-item')
    .filter({ has: pia.byTestId('room-item-name').getByText('River watch', { exact: true }) })
    .getByTestId('room-item-open')
    .click();
  await pia.byTestId('room-title').waitFor();

  // The server goes away: the terminal's message waits on disk (exit 75), then goes once.
  await server.stop();
  const queued = await terminal.run(['send', 'River watch', '--wait', '2', 'Level 2.6 m']);
  assert.equal(queued.code, 75, queued.stderr);
  assert.match(queued.stderr, /waits in the outbox/);
  await server.restart();
  await pia.waitOnline();
  const synced = await terminal.run(['sync']);
  assert.equal(synced.code, 0, synced.stderr);
  assert.match(synced.stdout, /1 sent, 0 waiting/);
  await pia.messageWithText('Level 2.6 m').waitFor({ timeout: 30_000 });
  const again = await terminal.run(['sync']);
  assert.equal(again.code, 0, again.stderr);
  await pia.page.waitForTimeout(500);
  assert.equal(await pia.messageWithText('Level 2.6 m').count(), 1, 'delivered once');
  assert.deepEqual(pia.errors, []);
});

test("the operator's archive of a room loads into an empty camp, and the page there shows the same history; the page exports it too", async () => {
  const rooms = await terminal.run(['rooms']);
  const roomId = rooms.stdout.split('\n').find((l) => l.startsWith('River watch')).split('\t')[1];
  assert.match(roomId, /^[0-9a-f]{32}$/);
  const folder = await mkdtemp(join(tmpdir(), 'fieldmesh-archive-'));
  const archive = join(folder, 'river.jsonl');
  execFileSync(BIN, ['export', '--data-dir', server.dataDir, '--room', roomId, '--output', archive]);
  const sealed = await readFile(archive, 'utf8');
  for (const plain of ['Level 2.4 m', 'moving the pumps', 'Gauge 3', 'Pia']) {
    assert.ok(!sealed.includes(plain), `${plain} is readable in the archive`);
  }

  const empty = await Server.start();
  try {
    await empty.stop();
    execFileSync(BIN, ['import', '--data-dir', empty.dataDir, archive]);
    await empty.restart();
    // A phone at the other camp with the room's invite (the terminal can give it too).
    const at = new URL(empty.url);
    const invite = await terminal.run(['invite', 'River watch']);
    assert.equal(invite.code, 0, invite.stderr);
    const moved = new URL(invite.stdout.trim());
    moved.protocol = at.protocol;
    moved.host = at.host;
    const desk = await ChatPage.acceptInvite(
      await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true }),
      moved.href,
      'Desk',
    );
    await desk.waitOnline();
    await desk.messageWithText('Level 2.6 m').waitFor({ timeout: 30_000 });
    assert.deepEqual(await desk.texts(), ['Level 2.4 m, rising', 'Thanks, moving the pumps', 'Level 2.6 m']);

    // "Export this room" on the page: a transcript and JSON Lines, made on the device.
    await desk.menu('export-room');
    await desk.byTestId('export-sheet').waitFor();
    await desk.page.screenshot({ path: '/tmp/export-desktop.png' });
    const [transcript] = await Promise.all([
      desk.page.waitForEvent('download'),
      desk.byTestId('export-html').click(),
    ]);
    assert.match(transcript.suggestedFilename(), /^fieldmesh-River-watch-\d{4}-\d{2}-\d{2}\.html$/);
    const html = await readFile(await transcript.path(), 'utf8');
    assert.match(html, /<h1>FieldMesh · River watch<\/h1>/);
    for (const text of ['Level 2.4 m, rising', 'Thanks, moving the pumps', 'Level 2.6 m', 'Gauge 3', 'Pia']) {
      assert.ok(html.includes(text), `${text} is missing from the transcript`);
    }
    await desk.menu('export-room');
    const [data] = await Promise.all([desk.page.waitForEvent('download'), desk.byTestId('export-jsonl').click()]);
    const rows = (await readFile(await data.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(
      rows.map((r) => r.text),
      ['Level 2.4 m, rising', 'Thanks, moving the pumps', 'Level 2.6 m'],
    );
    assert.equal(rows[0].author, 'Gauge 3');
    assert.match(rows[0].time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    await desk.byTestId('notice').getByText(/Exported 3 messages of River watch/).waitFor();
    assert.deepEqual(desk.errors, []);

    const phone = await ChatPage.acceptInvite(
      await browser.newContext({ viewport: { width: 390, height: 844 } }),
      moved.href,
      'Phone',
    );
    await phone.messageWithText('Level 2.6 m').waitFor({ timeout: 30_000 });
    await phone.menu('export-room');
    await phone.byTestId('export-sheet').waitFor();
    await phone.page.screenshot({ path: '/tmp/export-phone.png' });
  } finally {
    await empty.dispose();
    await rm(folder, { recursive: true, force: true });
  }
});

// Shared parts of the browser tests: a real server process, Debian's chromium, page objects.
import { execFileSync, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const here = new URL('.', import.meta.url).pathname;
const BIN = process.env.FIELDMESH_BIN ?? resolve(here, '../target/debug/fieldmesh');
/** The mesh network key of the tests' camps, as its 12 words (`NetworkKey::from_bytes(*b"end2end test key")`). */
export const MESH_WORDS = 'grace industry arrive skull town awake spice purpose injury addict sun vendor';
const SITE = process.env.FIELDMESH_SITE_ROOT ?? resolve(here, '../target/site');

/** A FieldMesh server process on a free loopback port with its own data directory. */
export class Server {
  /**
   * Starts a server over plain HTTP on loopback (a secure context for the browser). The web
   * app is the one built into the binary unless `site` names a folder to serve instead;
   * `args` adds flags.
   */
  static async start({ dataDir, site, args = [], tls = false, cwd, logFile } = {}) {
    const server = new Server();
    server.ownsDataDir = !dataDir;
    server.dataDir = dataDir ?? (await mkdtemp(join(tmpdir(), 'fieldmesh-e2e-')));
    server.site = site;
    server.args = args;
    server.tls = tls;
    server.cwd = cwd;
    server.logFile = logFile;
    server.port = 0;
    await server.spawn();
    server.port = Number(new URL(server.url).port);
    return server;
  }

  /** Starts the stopped server again on the same port (the page's origin stays the same). */
  async restart() {
    await this.spawn();
  }

  async spawn() {
    // Spawned directly (not through a shell) so kill() reaches the server itself.
    const site = this.site ? ['--site-root', this.site] : [];
    // With TLS the landing page gets a port of its own; without, loopback HTTP is already a
    // secure context for the browser.
    const tls = this.tls ? ['--http-listen', `127.0.0.1:${this.landingPort ?? 0}`] : ['--tls', 'off'];
    // With a log file the server logs everything (debug) into it, for tests that read it.
    const log = this.logFile ? ['--log', 'debug'] : ['--log', 'warn'];
    const stderr = this.logFile ? openSync(this.logFile, 'a') : 'inherit';
    this.process = spawn(
      BIN,
      [...tls, '--no-qr', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...log, ...site, ...this.args],
      {
        stdio: ['ignore', 'pipe', stderr],
        cwd: this.cwd,
        // Every camp of the tests is on one mesh (a test may give another key in its args).
        env: { FIELDMESH_RADIO_NETWORK_KEY: MESH_WORDS, ...process.env },
      },
    );
    this.url = await new Promise((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`server did not start: ${out}`)), 20_000);
      this.process.stdout.on('data', (chunk) => {
        out += chunk;
        const found = out.match(/FieldMesh is ready: open (https?:\/\/\S+?)\/?\s/);
        if (found) {
          clearTimeout(timer);
          const landing = out.match(/Phones start here \(installs the certificate\): (http:\/\/\S+?)\/?\s/);
          if (landing) {
            this.landingUrl = landing[1];
            this.landingPort = Number(new URL(landing[1]).port);
          }
          ok(found[1]);
        }
      });
      this.process.once('exit', (code) => fail(new Error(`server exited with ${code}: ${out}`)));
    });
  }

  async stop(signal = 'SIGTERM') {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = new Promise((ok) => this.process.once('exit', ok));
    this.process.kill(signal);
    await exited;
  }

  async dispose() {
    await this.stop('SIGKILL');
    if (this.ownsDataDir) {
      await rm(this.dataDir, { recursive: true, force: true });
      // The certificate authority lives beside the data folder.
      await rm(`${this.dataDir}-ca`, { recursive: true, force: true });
    }
  }
}

/** A `fieldmesh-cli` device (the terminal client next to the server binary) with its own
 * home folder. */
export class Terminal {
  static async create() {
    const terminal = new Terminal();
    terminal.home = await mkdtemp(join(tmpdir(), 'fieldmesh-cli-'));
    terminal.bin = process.env.FIELDMESH_CLI_BIN ?? resolve(dirname(BIN), 'fieldmesh-cli');
    return terminal;
  }

  /** Runs a command; resolves with its exit code and what it printed. `input` goes to its
   * standard input. */
  run(args, input) {
    return new Promise((ok, fail) => {
      const child = spawn(this.bin, ['--home', this.home, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      child.once('error', fail);
      child.once('exit', (code) => ok({ code, stdout, stderr }));
      child.stdin.end(input ?? '');
    });
  }

  /** Starts a long-running command (`read --follow`); kill the process it returns. */
  start(args) {
    return spawn(this.bin, ['--home', this.home, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  async dispose() {
    await rm(this.home, { recursive: true, force: true });
  }
}

/** The radio simulator next to the server binary, on a topology given as text. */
export class RadioSim {
  static async start(topology, { protocol = 'kiss' } = {}) {
    const sim = new RadioSim();
    sim.dir = await mkdtemp(join(tmpdir(), 'fieldmesh-radios-'));
    const file = join(sim.dir, 'topology');
    await writeFile(file, topology);
    const bin = resolve(dirname(BIN), 'fieldmesh-radiosim');
    sim.process = spawn(bin, ['--topology', file, '--dir', join(sim.dir, 'radios'), '--protocol', protocol], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((ok, fail) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`simulator did not start: ${out}`)), 20_000);
      sim.process.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('radios ready')) {
          clearTimeout(timer);
          ok();
        }
      });
      sim.process.once('exit', (code) => fail(new Error(`simulator exited with ${code}: ${out}`)));
    });
    return sim;
  }

  /** The serial port of node `name`, for a server's --radio. */
  port(name) {
    return join(this.dir, 'radios', name);
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = new Promise((ok) => this.process.once('exit', ok));
    this.process.kill('SIGKILL');
    await exited;
  }

  async dispose() {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A NATS hub for camps linked over IP (Debian's nats-server): JetStream in the domain "hub",
 * a leaf-node port the camps' own leaf servers connect to, one login per camp. `camp(name)`
 * gives the flags a FieldMesh server needs to join it.
 */
export class NatsHub {
  static async start(camps) {
    const hub = new NatsHub();
    hub.dir = await mkdtemp(join(tmpdir(), 'fieldmesh-hub-'));
    hub.leafPort = await freePort();
    hub.logins = {};
    const users = camps.map((camp, n) => {
      hub.logins[camp] = [`camp${n}`, `secret-${n}-${process.pid}`];
      return `{ user: "camp${n}", password: "secret-${n}-${process.pid}", account: FIELDMESH }`;
    });
    const conf = join(hub.dir, 'hub.conf');
    await writeFile(
      conf,
      `server_name: hub\nlisten: "127.0.0.1:${await freePort()}"\n` +
        `jetstream { store_dir: "${join(hub.dir, 'js')}", domain: hub }\n` +
        `accounts { FIELDMESH { jetstream: enabled } }\n` +
        `leafnodes { listen: "127.0.0.1:${hub.leafPort}", authorization { users: [ ${users.join(', ')} ] } }\n`,
    );
    hub.process = spawn(process.env.FIELDMESH_NATS_SERVER ?? 'nats-server', ['-c', conf], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (await canConnect(hub.leafPort)) return hub;
      await new Promise((ok) => setTimeout(ok, 50));
    }
    throw new Error('the NATS hub did not listen');
  }

  /** The flags of camp `name`'s server. */
  async camp(name) {
    const [user, password] = this.logins[name];
    const file = join(this.dir, `${user}.login`);
    await writeFile(file, `${user}:${password}\n`);
    return ['--camp-name', name, '--federation-hub', `nats-leaf://127.0.0.1:${this.leafPort}`, '--federation-creds', file];
  }

  async dispose() {
    if (this.process && this.process.exitCode === null) {
      const exited = new Promise((ok) => this.process.once('exit', ok));
      this.process.kill('SIGKILL');
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A free TCP port on loopback. */
function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

function canConnect(port) {
  return new Promise((ok) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      ok(true);
    });
    socket.once('error', () => ok(false));
  });
}

/** Headless Debian chromium, flags as the machine needs them (root, closed network). */
export { SITE };

/** A HOME whose NSS database trusts `caFile`, as a person's phone does after installing it. */
export async function homeTrusting(caFile) {
  const home = await mkdtemp(join(tmpdir(), 'fieldmesh-home-'));
  const db = `sql:${join(home, '.pki/nssdb')}`;
  await mkdir(join(home, '.pki/nssdb'), { recursive: true });
  execFileSync('certutil', ['-d', db, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', db, '-A', '-n', 'FieldMesh local CA', '-t', 'C,,', '-i', caFile]);
  return home;
}

/** Launches chromium; `home` gives it a HOME of its own (and so its own NSS certificate
 * database), `args` adds command-line flags. */
export function launchBrowser({ home, args = [] } = {}) {
  return chromium.launch({
    env: home ? { ...process.env, HOME: home } : process.env,
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...args,
    ],
  });
}

/** The chat page as a person uses it. */
export class ChatPage {
  constructor(page) {
    this.page = page;
    this.errors = [];
    this.dialogs = [];
    // The page's last console lines, for a failing test to show what the app said.
    this.console = [];
    page.on('pageerror', (error) => this.errors.push(error.message));
    page.on('console', (message) => {
      this.console.push(`${message.type()}: ${message.text()}`);
      if (this.console.length > 40) this.console.shift();
    });
    page.on('dialog', async (dialog) => {
      this.dialogs.push(dialog.message());
      await dialog.dismiss();
    });
  }

  static async open(context, url) {
    const chat = new ChatPage(await context.newPage());
    // Every Content-Security-Policy violation is kept for the tests to look at.
    await chat.page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    await chat.page.goto(url);
    return chat;
  }

  /** What the page's Content-Security-Policy blocked so far. */
  async cspViolations() {
    return this.page.evaluate(() => window.__cspViolations ?? []);
  }

  byTestId(id) {
    return this.page.getByTestId(id);
  }

  async join(name, room) {
    // Wait for hydration: the form only works once the Wasm app runs.
    await this.ready();
    await this.byTestId('join-name').fill(name);
    await this.byTestId('join-room').fill(room);
    await this.byTestId('join-submit').click();
    await this.byTestId('room-title').waitFor();
  }

  async waitConnection(text, timeout = 30_000) {
    await this.page.waitForFunction(
      (want) => document.querySelector('[data-testid=connection]')?.textContent === want,
      text,
      { timeout },
    );
  }

  async waitOnline(timeout) {
    await this.waitConnection('online', timeout);
  }

  /** Enters the server's join code (asked for before anything else), and waits until the
   * home screen shows. */
  async unlock(code) {
    await this.byTestId('code-input').fill(code);
    await this.byTestId('code-submit').click();
    await this.byTestId('home').waitFor();
  }

  async waitOffline() {
    await this.waitConnection('offline');
  }

  /** Waits until the outbox is empty and nothing is syncing. */
  async waitSynced(timeout = 60_000) {
    await this.waitOnline(timeout);
    await this.page.waitForFunction(
      () =>
        !document.querySelector('[data-testid=sync-status]') &&
        // Stored, or further: relayed by radio, delivered to a camp (a state never moves back).
        [...document.querySelectorAll('[data-testid=message-state]')].every(
          (s) =>
            ['✓ stored on server', '📡 relayed by radio'].includes(s.textContent) ||
            s.textContent.startsWith('✓✓ delivered to '),
        ),
      null,
      { timeout },
    );
  }

  /** Waits for the app to be live (hydrated, store open). */
  async ready() {
    await this.page.waitForFunction(() => window.__fieldmeshReady === true);
  }

  /** Waits until a service worker controls the page. */
  async waitControlled() {
    await this.page.waitForFunction(() => navigator.serviceWorker?.controller != null, null, { timeout: 30_000 });
  }

  /** Writes `text` and sends it: Enter on a computer, the Send button on a touch screen
   * (where Enter makes a new line). */
  async send(text) {
    await this.byTestId('composer-input').fill(text);
    if (await this.page.evaluate(() => matchMedia('(pointer: coarse)').matches)) {
      await this.byTestId('composer-send').click();
    } else {
      await this.byTestId('composer-input').press('Enter');
    }
  }

  messageWithText(text) {
    return this.byTestId('message').filter({
      has: this.page.getByTestId('message-text').getByText(text, { exact: true }),
    });
  }

  async texts() {
    return this.byTestId('message-text').allTextContents();
  }

  /** Chooses `item` (a test id: share, mute, radio-button) from the room's menu. */
  async menu(item) {
    await this.byTestId('room-menu').click();
    await this.byTestId(item).click();
  }

  /** The room's invite link, as the share sheet shows it. */
  async inviteLink() {
    await this.menu('share');
    const link = await this.byTestId('invite-link').inputValue();
    await this.byTestId('share-close').click();
    return link;
  }

  /** Opens an invite link in a fresh page of `context` and joins its room as `name`. */
  static async acceptInvite(context, link, name) {
    const chat = await ChatPage.open(context, link);
    await chat.ready();
    await chat.page.waitForFunction(() => document.querySelector('[data-testid=join-room]')?.value !== '');
    await chat.byTestId('join-name').fill(name);
    await chat.byTestId('join-submit').click();
    await chat.byTestId('room-title').waitFor();
    return chat;
  }
}

// Field deployment: HTTPS with the server's own certificate authority on a LAN host name, the
// landing page, the join code, and the one binary serving the app from an empty folder.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChatPage, Server, homeTrusting, launchBrowser } from '../support.mjs';

const HOST = 'fieldmesh.test';


test('over HTTPS on a LAN host name, a phone that installed the CA gets the offline app; another CA is refused', async () => {
  const server = await Server.start({ tls: true, args: ['--hostname', HOST] });
  const stranger = await Server.start({ tls: true, args: ['--hostname', HOST] });
  const home = await mkdtemp(join(tmpdir(), 'fieldmesh-ca-'));
  let browser;
  try {
    // The landing page, over plain HTTP, explains the steps and hands out the CA.
    const landing = await fetch(server.landingUrl);
    const html = await landing.text();
    assert.match(html, /Android/);
    assert.match(html, /iPhone/);
    assert.match(html, new RegExp(`https://127\\.0\\.0\\.1:${server.port}/`));
    const download = await fetch(new URL('/fieldmesh-ca.crt', server.landingUrl));
    assert.equal(download.headers.get('content-type'), 'application/x-x509-ca-cert');
    const caFile = join(home, 'fieldmesh-ca.crt');
    await writeFile(caFile, Buffer.from(await download.arrayBuffer()));
    // Anything else over plain HTTP leads back to the landing page.
    const elsewhere = await fetch(new URL('/ws', server.landingUrl), { redirect: 'manual' });
    assert.equal(elsewhere.status, 303);

    browser = await launchBrowser({
      home: await homeTrusting(caFile),
      args: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`],
    });
    const context = await browser.newContext();
    const chat = await ChatPage.open(context, `https://${HOST}:${server.port}/`);
    await chat.join('Ana', 'Camp TLS');
    await chat.waitOnline();
    await chat.waitControlled();
    assert.equal(await chat.page.evaluate(() => window.isSecureContext), true);
    await chat.send('over https');
    await chat.waitSynced();

    // The same browser does not trust a certificate from another FieldMesh's authority.
    const page = await context.newPage();
    await assert.rejects(page.goto(`https://${HOST}:${stranger.port}/`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await browser?.close();
    await server.dispose();
    await stranger.dispose();
    await rm(home, { recursive: true, force: true });
  }
});

/** A certificate for `name`, signed with the FieldMesh CA in `caDir` (as whoever holds its key could). */
function certificateFrom(caDir, dir, name) {
  const file = (ext) => join(dir, `${name}.${ext}`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', file('key'), '-subj', `/CN=${name}`, '-out', file('csr')], { stdio: 'ignore' });
  writeFileSync(file('ext'), `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth\n`);
  execFileSync('openssl', ['x509', '-req', '-in', file('csr'), '-CA', join(caDir, 'fieldmesh-ca.crt'),
    '-CAkey', join(caDir, 'fieldmesh-ca.key'), '-CAserial', file('srl'), '-CAcreateserial', '-days', '30',
    '-extfile', file('ext'), '-out', file('crt')], { stdio: 'ignore' });
  return { key: file('key'), cert: file('crt') };
}

/** An HTTPS page on loopback with `files`' certificate; resolves to its port. */
async function httpsPage(files) {
  const server = createServer(
    { key: await readFile(files.key), cert: await readFile(files.cert) },
    (_, response) => response.end('<title>served</title>'),
  );
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return server;
}

test('the certificate authority vouches only for local names: one made with its key for a public site is refused', async () => {
  const server = await Server.start({ tls: true });
  const work = await mkdtemp(join(tmpdir(), 'fieldmesh-forge-'));
  const caDir = `${server.dataDir}-ca`;
  const pages = [];
  let browser;
  try {
    const local = await httpsPage(certificateFrom(caDir, work, 'camp.local'));
    const forged = await httpsPage(certificateFrom(caDir, work, 'www.example.com'));
    pages.push(local, forged);
    browser = await launchBrowser({
      home: await homeTrusting(join(caDir, 'fieldmesh-ca.crt')),
      args: ['--host-resolver-rules=MAP camp.local 127.0.0.1, MAP www.example.com 127.0.0.1'],
    });
    const page = await (await browser.newContext()).newPage();
    // A local name: trusted, so the set-up is sound.
    await page.goto(`https://camp.local:${local.address().port}/`);
    assert.equal(await page.title(), 'served');
    // A public name, signed with the same key: refused by the CA's name constraints.
    await assert.rejects(page.goto(`https://www.example.com:${forged.address().port}/`), /ERR_CERT/);
  } finally {
    await browser?.close();
    for (const page of pages) page.close();
    await server.dispose();
    await rm(work, { recursive: true, force: true });
  }
});

test('a wrong join code is refused and rate limited while the right one still works', async () => {
  const server = await Server.start({ args: ['--join-code', 'blue heron'] });
  const browser = await launchBrowser();
  try {
    const phone = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true };
    const eve = await ChatPage.open(await browser.newContext(phone), server.url);
    // One step at a time: the code first, and nothing else on the screen.
    await eve.byTestId('code-gate').waitFor();
    assert.equal(await eve.byTestId('home').count(), 0, 'no join form beside the code');
    for (let attempt = 0; attempt < 5; attempt++) {
      await eve.byTestId('code-input').fill(`guess ${attempt}`);
      await eve.byTestId('code-submit').click();
      await eve.page.waitForFunction(
        () => document.querySelector('[data-testid=code-error]')?.textContent.includes('not the join code'),
      );
      // The typed code stays, to correct rather than retype.
      assert.equal(await eve.byTestId('code-input').inputValue(), `guess ${attempt}`);
    }
    await eve.byTestId('code-input').fill('blue heron');
    await eve.byTestId('code-submit').click();
    const first = Number(await (await eve.page.waitForFunction(
      () => document.querySelector('[data-testid=code-error]')?.textContent.match(/Try again in (\d+) second/)?.[1],
    )).jsonValue());
    assert.ok(await eve.byTestId('code-submit').isDisabled(), 'no tries while waiting');
    await eve.page.waitForTimeout(2100);
    const later = Number(await (await eve.page.waitForFunction(
      () => document.querySelector('[data-testid=code-error]')?.textContent.match(/Try again in (\d+) second/)?.[1] ?? '0',
    )).jsonValue());
    assert.ok(later <= first - 2, `the wait counts down: ${first} s, then ${later} s`);
    await eve.page.screenshot({ path: '/tmp/code-gate-phone.png' });

    // Another phone with the right code is not locked out by Eve's guesses; capitals and
    // extra spaces do not matter.
    const finn = await ChatPage.open(await browser.newContext(phone), server.url);
    await finn.byTestId('code-input').fill('  Blue  HERON ');
    await finn.byTestId('code-submit').click();
    await finn.byTestId('home').waitFor();
    await finn.join('Finn', 'Camp Code');
    await finn.waitOnline();
    assert.equal(await finn.byTestId('code-gate').count(), 0);
    await finn.send('in with the code');
    await finn.waitSynced();
    // The pass is remembered: a reload does not ask again.
    await finn.page.reload();
    await finn.waitOnline();
    await finn.messageWithText('in with the code').waitFor();
    assert.equal(await finn.byTestId('code-gate').count(), 0);
    assert.deepEqual(await finn.texts(), ['in with the code']);
  } finally {
    await browser.close();
    await server.dispose();
  }
});

test('the one binary serves the whole app from an empty working folder', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'fieldmesh-empty-'));
  const server = await Server.start({ cwd: empty });
  const browser = await launchBrowser();
  try {
    for (const [path, type] of [
      ['/pkg/fieldmesh.wasm', 'application/wasm'],
      ['/pkg/fieldmesh.js', 'text/javascript; charset=utf-8'],
      ['/pkg/fieldmesh.css', 'text/css; charset=utf-8'],
      ['/manifest.webmanifest', 'application/manifest+json'],
      ['/icons/icon-512.png', 'image/png'],
      ['/sw.js', 'text/javascript; charset=utf-8'],
    ]) {
      const response = await fetch(new URL(path, server.url));
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('content-type'), type, path);
    }
    const wasm = await fetch(new URL('/pkg/fieldmesh.wasm', server.url), { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(wasm.headers.get('content-encoding'), 'gzip', 'the app travels compressed to phones');
    const chat = await ChatPage.open(await browser.newContext(), server.url);
    await chat.join('Gus', 'Camp Binary');
    await chat.waitOnline();
    await chat.send('from the binary');
    await chat.waitSynced();
    assert.deepEqual(chat.errors, []);
  } finally {
    await browser.close();
    await server.dispose();
    await rm(empty, { recursive: true, force: true });
  }
});

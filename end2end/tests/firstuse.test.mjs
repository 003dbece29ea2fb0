// A first-time user in a hurry, on a 390 px phone: the first screen tells the truth about
// rooms, invites always lead to the invited room, nothing typed is lost while the app starts,
// and a home screen lists your rooms.
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

/** A phone-sized browser context (390 × 844, touch). */
function phone() {
  return browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
}

/** Ana's room with one message in it, and its invite link. */
async function anasRoom(room, text) {
  const ana = await ChatPage.open(await phone(), server.url);
  await ana.join('Ana', room);
  await ana.waitOnline();
  await ana.send(text);
  await ana.messageWithText(text).getByText('✓ stored').waitFor();
  return { ana, link: await ana.inviteLink() };
}

/** Marks the page so a reload (which would lose it) shows. */
async function mark(chat) {
  await chat.page.evaluate(() => {
    window.__notReloaded = true;
  });
}

async function notReloaded(chat) {
  return chat.page.evaluate(() => window.__notReloaded === true);
}

test('the first screen says how rooms work and has its own way in by invite', async () => {
  const { link } = await anasRoom('Camp Truth', 'the well is clean');
  const ben = await ChatPage.open(await phone(), server.url);
  await ben.ready();
  const home = await ben.byTestId('home').textContent();
  assert.ok(!home.includes('Anyone who types the same room name joins the same room'), home);
  assert.match(home, /new private room/i);
  assert.match(home, /invite/i);
  assert.match(home, /Emergency/);
  // Pasting the invite link (as a person copies it from a message) joins Ana's room.
  await ben.byTestId('join-name').fill('Ben');
  await ben.byTestId('invite-paste').fill(link);
  await ben.byTestId('invite-open').click();
  await ben.byTestId('room-title').getByText('Camp Truth', { exact: true }).waitFor();
  await ben.messageWithText('the well is clean').waitFor();
  assert.deepEqual(ben.errors, []);
});

test('an invite link opens the invited room even when another room was open', async () => {
  const { link } = await anasRoom('Camp Invited', 'meet at noon');
  const ben = await ChatPage.open(await phone(), server.url);
  await ben.join('Ben', 'Camp Own');
  await ben.waitOnline();
  // Later Ben opens the invite in the same browser, which remembers Camp Own.
  await ben.page.goto(link);
  await ben.byTestId('room-title').getByText('Camp Invited', { exact: true }).waitFor();
  await ben.messageWithText('meet at noon').waitFor();
  assert.ok(!ben.page.url().includes('key='), `the key left the address bar: ${ben.page.url()}`);
});

test('an invite pasted into the address bar of an open tab is followed without a reload', async () => {
  const { link } = await anasRoom('Camp Pasted', 'tents are up');
  const ben = await ChatPage.open(await phone(), server.url);
  await ben.join('Ben', 'Camp Before');
  await ben.waitOnline();
  await mark(ben);
  // Only the part after # changes, so the browser does not load the page again.
  await ben.page.evaluate((hash) => {
    window.location.hash = hash;
  }, new URL(link).hash);
  await ben.byTestId('room-title').getByText('Camp Pasted', { exact: true }).waitFor();
  await ben.messageWithText('tents are up').waitFor();
  assert.ok(await notReloaded(ben));
  assert.ok(!ben.page.url().includes('key='), `the key left the address bar: ${ben.page.url()}`);
});

test('a join tapped while a slow phone still starts the app is carried out, nothing typed is lost', async () => {
  const context = await phone();
  // A slow phone: the app's code arrives 3 s late.
  await context.route('**/pkg/fieldmesh.wasm', async (route) => {
    await new Promise((ok) => setTimeout(ok, 3000));
    await route.continue();
  });
  const page = await context.newPage();
  const cleo = new ChatPage(page);
  await page.goto(server.url, { waitUntil: 'domcontentloaded' });
  await page.getByTestId('join-name').fill('Cleo');
  await page.getByTestId('join-room').fill('Camp Slow');
  await mark(cleo);
  assert.equal(await page.evaluate(() => window.__fieldmeshReady === true), false, 'tapped before the app was ready');
  await page.getByTestId('join-submit').click();
  await cleo.byTestId('room-title').getByText('Camp Slow', { exact: true }).waitFor({ timeout: 30_000 });
  assert.ok(await notReloaded(cleo), 'the page was not reloaded');
  assert.deepEqual(cleo.errors, []);
});

test('a late joiner sees signed authors by name, though they left long ago', async () => {
  const { ana, link } = await anasRoom('Camp Late', 'I was here first');
  await ana.page.context().close();
  const dan = await ChatPage.acceptInvite(await phone(), link, 'Dan');
  const author = dan.messageWithText('I was here first').getByTestId('message-author');
  await author.waitFor();
  assert.equal(await author.textContent(), 'Ana');
});

test('the home screen lists your rooms, newest first, and opens or forgets them', async () => {
  const eve = await ChatPage.open(await phone(), server.url);
  await eve.join('Eve', 'Camp One');
  await eve.waitOnline();
  await eve.send('first room news');
  await eve.messageWithText('first room news').getByText('✓ stored').waitFor();
  await eve.byTestId('leave').click();
  await eve.byTestId('join-room').fill('Camp Two');
  await eve.byTestId('join-submit').click();
  await eve.byTestId('room-title').getByText('Camp Two', { exact: true }).waitFor();
  await eve.send('second room news');
  await eve.messageWithText('second room news').getByText('✓ stored').waitFor();
  await eve.byTestId('leave').click();

  const rooms = eve.byTestId('room-item');
  await rooms.nth(1).waitFor();
  assert.deepEqual(await eve.byTestId('room-item-name').allTextContents(), ['Camp Two', 'Camp One']);
  assert.deepEqual(await eve.byTestId('room-item-last').allTextContents(), [
    'Eve: second room news',
    'Eve: first room news',
  ]);
  // The public room is one tap away.
  await eve.byTestId('open-emergency').waitFor();

  await rooms.filter({ hasText: 'Camp One' }).getByTestId('room-item-open').click();
  await eve.byTestId('room-title').getByText('Camp One', { exact: true }).waitFor();
  await eve.messageWithText('first room news').waitFor();
  await eve.byTestId('leave').click();

  eve.page.once('dialog', () => {});
  await rooms.filter({ hasText: 'Camp Two' }).getByTestId('room-forget').click();
  await eve.byTestId('forget-confirm').click();
  await eve.page.waitForFunction(
    () => [...document.querySelectorAll('[data-testid=room-item-name]')].map((e) => e.textContent).join() === 'Camp One',
  );
  await eve.page.screenshot({ path: '/tmp/home-phone.png' });
});

test('messages: links open, right-to-left text runs its way, long ones fold, and Enter on a phone makes a new line', async () => {
  const gil = await ChatPage.open(await phone(), server.url);
  await gil.join('Gil', 'Camp Reading');
  await gil.waitOnline();
  // On a phone Enter makes a new line; the button sends.
  await gil.byTestId('composer-input').fill('first line');
  await gil.byTestId('composer-input').press('Enter');
  await gil.byTestId('composer-input').pressSequentially('second line');
  assert.equal(await gil.byTestId('composer-input').inputValue(), 'first line\nsecond line');
  await gil.byTestId('composer-send').click();
  await gil.messageWithText('first line\nsecond line').waitFor();

  await gil.send('map: https://camp.local/map. not javascript:alert(1)');
  const links = gil.byTestId('message-link');
  await links.first().waitFor();
  assert.equal(await links.count(), 1);
  assert.equal(await links.first().getAttribute('href'), 'https://camp.local/map');
  assert.match(await links.first().getAttribute('rel'), /noopener/);

  await gil.send('مرحبا، الماء في المدرسة');
  // Stored first: the row is drawn again when its state changes, and a row being replaced
  // has no computed style.
  await gil.messageWithText('مرحبا، الماء في المدرسة').getByText('✓ stored').waitFor();
  const arabic = gil.messageWithText('مرحبا، الماء في المدرسة').getByTestId('message-text');
  assert.equal(await arabic.evaluate((p) => getComputedStyle(p).direction), 'rtl');

  const wall = 'Long report. '.repeat(240).trim();
  await gil.send(wall);
  const row = gil.messageWithText(wall);
  await row.waitFor();
  const folded = await row.getByTestId('message-text').evaluate((p) => p.getBoundingClientRect().height);
  assert.ok(folded < 400, `folded to ${folded} px`);
  await row.getByTestId('show-more').click();
  const open = await row.getByTestId('message-text').evaluate((p) => p.getBoundingClientRect().height);
  assert.ok(open > 1000, `opened to ${open} px`);
  await gil.page.screenshot({ path: '/tmp/room-phone.png' });
  // Readable and tappable: names, times and states at 14 px or more; every control 44 px.
  const small = await gil.page.evaluate(() =>
    [...document.querySelectorAll('.message .author, .message time, .message .state, [data-testid=presence]')]
      .map((e) => [e.className || e.tagName, parseFloat(getComputedStyle(e).fontSize)])
      .filter(([, size]) => size < 14),
  );
  assert.deepEqual(small, []);
  const tiny = await gil.page.evaluate(() =>
    [...document.querySelectorAll('button, input, textarea, summary, select')]
      .filter((e) => e.offsetParent !== null)
      .map((e) => [e.dataset.testid ?? e.className, Math.round(e.getBoundingClientRect().height)])
      .filter(([, height]) => height < 44),
  );
  assert.deepEqual(tiny, []);
  assert.deepEqual(gil.errors, []);
});

test('on a computer Enter sends and Shift+Enter makes a new line', async () => {
  const hal = await ChatPage.open(await browser.newContext({ viewport: { width: 1280, height: 800 } }), server.url);
  await hal.join('Hal', 'Camp Desk');
  await hal.waitOnline();
  await hal.byTestId('composer-input').fill('one');
  await hal.byTestId('composer-input').press('Shift+Enter');
  await hal.byTestId('composer-input').pressSequentially('two');
  await hal.byTestId('composer-input').press('Enter');
  await hal.messageWithText('one\ntwo').waitFor();
  await hal.page.screenshot({ path: '/tmp/room-desktop.png' });
});

test('the invite sheet copies and shares the link, and the app offers to install itself', async () => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    hasTouch: true,
    isMobile: true,
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  // Headless chromium on Linux has no share sheet and never offers to install an app: these
  // two browser parts are stood in for (recording what the page asks of them); the clipboard
  // is the real one.
  await context.addInitScript(() => {
    window.__shared = [];
    Object.defineProperty(navigator, 'share', {
      value: (data) => {
        window.__shared.push(data);
        return Promise.resolve();
      },
    });
  });
  const ivy = await ChatPage.open(context, server.url);
  await ivy.ready();
  await ivy.page.evaluate(() => {
    const offer = new Event('beforeinstallprompt', { cancelable: true });
    offer.prompt = () => {
      window.__prompted = true;
      return Promise.resolve();
    };
    window.dispatchEvent(offer);
  });
  await ivy.byTestId('install-app').click();
  assert.equal(await ivy.page.evaluate(() => window.__prompted), true);
  assert.equal(await ivy.byTestId('install-app').count(), 0, 'offered once');

  await ivy.join('Ivy', 'Camp Share');
  await ivy.menu('share');
  const link = await ivy.byTestId('invite-link').inputValue();
  await ivy.byTestId('invite-copy').click();
  await ivy.byTestId('invite-copy').getByText('Copied ✓').waitFor();
  assert.equal(await ivy.page.evaluate(() => navigator.clipboard.readText()), link);
  await ivy.byTestId('invite-share').click();
  await ivy.page.waitForFunction(() => window.__shared.length === 1);
  assert.deepEqual(await ivy.page.evaluate(() => window.__shared[0]), { title: 'Join Camp Share on FieldMesh', url: link });
  await ivy.page.screenshot({ path: '/tmp/share-phone.png' });
});

test('a bar that appears above the list keeps the newest message in view', async () => {
  const context = await phone();
  const jo = await ChatPage.open(context, server.url);
  await jo.join('Jo', 'Camp Scroll');
  await jo.waitOnline();
  for (let n = 1; n <= 25; n++) await jo.send(`update ${n}`);
  await jo.messageWithText('update 25').getByText('✓ stored').waitFor();
  const newestInView = () =>
    jo.page.evaluate(() => {
      const list = document.querySelector('[data-testid=message-list]').getBoundingClientRect();
      const rows = document.querySelectorAll('[data-testid=message]');
      const last = rows[rows.length - 1].getBoundingClientRect();
      return last.bottom <= list.bottom + 1;
    });
  assert.ok(await newestInView());
  // The network goes: the offline bar appears above the list and makes it shorter.
  await context.setOffline(true);
  await jo.byTestId('sync-status').waitFor();
  await jo.page.waitForTimeout(300);
  assert.ok(await newestInView(), 'the newest message is still in view');
  await context.setOffline(false);
});

test('an invite pasted and joined while a slow phone still starts the app is carried out too', async () => {
  const { link } = await anasRoom('Camp Slow Invite', 'the road is open');
  const context = await phone();
  await context.route('**/pkg/fieldmesh.wasm', async (route) => {
    await new Promise((ok) => setTimeout(ok, 3000));
    await route.continue();
  });
  const page = await context.newPage();
  const lee = new ChatPage(page);
  await page.goto(server.url, { waitUntil: 'domcontentloaded' });
  await page.getByTestId('join-name').fill('Lee');
  await page.getByTestId('invite-paste').fill(link);
  assert.equal(await page.evaluate(() => window.__fieldmeshReady === true), false, 'tapped before the app was ready');
  await page.getByTestId('invite-open').click();
  await lee.byTestId('room-title').getByText('Camp Slow Invite', { exact: true }).waitFor({ timeout: 30_000 });
  await lee.messageWithText('the road is open').waitFor();
  assert.deepEqual(lee.errors, []);
});

test('search finds messages on the device, in a room or all rooms, marked, and opens one in its room', async () => {
  const ida = await ChatPage.open(await phone(), server.url);
  await ida.join('Ida', 'Camp Other');
  await ida.waitOnline();
  await ida.send('water in the other camp');
  await ida.byTestId('leave').click();
  await ida.byTestId('join-room').fill('Camp Search');
  await ida.byTestId('join-submit').click();
  await ida.byTestId('room-title').getByText('Camp Search').waitFor();
  await ida.send('Water at the school, bring cans');
  await ida.send('the Café has bread');
  // More than a screen of later messages: the first ones are no longer in the list.
  for (let n = 1; n <= 105; n++) await ida.send(`later message ${n}`);
  await ida.messageWithText('later message 105').getByText('✓ stored').waitFor();
  assert.equal(await ida.messageWithText('Water at the school, bring cans').count(), 0);

  // In the room: this room only, accents and case aside.
  await ida.byTestId('search-open').click();
  await ida.byTestId('search-input').fill('CAFE');
  await ida.page.waitForFunction(() => /1 found in 107 messages on this room/.test(document.querySelector('[data-testid=search-status]')?.textContent));
  assert.deepEqual(await ida.byTestId('search-hit').locator('mark').allTextContents(), ['Café']);
  // Every room: the newest first, every match marked.
  await ida.byTestId('search-here').uncheck();
  await ida.byTestId('search-input').fill('water');
  await ida.page.waitForFunction(() => /2 found in 108 messages on this device/.test(document.querySelector('[data-testid=search-status]')?.textContent));
  assert.deepEqual(await ida.byTestId('search-hit-room').allTextContents(), ['Camp Search', 'Camp Other']);
  assert.deepEqual(await ida.byTestId('search-hit').locator('mark').allTextContents(), ['Water', 'water']);
  await ida.page.screenshot({ path: `${process.env.SCREENSHOTS ?? '/tmp'}/search-phone.png` });

  // Opening a result shows it in its room, though it was older than the list reached.
  await ida.byTestId('search-hit').first().click();
  await ida.byTestId('search').waitFor({ state: 'detached' });
  const found = ida.messageWithText('Water at the school, bring cans');
  await found.waitFor();
  await ida.page.waitForFunction(() => document.querySelector('.message.found') != null);
  assert.ok(await found.evaluate((row) => {
    const box = row.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= innerHeight;
  }), 'the found message is in view');

  // From the home screen too; nothing found is said so.
  await ida.byTestId('leave').click();
  await ida.byTestId('search-open').click();
  await ida.byTestId('search-input').fill('helicopter');
  await ida.page.waitForFunction(() => /Nothing found/.test(document.querySelector('[data-testid=search-status]')?.textContent));
  assert.equal(await ida.byTestId('search-hit').count(), 0);
  await ida.byTestId('search-input').press('Escape');
  await ida.byTestId('search').waitFor({ state: 'detached' });
});

// Attention on a 390 px phone: a private message is announced at once and the private room
// shows the other person online; unread counts on the home screen and in the title; a
// notification through the service worker for news in another room or while the app is out
// of sight; and a muted room stays quiet.
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

/** A phone-sized browser context (390 × 844, touch); `notifications` grants the permission. */
function phone({ notifications = false } = {}) {
  return browser.newContext({
    viewport: { width: 390, height: 844 },
    hasTouch: true,
    isMobile: true,
    // An empty list would deny every permission: the browser's question is left unasked.
    ...(notifications ? { permissions: ['notifications'] } : {}),
  });
}

/** Ana in a new room `room`, and Ben in it by its invite (both online, both seen). */
async function pair(room, { notifications = false } = {}) {
  const ana = await ChatPage.open(await phone(), server.url);
  await ana.join('Ana', room);
  await ana.waitOnline();
  const ben = await ChatPage.acceptInvite(await phone({ notifications }), await ana.inviteLink(), 'Ben');
  await ben.waitOnline();
  await ana.page.waitForFunction(() => /2 here/.test(document.querySelector('[data-testid=presence]')?.textContent));
  return { ana, ben };
}

/** Goes back to the home screen. */
async function home(chat) {
  await chat.byTestId('leave').click();
  await chat.byTestId('home').waitFor();
}

/** The room's line on the home screen. */
function roomItem(chat, name) {
  return chat.byTestId('room-item').filter({ has: chat.byTestId('room-item-name').getByText(name, { exact: true }) });
}

/** The notifications the service worker shows now: `[{ title, body }]`. */
async function notifications(chat) {
  return chat.page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    return (await registration.getNotifications()).map((n) => ({ title: n.title, body: n.body }));
  });
}

/** Waits until the service worker shows a notification, with `body` when one is named. */
async function waitNotifications(chat, body) {
  let shown = [];
  for (let tries = 0; tries < 100; tries++) {
    shown = await notifications(chat);
    if (shown.some((n) => body === undefined || n.body === body)) return;
    await chat.page.waitForTimeout(100);
  }
  const seen = await chat.page.evaluate(() => ({ title: document.title, permission: Notification.permission }));
  throw new Error(
    `no notification${body ? ` saying "${body}"` : ''} within 10 s (shown: ${JSON.stringify(shown)}, ` +
      `title "${seen.title}", permission ${seen.permission}); the page said:\n` +
      chat.console.join('\n'),
  );
}

/**
 * Closes the notifications shown, and waits until the browser has forgotten them: `close()`
 * returns before Chrome deletes its record, and a record is named by its tag (the room), so a
 * close still under way could take the room's next notification with it.
 */
async function closeNotifications(chat) {
  await chat.page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    for (const n of await registration.getNotifications()) n.close();
  });
  for (let tries = 0; tries < 100; tries++) {
    if ((await notifications(chat)).length === 0) return;
    await chat.page.waitForTimeout(100);
  }
  throw new Error('notifications still shown 10 s after closing them');
}

/** Makes the page believe it is out of sight (another app in front), or back in sight. */
async function setHidden(chat, hidden) {
  await chat.page.evaluate((hidden) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    window.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('a private message is announced within 2 s, and the private room shows the other person online', async (t) => {
  const { ana, ben } = await pair('Camp Whisper');
  await ana.byTestId('presence').click();
  await ana.byTestId('roster-entry').filter({ hasText: 'Ben' }).getByTestId('message-privately').click();
  await ana.byTestId('direct-room').waitFor();
  if (await ana.byTestId('roster-close').isVisible()) await ana.byTestId('roster-close').click();
  // Ben is in the group room, but online: the private room says so.
  await ana.page.waitForFunction(
    () => /2 here: .*Ben/.test(document.querySelector('[data-testid=presence]')?.textContent),
    null,
    { timeout: 5_000 },
  );
  await ana.send('meet me at the north gate');
  await ana.messageWithText('meet me at the north gate').getByText('✓ stored').waitFor();
  const stored = Date.now();
  await ben.byTestId('direct-alert').waitFor({ timeout: 2_000 });
  const announcedMs = Date.now() - stored;
  assert.ok(announcedMs < 2_000, `announced after ${announcedMs} ms`);
  t.diagnostic(`announced ${announcedMs} ms after the sender saw it stored`);
  assert.match(await ben.byTestId('direct-alert').textContent(), /Ana wrote to you privately/);
  // The conversation is on Ben's device now: his home screen lists it, with the message.
  await home(ben);
  const conversation = roomItem(ben, 'Ana');
  await conversation.waitFor();
  assert.equal(await conversation.getByTestId('room-item-unread').textContent(), '1');
  assert.match(await conversation.getByTestId('room-item-last').textContent(), /meet me at the north gate/);
  await conversation.getByTestId('room-item-open').click();
  await ben.messageWithText('meet me at the north gate').waitFor();
  assert.equal(await ben.byTestId('room-title').textContent(), 'Ana');
});

test('unread counts show on the home screen and in the title, and go once the room is read', async () => {
  const { ana, ben } = await pair('Camp Count');
  await home(ben);
  await ana.send('first count');
  await ana.send('second count');
  const item = roomItem(ben, 'Camp Count');
  await item.getByTestId('room-item-unread').getByText('2', { exact: true }).waitFor({ timeout: 2_000 });
  assert.match(await item.getByTestId('room-item-last').textContent(), /Ana: second count/);
  assert.equal(await ben.page.title(), '(2) FieldMesh');

  await item.getByTestId('room-item-open').click();
  await ben.messageWithText('second count').waitFor();
  await ben.page.waitForFunction(() => document.title === 'FieldMesh');
  await home(ben);
  assert.equal(await roomItem(ben, 'Camp Count').getByTestId('room-item-unread').count(), 0);

  // What arrives while the app is closed is counted when it opens again (the server counts).
  const context = ben.page.context();
  await ben.page.close();
  await ana.send('while you were away');
  await ana.messageWithText('while you were away').getByText('✓ stored').waitFor();
  const again = await ChatPage.open(context, server.url);
  await again.ready();
  await again.byTestId('home').waitFor();
  await roomItem(again, 'Camp Count').getByTestId('room-item-unread').getByText('1', { exact: true }).waitFor();
  assert.equal(await again.page.title(), '(1) FieldMesh');
});

test('news in another room or out of sight is notified through the service worker, except in a muted room', async () => {
  const { ana, ben } = await pair('Camp Bell', { notifications: true });
  await ben.waitControlled();
  // Ben also has a room of his own, and is in it.
  await home(ben);
  await ben.byTestId('join-room').fill('Ben Notes');
  await ben.byTestId('join-submit').click();
  await ben.byTestId('room-title').getByText('Ben Notes').waitFor();

  await ana.send('a bell rings');
  await waitNotifications(ben);
  assert.deepEqual(await notifications(ben), [{ title: 'Camp Bell', body: 'Ana: a bell rings' }]);
  assert.equal(await ben.page.title(), '(1) FieldMesh');
  const room = await ben.page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())[0].data.room);
  // A tap on it: the service worker tells the open page which room (sw.js), which opens it.
  // (A headless browser cannot tap a system notification; this is the page's half. The
  // notification stays: the room's next one replaces it. Closing it here would race Chrome,
  // whose late record of the close can delete the room's next notification, named alike.)
  await ben.page.evaluate((room) => {
    navigator.serviceWorker.dispatchEvent(new MessageEvent('message', { data: { type: 'fieldmesh-open-room', room } }));
  }, room);
  await ben.byTestId('room-title').getByText('Camp Bell').waitFor();
  await ben.messageWithText('a bell rings').waitFor();
  await ben.page.waitForFunction(() => document.title === 'FieldMesh');

  // Out of sight, news in the open room is notified and counted too.
  await setHidden(ben, true);
  await ana.send('while hidden');
  await ben.page.waitForFunction(() => document.title === '(1) FieldMesh');
  await waitNotifications(ben, 'Ana: while hidden');
  assert.deepEqual(await notifications(ben), [{ title: 'Camp Bell', body: 'Ana: while hidden' }]);
  await setHidden(ben, false);
  await ben.page.waitForFunction(() => document.title === 'FieldMesh');
  await closeNotifications(ben);

  // Muted: counted, but no notification, and out of the title.
  await ben.menu('mute');
  await ben.byTestId('room-muted').waitFor();
  await ben.byTestId('room-menu').click();
  assert.equal(await ben.byTestId('mute').getAttribute('aria-checked'), 'true');
  assert.equal(await ben.byTestId('mute').textContent(), 'Unmute notifications');
  await ben.page.keyboard.press('Escape');
  await home(ben);
  await ana.send('nobody hears this');
  const item = roomItem(ben, 'Camp Bell');
  await item.getByTestId('room-item-unread').getByText('1', { exact: true }).waitFor();
  await item.getByTestId('room-item-muted').waitFor();
  await ben.byTestId('room-item-open').filter({ hasText: 'Ben Notes' }).click();
  await ana.send('still nobody');
  await ben.page.waitForTimeout(1_000);
  assert.deepEqual(await notifications(ben), []);
  assert.equal(await ben.page.title(), 'FieldMesh');
  // The mute is kept on the device.
  await ben.page.reload();
  await ben.ready();
  await home(ben);
  await roomItem(ben, 'Camp Bell').getByTestId('room-item-muted').waitFor();
  // With no window open, the service worker opens one at /?open=<room>: it shows that room.
  await ben.page.goto(`${server.url}/?open=${room}`);
  await ben.byTestId('room-title').getByText('Camp Bell').waitFor();
  assert.equal(new URL(ben.page.url()).search, '', 'the address is clean again');
});

test('notifications are offered on the home screen once there is a room, and asked for only on a tap', async () => {
  const ana = await ChatPage.open(await phone(), server.url);
  await ana.ready();
  assert.equal(await ana.byTestId('notify-offer').count(), 0, 'nothing to be told about yet');
  await ana.join('Ana', 'Camp Offer');
  await home(ana);
  await ana.byTestId('notify-offer').waitFor();
  // Granted (as the person's tap on the browser's question would), the offer goes.
  await ana.page.context().grantPermissions(['notifications']);
  await ana.byTestId('notify-on').click();
  await ana.byTestId('notify-offer').waitFor({ state: 'detached' });
});

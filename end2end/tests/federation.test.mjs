// Two camps linked over IP through a NATS hub (Debian's nats-server; each camp's FieldMesh
// starts its own leaf server): a phone at each, in one room, in headless chromium.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ChatPage, NatsHub, Server, launchBrowser } from '../support.mjs';

let hub;
let north;
let south;
let browser;

before(async () => {
  hub = await NatsHub.start(['Camp North', 'Camp South']);
  north = await Server.start({ args: await hub.camp('Camp North') });
  south = await Server.start({ args: await hub.camp('Camp South') });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await north?.dispose();
  await south?.dispose();
  await hub?.dispose();
});

test('camps linked over IP share a room both ways, and the bar says which camps and when it synced', async () => {
  const ana = await ChatPage.open(await browser.newContext({ viewport: { width: 390, height: 844 } }), north.url);
  await ana.join('Ana', 'Water points');
  await ana.waitOnline();
  // Ben is at the other camp: the invite's key, that camp's address.
  const link = new URL(await ana.inviteLink());
  const atSouth = new URL(south.url);
  link.protocol = atSouth.protocol;
  link.host = atSouth.host;
  const ben = await ChatPage.acceptInvite(
    await browser.newContext({ viewport: { width: 1280, height: 800 } }),
    link.href,
    'Ben',
  );
  await ben.waitOnline();
  for (const [chat, other] of [
    [ana, 'Camp South'],
    [ben, 'Camp North'],
  ]) {
    await chat.byTestId('federation-status').getByText(`Linked to 1 camp (${other})`).waitFor({ timeout: 30_000 });
  }

  await ana.send('Water at the north gate until 6');
  const atSouthPhone = ben.messageWithText('Water at the north gate until 6');
  await atSouthPhone.waitFor({ timeout: 30_000 });
  // Signed by Ana's device, as on her own camp: not a radio copy.
  assert.equal(await atSouthPhone.getByText('📡 via radio').count(), 0);
  await ben.send('Thanks, sending two people with jerrycans');
  await ana.messageWithText('Thanks, sending two people with jerrycans').waitFor({ timeout: 30_000 });
  assert.match(
    await ana.byTestId('federation-status').textContent(),
    /^🔗 Linked to 1 camp \(Camp South\) · (synced just now|last synced 1 min ago)$/,
  );
  await ana.page.screenshot({ path: '/tmp/federation-phone.png' });
  await ben.page.screenshot({ path: '/tmp/federation-desktop.png' });
  assert.deepEqual([...ana.errors, ...ben.errors], []);
  await ana.page.context().close();
  await ben.page.context().close();
});

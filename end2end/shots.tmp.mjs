import { ChatPage, Server, launchBrowser } from './support.mjs';
const server = await Server.start();
const browser = await launchBrowser({ args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
try {
  const phone = await browser.newContext({ viewport: { width: 390, height: 760 }, deviceScaleFactor: 2, hasTouch: true, isMobile: true });
  const ana = await ChatPage.open(phone, server.url);
  await ana.join('Ana', 'Camp Files');
  await ana.waitOnline();
  const link = await ana.inviteLink();
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const ben = await ChatPage.acceptInvite(desk, link, 'Ben');
  await ben.waitOnline();
  const photo = Buffer.from(await ana.page.evaluate(async () => {
    const c = new OffscreenCanvas(2000, 1500); const x = c.getContext('2d');
    const g = x.createLinearGradient(0, 0, 2000, 1500); g.addColorStop(0, '#2a6'); g.addColorStop(1, '#c42');
    x.fillStyle = g; x.fillRect(0, 0, 2000, 1500); x.fillStyle = '#fff'; x.font = '250px sans-serif'; x.fillText('ROAD CLOSED', 200, 750);
    return [...new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer())];
  }));
  await ana.byTestId('attach-photo').setInputFiles({ name: 'road.png', mimeType: 'image/png', buffer: photo });
  await ana.byTestId('attach-file').setInputFiles({ name: 'names of the missing, north camp.pdf', mimeType: 'application/pdf', buffer: Buffer.alloc(600000, 7) });
  await ana.page.screenshot({ path: '/tmp/shot-drafts.png' });
  await ana.byTestId('composer-input').fill('the road at km 12');
  await ana.byTestId('composer-send').click();
  await ana.byTestId('drafts').waitFor({ state: 'detached' });
  await ana.waitSynced();
  await ben.messageWithText('the road at km 12').waitFor();
  await ben.page.waitForTimeout(1500);
  await ana.page.waitForTimeout(500);
  await ana.byTestId('record-voice').hover(); await ana.page.mouse.down(); await ana.page.waitForTimeout(1500);
  await ana.page.screenshot({ path: '/tmp/shot-rec.png' });
  await ana.page.mouse.up(); await ana.byTestId('draft').waitFor();
  await ana.byTestId('composer-send').click(); await ana.byTestId('drafts').waitFor({ state: 'detached' }); await ana.waitSynced();
  await ana.byTestId('file-open').last().click(); await ana.byTestId('file-audio').waitFor();
  await ana.page.screenshot({ path: '/tmp/shot-phone.png' });
  await ben.page.screenshot({ path: '/tmp/shot-desk.png' });
  await ben.byTestId('file-open').first().click();
  await ben.byTestId('file-save').nth(1).waitFor();
  await ben.page.screenshot({ path: '/tmp/shot-desk2.png' });
} finally { await browser.close(); await server.dispose(); }

// Benchmarks of files in the browser (figures, not pass/fail): run with `./x bench`.
//  1. A 10 MB file attached on one page: sealed and kept on the device, then uploaded and
//     stored by the server (the message acknowledged); a second page fetches it back and
//     opens it. Loopback, release server.
//  2. A 12-megapixel photo (4000 × 3000 JPEG, drawn in the page) made small to the medium
//     size (1,600 pixels) with the browser's decoder and canvas, as the composer does.
import { ChatPage, Server, launchBrowser } from '../support.mjs';

const FILE_MB = Number(process.env.BENCH_FILE_MB ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const browser = await launchBrowser();
const server = await Server.start();
const results = [];
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const range = (values) => `${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)}`;

try {
  const ana = await ChatPage.open(await browser.newContext(), server.url);
  await ana.join('Ana', 'Bench Files');
  await ana.waitOnline();
  const link = await ana.inviteLink();
  const ben = await ChatPage.acceptInvite(await browser.newContext(), link, 'Ben');
  await ben.waitOnline();

  const sealed = [];
  const stored = [];
  const fetched = [];
  for (let round = 1; round <= ROUNDS; round += 1) {
    const bytes = Buffer.alloc(FILE_MB * 1_000_000);
    for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
    bytes.writeUInt32LE(round, 0);
    const caption = `bench file ${round}`;
    await ana.byTestId('attach-file').setInputFiles({ name: `data-${round}.bin`, mimeType: 'application/octet-stream', buffer: bytes });
    const started = performance.now();
    await ana.byTestId('composer-input').fill(caption);
    await ana.byTestId('composer-input').press('Enter');
    const mine = ana.messageWithText(caption);
    await mine.waitFor();
    sealed.push(performance.now() - started);
    await mine.getByText('✓ stored on server').waitFor({ timeout: 120_000 });
    stored.push(performance.now() - started);

    const theirs = ben.messageWithText(caption);
    await theirs.waitFor();
    const opening = performance.now();
    await theirs.getByTestId('file-open').click();
    await theirs.getByTestId('file-save').waitFor({ timeout: 120_000 });
    fetched.push(performance.now() - opening);
  }
  results.push([`${FILE_MB} MB file: attached to sealed and kept on the device (${ROUNDS} rounds)`, `${median(sealed).toFixed(0)} ms (${range(sealed)})`]);
  results.push([`  to uploaded and acknowledged by the server (goal ≤ 3,000 ms)`, `${median(stored).toFixed(0)} ms (${range(stored)})`]);
  results.push([`  fetched, checked and opened by a second page (goal ≤ 3,000 ms)`, `${median(fetched).toFixed(0)} ms (${range(fetched)})`]);

  const shrink = await ana.page.evaluate(async (rounds) => {
    const canvas = new OffscreenCanvas(4000, 3000);
    const context = canvas.getContext('2d');
    const gradient = context.createLinearGradient(0, 0, 4000, 3000);
    gradient.addColorStop(0, '#2a6');
    gradient.addColorStop(1, '#c42');
    context.fillStyle = gradient;
    context.fillRect(0, 0, 4000, 3000);
    // Detail a camera would see: many small shapes in many colours.
    for (let i = 0; i < 20000; i += 1) {
      context.fillStyle = `hsl(${(i * 37) % 360} 60% ${30 + (i % 40)}%)`;
      context.fillRect((i * 7919) % 4000, (i * 104729) % 3000, 3 + (i % 17), 3 + (i % 13));
    }
    const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
    const file = new File([blob], 'camera.jpg', { type: 'image/jpeg' });
    const app = await import('/pkg/fieldmesh.js');
    const runs = [];
    for (let n = 0; n < rounds; n += 1) runs.push(Array.from(await app.bench_shrink(file, 1600)));
    return { input: file.size, runs };
  }, ROUNDS);
  const ms = shrink.runs.map((run) => run[0]);
  const [, width, height, size] = shrink.runs[0];
  results.push([
    `12 MP photo (JPEG, ${(shrink.input / 1e6).toFixed(1)} MB) made ${width} × ${height} (${(size / 1000).toFixed(0)} KB) (goal ≤ 1,500 ms)`,
    `${median(ms).toFixed(0)} ms (${range(ms)})`,
  ]);
} finally {
  await browser.close();
  await server.dispose();
}

console.log('\nFieldMesh files benchmark (headless chromium, loopback)');
for (const [what, figure] of results) console.log(`  ${what.padEnd(84)} ${figure}`);

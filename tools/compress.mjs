// Writes brotli (`.br`, quality 11) and gzip (`.gz`, level 9) copies beside each file given,
// for the server to send as they are to browsers that accept them: compressed once at build
// time, not at every start. A copy newer than its file is left alone, so a build with nothing
// changed changes nothing (and the server, which embeds these files, is not rebuilt).
// Node's own zlib: no other tool to install.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const newer = (a, b) => {
  try {
    return statSync(a).mtimeMs > statSync(b).mtimeMs;
  } catch {
    return true;
  }
};

for (const file of process.argv.slice(2)) {
  const bytes = readFileSync(file);
  if (newer(file, `${file}.br`)) {
    writeFileSync(`${file}.br`, brotliCompressSync(bytes, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    }));
  }
  if (newer(file, `${file}.gz`)) writeFileSync(`${file}.gz`, gzipSync(bytes, { level: 9 }));
}

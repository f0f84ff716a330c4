/**
 * Packs the `mnist` package's 10,000 real digits into public/data/mnist-10k.u8.gz (format and split
 * convention: web-worker-node/data/mnist.ts). Deterministic: the digits (stored by class in the
 * package) are shuffled with a Fisher–Yates pass driven by the project's seeded SHA-256 stream
 * (shared/pouw/init.ts) under a fixed seed, pixels are round(value × 255), and gzip (level 9, no
 * timestamp) is stable for a given zlib. Run: `node --import tsx scripts/pack-mnist.ts`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { SeededStream } from '../shared/pouw/init.ts';
import { MNIST_HEADER_BYTES, MNIST_MAGIC } from '../web-worker-node/data/mnist.ts';

const ROWS = 28;
const COLS = 28;
const SIZE = ROWS * COLS;
export const SHUFFLE_SEED = 'pouw/mnist-10k/v1';

export function packMnist(): Uint8Array {
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const images: Uint8Array[] = [];
  const labels: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const data = (JSON.parse(readFileSync(join(dir, `${digit}.json`), 'utf8')) as { data: number[] }).data;
    for (let i = 0; i + SIZE <= data.length; i += SIZE) {
      images.push(Uint8Array.from(data.slice(i, i + SIZE), (v) => Math.round(v * 255)));
      labels.push(digit);
    }
  }
  const count = images.length;
  // Unbiased Fisher–Yates: rejection sampling on the uint32 stream.
  const order = Array.from({ length: count }, (_, i) => i);
  const stream = new SeededStream(new TextEncoder().encode(SHUFFLE_SEED));
  for (let i = count - 1; i > 0; i--) {
    const range = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % range);
    let v = stream.nextUint32();
    while (v >= limit) v = stream.nextUint32();
    const j = v % range;
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const out = new Uint8Array(MNIST_HEADER_BYTES + count + count * SIZE);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = MNIST_MAGIC.charCodeAt(i);
  view.setUint32(4, count, true);
  view.setUint32(8, ROWS, true);
  view.setUint32(12, COLS, true);
  order.forEach((src, i) => {
    out[MNIST_HEADER_BYTES + i] = labels[src]!;
    out.set(images[src]!, MNIST_HEADER_BYTES + count + i * SIZE);
  });
  return out;
}

if (import.meta.main) {
  const raw = packMnist();
  const gz = gzipSync(raw, { level: 9 });
  const file = join(import.meta.dirname, '..', 'public', 'data', 'mnist-10k.u8.gz');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, gz);
  console.log(`${file}: ${raw.length} bytes, ${gz.length} gzipped`);
}

/** Loads the packed MNIST digits under Node (node:fs + node:zlib). */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { isGzip, type MnistData, parseMnist } from './mnist.ts';

export const MNIST_FILE = new URL('../../public/data/mnist-10k.u8.gz', import.meta.url);

export function loadMnistNode(path: string | URL = MNIST_FILE): MnistData {
  const raw = new Uint8Array(readFileSync(path));
  return parseMnist(isGzip(raw) ? new Uint8Array(gunzipSync(raw)) : raw);
}

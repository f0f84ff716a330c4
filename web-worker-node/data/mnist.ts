/**
 * The packed MNIST digits (public/data/mnist-10k.u8.gz, written by scripts/pack-mnist.ts from the
 * `mnist` package's 10,000 real digits, shuffled once with a fixed seed so classes are mixed).
 *
 * File (after gunzip): 16-byte header — magic "PMN1", count, rows, cols (uint32 little-endian) —
 * then `count` labels (uint8), then count × rows × cols pixels (uint8, round(value × 255)).
 *
 * Split convention: the first 8,000 examples are the training set (what a task's batches and
 * segments are cut from; `trainSize` 8000 in mnistMlpTask), the last 2,000 are held out (the hidden
 * test split of DESIGN §3). The dataset module in shared/ cuts segments from these.
 */
import { DecodeError } from '../../shared/errors.ts';
import type { Dataset } from '../../shared/pouw/dataset.ts';
import type { Batch } from '../../shared/pouw/engine.ts';

export const MNIST_MAGIC = 'PMN1';
export const MNIST_HEADER_BYTES = 16;
export const MNIST_TRAIN_SIZE = 8000;
export const MNIST_HELDOUT_SIZE = 2000;

export interface MnistData {
  count: number;
  rows: number;
  cols: number;
  /** count × rows·cols features in [0, 1] (pixel / 255, float32), row-major. */
  x: Float32Array;
  labels: Uint8Array;
}

/** The header of a decompressed file, checked against the file's length. */
export interface MnistHeader {
  count: number;
  rows: number;
  cols: number;
}

/** Checks the magic, the dimensions and the exact length. Throws DecodeError. */
export function parseMnistHeader(bytes: Uint8Array): MnistHeader {
  if (bytes.length < MNIST_HEADER_BYTES)
    throw new DecodeError('DECODE_UNDERSIZED', `MNIST file of ${bytes.length} bytes has no header`);
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  if (magic !== MNIST_MAGIC)
    throw new DecodeError(
      'DECODE_MALFORMED',
      `MNIST magic ${JSON.stringify(magic)}, expected ${MNIST_MAGIC}`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(4, true);
  const rows = view.getUint32(8, true);
  const cols = view.getUint32(12, true);
  const expected = MNIST_HEADER_BYTES + count + count * rows * cols;
  if (rows === 0 || cols === 0 || !Number.isSafeInteger(expected))
    throw new DecodeError('DECODE_MALFORMED', `MNIST header ${count}×${rows}×${cols}`);
  if (bytes.length < expected)
    throw new DecodeError(
      'DECODE_UNDERSIZED',
      `MNIST file has ${bytes.length} bytes, header says ${expected}`,
    );
  if (bytes.length > expected)
    throw new DecodeError(
      'DECODE_OVERSIZED',
      `MNIST file has ${bytes.length} bytes, header says ${expected}`,
    );
  return { count, rows, cols };
}

function checkLabels(labels: Uint8Array): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! > 9) throw new DecodeError('DECODE_MALFORMED', `label ${labels[i]} at ${i}`);
  }
}

/** Parses the decompressed file. Throws DecodeError on a wrong magic, size or label. */
export function parseMnist(bytes: Uint8Array): MnistData {
  const { count, rows, cols } = parseMnistHeader(bytes);
  const pixels = count * rows * cols;
  const labels = bytes.slice(MNIST_HEADER_BYTES, MNIST_HEADER_BYTES + count);
  checkLabels(labels);
  const x = new Float32Array(pixels);
  const base = MNIST_HEADER_BYTES + count;
  for (let i = 0; i < pixels; i++) x[i] = bytes[base + i]! / 255;
  return { count, rows, cols, x, labels };
}

/**
 * The decompressed file as the protocol's Dataset (shared/pouw/dataset.ts): per example the
 * rows·cols pixel bytes, then the label byte. Byte for byte what `datasetFromImages(parseMnist(…))`
 * gives (pixel / 255 rounds back to the pixel), without the float copy.
 */
export function mnistExamples(bytes: Uint8Array): Dataset {
  const { count, rows, cols } = parseMnistHeader(bytes);
  const labels = bytes.subarray(MNIST_HEADER_BYTES, MNIST_HEADER_BYTES + count);
  checkLabels(labels);
  const featureBytes = rows * cols;
  const stride = featureBytes + 1;
  const examples = new Uint8Array(count * stride);
  const base = MNIST_HEADER_BYTES + count;
  for (let i = 0; i < count; i++) {
    examples.set(bytes.subarray(base + i * featureBytes, base + (i + 1) * featureBytes), i * stride);
    examples[i * stride + featureBytes] = labels[i]!;
  }
  return { examples, count, featureBytes };
}

/** Examples [from, from + count) as a Batch (copies, so it can be posted to a worker cheaply). */
export function mnistBatch(data: MnistData, from: number, count: number): Batch {
  if (from < 0 || count < 1 || from + count > data.count)
    throw new DecodeError('DECODE_MALFORMED', `examples ${from}..${from + count} of ${data.count}`);
  const size = data.rows * data.cols;
  return {
    x: data.x.slice(from * size, (from + count) * size),
    labels: data.labels.slice(from, from + count),
  };
}

/** The held-out examples (the last 2,000). */
export function mnistHeldOut(data: MnistData): Batch {
  return mnistBatch(data, data.count - MNIST_HELDOUT_SIZE, MNIST_HELDOUT_SIZE);
}

/** True when the bytes start with the gzip magic (1f 8b). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

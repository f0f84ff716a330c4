/**
 * Initial weights w0 from the task's seed, identical bytes on every platform: a SHA-256 counter
 * stream gives uint32s, each mapped to a Glorot-uniform float32 with IEEE-exact operations only
 * (integer → double is exact, one multiply-add in double, one rounding to float32; sqrt is
 * correctly rounded). No Math.log/sin/cos, whose last bits differ between engines. Biases start at 0.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes } from '../bytes.ts';
import type { ModelLayout } from './task.ts';

/** Deterministic uint32 stream: SHA-256(seed ‖ counter) blocks, 8 words each, little-endian. */
export class SeededStream {
  private counter = 0;
  private block = new Uint32Array(0);
  private pos = 0;
  constructor(private readonly seed: Uint8Array) {}
  nextUint32(): number {
    if (this.pos >= this.block.length) {
      const c = new Uint8Array(8);
      new DataView(c.buffer).setBigUint64(0, BigInt(this.counter++), true);
      const digest = sha256(concatBytes(this.seed, c));
      this.block = new Uint32Array(8);
      const view = new DataView(digest.buffer, digest.byteOffset, 32);
      for (let i = 0; i < 8; i++) this.block[i] = view.getUint32(4 * i, true);
      this.pos = 0;
    }
    return this.block[this.pos++]!;
  }
}

export function initialWeights(layout: ModelLayout, seed: Uint8Array): Float32Array {
  const w = new Float32Array(layout.parameterCount);
  const stream = new SeededStream(seed);
  for (const b of layout.blocks) {
    if (b.name !== 'kernel') continue;
    const limit = Math.sqrt(6 / (b.fanIn + b.fanOut));
    for (let i = 0; i < b.size; i++) {
      const u = stream.nextUint32() / 4294967296; // [0, 1), exact
      w[b.offset + i] = Math.fround((2 * u - 1) * limit);
    }
  }
  return w;
}

/**
 * Seeded randomness for the simulator: sfc32 (small, fast, passes PractRand for this use) seeded
 * from SHA-256 of a label, so `fork('network')` and `fork('node-3')` are independent streams and a
 * change in how one component draws does not shift every other component's draws.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../../../shared/bytes.ts';

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  readonly label: string;

  constructor(label: string) {
    this.label = label;
    const h = sha256(utf8(label));
    const v = new DataView(h.buffer, h.byteOffset, 32);
    this.#a = v.getUint32(0, true);
    this.#b = v.getUint32(4, true);
    this.#c = v.getUint32(8, true);
    this.#d = v.getUint32(12, true) | 1;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  fork(label: string): Rng {
    return new Rng(`${this.label}/${label}`);
  }

  uint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const x = this.uint32();
      out[i] = x & 0xff;
      if (i + 1 < n) out[i + 1] = (x >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (x >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = x >>> 24;
    }
    return out;
  }
}

/**
 * Mining with the nonces an iteration earns (DESIGN §4.4 step 7), and the CPU side of a miner's
 * iteration that must stay off the training critical path.
 *
 * `HeaderGrinder` hashes one template header for nonces nonce0 + 0 … nonce0 + a − 1 (a 32-byte
 * big-endian counter, as `nonceAt`) with `hashMsg` fixed, bit-exact with `blockHash`:
 *   - the SHA-256 state over the 64-byte blocks before the nonce (the tagged prefix and the first
 *     header fields) is computed once per job (midstate);
 *   - blocks after the nonce (taskId, hashMsg, hashMsgHist, padding) are constant within a job, so
 *     their message schedules are expanded once;
 *   - per nonce: one block with a fresh schedule, the constant blocks, and the second SHA-256 over
 *     the 32-byte digest (fixed padding words), compared with the target as eight big-endian words.
 * No allocation per nonce.
 *
 * `MiningService` is the CPU side of an iteration: a mirror of the lattice state n, the model hash
 * of step 2, sealing the IT_RES of step 6 (body, id, work id — the header's hashMsg — and, holding
 * the miner's key, the signature), the checks of received IT_RES, nonce0 of step 7 and grinding.
 * `LocalMiningService` runs it on the calling thread, grinding in chunks between yields;
 * `serveMiningPort` runs the same thing behind a MessagePort (a Web Worker or a Node worker thread)
 * and `connectMiningPort` is the miner's proxy for it, so that all of it runs on another core beside
 * the next training step and the training thread only trains (ADR 0008).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, equalBytes } from '../bytes.ts';
import { bitsToTarget } from '../chain/pow.ts';
import { BlockHeader } from '../chain/types.ts';
import { domainPrefix } from '../codec/domain.ts';
import { defaultEd25519, type Ed25519 } from '../crypto/ed25519.ts';
import { isPouwError, type Verdict, WorkError, type WorkErrorCode } from '../errors.ts';
import { type CheckedItRes, ItRes, ItResBody, ItResWork, workOf } from './itres.ts';
import { nonceBase } from './lattice.ts';
import { applyMap, assertMap, thresholdInto } from './residual.ts';

// ---------------------------------------------------------------------------------------------
// SHA-256 core (FIPS 180-4), on big-endian words held as int32.

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const IV = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

/** The message schedule W[0..63] from w[0..15], then w[i] = K[i] + W[i] for `compress`. */
function expand(w: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!;
    const y = w[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  for (let i = 0; i < 64; i++) w[i] = (w[i]! + K[i]!) | 0;
}

/**
 * state += rounds(state, kw), with kw[i] = K[i] + W[i] precomputed (`expand` adds K). Eight rounds
 * per loop turn with the working variables renamed instead of shifted (about 1.5× the plain loop).
 */
function compress(s: Int32Array, kw: Int32Array): void {
  let a = s[0]!;
  let b = s[1]!;
  let c = s[2]!;
  let d = s[3]!;
  let e = s[4]!;
  let f = s[5]!;
  let g = s[6]!;
  let h = s[7]!;
  let t = 0;
  for (let i = 0; i < 64; i += 8) {
    t =
      (h +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        ((e & f) ^ (~e & g)) +
        kw[i + 0]!) |
      0;
    d = (d + t) | 0;
    h =
      (t +
        (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
        ((a & b) ^ (a & c) ^ (b & c))) |
      0;
    t =
      (g +
        (((d >>> 6) | (d << 26)) ^ ((d >>> 11) | (d << 21)) ^ ((d >>> 25) | (d << 7))) +
        ((d & e) ^ (~d & f)) +
        kw[i + 1]!) |
      0;
    c = (c + t) | 0;
    g =
      (t +
        (((h >>> 2) | (h << 30)) ^ ((h >>> 13) | (h << 19)) ^ ((h >>> 22) | (h << 10))) +
        ((h & a) ^ (h & b) ^ (a & b))) |
      0;
    t =
      (f +
        (((c >>> 6) | (c << 26)) ^ ((c >>> 11) | (c << 21)) ^ ((c >>> 25) | (c << 7))) +
        ((c & d) ^ (~c & e)) +
        kw[i + 2]!) |
      0;
    b = (b + t) | 0;
    f =
      (t +
        (((g >>> 2) | (g << 30)) ^ ((g >>> 13) | (g << 19)) ^ ((g >>> 22) | (g << 10))) +
        ((g & h) ^ (g & a) ^ (h & a))) |
      0;
    t =
      (e +
        (((b >>> 6) | (b << 26)) ^ ((b >>> 11) | (b << 21)) ^ ((b >>> 25) | (b << 7))) +
        ((b & c) ^ (~b & d)) +
        kw[i + 3]!) |
      0;
    a = (a + t) | 0;
    e =
      (t +
        (((f >>> 2) | (f << 30)) ^ ((f >>> 13) | (f << 19)) ^ ((f >>> 22) | (f << 10))) +
        ((f & g) ^ (f & h) ^ (g & h))) |
      0;
    t =
      (d +
        (((a >>> 6) | (a << 26)) ^ ((a >>> 11) | (a << 21)) ^ ((a >>> 25) | (a << 7))) +
        ((a & b) ^ (~a & c)) +
        kw[i + 4]!) |
      0;
    h = (h + t) | 0;
    d =
      (t +
        (((e >>> 2) | (e << 30)) ^ ((e >>> 13) | (e << 19)) ^ ((e >>> 22) | (e << 10))) +
        ((e & f) ^ (e & g) ^ (f & g))) |
      0;
    t =
      (c +
        (((h >>> 6) | (h << 26)) ^ ((h >>> 11) | (h << 21)) ^ ((h >>> 25) | (h << 7))) +
        ((h & a) ^ (~h & b)) +
        kw[i + 5]!) |
      0;
    g = (g + t) | 0;
    c =
      (t +
        (((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10))) +
        ((d & e) ^ (d & f) ^ (e & f))) |
      0;
    t =
      (b +
        (((g >>> 6) | (g << 26)) ^ ((g >>> 11) | (g << 21)) ^ ((g >>> 25) | (g << 7))) +
        ((g & h) ^ (~g & a)) +
        kw[i + 6]!) |
      0;
    f = (f + t) | 0;
    b =
      (t +
        (((c >>> 2) | (c << 30)) ^ ((c >>> 13) | (c << 19)) ^ ((c >>> 22) | (c << 10))) +
        ((c & d) ^ (c & e) ^ (d & e))) |
      0;
    t =
      (a +
        (((f >>> 6) | (f << 26)) ^ ((f >>> 11) | (f << 21)) ^ ((f >>> 25) | (f << 7))) +
        ((f & g) ^ (~f & h)) +
        kw[i + 7]!) |
      0;
    e = (e + t) | 0;
    a =
      (t +
        (((b >>> 2) | (b << 30)) ^ ((b >>> 13) | (b << 19)) ^ ((b >>> 22) | (b << 10))) +
        ((b & c) ^ (b & d) ^ (c & d))) |
      0;
  }
  s[0] = (s[0]! + a) | 0;
  s[1] = (s[1]! + b) | 0;
  s[2] = (s[2]! + c) | 0;
  s[3] = (s[3]! + d) | 0;
  s[4] = (s[4]! + e) | 0;
  s[5] = (s[5]! + f) | 0;
  s[6] = (s[6]! + g) | 0;
  s[7] = (s[7]! + h) | 0;
}

function loadWords(bytes: Uint8Array, offset: number, w: Int32Array): void {
  for (let i = 0; i < 16; i++) {
    const o = offset + 4 * i;
    w[i] = (bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!;
  }
}

/** The message bytes of one SHA-256 (unpadded length `length`), padded to whole blocks. */
function padded(message: Uint8Array): Uint8Array {
  const blocks = Math.ceil((message.length + 9) / 64);
  const out = new Uint8Array(blocks * 64);
  out.set(message);
  out[message.length] = 0x80;
  const view = new DataView(out.buffer);
  view.setUint32(out.length - 4, (message.length * 8) >>> 0);
  view.setUint32(out.length - 8, Math.floor((message.length * 8) / 2 ** 32));
  return out;
}

/** Where the nonce and hashMsg sit in a header's SSZ bytes (derived from the codec, not hard-coded). */
export const headerLayout = (() => {
  const z = new Uint8Array(32);
  const probe: BlockHeader = {
    version: 0,
    height: 0n,
    prevHash: z,
    merkleRoot: z,
    stateRoot: z,
    time: 0n,
    bits: 0,
    nonce: new Uint8Array(32).fill(0xa5),
    taskId: z,
    hashMsg: new Uint8Array(32).fill(0x5a),
    hashMsgHist: z,
  };
  const bytes = BlockHeader.encode(probe);
  const find = (v: number) =>
    bytes.findIndex((b, i) => b === v && bytes.subarray(i, i + 32).every((x) => x === v));
  return { nonce: find(0xa5), hashMsg: find(0x5a), length: bytes.length };
})();

/** Target as eight big-endian words (uint32 values). */
function targetWords(bits: number): Uint32Array {
  const t = bitsToTarget(bits);
  const out = new Uint32Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((t >> BigInt(32 * (7 - i))) & 0xffffffffn);
  return out;
}

export interface GrindHit {
  /** Offset from nonce0: the nonce is nonce0 + offset. */
  offset: number;
  nonce: Uint8Array;
  /** The block hash (double SHA-256), which meets the header's target. */
  hash: Uint8Array;
}

/**
 * Grinds one template: hash(header with hashMsg and nonce = nonce0 + i) for a range of i. Identical
 * to `blockHash(chainId, {...header, hashMsg, nonce: nonceAt(nonce0, i)})`, 4 compressions per
 * nonce instead of 6 (for chain ids up to 32 bytes) and no allocation.
 */
export class HeaderGrinder {
  private readonly msg: Uint8Array;
  private readonly mid = new Int32Array(8);
  private readonly state = new Int32Array(8);
  private readonly w = new Int32Array(64);
  private readonly w2 = new Int32Array(64);
  /** First and one-past-last block touched by the nonce. */
  private readonly firstVar: number;
  private readonly endVar: number;
  /** Expanded schedules of the constant blocks after the nonce. */
  private readonly fixed: Int32Array[] = [];
  private readonly nonceAt: number;
  private readonly target: Uint32Array;
  /** The counter currently written into msg (offset from nonce0). */
  private current = 0;
  /** Nonces hashed so far by this grinder. */
  tried = 0;

  constructor(chainId: string, header: BlockHeader, hashMsg: Uint8Array, nonce0: Uint8Array) {
    if (nonce0.length !== 32 || hashMsg.length !== 32)
      throw new WorkError('ITRES_MALFORMED', 'nonce0 and hashMsg must be 32 bytes');
    const prefix = domainPrefix('pouw/block/v1', chainId);
    const body = BlockHeader.encode({ ...header, nonce: nonce0, hashMsg });
    const message = new Uint8Array(prefix.length + body.length);
    message.set(prefix);
    message.set(body, prefix.length);
    this.msg = padded(message);
    this.nonceAt = prefix.length + headerLayout.nonce;
    this.firstVar = Math.floor(this.nonceAt / 64);
    this.endVar = Math.floor((this.nonceAt + 31) / 64) + 1;
    this.target = targetWords(header.bits);
    this.mid.set(IV);
    for (let blk = 0; blk < this.firstVar; blk++) {
      loadWords(this.msg, 64 * blk, this.w);
      expand(this.w);
      compress(this.mid, this.w);
    }
    for (let blk = this.endVar; blk < this.msg.length / 64; blk++) {
      const w = new Int32Array(64);
      loadWords(this.msg, 64 * blk, w);
      expand(w);
      this.fixed.push(w);
    }
  }

  /** Writes nonce0 + offset into the message (byte-wise big-endian add from the current value). */
  private seek(offset: number): void {
    let delta = offset - this.current;
    if (delta === 0) return;
    if (delta < 0) {
      // Only used when a caller rewinds: rewrite from nonce0 (offset 0 = the bytes minus current).
      this.subtract(this.current);
      this.current = 0;
      delta = offset;
    }
    let carry = delta;
    for (let i = this.nonceAt + 31; i >= this.nonceAt && carry > 0; i--) {
      const s = this.msg[i]! + (carry % 256);
      this.msg[i] = s & 0xff;
      carry = Math.floor(carry / 256) + (s >> 8);
    }
    this.current = offset;
  }

  private subtract(value: number): void {
    let borrow = value;
    for (let i = this.nonceAt + 31; i >= this.nonceAt && borrow > 0; i--) {
      let d = this.msg[i]! - (borrow % 256);
      borrow = Math.floor(borrow / 256);
      if (d < 0) {
        d += 256;
        borrow += 1;
      }
      this.msg[i] = d;
    }
  }

  /** The nonce nonce0 + offset, as bytes. */
  nonceBytes(offset: number): Uint8Array {
    this.seek(offset);
    return this.msg.slice(this.nonceAt, this.nonceAt + 32);
  }

  /** Hashes nonces nonce0 + from … nonce0 + from + count − 1; the first that meets the target, if any. */
  grind(from: number, count: number): GrindHit | undefined {
    const { msg, mid, state, w, w2, fixed, target } = this;
    this.seek(from);
    for (let k = 0; k < count; k++) {
      if (k > 0) this.increment();
      state.set(mid);
      for (let blk = this.firstVar; blk < this.endVar; blk++) {
        loadWords(msg, 64 * blk, w);
        expand(w);
        compress(state, w);
      }
      for (let f = 0; f < fixed.length; f++) compress(state, fixed[f]!);
      // Second hash: the 32-byte digest, then fixed padding words (rewritten: expand adds K in place).
      for (let i = 0; i < 8; i++) w2[i] = state[i]!;
      w2[8] = 0x80000000 | 0;
      for (let i = 9; i < 15; i++) w2[i] = 0;
      w2[15] = 256;
      expand(w2);
      state.set(IV);
      compress(state, w2);
      this.tried++;
      if (meets(state, target)) {
        const hash = new Uint8Array(32);
        for (let i = 0; i < 8; i++) {
          const v = state[i]!;
          hash[4 * i] = v >>> 24;
          hash[4 * i + 1] = (v >>> 16) & 0xff;
          hash[4 * i + 2] = (v >>> 8) & 0xff;
          hash[4 * i + 3] = v & 0xff;
        }
        return { offset: this.current, nonce: msg.slice(this.nonceAt, this.nonceAt + 32), hash };
      }
    }
    return undefined;
  }

  /** nonce += 1 (big-endian, wrapping mod 2^256). */
  private increment(): void {
    const msg = this.msg;
    for (let i = this.nonceAt + 31; i >= this.nonceAt; i--) {
      const v = (msg[i]! + 1) & 0xff;
      msg[i] = v;
      if (v !== 0) break;
    }
    this.current++;
  }
}

/** hash ≤ target, both as eight big-endian words. */
function meets(h: Int32Array, t: Uint32Array): boolean {
  for (let i = 0; i < 8; i++) {
    const a = h[i]! >>> 0;
    const b = t[i]!;
    if (a !== b) return a < b;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The large hashes (identical to lattice.ts and itres.ts), with a pluggable digest.

/**
 * SHA-256 of the concatenated parts. It must read the parts before it returns (they may change
 * afterwards); it may resolve later (WebCrypto). Node can pass node:crypto, browsers WebCrypto.
 */
export type Digest = (parts: readonly Uint8Array[]) => Uint8Array | Promise<Uint8Array>;

/** The pure-JS default (noble). */
export const nobleDigest: Digest = (parts) => {
  const h = sha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
};

/** WebCrypto's SHA-256 (browsers, workers, Node): copies the parts synchronously, hashes natively. */
export function webCryptoDigest(subtle: SubtleCrypto): Digest {
  return (parts) => {
    let length = 0;
    for (const p of parts) length += p.length;
    const all = new Uint8Array(length);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return subtle.digest('SHA-256', all).then((d) => new Uint8Array(d));
  };
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function leBytes(a: Int32Array | Uint32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const v = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) v.setUint32(4 * i, a[i]! >>> 0, true);
  return out;
}

function leBytesF32(a: Float32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const v = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) v.setFloat32(4 * i, a[i]!, true);
  return out;
}

/** lattice.ts `modelHash`, through `digest`. */
export function modelHashWith(
  digest: Digest,
  chainId: string,
  taskId: Uint8Array,
  n: Int32Array,
): Uint8Array | Promise<Uint8Array> {
  return digest([domainPrefix('pouw/model/v1', chainId), taskId, leBytes(n)]);
}

/** lattice.ts `residualHash`, through `digest`. */
export function residualHashWith(
  digest: Digest,
  chainId: string,
  taskId: Uint8Array,
  r: Float32Array,
): Uint8Array | Promise<Uint8Array> {
  return digest([domainPrefix('pouw/model/v1', chainId), taskId, Uint8Array.of(0x72), leBytesF32(r)]);
}

/**
 * residual.ts `residualStep`, bit for bit, without per-entry allocation: r += g (each sum rounded
 * to float32), threshold at τ (τ/2 when flushing), r −= sign·τ, then r = 0 after a flush. Entries
 * go into `scratch` (|M| words, reused); returns a copy of the used part.
 */
export function residualStepFast(
  r: Float32Array,
  g: Float32Array,
  tau: number,
  flush: boolean,
  scratch: Uint32Array,
): Uint32Array {
  const k = thresholdInto(r, 0, g, tau, flush ? tau / 2 : tau, scratch, 0);
  if (flush) r.fill(0);
  return scratch.slice(0, k);
}

/** itres.ts `workId` (the tagged hash of the encoded work fields), through `digest`. */
export function workIdWith(
  digest: Digest,
  chainId: string,
  body: ItResBody,
): Uint8Array | Promise<Uint8Array> {
  return digest([domainPrefix('pouw/work/v1', chainId), ItResWork.encode(workOf(body))]);
}

/** itres.ts `itResId` (the tagged hash of the encoded body), through `digest`. */
export function itResIdWith(
  digest: Digest,
  chainId: string,
  body: ItResBody,
): Uint8Array | Promise<Uint8Array> {
  return digest([domainPrefix('pouw/itres/v1', chainId), ItResBody.encode(body)]);
}

// ---------------------------------------------------------------------------------------------
// The mining service.

/** Uint32Array → number[] (the SSZ value type); a plain loop is ~10× faster than Array.from here. */
export function toNumbers(a: Uint32Array): number[] {
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]!;
  return out;
}

/** The IT_RES fields the miner fills in; the service adds modelHash (from its mirror) and the map. */
export type ItResFields = Omit<ItResBody, 'modelHash' | 'map'>;

export interface SealRequest {
  fields: ItResFields;
  /** This iteration's own map (encoded, ascending). */
  map: Uint32Array;
  /** The template committed k iterations earlier, if this iteration mines. */
  template?: BlockHeader;
  /** Nonces this iteration earned (nonceAllowance). */
  count: number;
}

export interface Sealed {
  body: ItResBody;
  /** The IT_RES id (what is signed and what peers list). */
  id: Uint8Array;
  /** The work id (itres.ts `workId`): the hashMsg of a block this iteration finds. */
  work: Uint8Array;
  /** The signature over `id`, when the service holds the miner's key (else the miner signs). */
  signature?: Uint8Array;
}

export interface SealedJob {
  sealed: Promise<Sealed>;
  /** The grinding of the iteration's nonces (nothing tried without a template). */
  mined: Promise<MiningOutcome>;
}

export interface MiningOutcome {
  iteration: number;
  /** Nonces hashed. */
  tried: number;
  nonce0?: Uint8Array;
  hit?: GrindHit;
  /** The job waited too long behind others and was dropped (see `maxBacklog`). */
  dropped?: boolean;
}

export interface MiningStats {
  tried: number;
  hits: number;
  jobs: number;
  dropped: number;
  /** Jobs submitted and not yet finished. */
  backlog: number;
}

/**
 * The CPU side of an iteration, off the device and, where it is remote (a worker), off the
 * training thread: the mirror of n, the hash over it, the IT_RES's ids and signature, the checks
 * of received IT_RES, nonce0 and grinding. Calls are applied in order: `modelHash()` hashes n as of
 * the calls before it; `seal` hashes the mirror at once, then applies the iteration's map; nonce0
 * follows from the work id, and grinding later.
 */
export interface MiningService {
  /** Replaces the mirror of n (start, resync). */
  reset(n: Int32Array): void;
  /** n += map (peer updates). */
  apply(map: Uint32Array): void;
  /** modelHash of n now (lattice.ts). */
  modelHash(): Promise<Uint8Array>;
  /**
   * A received IT_RES: its map well formed for |M| (MAP_* errors) and its signature valid for its
   * miner (ITRES_BAD_SIGNATURE); the other rules (task, membership, duplicates) are the caller's.
   */
  check(msg: ItRes): Promise<CheckedItRes>;
  /**
   * Seals an iteration: body = fields + modelHash(mirror) + map, its id, work id and (with the key)
   * signature; then n += map, and nonce0 = nonceBase(work id) and grinding, if there is a template.
   */
  seal(req: SealRequest): SealedJob;
  /** Drops queued jobs whose template is not on `tip` (after a tip change). */
  dropStale(tip: Uint8Array): void;
  stats(): Promise<MiningStats>;
  close(): void;
}

export interface MiningServiceOptions {
  chainId: string;
  taskId: Uint8Array;
  parameterCount: number;
  /** SHA-256 for the hashes over n and the IT_RES ids (default noble). */
  digest?: Digest;
  /** Ed25519 for the checks of received IT_RES and for signing (default: `defaultEd25519()`). */
  ed?: Ed25519 | Promise<Ed25519>;
  /**
   * The miner's Ed25519 seed: with it the service signs what it seals (a worker then signs off the
   * training thread); without it `Sealed.signature` is left to the miner.
   */
  secretKey?: Uint8Array;
  /** Nonces per slice between yields (default 512, ≈ 0.5 ms). */
  chunk?: number;
  /**
   * Lets other work run between slices: default a resolved promise (microtask). A worker host passes
   * a macrotask yield (setImmediate, MessageChannel) so requests overtake grinding.
   */
  yieldToEvents?: () => Promise<void>;
  /** Jobs allowed to wait behind the one grinding; older waiting jobs are dropped (default 16). */
  maxBacklog?: number;
}

interface QueuedJob {
  iteration: number;
  template: BlockHeader;
  count: number;
  /** The sealed IT_RES: its work id is the header's hashMsg and gives nonce0. */
  sealed: Promise<Sealed>;
  resolve: (o: MiningOutcome) => void;
  reject: (e: unknown) => void;
}

export class LocalMiningService implements MiningService {
  private n: Int32Array;
  private readonly digest: Digest;
  private edImpl: Promise<Ed25519> | undefined;
  private readonly chunk: number;
  private readonly yieldToEvents: () => Promise<void>;
  private readonly maxBacklog: number;
  private readonly queue: QueuedJob[] = [];
  private running = false;
  private closed = false;
  private readonly counters = { tried: 0, hits: 0, jobs: 0, dropped: 0 };

  constructor(private readonly opts: MiningServiceOptions) {
    this.n = new Int32Array(opts.parameterCount);
    this.digest = opts.digest ?? nobleDigest;
    this.chunk = opts.chunk ?? 512;
    this.yieldToEvents = opts.yieldToEvents ?? (() => Promise.resolve());
    this.maxBacklog = opts.maxBacklog ?? 16;
  }

  private get ed(): Promise<Ed25519> {
    this.edImpl ??= Promise.resolve(this.opts.ed ?? defaultEd25519());
    return this.edImpl;
  }

  reset(n: Int32Array): void {
    if (n.length !== this.opts.parameterCount)
      throw new WorkError(
        'VERIFY_HISTORY',
        `n has ${n.length} entries, expected ${this.opts.parameterCount}`,
      );
    this.n = n.slice();
  }

  apply(map: Uint32Array): void {
    applyMap(this.n, map);
  }

  modelHash(): Promise<Uint8Array> {
    return Promise.resolve(modelHashWith(this.digest, this.opts.chainId, this.opts.taskId, this.n));
  }

  /** The mirror (a copy). */
  mirror(): Int32Array {
    return this.n.slice();
  }

  async check(msg: ItRes): Promise<CheckedItRes> {
    const map = Uint32Array.from(msg.body.map);
    assertMap(map, this.opts.parameterCount);
    const id = await itResIdWith(this.digest, this.opts.chainId, msg.body);
    const ed = await this.ed;
    if (!(await ed.verify(msg.body.miner, id, msg.signature)))
      throw new WorkError('ITRES_BAD_SIGNATURE', 'IT_RES signature does not verify for its miner');
    return { msg, id, idHex: bytesToHex(id), map };
  }

  seal(req: SealRequest): SealedJob {
    const { chainId, taskId } = this.opts;
    const iteration = req.fields.iteration;
    // The digest reads the mirror before returning: the model hash of n before this map.
    const hashed = modelHashWith(this.digest, chainId, taskId, this.n);
    applyMap(this.n, req.map);
    this.counters.jobs++;
    const sealed = this.sealBody(req, hashed);
    if (req.template === undefined || req.count <= 0)
      return { sealed, mined: Promise.resolve({ iteration, tried: 0 }) };
    const mined = new Promise<MiningOutcome>((resolve, reject) =>
      this.queue.push({ iteration, template: req.template!, count: req.count, sealed, resolve, reject }),
    );
    // Bounded backlog: drop the oldest waiting job (the one at the head may be grinding).
    while (this.queue.length > this.maxBacklog + 1) {
      const old = this.queue.splice(this.running ? 1 : 0, 1)[0]!;
      this.counters.dropped++;
      old.resolve({ iteration: old.iteration, tried: 0, dropped: true });
    }
    if (!this.running) void this.pump();
    return { sealed, mined };
  }

  private async sealBody(req: SealRequest, hashed: Uint8Array | Promise<Uint8Array>): Promise<Sealed> {
    const { chainId } = this.opts;
    const body: ItResBody = { ...req.fields, modelHash: await hashed, map: toNumbers(req.map) };
    const [id, work] = await Promise.all([
      itResIdWith(this.digest, chainId, body),
      workIdWith(this.digest, chainId, body),
    ]);
    if (this.opts.secretKey === undefined) return { body, id, work };
    const ed = await this.ed;
    return { body, id, work, signature: await ed.sign(this.opts.secretKey, id) };
  }

  dropStale(tip: Uint8Array): void {
    for (let i = this.queue.length - 1; i >= (this.running ? 1 : 0); i--) {
      const q = this.queue[i]!;
      if (!equalBytes(q.template.prevHash, tip)) {
        this.queue.splice(i, 1);
        this.counters.dropped++;
        q.resolve({ iteration: q.iteration, tried: 0, dropped: true });
      }
    }
  }

  stats(): Promise<MiningStats> {
    return Promise.resolve({ ...this.counters, backlog: this.queue.length });
  }

  close(): void {
    this.closed = true;
    for (const q of this.queue.splice(0)) q.resolve({ iteration: q.iteration, tried: 0, dropped: true });
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const q = this.queue[0]!;
        try {
          q.resolve(await this.grindJob(q));
        } catch (e) {
          q.reject(e);
        }
        this.queue.shift();
      }
    } finally {
      this.running = false;
    }
  }

  private async grindJob(q: QueuedJob): Promise<MiningOutcome> {
    const { work } = await q.sealed;
    const nonce0 = nonceBase(this.opts.chainId, work);
    const grinder = new HeaderGrinder(this.opts.chainId, q.template, work, nonce0);
    let hit: GrindHit | undefined;
    for (let from = 0; from < q.count && hit === undefined; from += this.chunk) {
      if (from > 0) {
        await this.yieldToEvents();
        if (this.closed) break;
      }
      hit = grinder.grind(from, Math.min(this.chunk, q.count - from));
    }
    this.counters.tried += grinder.tried;
    if (hit !== undefined) this.counters.hits++;
    return { iteration: q.iteration, tried: grinder.tried, nonce0, ...(hit === undefined ? {} : { hit }) };
  }
}

// ---------------------------------------------------------------------------------------------
// The same service behind a MessagePort (Web Worker, Node worker thread, MessageChannel).

/** The part of a MessagePort / Worker / worker global scope the service uses. */
export interface PortLike {
  postMessage(message: unknown): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

type Request =
  | { t: 'init'; chainId: string; taskId: Uint8Array; parameterCount: number; secretKey?: Uint8Array }
  | { t: 'reset'; n: Int32Array }
  | { t: 'apply'; map: Uint32Array }
  | { t: 'hash'; id: number }
  | { t: 'check'; id: number; msg: Uint8Array }
  | { t: 'seal'; sealedId: number; minedId: number; req: SealRequest }
  | { t: 'dropStale'; tip: Uint8Array }
  | { t: 'stats'; id: number }
  | { t: 'close' };

/** What a seal reply carries: the body is the request's fields and map plus this modelHash. */
type SealedReply = Omit<Sealed, 'body'> & { modelHash: Uint8Array };

interface ErrorInfo {
  name: string;
  code?: string;
  verdict?: Verdict;
  detail?: Record<string, unknown>;
  message: string;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: ErrorInfo };

function errorInfo(e: unknown): ErrorInfo {
  if (isPouwError(e))
    return { name: e.name, code: e.code, verdict: e.verdict, detail: e.detail, message: e.message };
  const err = e as { name?: string; code?: string; message?: string };
  return {
    name: err.name ?? 'Error',
    ...(err.code === undefined ? {} : { code: err.code }),
    message: err.message ?? String(e),
  };
}

/** The error a reply carries, as the typed error it was where that is a WorkError. */
function fromErrorInfo(info: ErrorInfo): Error {
  if (info.name === 'WorkError' && info.code !== undefined)
    return new WorkError(info.code as WorkErrorCode, info.message, info.verdict, info.detail);
  return Object.assign(new Error(info.message), { name: info.name, code: info.code });
}

/**
 * Serves a `LocalMiningService` on `port` (run inside the worker). `digest`, `ed` and
 * `yieldToEvents` come from the host: in a worker the yield must be a macrotask so requests
 * (checks, seals) overtake grinding. The miner's key, if it is to sign here, comes with `init`.
 */
export function serveMiningPort(
  port: PortLike,
  host: Pick<MiningServiceOptions, 'digest' | 'ed' | 'chunk' | 'yieldToEvents' | 'maxBacklog'> = {},
): void {
  let service: LocalMiningService | undefined;
  const reply = (id: number, p: Promise<unknown>) => {
    p.then(
      (value) => port.postMessage({ id, ok: true, value } satisfies Reply),
      (e: unknown) => port.postMessage({ id, ok: false, error: errorInfo(e) } satisfies Reply),
    );
  };
  const need = () => {
    if (service === undefined)
      throw new WorkError('BACKEND_UNAVAILABLE', 'mining service not initialized', 'IGNORE');
    return service;
  };
  port.onmessage = (ev) => {
    const m = ev.data as Request;
    switch (m.t) {
      case 'init':
        service?.close();
        service = new LocalMiningService({
          ...host,
          chainId: m.chainId,
          taskId: m.taskId,
          parameterCount: m.parameterCount,
          ...(m.secretKey === undefined ? {} : { secretKey: m.secretKey }),
        });
        break;
      case 'reset':
        need().reset(m.n);
        break;
      case 'apply':
        need().apply(m.map);
        break;
      case 'hash':
        reply(m.id, need().modelHash());
        break;
      case 'check': {
        // The message comes encoded and only its id goes back: structured-cloning the map as a
        // JS array costs the training thread ~0.1 µs per entry each way.
        const svc = need();
        reply(
          m.id,
          Promise.resolve()
            .then(() => svc.check(ItRes.decode(m.msg)))
            .then((c) => c.id),
        );
        break;
      }
      case 'seal': {
        // The caller rebuilds the body from its request: only the new fields go back.
        const job = need().seal(m.req);
        reply(
          m.sealedId,
          job.sealed.then(
            (x): SealedReply => ({
              modelHash: x.body.modelHash,
              id: x.id,
              work: x.work,
              ...(x.signature === undefined ? {} : { signature: x.signature }),
            }),
          ),
        );
        reply(m.minedId, job.mined);
        break;
      }
      case 'dropStale':
        need().dropStale(m.tip);
        break;
      case 'stats':
        reply(m.id, need().stats());
        break;
      case 'close':
        service?.close();
        service = undefined;
        break;
    }
  };
}

/**
 * The miner's side of `serveMiningPort`. With `secretKey` the worker signs the IT_RES it seals, so
 * hashing, signing, peer checks and grinding all stay off the training thread.
 */
export function connectMiningPort(
  port: PortLike,
  opts: Pick<MiningServiceOptions, 'chainId' | 'taskId' | 'parameterCount' | 'secretKey'>,
): MiningService {
  let next = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  port.onmessage = (ev) => {
    const r = ev.data as Reply;
    const p = pending.get(r.id);
    if (p === undefined) return;
    pending.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(fromErrorInfo(r.error));
  };
  const expect = <T>(id: number): Promise<T> =>
    new Promise<T>((resolve, reject) =>
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject }),
    );
  const call = <T>(make: (id: number) => Request): Promise<T> => {
    const id = next++;
    const p = expect<T>(id);
    port.postMessage(make(id));
    return p;
  };
  port.postMessage({
    t: 'init',
    chainId: opts.chainId,
    taskId: opts.taskId,
    parameterCount: opts.parameterCount,
    ...(opts.secretKey === undefined ? {} : { secretKey: opts.secretKey }),
  } satisfies Request);
  return {
    reset: (n) => port.postMessage({ t: 'reset', n } satisfies Request),
    apply: (map) => port.postMessage({ t: 'apply', map } satisfies Request),
    modelHash: () => call<Uint8Array>((id) => ({ t: 'hash', id })),
    check: async (msg) => {
      const bytes = ItRes.encode(msg);
      const id = await call<Uint8Array>((i) => ({ t: 'check', id: i, msg: bytes }));
      return { msg, id, idHex: bytesToHex(id), map: Uint32Array.from(msg.body.map) };
    },
    seal: (req) => {
      const sealedId = next++;
      const minedId = next++;
      const sealed = expect<SealedReply>(sealedId).then(
        ({ modelHash, ...rest }): Sealed => ({
          body: { ...req.fields, modelHash, map: toNumbers(req.map) },
          ...rest,
        }),
      );
      const job = { sealed, mined: expect<MiningOutcome>(minedId) };
      port.postMessage({ t: 'seal', sealedId, minedId, req } satisfies Request);
      return job;
    },
    dropStale: (tip) => port.postMessage({ t: 'dropStale', tip } satisfies Request),
    stats: () => call<MiningStats>((id) => ({ t: 'stats', id })),
    close: () => {
      port.postMessage({ t: 'close' } satisfies Request);
      for (const p of pending.values())
        p.reject(new WorkError('BACKEND_UNAVAILABLE', 'mining service closed', 'IGNORE'));
      pending.clear();
    },
  };
}

/**
 * Hashes over the lattice state n: the model hash every IT_RES carries (DESIGN §4.4 step 2; n is
 * hashed as little-endian int32s, bit-exact on every backend because it is integers, never floats),
 * and the nonce base and range an iteration earns (step 7).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { domainPrefix } from '../codec/domain.ts';

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function leBytes(a: Int32Array | Uint32Array | Float32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  // Big-endian host: write each 32-bit word's bits (not its numeric value) little-endian.
  const words = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const out = new Uint8Array(a.byteLength);
  const v = new DataView(out.buffer);
  for (let i = 0; i < words.length; i++) v.setUint32(4 * i, words[i]!, true);
  return out;
}

/** modelHash = H(tag ‖ taskId ‖ n). */
export function modelHash(chainId: string, taskId: Uint8Array, n: Int32Array): Uint8Array {
  return sha256
    .create()
    .update(domainPrefix('pouw/model/v1', chainId))
    .update(taskId)
    .update(leBytes(n))
    .digest();
}

/** Commitment to a residual vector (float32 bytes); only the miner itself can reproduce it exactly. */
export function residualHash(chainId: string, taskId: Uint8Array, r: Float32Array): Uint8Array {
  return sha256
    .create()
    .update(domainPrefix('pouw/model/v1', chainId))
    .update(taskId)
    .update(new Uint8Array([0x72]))
    .update(leBytes(r))
    .digest();
}

/**
 * nonce0 = H(H(tag ‖ workId)): the first nonce an iteration may try, from its work id (itres.ts
 * `workId`: taskId, miner, epoch, iteration, batchId, modelHash, map). The work id binds n_after
 * as hashing it would (n_after = n_before + map, and modelHash commits to n_before), is fixed only
 * once the gradient step has produced the map, and costs O(1) here instead of a pass over |M|
 * (ADR 0009).
 */
export function nonceBase(chainId: string, workId: Uint8Array): Uint8Array {
  return sha256(sha256.create().update(domainPrefix('pouw/nonce/v1', chainId)).update(workId).digest());
}

/** Nonces an iteration earns: a = ⌊ω_B·β/10^6⌋ + ⌊ω_M·|M|/10^6⌋, β = batch bytes, |M| = weights. */
export function nonceAllowance(
  omegaBPpm: number,
  batchBytes: number,
  omegaMPpm: number,
  parameterCount: number,
): number {
  return Math.floor((omegaBPpm * batchBytes) / 1e6) + Math.floor((omegaMPpm * parameterCount) / 1e6);
}

/** nonce0 + i as a 32-byte big-endian integer (wrapping mod 2^256). */
export function nonceAt(nonce0: Uint8Array, i: number): Uint8Array {
  const out = nonce0.slice();
  let carry = i;
  for (let b = 31; b >= 0 && carry > 0; b--) {
    const s = out[b]! + (carry % 256);
    out[b] = s & 0xff;
    carry = Math.floor(carry / 256) + (s >> 8);
  }
  return out;
}

/** Offset of `nonce` from `nonce0` if it is within [0, a), else -1. */
export function nonceOffset(nonce0: Uint8Array, nonce: Uint8Array, a: number): number {
  let diff = 0n;
  let borrow = 0;
  const out = new Uint8Array(32);
  for (let b = 31; b >= 0; b--) {
    let d = nonce[b]! - nonce0[b]! - borrow;
    borrow = d < 0 ? 1 : 0;
    if (d < 0) d += 256;
    out[b] = d;
  }
  for (const x of out) diff = (diff << 8n) | BigInt(x);
  return diff < BigInt(a) ? Number(diff) : -1;
}

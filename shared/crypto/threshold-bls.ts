/**
 * Threshold BLS over the `bls.ts` ciphersuite (keys in G1, signatures in G2).
 *
 * A group secret s is Shamir-shared with a polynomial f of degree t−1 over Fr, f(0) = s; party i
 * (1 ≤ i ≤ n) holds x_i = f(i) and everyone knows the public shares X_i = g1^{x_i} and the group
 * key g1^s. A partial signature is an ordinary BLS signature with x_i: σ_i = H(m)^{x_i}. Any t
 * partials interpolate at 0 in G2 to σ = Σ λ_i σ_i = H(m)^s, which plain `bls.verify(groupKey, m, σ)`
 * accepts; since BLS signatures are unique, every t-subset yields the same bytes.
 *
 * Shares come from the DKG (`dkg.ts`) in production; `dealShares` is a trusted dealer for tests and
 * devnets. Partial checks use one randomized batch check (two pairings for any number of partials
 * on one message) and fall back to one check per partial only to name the bad ones.
 */

import { isBytes } from '../bytes.ts';
import { CryptoError } from '../errors.ts';
import {
  assertValidPublicKeyPoint,
  decodePublicKey,
  decodeSignature,
  defaultRandomBytes,
  encodePublicKey,
  encodeSignature,
  Fr,
  G1,
  type G1Point,
  type G2Point,
  hashToG2,
  msmG1,
  msmG2,
  type PublicKeyInput,
  type RandomBytes,
  randomScalar,
  scalarFromBytes,
  scalarFromBytesModOrder,
  scalarToBytes,
  scalarToSecretKey,
  secretKeyToScalar,
  signPoint,
  verifyPoints,
} from './bls.ts';

/** Share indices travel as uint16 on the wire. */
export const MAX_PARTIES = 65535;

/** Party `index`'s secret share x_i = f(i), as a 32-byte big-endian secret key. */
export interface KeyShare {
  index: number;
  secretKey: Uint8Array;
}

/** σ_i = H(m)^{x_i}, 96 bytes compressed. */
export interface PartialSignature {
  index: number;
  signature: Uint8Array;
}

export interface DealtKeys {
  n: number;
  t: number;
  /** g1^{f(0)}, 48 bytes. */
  groupPublicKey: Uint8Array;
  /** publicShares[i − 1] = g1^{f(i)}, 48 bytes each. */
  publicShares: Uint8Array[];
  /** shares[i − 1] is party i's share. */
  shares: KeyShare[];
}

export interface CombineOptions {
  /** Number of parties; indices above it are rejected. Defaults to publicShares.length. */
  n?: number;
  /** publicShares[i − 1] = party i's public share. When given, every partial is checked first. */
  publicShares?: readonly PublicKeyInput[];
  /** The signed message; required with publicShares. */
  message?: Uint8Array;
  /** Randomness for the batch check (defaults to globalThis.crypto). */
  randomBytes?: RandomBytes;
}

export interface RobustCombineOptions {
  publicShares: readonly PublicKeyInput[];
  message: Uint8Array;
  randomBytes?: RandomBytes;
}

export interface RobustCombineResult {
  signature: Uint8Array;
  /** The t indices whose partials were interpolated, ascending. */
  used: number[];
  /** Indices of partials that were rejected (bad index, undecodable or failing the check), ascending. */
  bad: number[];
}

/** 1 ≤ t ≤ n ≤ MAX_PARTIES, integers. */
export function assertThresholdParameters(n: number, t: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_PARTIES) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', `n must be an integer in [1, ${MAX_PARTIES}]`, { n });
  }
  if (!Number.isSafeInteger(t) || t < 1 || t > n) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 't must be an integer in [1, n]', { n, t });
  }
}

/** f(x) mod r by Horner's rule; coefficients[k] is the coefficient of x^k. */
export function evaluatePolynomial(coefficients: readonly bigint[], x: bigint): bigint {
  let acc = 0n;
  for (let k = coefficients.length - 1; k >= 0; k--) acc = Fr.add(Fr.mul(acc, x), coefficients[k]!);
  return acc;
}

/** Σ_k C_k · x^k in G1 by Horner's rule (public points, small public x). */
export function evaluateCommitments(commitments: readonly G1Point[], x: bigint): G1Point {
  let acc = G1.ZERO;
  for (let k = commitments.length - 1; k >= 0; k--) {
    acc = acc.is0() ? acc : acc.multiplyUnsafe(x);
    acc = acc.add(commitments[k]!);
  }
  return acc;
}

/**
 * Lagrange coefficients at 0 for distinct nonzero indices: λ_i = Π_{j≠i} j / (j − i) mod r.
 * Indices must already be validated (distinct, 1..MAX_PARTIES).
 */
export function lagrangeCoefficientsAtZero(indices: readonly number[]): bigint[] {
  const xs = indices.map((i) => BigInt(i));
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (let a = 0; a < xs.length; a++) {
    let num = 1n;
    let den = 1n;
    for (let b = 0; b < xs.length; b++) {
      if (a === b) continue;
      num = Fr.mul(num, xs[b]!);
      den = Fr.mul(den, Fr.sub(xs[b]!, xs[a]!));
    }
    nums.push(num);
    dens.push(den);
  }
  const inv = Fr.invertBatch(dens);
  return nums.map((num, k) => Fr.mul(num, inv[k]!));
}

function assertIndex(index: unknown, n: number | undefined): asserts index is number {
  const max = n ?? MAX_PARTIES;
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 1 || index > max) {
    throw new CryptoError('CRYPTO_BAD_INDEX', `share index must be an integer in [1, ${max}]`, { index });
  }
}

/**
 * Trusted-dealer Shamir split (tests and devnets only: the dealer learns the group secret).
 * `secretKey` fixes f(0); otherwise it is random.
 */
export function dealShares(
  n: number,
  t: number,
  options: { secretKey?: Uint8Array; randomBytes?: RandomBytes } = {},
): DealtKeys {
  assertThresholdParameters(n, t);
  const randomBytes = options.randomBytes ?? defaultRandomBytes;
  const coefficients: bigint[] = [
    options.secretKey === undefined ? randomScalar(randomBytes) : secretKeyToScalar(options.secretKey),
  ];
  for (let k = 1; k < t; k++) coefficients.push(scalarFromBytesModOrder(randomBytes(48)));
  const shares: KeyShare[] = [];
  const publicShares: Uint8Array[] = [];
  for (let i = 1; i <= n; i++) {
    const x = evaluatePolynomial(coefficients, BigInt(i));
    // A zero share has probability ~n/r; refuse it rather than hand out an invalid key.
    if (x === 0n) throw new CryptoError('CRYPTO_BAD_PARAMETER', 'degenerate share; deal again', { index: i });
    shares.push({ index: i, secretKey: scalarToSecretKey(x) });
    publicShares.push(encodePublicKey(G1.BASE.multiply(x)));
  }
  return {
    n,
    t,
    groupPublicKey: encodePublicKey(G1.BASE.multiply(coefficients[0]!)),
    publicShares,
    shares,
  };
}

/**
 * Interpolates the group secret from ≥ t shares (tests and key-recovery tooling only; in normal
 * operation the secret never exists in one place).
 */
export function interpolateSecret(shares: readonly KeyShare[], t: number): Uint8Array {
  const picked = distinctByIndex(
    shares.map((s) => ({ index: s.index, value: s })),
    undefined,
  ).slice(0, t);
  if (picked.length < t) {
    throw new CryptoError('CRYPTO_NOT_ENOUGH_SHARES', `need ${t} shares, got ${picked.length}`, {
      have: picked.length,
      need: t,
    });
  }
  const lambdas = lagrangeCoefficientsAtZero(picked.map((p) => p.index));
  let s = 0n;
  picked.forEach((p, k) => {
    s = Fr.add(s, Fr.mul(lambdas[k]!, scalarFromBytes(p.value.secretKey, 'share')));
  });
  return scalarToBytes(s);
}

/** σ_i = H(m)^{x_i}: a plain BLS signature with the share. */
export function partialSign(share: KeyShare, message: Uint8Array): PartialSignature {
  assertIndex(share.index, undefined);
  const x = secretKeyToScalar(share.secretKey);
  return { index: share.index, signature: encodeSignature(signPoint(x, message)) };
}

function toPublicSharePoint(p: PublicKeyInput): G1Point {
  if (p instanceof G1) {
    assertValidPublicKeyPoint(p);
    return p;
  }
  return decodePublicKey(p as Uint8Array);
}

/** Checks one partial against the signer's public share. Never throws on bad input. */
export function verifyPartial(
  publicShare: PublicKeyInput,
  message: Uint8Array,
  partial: PartialSignature | Uint8Array,
): boolean {
  try {
    const sigBytes = isBytes(partial) ? partial : partial.signature;
    const sig = decodeSignature(sigBytes);
    if (sig.is0()) return false;
    return verifyPoints(toPublicSharePoint(publicShare), hashToG2(message), sig);
  } catch {
    return false;
  }
}

/** Nonzero 128-bit scalar for random linear combinations. */
function batchScalar(randomBytes: RandomBytes): bigint {
  for (;;) {
    const b = randomBytes(16);
    let x = 0n;
    for (const byte of b) x = (x << 8n) | BigInt(byte);
    if (x !== 0n) return x;
  }
}

/**
 * Randomized batch check of partials on one message: with random 128-bit r_i,
 * e(Σ r_i X_i, H(m)) == e(g1, Σ r_i σ_i). A batch containing a bad partial passes with
 * probability ≤ 2^-128. Points must be validated subgroup points.
 */
export function verifyPartialPointsBatch(
  items: readonly { publicShare: G1Point; signature: G2Point }[],
  hashed: G2Point,
  randomBytes: RandomBytes = defaultRandomBytes,
): boolean {
  if (items.length === 0) return true;
  if (items.some((it) => it.signature.is0() || it.publicShare.is0())) return false;
  if (items.length === 1) return verifyPoints(items[0]!.publicShare, hashed, items[0]!.signature);
  const r = items.map(() => batchScalar(randomBytes));
  const pk = msmG1(
    items.map((it) => it.publicShare),
    r,
  );
  const sig = msmG2(
    items.map((it) => it.signature),
    r,
  );
  return verifyPoints(pk, hashed, sig);
}

interface Decoded {
  index: number;
  signature: G2Point;
}

function distinctByIndex<T extends { index: number }>(items: readonly T[], n: number | undefined): T[] {
  const seen = new Set<number>();
  const out: T[] = [];
  for (const it of items) {
    assertIndex(it.index, n);
    if (seen.has(it.index)) {
      throw new CryptoError('CRYPTO_DUPLICATE_SHARE', `two partials for index ${it.index}`, {
        index: it.index,
      });
    }
    seen.add(it.index);
    out.push(it);
  }
  return out.sort((a, b) => a.index - b.index);
}

function interpolate(decoded: readonly Decoded[]): Uint8Array {
  const lambdas = lagrangeCoefficientsAtZero(decoded.map((d) => d.index));
  return encodeSignature(
    msmG2(
      decoded.map((d) => d.signature),
      lambdas,
    ),
  );
}

function publicSharesFor(
  publicShares: readonly PublicKeyInput[],
  indices: readonly number[],
): Map<number, G1Point> {
  const out = new Map<number, G1Point>();
  for (const i of indices) {
    const p = publicShares[i - 1];
    if (p === undefined)
      throw new CryptoError('CRYPTO_BAD_INDEX', `no public share for index ${i}`, { index: i });
    try {
      out.set(i, toPublicSharePoint(p));
    } catch (e) {
      throw new CryptoError('CRYPTO_BAD_KEY', `public share ${i}: ${(e as Error).message}`, { index: i });
    }
  }
  return out;
}

/**
 * Interpolates any t partials into the group signature. With `publicShares` (and `message`), every
 * given partial is checked first (one batch check; on failure each is checked to name the first
 * bad one). Errors: CRYPTO_BAD_INDEX (index 0, > n or not an integer), CRYPTO_DUPLICATE_SHARE,
 * CRYPTO_NOT_ENOUGH_SHARES (fewer than t distinct partials), CRYPTO_BAD_PARTIAL (detail.index; also
 * for an undecodable partial), CRYPTO_BAD_PARAMETER. When more than t partials are given the t
 * lowest indices are interpolated (all valid subsets give the same signature).
 */
export function combine(
  partials: readonly PartialSignature[],
  t: number,
  options: CombineOptions = {},
): Uint8Array {
  if (!Array.isArray(partials)) throw new CryptoError('CRYPTO_BAD_PARAMETER', 'partials must be an array');
  const { publicShares, message } = options;
  if (options.n !== undefined && publicShares !== undefined && options.n !== publicShares.length) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'n does not match publicShares.length');
  }
  const n = options.n ?? publicShares?.length;
  if (n !== undefined) assertThresholdParameters(n, t);
  else if (!Number.isSafeInteger(t) || t < 1 || t > MAX_PARTIES) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'invalid threshold t', { t });
  }
  if (publicShares !== undefined && !isBytes(message)) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'checking partials needs the message');
  }
  const distinct = distinctByIndex(partials, n);
  if (distinct.length < t) {
    throw new CryptoError('CRYPTO_NOT_ENOUGH_SHARES', `need ${t} partials, got ${distinct.length}`, {
      have: distinct.length,
      need: t,
    });
  }
  const decoded: Decoded[] = distinct.map((p) => {
    try {
      return { index: p.index, signature: decodeSignature(p.signature) };
    } catch (e) {
      throw new CryptoError('CRYPTO_BAD_PARTIAL', `partial ${p.index}: ${(e as Error).message}`, {
        index: p.index,
      });
    }
  });
  if (publicShares !== undefined && message !== undefined) {
    const shares = publicSharesFor(
      publicShares,
      decoded.map((d) => d.index),
    );
    const hashed = hashToG2(message);
    const items = decoded.map((d) => ({ publicShare: shares.get(d.index)!, signature: d.signature }));
    if (!verifyPartialPointsBatch(items, hashed, options.randomBytes)) {
      const bad = decoded.filter((d, k) => !verifyPoints(items[k]!.publicShare, hashed, d.signature));
      const first = bad[0]?.index ?? decoded[0]!.index;
      throw new CryptoError('CRYPTO_BAD_PARTIAL', `partial ${first} does not verify`, {
        index: first,
        bad: bad.map((d) => d.index),
      });
    }
  }
  return interpolate(decoded.slice(0, t));
}

/**
 * Checks every partial and interpolates t good ones, naming the bad ones (bad index, undecodable,
 * or failing verification). Duplicate indices are tolerated here: BLS is deterministic, so all
 * valid partials for one index are equal. Throws CRYPTO_NOT_ENOUGH_SHARES (detail.bad) when fewer
 * than t distinct good partials remain.
 */
export function combineRobust(
  partials: readonly PartialSignature[],
  t: number,
  options: RobustCombineOptions,
): RobustCombineResult {
  const { publicShares, message } = options;
  if (!Array.isArray(partials) || !Array.isArray(publicShares) || !isBytes(message)) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'combineRobust needs partials, publicShares and message');
  }
  const n = publicShares.length;
  assertThresholdParameters(n, t);
  const bad = new Set<number>();
  const candidates: { index: number; signature: G2Point; publicShare: G1Point }[] = [];
  for (const p of partials) {
    const index = (p as Partial<PartialSignature> | null)?.index;
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 1 || index > n) {
      if (typeof index === 'number') bad.add(index);
      continue;
    }
    let signature: G2Point;
    try {
      signature = decodeSignature(p.signature);
    } catch {
      bad.add(index);
      continue;
    }
    const share = publicSharesFor(publicShares, [index]).get(index)!;
    candidates.push({ index, signature, publicShare: share });
  }
  const hashed = hashToG2(message);
  let good = candidates;
  if (!verifyPartialPointsBatch(candidates, hashed, options.randomBytes)) {
    good = [];
    for (const c of candidates) {
      if (verifyPoints(c.publicShare, hashed, c.signature)) good.push(c);
      else bad.add(c.index);
    }
  }
  const byIndex = new Map<number, Decoded>();
  for (const g of good) if (!byIndex.has(g.index)) byIndex.set(g.index, g);
  const distinct = [...byIndex.values()].sort((a, b) => a.index - b.index);
  const badList = [...bad].sort((a, b) => a - b);
  if (distinct.length < t) {
    throw new CryptoError('CRYPTO_NOT_ENOUGH_SHARES', `need ${t} good partials, got ${distinct.length}`, {
      have: distinct.length,
      need: t,
      bad: badList,
    });
  }
  const used = distinct.slice(0, t);
  return { signature: interpolate(used), used: used.map((d) => d.index), bad: badList };
}

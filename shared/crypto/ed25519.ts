/**
 * Ed25519 (RFC 8032, pure Ed25519 without context) behind one interface, with ONE pinned
 * verification rule that every implementation enforces, so that a signature is valid or invalid
 * for the whole network regardless of whether a peer runs noble (pure JS), WebCrypto (BoringSSL
 * in Chromium, OpenSSL in Node) or node:crypto (OpenSSL). Consensus code must never depend on
 * which implementation happened to be fastest on a platform.
 *
 * The pinned rule (strict RFC 8032, cofactorless), checked in this order:
 *  1. the public key A is 32 bytes and the signature R‖S is 64 bytes;
 *  2. S is canonical: S < L (L = 2^252 + 27742317777372353535851937790883648493);
 *  3. A is a canonical encoding (y < p, and not the "negative zero" x = 0 with the sign bit set),
 *     decodes to a curve point, and is not of small order;
 *  4. R is a canonical encoding (y < p, not negative zero) and not one of the 8 small-order points;
 *  5. the COFACTORLESS equation holds, checked by encoding: encode([S]B − [k]A) == R byte for byte,
 *     with k = SHA-512(R ‖ A ‖ M) mod L.
 * Steps 1–4 are `checkStrictEncoding`, a pure pre-check run by every implementation before its
 * native verify. Step 5 is what OpenSSL and BoringSSL compute (they encode [S]B − [k]A and
 * memcmp with R), and what `nobleEd25519` computes with noble's point API (noble's own
 * `ed25519.verify` is cofactored and is NOT used for verification here).
 *
 * R decoding to a curve point is part of the rule but is enforced by step 5, not by the pre-check:
 * the encoder only ever produces canonical encodings of curve points, so an R that is not a curve
 * point can never equal encode([S]B − [k]A). Decoding R is a square root (as expensive as the
 * native verify itself), so the hot path skips it; `signatureFailure` decodes R only after a
 * failed equation, to report R_NOT_ON_CURVE instead of EQUATION.
 *
 * Mixed-order public keys (A = prime-order point + a torsion point) pass the pre-check: they are
 * canonical, decodable and not of small order. They are accepted only when the cofactorless
 * equation holds, i.e. when [k]T vanishes for the torsion part T of A (given the signer's R);
 * a cofactored verifier ([8][S]B = [8]R + [8][k]A) would accept more of them. Honest keys
 * (A = [a]B) are never mixed-order, and for them cofactored and cofactorless verification agree
 * except on R values with a torsion component, which honest signers never produce.
 */

import type { EdwardsPoint } from '@noble/curves/abstract/edwards.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { base64urlnopad } from '@scure/base';
import {
  assertBytes,
  bytesToBigIntLE,
  bytesToHex,
  concatBytes,
  equalBytes,
  hexToBytes,
  isBytes,
} from '../bytes.ts';
import { CryptoError } from '../errors.ts';

/** One Ed25519 implementation. All methods are async so native (WebCrypto) back ends fit. */
export interface Ed25519 {
  /** Stable short name, used in benches and logs: 'noble', 'webcrypto', 'node:crypto'. */
  readonly name: string;
  /** Public key (32 bytes) of an RFC 8032 32-byte seed. Throws CRYPTO_BAD_LENGTH for a bad seed. */
  getPublicKey(secretKey: Uint8Array): Promise<Uint8Array>;
  /** Deterministic RFC 8032 signature (64 bytes). Throws CRYPTO_BAD_LENGTH for a bad seed. */
  sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  /** The pinned rule. Returns false for anything invalid, wrong lengths and non-bytes included. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

export const PUBLIC_KEY_LENGTH = 32;
export const SECRET_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

/** Why the pure pre-check (steps 1–4 of the pinned rule) rejects a key/signature pair. */
export type StrictCheckFailure =
  | 'PUBLIC_KEY_LENGTH'
  | 'SIGNATURE_LENGTH'
  | 'S_NOT_CANONICAL'
  | 'A_NOT_CANONICAL'
  | 'A_NEGATIVE_ZERO'
  | 'A_NOT_ON_CURVE'
  | 'A_SMALL_ORDER'
  | 'R_NOT_CANONICAL'
  | 'R_NEGATIVE_ZERO'
  | 'R_SMALL_ORDER';

/** Why a signature is invalid under the pinned rule: a pre-check failure, or step 5. */
export type SignatureFailure = StrictCheckFailure | 'R_NOT_ON_CURVE' | 'EQUATION';

export const STRICT_CHECK_FAILURES: readonly StrictCheckFailure[] = [
  'PUBLIC_KEY_LENGTH',
  'SIGNATURE_LENGTH',
  'S_NOT_CANONICAL',
  'A_NOT_CANONICAL',
  'A_NEGATIVE_ZERO',
  'A_NOT_ON_CURVE',
  'A_SMALL_ORDER',
  'R_NOT_CANONICAL',
  'R_NEGATIVE_ZERO',
  'R_SMALL_ORDER',
];

const Point = ed25519.Point;
/** Order of the prime subgroup. */
const L = Point.Fn.ORDER;

/**
 * Canonical encodings of the 8 points of small order ([i]T for a generator T of the torsion
 * subgroup, i = 0..7). For a canonical encoding, the point is of small order iff its bytes are one
 * of these (encoding is a bijection between points and canonical encodings).
 */
export const SMALL_ORDER_ENCODINGS: readonly string[] = [
  '0100000000000000000000000000000000000000000000000000000000000000', // identity
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  '0000000000000000000000000000000000000000000000000000000000000080', // order 4
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
];
const SMALL_ORDER_BYTES = SMALL_ORDER_ENCODINGS.map((h) => hexToBytes(h));

/** y ≥ p = 2^255 − 19, ignoring the sign bit: bytes ≥ ed ff … ff 7f (little-endian). */
function isNonCanonicalY(b: Uint8Array): boolean {
  if ((b[31]! & 0x7f) !== 0x7f) return false;
  for (let i = 30; i >= 1; i--) if (b[i] !== 0xff) return false;
  return b[0]! >= 0xed;
}

/** Sign bit set on a point with x = 0, i.e. y = 1 (identity) or y = p − 1 (the point of order 2). */
function isNegativeZero(b: Uint8Array): boolean {
  if ((b[31]! & 0x80) === 0) return false;
  const top = b[31]! & 0x7f;
  if (b[0] === 0x01 && top === 0) {
    for (let i = 1; i <= 30; i++) if (b[i] !== 0) return false;
    return true;
  }
  if (b[0] === 0xec && top === 0x7f) {
    for (let i = 1; i <= 30; i++) if (b[i] !== 0xff) return false;
    return true;
  }
  return false;
}

function isSmallOrderEncoding(b: Uint8Array): boolean {
  for (const e of SMALL_ORDER_BYTES) if (equalBytes(b, e)) return true;
  return false;
}

/** A small LRU map: a hit moves the entry to the back, inserting past `max` evicts the oldest. */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, V>();
  readonly max: number;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new CryptoError('CRYPTO_BAD_PARAMETER', 'max must be >= 1');
    this.max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    if (this.#map.size >= this.max) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
    this.#map.set(key, value);
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }
}

/** A public key that passed step 3, with its use count for the hot-key table. */
interface GoodKey {
  readonly failure: null;
  readonly id: string;
  readonly point: EdwardsPoint;
  uses: number;
}
type DecodedKey = { readonly failure: StrictCheckFailure } | GoodKey;

/** Public keys decoded and checked once (accounts reuse keys); failures are cached too. */
const PUBLIC_KEY_CACHE_SIZE = 1024;
const publicKeyCache = new BoundedMap<string, DecodedKey>(PUBLIC_KEY_CACHE_SIZE);

function decodePublicKey(publicKey: Uint8Array): DecodedKey {
  const id = bytesToHex(publicKey);
  const cached = publicKeyCache.get(id);
  if (cached !== undefined) return cached;
  let result: DecodedKey;
  if (isNonCanonicalY(publicKey)) result = { failure: 'A_NOT_CANONICAL' };
  else if (isNegativeZero(publicKey)) result = { failure: 'A_NEGATIVE_ZERO' };
  else {
    let point: EdwardsPoint | null = null;
    try {
      point = Point.fromBytes(publicKey, false);
    } catch {
      point = null;
    }
    if (point === null) result = { failure: 'A_NOT_ON_CURVE' };
    else if (point.isSmallOrder()) result = { failure: 'A_SMALL_ORDER' };
    else result = { failure: null, id, point, uses: 0 };
  }
  publicKeyCache.set(id, result);
  return result;
}

/**
 * Pure-JS verification spends most of its time in [k]A. Keys verified often (16 times since their last table) get a wNAF table
 * (window 4: [k]A about 3x faster, ~100 KB each, a few ms to build), kept for a few hot keys only so
 * memory stays bounded. The table is built on a copy of the point, so evicting it frees the table.
 */
// A table costs several verifications to build; with more distinct busy keys than table slots a low
// threshold rebuilds tables endlessly (measured: 250 keys used 4 times each ran 7x slower at 4).
const HOT_KEY_USES = 16;
const HOT_KEY_WINDOW = 4;
const hotKeys = new BoundedMap<string, EdwardsPoint>(32);

function multiplierPoint(key: GoodKey): EdwardsPoint {
  const hot = hotKeys.get(key.id);
  if (hot !== undefined) return hot;
  key.uses++;
  if (key.uses < HOT_KEY_USES) return key.point;
  key.uses = 0; // if this table is evicted, the key must earn its next one again
  const table = Point.fromAffine(key.point.toAffine()).precompute(HOT_KEY_WINDOW, false);
  hotKeys.set(key.id, table);
  return table;
}

type PreChecked =
  | { readonly failure: StrictCheckFailure }
  | { readonly failure: null; readonly key: GoodKey; readonly S: bigint };

function preCheck(publicKey: unknown, signature: unknown): PreChecked {
  if (!isBytes(publicKey) || publicKey.length !== PUBLIC_KEY_LENGTH) return { failure: 'PUBLIC_KEY_LENGTH' };
  if (!isBytes(signature) || signature.length !== SIGNATURE_LENGTH) return { failure: 'SIGNATURE_LENGTH' };
  const S = bytesToBigIntLE(signature.subarray(32, 64));
  if (S >= L) return { failure: 'S_NOT_CANONICAL' };
  const key = decodePublicKey(publicKey);
  if (key.failure !== null) return { failure: key.failure };
  const R = signature.subarray(0, 32);
  if (isNonCanonicalY(R)) return { failure: 'R_NOT_CANONICAL' };
  if (isNegativeZero(R)) return { failure: 'R_NEGATIVE_ZERO' };
  if (isSmallOrderEncoding(R)) return { failure: 'R_SMALL_ORDER' };
  return { failure: null, key, S };
}

/**
 * The pure pre-check of the pinned rule (steps 1–4, see the module comment): lengths, canonical S,
 * canonical/decodable/not-small-order A, canonical/not-small-order R. Returns null when the pair
 * may go on to the equation. Every implementation runs this before its own verify.
 */
export function checkStrictEncoding(publicKey: Uint8Array, signature: Uint8Array): StrictCheckFailure | null {
  return preCheck(publicKey, signature).failure;
}

/** k = SHA-512(R ‖ A ‖ M) mod L. */
function challenge(R: Uint8Array, publicKey: Uint8Array, message: Uint8Array): bigint {
  const h = sha512.create().update(R).update(publicKey).update(message).digest();
  return bytesToBigIntLE(h) % L;
}

/** Step 5 with noble's point API: encode([S]B − [k]A) == R, compared as bytes. */
function cofactorlessEquation(
  A: EdwardsPoint,
  S: bigint,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  const R = signature.subarray(0, 32);
  const k = challenge(R, publicKey, message);
  const SB = Point.BASE.multiplyUnsafe(S);
  const kA = A.multiplyUnsafe(k);
  return equalBytes(SB.subtract(kA).toBytes(), R);
}

/**
 * The pinned rule as a diagnostic: null when the signature is valid, otherwise the first failed
 * step. Pure JS (noble); slower than `defaultEd25519().verify`, use it for reasons, not for speed.
 */
export function signatureFailure(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): SignatureFailure | null {
  const pre = preCheck(publicKey, signature);
  if (pre.failure !== null) return pre.failure;
  if (!isBytes(message)) return 'EQUATION';
  if (cofactorlessEquation(multiplierPoint(pre.key), pre.S, publicKey, message, signature)) return null;
  try {
    Point.fromBytes(signature.subarray(0, 32), false);
  } catch {
    return 'R_NOT_ON_CURVE';
  }
  return 'EQUATION';
}

/** Throws CryptoError('CRYPTO_BAD_SIGNATURE', { reason }) unless `impl` accepts the signature. */
export async function assertValidSignature(
  impl: Ed25519,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<void> {
  if (await impl.verify(publicKey, message, signature)) return;
  const reason = signatureFailure(publicKey, message, signature) ?? 'UNKNOWN';
  throw new CryptoError('CRYPTO_BAD_SIGNATURE', `invalid Ed25519 signature (${reason})`, {
    reason,
    impl: impl.name,
  });
}

function assertSeed(secretKey: unknown): asserts secretKey is Uint8Array {
  assertBytes(secretKey, SECRET_KEY_LENGTH, 'Ed25519 secret key (seed)');
}

function assertMessage(message: unknown): asserts message is Uint8Array {
  assertBytes(message, undefined, 'message');
}

/** Pure JS (noble) implementation: available everywhere, the reference for the pinned rule. */
export const nobleEd25519: Ed25519 = Object.freeze({
  name: 'noble',
  async getPublicKey(secretKey: Uint8Array): Promise<Uint8Array> {
    assertSeed(secretKey);
    return ed25519.getPublicKey(secretKey);
  },
  async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
    assertSeed(secretKey);
    assertMessage(message);
    return ed25519.sign(message, secretKey);
  },
  async verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (!isBytes(message)) return false;
    const pre = preCheck(publicKey, signature);
    if (pre.failure !== null) return false;
    return cofactorlessEquation(multiplierPoint(pre.key), pre.S, publicKey, message, signature);
  },
});

/** DER prefix of a PKCS#8 Ed25519 private key (RFC 8410): followed by the 32-byte seed. */
export const PKCS8_ED25519_PREFIX = hexToBytes('302e020100300506032b657004220420');
/** DER prefix of an SPKI Ed25519 public key (RFC 8410): followed by the 32-byte key. */
export const SPKI_ED25519_PREFIX = hexToBytes('302a300506032b6570032100');

const SEED_CACHE_DOMAIN = new TextEncoder().encode('pouw/ed25519/seed-cache-id/v1\0');
/**
 * Cache id of a seed for native key-object caches: a domain-separated SHA-256, so caches hold
 * neither the seed nor anything that derives keys from it.
 */
export function seedCacheId(secretKey: Uint8Array): string {
  return bytesToHex(sha256(concatBytes(SEED_CACHE_DOMAIN, secretKey)));
}

/** WebCrypto wants ArrayBuffer-backed views; copy only when the view sits on something else. */
function bufferSource(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}

// RFC 8032 §7.1 TEST 2: the known answer used for feature detection and `selectEd25519`.
const KAT_SEED = hexToBytes('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb');
const KAT_PUBLIC_KEY = hexToBytes('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c');
const KAT_MESSAGE = hexToBytes('72');
const KAT_SIGNATURE = hexToBytes(
  '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
);

const ED25519_ALGORITHM = { name: 'Ed25519' } as const;

/** A cached private CryptoKey (non-extractable) with its public key. */
interface CachedSigningKey {
  readonly privateKey: CryptoKey;
  readonly publicKey: Uint8Array;
}

const webCryptoInstances = new WeakMap<SubtleCrypto, Promise<Ed25519>>();

/**
 * WebCrypto implementation (BoringSSL in Chromium, OpenSSL in Node). Ed25519 support is detected
 * once per SubtleCrypto (import + verify of an RFC 8032 vector); the promise rejects with
 * CryptoError('CRYPTO_UNAVAILABLE') when it is missing. The strict pre-check runs before the
 * native verify, so the verdict is the pinned rule's.
 */
export function webCryptoEd25519(
  subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle,
): Promise<Ed25519> {
  if (subtle === undefined) {
    return Promise.reject(new CryptoError('CRYPTO_UNAVAILABLE', 'globalThis.crypto.subtle is missing'));
  }
  let impl = webCryptoInstances.get(subtle);
  if (impl === undefined) {
    impl = detectWebCrypto(subtle);
    webCryptoInstances.set(subtle, impl);
  }
  return impl;
}

async function detectWebCrypto(subtle: SubtleCrypto): Promise<Ed25519> {
  let supported = false;
  try {
    const key = await subtle.importKey('raw', KAT_PUBLIC_KEY, ED25519_ALGORITHM, false, ['verify']);
    supported = await subtle.verify(ED25519_ALGORITHM, key, KAT_SIGNATURE, KAT_MESSAGE);
  } catch {
    supported = false;
  }
  if (!supported) throw new CryptoError('CRYPTO_UNAVAILABLE', 'WebCrypto does not support Ed25519 here');
  return makeWebCryptoEd25519(subtle);
}

function makeWebCryptoEd25519(subtle: SubtleCrypto): Ed25519 {
  const verifyKeys = new BoundedMap<string, Promise<CryptoKey>>(PUBLIC_KEY_CACHE_SIZE);
  const signingKeys = new BoundedMap<string, Promise<CachedSigningKey>>(16);

  const importPkcs8 = (seed: Uint8Array, extractable: boolean): Promise<CryptoKey> =>
    subtle.importKey('pkcs8', concatBytes(PKCS8_ED25519_PREFIX, seed), ED25519_ALGORITHM, extractable, [
      'sign',
    ]);

  const signingKey = (seed: Uint8Array): Promise<CachedSigningKey> => {
    const id = seedCacheId(seed);
    let entry = signingKeys.get(id);
    if (entry === undefined) {
      entry = (async () => {
        // The public key comes from the JWK export of a transient extractable copy; the cached
        // signing key itself is non-extractable.
        const exportable = await importPkcs8(seed, true);
        const jwk = await subtle.exportKey('jwk', exportable);
        const publicKey = typeof jwk.x === 'string' ? base64urlnopad.decode(jwk.x) : new Uint8Array(0);
        if (publicKey.length !== PUBLIC_KEY_LENGTH) {
          throw new CryptoError('CRYPTO_UNAVAILABLE', 'WebCrypto returned a malformed Ed25519 public key');
        }
        return { privateKey: await importPkcs8(seed, false), publicKey };
      })();
      signingKeys.set(id, entry);
      entry.catch(() => signingKeys.delete(id)); // never cache a failed import
    }
    return entry;
  };

  return Object.freeze({
    name: 'webcrypto',
    async getPublicKey(secretKey: Uint8Array): Promise<Uint8Array> {
      assertSeed(secretKey);
      return (await signingKey(secretKey)).publicKey.slice();
    },
    async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
      assertSeed(secretKey);
      assertMessage(message);
      const { privateKey } = await signingKey(secretKey);
      return new Uint8Array(await subtle.sign(ED25519_ALGORITHM, privateKey, bufferSource(message)));
    },
    async verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
      if (!isBytes(message)) return false;
      if (preCheck(publicKey, signature).failure !== null) return false;
      const id = bytesToHex(publicKey);
      let key = verifyKeys.get(id);
      if (key === undefined) {
        key = subtle.importKey('raw', bufferSource(publicKey.slice()), ED25519_ALGORITHM, false, ['verify']);
        verifyKeys.set(id, key);
        key.catch(() => verifyKeys.delete(id));
      }
      try {
        return await subtle.verify(
          ED25519_ALGORITHM,
          await key,
          bufferSource(signature),
          bufferSource(message),
        );
      } catch {
        return false;
      }
    },
  });
}

/**
 * Known-answer self-test: RFC 8032 TEST 2 signs byte-exactly and verifies, a tampered signature
 * and a small-order key are rejected. Never throws; false means "do not use this implementation".
 */
export async function selfTestEd25519(impl: Ed25519): Promise<boolean> {
  try {
    if (!equalBytes(await impl.getPublicKey(KAT_SEED), KAT_PUBLIC_KEY)) return false;
    if (!equalBytes(await impl.sign(KAT_SEED, KAT_MESSAGE), KAT_SIGNATURE)) return false;
    if (!(await impl.verify(KAT_PUBLIC_KEY, KAT_MESSAGE, KAT_SIGNATURE))) return false;
    const tampered = KAT_SIGNATURE.slice();
    tampered[0]! ^= 1;
    if (await impl.verify(KAT_PUBLIC_KEY, KAT_MESSAGE, tampered)) return false;
    // Identity key with R = B, S = 1: [1]B − [k]·identity = B, accepted by any verifier that skips
    // the small-order check on A; the pinned rule rejects it.
    const identity = SMALL_ORDER_BYTES[0]!;
    const lowOrderSig = concatBytes(Point.BASE.toBytes(), Uint8Array.of(1), new Uint8Array(31));
    if (await impl.verify(identity, KAT_MESSAGE, lowOrderSig)) return false;
    return true;
  } catch {
    return false;
  }
}

/**
 * The first candidate (in preference order: fastest first) that is available (a promised
 * candidate that rejects is skipped) and passes `selfTestEd25519`. Rejects with
 * CRYPTO_UNAVAILABLE when none does.
 */
export async function selectEd25519(candidates: ReadonlyArray<Ed25519 | Promise<Ed25519>>): Promise<Ed25519> {
  const tried: string[] = [];
  for (const candidate of candidates) {
    let impl: Ed25519;
    try {
      impl = await candidate;
    } catch {
      tried.push('(unavailable)');
      continue;
    }
    if (await selfTestEd25519(impl)) return impl;
    tried.push(impl.name);
  }
  throw new CryptoError('CRYPTO_UNAVAILABLE', 'no working Ed25519 implementation', { tried });
}

let defaultImpl: Promise<Ed25519> | undefined;
/**
 * The fastest working implementation on this platform: WebCrypto where it supports Ed25519
 * (Chromium, Node), noble otherwise. Node processes that prefer node:crypto use
 * `selectEd25519([nodeCryptoEd25519, ...])` from node-common/ed25519-node.ts.
 */
export function defaultEd25519(): Promise<Ed25519> {
  defaultImpl ??= selectEd25519([webCryptoEd25519(), nobleEd25519]);
  return defaultImpl;
}

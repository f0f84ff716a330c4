/**
 * BLS signatures on BLS12-381, ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`
 * (draft-irtf-cfrg-bls-signature-05 §4.2.3, the suite Ethereum uses):
 *
 * - secret keys are scalars 0 < sk < r, serialized as 32 bytes big-endian;
 * - public keys are G1 points, 48 bytes compressed (ZCash encoding);
 * - signatures are G2 points, 96 bytes compressed; messages are hashed to G2 with
 *   hash_to_curve (RFC 9380, SSWU, random oracle) under DST `BLS_SIG_…_POP_`;
 * - proofs of possession sign the 48-byte public key under DST `BLS_POP_…_POP_`.
 *
 * Decoding is strict: public keys must pass KeyValidate (canonical compressed encoding, on the
 * curve, in the prime-order subgroup, not the identity); signatures must be canonical compressed
 * encodings of points in the G2 subgroup (the identity is a valid encoding, as in the spec, but
 * never verifies against a valid key). Decoders throw `CryptoError`; every `verify*` function
 * returns `false` for any invalid input instead of throwing.
 *
 * Rogue-key safety: `fastAggregateVerify` is only sound for public keys whose proof of possession
 * has been checked (`popVerify`). `aggregateVerify` rejects duplicate messages (§3.1.1).
 *
 * Secret scalars use noble's constant-time `multiply`; everything on public data uses the faster
 * variable-time paths.
 */
import { pippenger } from '@noble/curves/abstract/curve.js';
import type { Fp2 } from '@noble/curves/abstract/tower.js';
import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  assertBytes,
  bigIntToBytesBE,
  bytesToBigIntBE,
  bytesToHex,
  equalBytes,
  isBytes,
  utf8,
} from '../bytes.ts';
import { CryptoError } from '../errors.ts';

export type G1Point = WeierstrassPoint<bigint>;
export type G2Point = WeierstrassPoint<Fp2>;

export const G1 = bls12_381.G1.Point;
export const G2 = bls12_381.G2.Point;
export const Fr = bls12_381.fields.Fr;
const Fp12 = bls12_381.fields.Fp12;
/** Order r of the prime-order subgroups (and of the scalar field). */
export const CURVE_ORDER: bigint = Fr.ORDER;

export const SECRET_KEY_LENGTH = 32;
export const PUBLIC_KEY_LENGTH = 48;
export const SIGNATURE_LENGTH = 96;
export const MIN_IKM_LENGTH = 32;

export const DST_SIGNATURE = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';
export const DST_POP = 'BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';

/** Source of randomness: `n` uniformly random bytes. Injected so tests can be deterministic. */
export type RandomBytes = (n: number) => Uint8Array;

export const defaultRandomBytes: RandomBytes = (n) => {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c === undefined || typeof c.getRandomValues !== 'function') {
    throw new CryptoError('CRYPTO_UNAVAILABLE', 'globalThis.crypto.getRandomValues is not available');
  }
  return c.getRandomValues(new Uint8Array(n));
};

const NEG_G1 = G1.BASE.negate();
const KEYGEN_SALT = utf8('BLS-SIG-KEYGEN-SALT-');
/** L = ceil((3 * ceil(log2(r))) / 16) = 48 for BLS12-381. */
const KEYGEN_L = 48;

// ---------------------------------------------------------------------------------------------
// Scalars and secret keys

/** Reduces bytes (big-endian) to a scalar mod r. */
export function scalarFromBytesModOrder(b: Uint8Array): bigint {
  return Fr.create(bytesToBigIntBE(b));
}

/** 32-byte big-endian encoding of a scalar in [0, r). */
export function scalarToBytes(x: bigint): Uint8Array {
  if (x < 0n || x >= CURVE_ORDER) throw new CryptoError('CRYPTO_BAD_PARAMETER', 'scalar out of range');
  return bigIntToBytesBE(x, SECRET_KEY_LENGTH);
}

/** Decodes a 32-byte big-endian scalar, requiring it to be < r (0 allowed). */
export function scalarFromBytes(b: Uint8Array, what = 'scalar'): bigint {
  assertBytes(b, SECRET_KEY_LENGTH, what);
  const x = bytesToBigIntBE(b);
  if (x >= CURVE_ORDER) throw new CryptoError('CRYPTO_BAD_KEY', `${what} is not reduced modulo r`);
  return x;
}

/** Uniform nonzero scalar from injected randomness (48 bytes reduced mod r, bias < 2^-128). */
export function randomScalar(randomBytes: RandomBytes = defaultRandomBytes): bigint {
  for (;;) {
    const x = scalarFromBytesModOrder(randomBytes(KEYGEN_L));
    if (x !== 0n) return x;
  }
}

/** Decodes and validates a secret key: 32 bytes big-endian, 0 < sk < r. */
export function secretKeyToScalar(secretKey: Uint8Array): bigint {
  const x = scalarFromBytes(secretKey, 'secret key');
  if (x === 0n) throw new CryptoError('CRYPTO_BAD_KEY', 'secret key is zero');
  return x;
}

export function scalarToSecretKey(x: bigint): Uint8Array {
  if (x <= 0n || x >= CURVE_ORDER)
    throw new CryptoError('CRYPTO_BAD_KEY', 'secret key must satisfy 0 < sk < r');
  return bigIntToBytesBE(x, SECRET_KEY_LENGTH);
}

/**
 * KeyGen(IKM, key_info) of draft-irtf-cfrg-bls-signature-05 §2.3 (identical to EIP-2333's
 * HKDF_mod_r): salt = H("BLS-SIG-KEYGEN-SALT-") then H(salt) again while SK == 0;
 * PRK = HKDF-Extract(salt, IKM ‖ I2OSP(0, 1)); OKM = HKDF-Expand(PRK, key_info ‖ I2OSP(L, 2), L);
 * SK = OS2IP(OKM) mod r. IKM must be at least 32 bytes of secret entropy.
 */
export function keyGen(ikm: Uint8Array, keyInfo: Uint8Array = new Uint8Array(0)): Uint8Array {
  assertBytes(ikm, undefined, 'IKM');
  assertBytes(keyInfo, undefined, 'key_info');
  if (ikm.length < MIN_IKM_LENGTH) {
    throw new CryptoError('CRYPTO_BAD_LENGTH', `IKM must be at least ${MIN_IKM_LENGTH} bytes`, {
      actual: ikm.length,
    });
  }
  const ikmZero = new Uint8Array(ikm.length + 1);
  ikmZero.set(ikm);
  const info = new Uint8Array(keyInfo.length + 2);
  info.set(keyInfo);
  info[keyInfo.length] = KEYGEN_L >> 8;
  info[keyInfo.length + 1] = KEYGEN_L & 0xff;
  let salt: Uint8Array = KEYGEN_SALT;
  for (;;) {
    salt = sha256(salt);
    const prk = extract(sha256, ikmZero, salt);
    const okm = expand(sha256, prk, info, KEYGEN_L);
    const sk = scalarFromBytesModOrder(okm);
    if (sk !== 0n) return scalarToSecretKey(sk);
  }
}

/** A fresh secret key: KeyGen over 32 bytes of injected randomness. */
export function randomSecretKey(randomBytes: RandomBytes = defaultRandomBytes): Uint8Array {
  return keyGen(randomBytes(MIN_IKM_LENGTH));
}

// ---------------------------------------------------------------------------------------------
// Points: strict decoding and encoding

function isCompressedFlagSet(b: Uint8Array): boolean {
  return ((b[0] ?? 0) & 0x80) !== 0;
}

/**
 * Decodes a public key and runs KeyValidate: 48 bytes, compressed flag set, canonical x < p and
 * sort bit, on the curve, in the r-order subgroup, not the identity.
 */
export function decodePublicKey(bytes: Uint8Array): G1Point {
  assertBytes(bytes, PUBLIC_KEY_LENGTH, 'public key');
  if (!isCompressedFlagSet(bytes)) throw new CryptoError('CRYPTO_BAD_KEY', 'public key is not compressed');
  let p: G1Point;
  try {
    p = G1.fromBytes(bytes);
  } catch (e) {
    throw new CryptoError('CRYPTO_BAD_KEY', `invalid public key: ${(e as Error).message}`);
  }
  if (p.is0()) throw new CryptoError('CRYPTO_BAD_KEY', 'public key is the identity');
  // Defence in depth: the canonical encoding round-trips exactly.
  if (!equalBytes(p.toBytes(true), bytes))
    throw new CryptoError('CRYPTO_BAD_KEY', 'non-canonical public key');
  return p;
}

/** Validates a public-key point (KeyValidate on an already-decoded point). */
export function assertValidPublicKeyPoint(p: G1Point): void {
  if (!(p instanceof G1)) throw new CryptoError('CRYPTO_BAD_KEY', 'not a G1 point');
  if (p.is0()) throw new CryptoError('CRYPTO_BAD_KEY', 'public key is the identity');
  try {
    p.assertValidity();
  } catch (e) {
    throw new CryptoError('CRYPTO_BAD_KEY', `invalid public key: ${(e as Error).message}`);
  }
}

export function encodePublicKey(p: G1Point): Uint8Array {
  return p.toBytes(true);
}

/**
 * A public key as bytes, or as a point decoded earlier (validity is re-asserted; noble caches a
 * successful subgroup check per point object, so cached points cost one lookup).
 */
export type PublicKeyInput = Uint8Array | G1Point;

function publicKeyPoint(pk: PublicKeyInput): G1Point {
  if (pk instanceof G1) {
    assertValidPublicKeyPoint(pk);
    return pk;
  }
  return decodePublicKey(pk as Uint8Array);
}

/**
 * Decodes a signature: 96 bytes, canonical compressed encoding, in the G2 subgroup. The identity
 * (0xc0 ‖ 0…) decodes (aggregation of it is defined) but never verifies.
 */
export function decodeSignature(bytes: Uint8Array): G2Point {
  assertBytes(bytes, SIGNATURE_LENGTH, 'signature');
  let p: G2Point;
  try {
    p = bls12_381.longSignatures.Signature.fromBytes(bytes);
  } catch (e) {
    throw new CryptoError('CRYPTO_BAD_SIGNATURE', `invalid signature: ${(e as Error).message}`);
  }
  if (!equalBytes(encodeSignature(p), bytes)) {
    throw new CryptoError('CRYPTO_BAD_SIGNATURE', 'non-canonical signature encoding');
  }
  return p;
}

export function encodeSignature(p: G2Point): Uint8Array {
  return bls12_381.longSignatures.Signature.toBytes(p);
}

/** hash_to_curve(msg) in G2 with the given DST (signature DST by default). */
export function hashToG2(message: Uint8Array, dst: string = DST_SIGNATURE): G2Point {
  assertBytes(message, undefined, 'message');
  return bls12_381.G2.hashToCurve(message, { DST: dst }) as G2Point;
}

/** Below this size Pippenger's fixed 255-bit window walk loses to one multiplication per point. */
const PIPPENGER_MIN = 64;

/** Public-data multi-scalar multiplication Σ scalars[i]·points[i] (variable time). */
export function msmG1(points: G1Point[], scalars: bigint[]): G1Point {
  if (points.length >= PIPPENGER_MIN) return pippenger(G1, points, scalars);
  let acc = G1.ZERO;
  for (let i = 0; i < points.length; i++) acc = acc.add(points[i]!.multiplyUnsafe(scalars[i]!));
  return acc;
}

export function msmG2(points: G2Point[], scalars: bigint[]): G2Point {
  if (points.length >= PIPPENGER_MIN) return pippenger(G2, points, scalars);
  let acc = G2.ZERO;
  for (let i = 0; i < points.length; i++) acc = acc.add(points[i]!.multiplyUnsafe(scalars[i]!));
  return acc;
}

/**
 * The core check e(pk, H) == e(g1, sig) as one two-term multi-pairing:
 * e(pk, H) · e(−g1, sig) == 1. All points must already be validated subgroup points.
 */
export function verifyPoints(publicKey: G1Point, hashed: G2Point, signature: G2Point): boolean {
  if (publicKey.is0() || hashed.is0() || signature.is0()) return false;
  try {
    const gt = bls12_381.pairingBatch([
      { g1: publicKey, g2: hashed },
      { g1: NEG_G1, g2: signature },
    ]);
    return Fp12.eql(gt, Fp12.ONE);
  } catch {
    return false;
  }
}

/** Verifies Π e(pk_i, H_i) == e(g1, sig) for validated points (distinct H_i expected). */
export function verifyPairsPoints(
  pairs: { publicKey: G1Point; hashed: G2Point }[],
  signature: G2Point,
): boolean {
  if (pairs.length === 0 || signature.is0()) return false;
  try {
    const terms = pairs.map((p) => ({ g1: p.publicKey, g2: p.hashed }));
    if (terms.some((x) => x.g1.is0() || x.g2.is0())) return false;
    terms.push({ g1: NEG_G1, g2: signature });
    return Fp12.eql(bls12_381.pairingBatch(terms), Fp12.ONE);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The ciphersuite

export function getPublicKey(secretKey: Uint8Array): Uint8Array {
  return encodePublicKey(G1.BASE.multiply(secretKeyToScalar(secretKey)));
}

/** Signs with a secret scalar (already validated), returning the G2 point. */
export function signPoint(sk: bigint, message: Uint8Array, dst: string = DST_SIGNATURE): G2Point {
  return hashToG2(message, dst).multiply(sk);
}

export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return encodeSignature(signPoint(secretKeyToScalar(secretKey), message));
}

function tryDecodePublicKey(b: unknown): G1Point | null {
  if (!isBytes(b) && !(b instanceof G1)) return null;
  try {
    return publicKeyPoint(b as PublicKeyInput);
  } catch {
    return null;
  }
}

function tryDecodeSignature(b: unknown): G2Point | null {
  if (!isBytes(b)) return null;
  try {
    return decodeSignature(b);
  } catch {
    return null;
  }
}

/** CoreVerify: false for an invalid key, signature or pairing mismatch; never throws on bad input. */
export function verify(publicKey: PublicKeyInput, message: Uint8Array, signature: Uint8Array): boolean {
  if (!isBytes(message)) return false;
  const pk = tryDecodePublicKey(publicKey);
  if (pk === null) return false;
  const sig = tryDecodeSignature(signature);
  if (sig === null || sig.is0()) return false;
  return verifyPoints(pk, hashToG2(message), sig);
}

/**
 * Aggregate(signature_1, …, signature_n): the sum of the decoded signatures. Throws
 * CRYPTO_BAD_PARAMETER for an empty list and CRYPTO_BAD_SIGNATURE (detail.position) for an
 * undecodable one.
 */
export function aggregateSignatures(signatures: readonly Uint8Array[]): Uint8Array {
  if (!Array.isArray(signatures) || signatures.length === 0) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'cannot aggregate an empty list of signatures');
  }
  let acc = G2.ZERO;
  signatures.forEach((s, position) => {
    try {
      acc = acc.add(decodeSignature(s));
    } catch (e) {
      throw new CryptoError('CRYPTO_BAD_SIGNATURE', (e as Error).message, { position });
    }
  });
  return encodeSignature(acc);
}

function aggregatePublicKeyPoints(publicKeys: readonly PublicKeyInput[]): G1Point {
  if (!Array.isArray(publicKeys) || publicKeys.length === 0) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'cannot aggregate an empty list of public keys');
  }
  let acc = G1.ZERO;
  publicKeys.forEach((pk, position) => {
    try {
      acc = acc.add(publicKeyPoint(pk));
    } catch (e) {
      const code = (e as CryptoError).code === 'CRYPTO_BAD_LENGTH' ? 'CRYPTO_BAD_LENGTH' : 'CRYPTO_BAD_KEY';
      throw new CryptoError(code, (e as Error).message, { position });
    }
  });
  return acc;
}

/**
 * eth_aggregate_pubkeys: sum of KeyValidate'd public keys. Throws CRYPTO_BAD_PARAMETER for an
 * empty list and CRYPTO_BAD_KEY (detail.position) for an invalid key.
 */
export function aggregatePublicKeys(publicKeys: readonly PublicKeyInput[]): Uint8Array {
  return encodePublicKey(aggregatePublicKeyPoints(publicKeys));
}

/**
 * FastAggregateVerify: many signers, one message. Every key must pass KeyValidate and have a
 * checked proof of possession. False for an empty key list, any invalid key or signature.
 */
export function fastAggregateVerify(
  publicKeys: readonly PublicKeyInput[],
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!Array.isArray(publicKeys) || publicKeys.length === 0 || !isBytes(message)) return false;
  let agg: G1Point;
  try {
    agg = aggregatePublicKeyPoints(publicKeys);
  } catch {
    return false;
  }
  const sig = tryDecodeSignature(signature);
  if (sig === null || sig.is0() || agg.is0()) return false;
  return verifyPoints(agg, hashToG2(message), sig);
}

/**
 * AggregateVerify: signer i signed messages[i]. False for empty or mismatched lists, duplicate
 * messages (the basic-scheme rule, kept here as defence in depth), invalid keys or signature.
 */
export function aggregateVerify(
  publicKeys: readonly PublicKeyInput[],
  messages: readonly Uint8Array[],
  signature: Uint8Array,
): boolean {
  if (!Array.isArray(publicKeys) || !Array.isArray(messages)) return false;
  if (publicKeys.length === 0 || publicKeys.length !== messages.length) return false;
  const seen = new Set<string>();
  for (const m of messages) {
    if (!isBytes(m)) return false;
    const key = bytesToHex(m);
    if (seen.has(key)) return false;
    seen.add(key);
  }
  const pairs: { publicKey: G1Point; hashed: G2Point }[] = [];
  for (let i = 0; i < publicKeys.length; i++) {
    const pk = tryDecodePublicKey(publicKeys[i]);
    if (pk === null) return false;
    pairs.push({ publicKey: pk, hashed: hashToG2(messages[i]!) });
  }
  const sig = tryDecodeSignature(signature);
  if (sig === null || sig.is0()) return false;
  return verifyPairsPoints(pairs, sig);
}

/** PopProve: a signature over the 48-byte public key under the POP DST. */
export function popProve(secretKey: Uint8Array): Uint8Array {
  const sk = secretKeyToScalar(secretKey);
  const pk = encodePublicKey(G1.BASE.multiply(sk));
  return encodeSignature(signPoint(sk, pk, DST_POP));
}

/** PopVerify: false for an invalid key, proof or pairing mismatch. */
export function popVerify(publicKey: Uint8Array, proof: Uint8Array): boolean {
  const pk = tryDecodePublicKey(publicKey);
  if (pk === null) return false;
  const sig = tryDecodeSignature(proof);
  if (sig === null || sig.is0()) return false;
  return verifyPoints(pk, hashToG2(publicKey, DST_POP), sig);
}

/** KeyValidate as a predicate. */
export function isValidPublicKey(publicKey: Uint8Array): boolean {
  return tryDecodePublicKey(publicKey) !== null;
}

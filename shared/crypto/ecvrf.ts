/**
 * ECVRF-EDWARDS25519-SHA512-TAI, exactly as RFC 9381 (suite_string 0x03).
 *
 * - Keys are RFC 8032 Ed25519 keys: the secret key is a 32-byte seed, the VRF scalar `x` is the
 *   clamped low half of SHA-512(seed), and the public key is the encoding of Y = x*B.
 * - encode_to_curve is try-and-increment (§5.4.1.1) with encode_to_curve_salt = PK_string.
 * - Nonce generation is the RFC 8032 §5.1.6 construction required by this suite (§5.4.2.2).
 * - Challenges are truncated to cLen = 16 bytes (§5.4.3); proofs are Gamma(32) ‖ c(16) ‖ s(32).
 * - Verification validates the public key (§5.4.5: reject small-order Y), decodes points strictly
 *   per RFC 8032 §5.1.3 (rejects non-canonical y ≥ p and x = 0 with the sign bit set) and rejects
 *   s ≥ L (§5.4.4).
 *
 * Proving uses noble's constant-time multiplication for secret scalars; verification uses the
 * variable-time path because every input is public.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { assertBytes, bigIntToBytesLE, bytesToBigIntLE, concatBytes } from '../bytes.ts';
import { CryptoError } from '../errors.ts';

type Point = InstanceType<typeof ed25519.Point>;
const Point = ed25519.Point;
/** Order of the prime-order subgroup, L = 2^252 + 27742317777372353535851937790883648493. */
const L = Point.Fn.ORDER;

export const VRF_SECRET_KEY_LENGTH = 32;
export const VRF_PUBLIC_KEY_LENGTH = 32;
export const VRF_PROOF_LENGTH = 80;
export const VRF_OUTPUT_LENGTH = 64;

const SUITE = 0x03;
const PT_LEN = 32;
const C_LEN = 16;
const Q_LEN = 32;

/** Why a proof failed verification. Stable codes: safe to log, count and branch on. */
export type VrfRejectReason =
  /** The public key is not 32 bytes. */
  | 'BAD_PUBLIC_KEY_LENGTH'
  /** The proof is not 80 bytes. */
  | 'BAD_PROOF_LENGTH'
  /** The public key does not decode to a curve point (RFC 8032 §5.1.3, strict). */
  | 'INVALID_PUBLIC_KEY'
  /** The public key is a small-order point (RFC 9381 §5.4.5 validate_key). */
  | 'SMALL_ORDER_PUBLIC_KEY'
  /** Gamma, the first 32 bytes of the proof, does not decode to a curve point. */
  | 'INVALID_GAMMA'
  /** s, the last 32 bytes of the proof, is not a canonical scalar (s ≥ L). */
  | 'NON_CANONICAL_S'
  /** The recomputed challenge differs: wrong key, wrong alpha, or a tampered proof. */
  | 'CHALLENGE_MISMATCH';

export type VrfVerifyResult =
  | { readonly valid: true; readonly beta: Uint8Array }
  | { readonly valid: false; readonly reason: VrfRejectReason };

interface ExpandedKey {
  /** The clamped RFC 8032 scalar, not reduced mod L (the value the RFC prints as `x`). */
  readonly clamped: bigint;
  /** `clamped mod L`, the scalar actually multiplied (all points involved lie in the L-subgroup). */
  readonly x: bigint;
  /** Upper half of SHA-512(secret key): the nonce key of RFC 8032 §5.1.6. */
  readonly prefix: Uint8Array;
  readonly Y: Point;
  readonly pk: Uint8Array;
}

function expandSecretKey(secretKey: Uint8Array): ExpandedKey {
  assertBytes(secretKey, VRF_SECRET_KEY_LENGTH, 'VRF secret key', 'CRYPTO_BAD_KEY');
  const h = sha512(secretKey);
  const head = h.slice(0, 32);
  head[0]! &= 248;
  head[31]! &= 127;
  head[31]! |= 64;
  const clamped = bytesToBigIntLE(head);
  const x = clamped % L;
  // Unreachable for honest keys (clamped values are 2^254 + 8k); kept so multiply() never sees 0.
  if (x === 0n) throw new CryptoError('CRYPTO_BAD_KEY', 'VRF secret scalar is zero mod L');
  const Y = Point.BASE.multiply(x);
  return { clamped, x, prefix: h.slice(32, 64), Y, pk: Y.toBytes() };
}

/** RFC 9381 string_to_point: strict RFC 8032 §5.1.3 decoding, `undefined` for INVALID. */
function stringToPoint(bytes: Uint8Array): Point | undefined {
  try {
    return Point.fromBytes(bytes, false);
  } catch {
    return undefined;
  }
}

/** §5.4.1.1 ECVRF_encode_to_curve_try_and_increment, salt = PK_string. */
function encodeToCurve(pk: Uint8Array, alpha: Uint8Array): { H: Point; ctr: number } {
  const prefix = concatBytes(new Uint8Array([SUITE, 0x01]), pk, alpha);
  const buf = new Uint8Array(prefix.length + 2);
  buf.set(prefix, 0);
  // buf[prefix.length] = ctr, buf[prefix.length + 1] = 0x00 (domain separator back).
  for (let ctr = 0; ctr <= 255; ctr++) {
    buf[prefix.length] = ctr;
    const candidate = stringToPoint(sha512(buf).subarray(0, PT_LEN));
    if (candidate === undefined) continue;
    const H = candidate.clearCofactor();
    if (!H.is0()) return { H, ctr };
  }
  // Probability about 2^-256: every one of 256 hashes missed the curve.
  throw new CryptoError('CRYPTO_BAD_PARAMETER', 'encode_to_curve: no valid point for ctr in 0..255');
}

/** §5.4.2.2 nonce generation (RFC 8032 §5.1.6 steps 2–3): k = SHA-512(prefix ‖ h_string) mod L. */
function nonceGeneration(prefix: Uint8Array, hString: Uint8Array): { kString: Uint8Array; k: bigint } {
  const kString = sha512(concatBytes(prefix, hString));
  return { kString, k: bytesToBigIntLE(kString) % L };
}

/** §5.4.3 challenge generation over (Y, H, Gamma, U, V), truncated to cLen = 16 bytes. */
function challenge(
  pk: Uint8Array,
  hString: Uint8Array,
  gamma: Point,
  U: Point,
  V: Point,
): { cString: Uint8Array; c: bigint } {
  const digest = sha512(
    concatBytes(
      new Uint8Array([SUITE, 0x02]),
      pk,
      hString,
      gamma.toBytes(),
      U.toBytes(),
      V.toBytes(),
      new Uint8Array([0x00]),
    ),
  );
  const cString = digest.slice(0, C_LEN);
  return { cString, c: bytesToBigIntLE(cString) };
}

/** Constant-time scalar multiplication that tolerates a zero scalar (noble's multiply rejects 0). */
function mulSecret(P: Point, k: bigint): Point {
  return k === 0n ? Point.ZERO : P.multiply(k);
}

/** §5.2 proof_to_hash from an already-decoded Gamma. */
function gammaToHash(gamma: Point): Uint8Array {
  return sha512(
    concatBytes(new Uint8Array([SUITE, 0x03]), gamma.clearCofactor().toBytes(), new Uint8Array([0x00])),
  );
}

type DecodedProof = { gamma: Point; c: bigint; s: bigint } | { reason: 'INVALID_GAMMA' | 'NON_CANONICAL_S' };

/** §5.4.4 ECVRF_decode_proof. The caller has checked the length. */
function decodeProof(proof: Uint8Array): DecodedProof {
  const gamma = stringToPoint(proof.subarray(0, PT_LEN));
  if (gamma === undefined) return { reason: 'INVALID_GAMMA' };
  const c = bytesToBigIntLE(proof.subarray(PT_LEN, PT_LEN + C_LEN));
  const s = bytesToBigIntLE(proof.subarray(PT_LEN + C_LEN, PT_LEN + C_LEN + Q_LEN));
  if (s >= L) return { reason: 'NON_CANONICAL_S' };
  return { gamma, c, s };
}

/** The VRF public key for a 32-byte secret key (identical to its Ed25519 public key). */
export function vrfPublicKey(secretKey: Uint8Array): Uint8Array {
  return expandSecretKey(secretKey).pk;
}

/**
 * Every intermediate value of one proof, in the RFC's byte encodings. Exists so tests can check
 * the RFC 9381 Appendix B.3 intermediates (x, ctr, H, k, U, V); use {@link vrfProve} otherwise.
 */
export interface VrfProveTrace {
  readonly publicKey: Uint8Array;
  /** The clamped secret scalar, 32 bytes little-endian, not reduced mod L. */
  readonly x: Uint8Array;
  /** The try-and-increment counter that produced H. */
  readonly ctr: number;
  readonly H: Uint8Array;
  /** The 64-byte nonce hash before reduction. */
  readonly kString: Uint8Array;
  /** k = kString mod L, 32 bytes little-endian. */
  readonly k: Uint8Array;
  readonly gamma: Uint8Array;
  readonly U: Uint8Array;
  readonly V: Uint8Array;
  readonly c: Uint8Array;
  readonly s: Uint8Array;
  readonly proof: Uint8Array;
  readonly beta: Uint8Array;
}

/** {@link vrfProve} returning all intermediate values (for test vectors and debugging). */
export function vrfProveTrace(secretKey: Uint8Array, alpha: Uint8Array): VrfProveTrace {
  assertBytes(alpha, undefined, 'VRF input alpha', 'CRYPTO_BAD_PARAMETER');
  const key = expandSecretKey(secretKey);
  const { H, ctr } = encodeToCurve(key.pk, alpha);
  const hString = H.toBytes();
  const gamma = H.multiply(key.x);
  const { kString, k } = nonceGeneration(key.prefix, hString);
  const U = mulSecret(Point.BASE, k);
  const V = mulSecret(H, k);
  const { cString, c } = challenge(key.pk, hString, gamma, U, V);
  const s = (k + c * key.x) % L;
  const sString = bigIntToBytesLE(s, Q_LEN);
  const gammaString = gamma.toBytes();
  return {
    publicKey: key.pk,
    x: bigIntToBytesLE(key.clamped, 32),
    ctr,
    H: hString,
    kString,
    k: bigIntToBytesLE(k, Q_LEN),
    gamma: gammaString,
    U: U.toBytes(),
    V: V.toBytes(),
    c: cString,
    s: sString,
    proof: concatBytes(gammaString, cString, sString),
    beta: gammaToHash(gamma),
  };
}

/** RFC 9381 ECVRF_prove: an 80-byte proof pi for input `alpha` under a 32-byte secret key. */
export function vrfProve(secretKey: Uint8Array, alpha: Uint8Array): Uint8Array {
  return vrfProveTrace(secretKey, alpha).proof;
}

/**
 * RFC 9381 ECVRF_verify with validate_key = TRUE. Never throws for malformed keys or proofs (they
 * come from the network): it returns `{ valid: false, reason }`. Throws a CryptoError only when an
 * argument is not a Uint8Array at all (a programming error).
 */
export function vrfVerify(publicKey: Uint8Array, alpha: Uint8Array, proof: Uint8Array): VrfVerifyResult {
  assertBytes(publicKey, undefined, 'VRF public key', 'CRYPTO_BAD_KEY');
  assertBytes(alpha, undefined, 'VRF input alpha', 'CRYPTO_BAD_PARAMETER');
  assertBytes(proof, undefined, 'VRF proof', 'CRYPTO_BAD_PROOF');
  if (publicKey.length !== VRF_PUBLIC_KEY_LENGTH) return { valid: false, reason: 'BAD_PUBLIC_KEY_LENGTH' };
  if (proof.length !== VRF_PROOF_LENGTH) return { valid: false, reason: 'BAD_PROOF_LENGTH' };
  const Y = stringToPoint(publicKey);
  if (Y === undefined) return { valid: false, reason: 'INVALID_PUBLIC_KEY' };
  if (Y.isSmallOrder()) return { valid: false, reason: 'SMALL_ORDER_PUBLIC_KEY' };
  const decoded = decodeProof(proof);
  if ('reason' in decoded) return { valid: false, reason: decoded.reason };
  const { gamma, c, s } = decoded;
  const { H } = encodeToCurve(publicKey, alpha);
  // U = s*B - c*Y, V = s*H - c*Gamma. c < 2^128 < L and s < L, so both are in range.
  const U = Point.BASE.multiplyUnsafe(s).subtract(Y.multiplyUnsafe(c));
  const V = H.multiplyUnsafe(s).subtract(gamma.multiplyUnsafe(c));
  const expected = challenge(publicKey, H.toBytes(), gamma, U, V).c;
  if (expected !== c) return { valid: false, reason: 'CHALLENGE_MISMATCH' };
  return { valid: true, beta: gammaToHash(gamma) };
}

/**
 * RFC 9381 ECVRF_proof_to_hash: the 64-byte output beta of a proof. It does NOT verify the proof;
 * call it only on proofs that {@link vrfVerify} accepted (which already returns beta). Throws
 * CryptoError 'CRYPTO_BAD_PROOF' when the proof does not decode.
 */
export function vrfProofToHash(proof: Uint8Array): Uint8Array {
  assertBytes(proof, VRF_PROOF_LENGTH, 'VRF proof', 'CRYPTO_BAD_PROOF');
  const decoded = decodeProof(proof);
  if ('reason' in decoded) {
    throw new CryptoError('CRYPTO_BAD_PROOF', `VRF proof does not decode: ${decoded.reason}`, {
      reason: decoded.reason,
    });
  }
  return gammaToHash(decoded.gamma);
}

/**
 * Byte helpers and one-line boundary assertions. Validate once at the boundary with these, then
 * trust the value inside.
 */
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import { CryptoError, type CryptoErrorCode } from './errors.ts';

export { bytesToHex, concatBytes, hexToBytes };

export function isBytes(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array || (ArrayBuffer.isView(x) && x.constructor.name === 'Uint8Array');
}

/** Asserts `x` is a Uint8Array, of exactly `length` bytes when given. */
export function assertBytes(
  x: unknown,
  length?: number,
  what = 'bytes',
  code: CryptoErrorCode = 'CRYPTO_BAD_LENGTH',
): asserts x is Uint8Array {
  if (!isBytes(x)) throw new CryptoError(code, `${what} must be a Uint8Array`);
  if (length !== undefined && x.length !== length) {
    throw new CryptoError(code, `${what} must be ${length} bytes, got ${x.length}`, {
      expected: length,
      actual: x.length,
    });
  }
}

/** Constant-shape equality (not constant-time; use only on public data). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const textEncoder = new TextEncoder();
export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/** Big-endian unsigned integer from bytes. */
export function bytesToBigIntBE(b: Uint8Array): bigint {
  let x = 0n;
  for (const byte of b) x = (x << 8n) | BigInt(byte);
  return x;
}

/** Little-endian unsigned integer from bytes. */
export function bytesToBigIntLE(b: Uint8Array): bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]!);
  return x;
}

export function bigIntToBytesLE(x: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = x;
  for (let i = 0; i < length; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new CryptoError('CRYPTO_BAD_PARAMETER', `integer does not fit in ${length} bytes`);
  return out;
}

export function bigIntToBytesBE(x: bigint, length: number): Uint8Array {
  return bigIntToBytesLE(x, length).reverse();
}

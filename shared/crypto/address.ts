/**
 * Account addresses: bech32m (BIP-350) with human-readable prefix `pouw` over the first 20 bytes
 * of SHA-256(Ed25519 public key), e.g. `pouw1…` (43 characters).
 *
 * Encoding always produces lowercase. Decoding follows BIP-173/BIP-350: an all-uppercase string is
 * accepted (it is the same address, e.g. from a QR code), mixed case is rejected, and so is a
 * string carrying a bech32 (BIP-173) checksum instead of bech32m. Every rejection is a CryptoError
 * 'CRYPTO_BAD_ADDRESS' whose message names the rule that failed.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bech32, bech32m } from '@scure/base';
import { assertBytes } from '../bytes.ts';
import { CryptoError } from '../errors.ts';

export const ADDRESS_PREFIX = 'pouw';
export const ADDRESS_BYTES = 20;
/** BIP-173/BIP-350 overall length limit. */
export const BECH32_MAX_LENGTH = 90;

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

function bad(message: string, detail: Record<string, unknown> = {}): CryptoError {
  return new CryptoError('CRYPTO_BAD_ADDRESS', message, detail);
}

/** A decoded bech32m string: lowercase prefix and 5-bit data words (checksum removed). */
export interface Bech32mParts {
  readonly prefix: string;
  readonly words: number[];
}

/**
 * Generic bech32m decoder (any prefix, any payload): the BIP-350 rules checked in order, each
 * failure a CryptoError 'CRYPTO_BAD_ADDRESS' with a precise message. {@link decodeAddress} adds our
 * prefix and payload rules on top.
 */
export function decodeBech32m(str: string, limit: number = BECH32_MAX_LENGTH): Bech32mParts {
  if (typeof str !== 'string') throw bad(`address must be a string, got ${typeof str}`);
  if (str.length > limit) throw bad(`too long: ${str.length} characters, the limit is ${limit}`);
  for (let i = 0; i < str.length; i++) {
    const code = str.charCodeAt(i);
    if (code < 33 || code > 126) {
      throw bad(`character out of range (code ${code}) at position ${i}`, { position: i });
    }
  }
  const lower = str.toLowerCase();
  if (str !== lower && str !== str.toUpperCase()) throw bad('mixed-case string');
  const sep = lower.lastIndexOf('1');
  if (sep === -1) throw bad('no separator "1"');
  if (sep === 0) throw bad('empty human-readable prefix');
  const data = lower.slice(sep + 1);
  // With a non-empty prefix, the separator and 6 checksum characters, the minimum length of 8 holds.
  if (data.length < 6) throw bad(`checksum too short: ${data.length} characters after the separator, need 6`);
  for (let i = 0; i < data.length; i++) {
    if (!CHARSET.includes(data[i]!)) {
      const where = i >= data.length - 6 ? 'checksum' : 'data';
      throw bad(`invalid ${where} character "${data[i]}" at position ${sep + 1 + i}`, {
        position: sep + 1 + i,
      });
    }
  }
  const decoded = bech32m.decodeUnsafe(lower, limit);
  if (decoded) return { prefix: decoded.prefix, words: decoded.words };
  if (bech32.decodeUnsafe(lower, limit)) {
    throw bad('bech32 (BIP-173) checksum; addresses use bech32m (BIP-350)');
  }
  throw bad('invalid checksum');
}

/** Encodes 20 address bytes as a `pouw1…` bech32m string. */
export function encodeAddress(bytes: Uint8Array): string {
  assertBytes(bytes, ADDRESS_BYTES, 'address payload', 'CRYPTO_BAD_ADDRESS');
  return bech32m.encode(ADDRESS_PREFIX, bech32m.toWords(bytes));
}

/** The address of an Ed25519 public key: bech32m('pouw', SHA-256(publicKey)[0..20]). */
export function addressFromPublicKey(publicKey: Uint8Array): string {
  assertBytes(publicKey, 32, 'Ed25519 public key', 'CRYPTO_BAD_KEY');
  return encodeAddress(sha256(publicKey).subarray(0, ADDRESS_BYTES));
}

/** Decodes a `pouw1…` address to its 20 bytes, or throws CryptoError 'CRYPTO_BAD_ADDRESS'. */
export function decodeAddress(address: string): Uint8Array {
  const { prefix, words } = decodeBech32m(address);
  if (prefix !== ADDRESS_PREFIX) {
    throw bad(`wrong prefix "${prefix}", expected "${ADDRESS_PREFIX}"`, { prefix });
  }
  // 8-to-5 regrouping: more than 4 padding bits, or non-zero padding, is not a canonical encoding.
  const bytes = bech32m.fromWordsUnsafe(words);
  if (!bytes) throw bad('invalid padding in the 5-to-8 bit conversion');
  if (bytes.length !== ADDRESS_BYTES) {
    throw bad(`wrong payload length: ${bytes.length} bytes, expected ${ADDRESS_BYTES}`, {
      length: bytes.length,
    });
  }
  return bytes;
}

/** True when `value` is a string that {@link decodeAddress} accepts. */
export function isAddress(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    decodeAddress(value);
    return true;
  } catch {
    return false;
  }
}

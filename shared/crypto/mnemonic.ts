/**
 * Wallet recovery phrases and deterministic account keys.
 *
 * - BIP-39 mnemonics over the English wordlist (via @scure/bip39): 24 words (256-bit entropy) by
 *   default, 12 words (128-bit) allowed; other BIP-39 lengths are refused so every wallet has one
 *   of two well-known shapes.
 * - The seed is BIP-39's PBKDF2-HMAC-SHA512(mnemonic, "mnemonic" ‖ passphrase, 2048 rounds, 64 bytes).
 * - Keys are derived from the seed with SLIP-0010 for ed25519: master = HMAC-SHA512(key =
 *   "ed25519 seed", seed); only hardened children exist. Account keys live at
 *   m/44'/7337'/account'/0'/index'. 7337 is a PLACEHOLDER coin type: it is not registered in
 *   SLIP-0044 and must be replaced (which changes every derived key) before a public launch.
 *
 * Input phrases are canonicalised before use: Unicode NFKD, surrounding whitespace trimmed, runs of
 * whitespace collapsed to one space, lowercased. The seed is computed over that canonical form, so
 * "Abandon  abandon …" and "abandon abandon …" restore the same wallet.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import {
  entropyToMnemonic as bip39EntropyToMnemonic,
  mnemonicToEntropy as bip39MnemonicToEntropy,
  mnemonicToSeed as bip39MnemonicToSeed,
} from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { assertBytes, utf8 } from '../bytes.ts';
import { CryptoError } from '../errors.ts';
import { addressFromPublicKey } from './address.ts';

/** PLACEHOLDER SLIP-0044 coin type for this network (unregistered; see the module comment). */
export const COIN_TYPE = 7337;
export const MNEMONIC_WORD_COUNTS: readonly number[] = [12, 24];
/** First hardened index, 2^31. */
export const HARDENED_OFFSET = 0x80000000;

const WORD_INDEX = new Map(wordlist.map((w, i) => [w, i]));

function badMnemonic(message: string, detail: Record<string, unknown> = {}): CryptoError {
  return new CryptoError('CRYPTO_BAD_MNEMONIC', message, detail);
}

/** The canonical form of a phrase (NFKD, trimmed, single spaces, lowercase). Does not validate. */
export function normalizeMnemonic(mnemonic: string): string {
  if (typeof mnemonic !== 'string') throw badMnemonic(`mnemonic must be a string, got ${typeof mnemonic}`);
  return mnemonic.normalize('NFKD').trim().toLowerCase().split(/\s+/).join(' ');
}

/**
 * Validates a phrase and returns its canonical form. Throws CryptoError 'CRYPTO_BAD_MNEMONIC'
 * naming the rule that failed: word count, unknown word (with its 1-based position), or checksum.
 */
export function assertMnemonic(mnemonic: string): string {
  const canonical = normalizeMnemonic(mnemonic);
  const words = canonical === '' ? [] : canonical.split(' ');
  if (!MNEMONIC_WORD_COUNTS.includes(words.length)) {
    throw badMnemonic(`expected 12 or 24 words, got ${words.length}`, { words: words.length });
  }
  words.forEach((w, i) => {
    if (!WORD_INDEX.has(w)) {
      throw badMnemonic(`unknown word "${w}" at position ${i + 1}`, { position: i + 1 });
    }
  });
  try {
    bip39MnemonicToEntropy(canonical, wordlist);
  } catch {
    throw badMnemonic('checksum mismatch: the last word does not match the others (typo or wrong order?)');
  }
  return canonical;
}

/** True when {@link assertMnemonic} accepts the phrase. */
export function validateMnemonic(mnemonic: string): boolean {
  try {
    assertMnemonic(mnemonic);
    return true;
  } catch {
    return false;
  }
}

/**
 * A new English mnemonic. Without arguments: 24 words from 32 bytes of the platform CSPRNG
 * (`crypto.getRandomValues`). With `entropy`: the phrase encoding exactly those bytes, 32 bytes
 * for 24 words or 16 bytes for 12 words (for tests, or entropy gathered elsewhere).
 */
export function generateMnemonic(entropy?: Uint8Array): string {
  const bytes = entropy ?? randomBytes(32);
  assertBytes(bytes, undefined, 'mnemonic entropy', 'CRYPTO_BAD_PARAMETER');
  if (bytes.length !== 16 && bytes.length !== 32) {
    throw new CryptoError(
      'CRYPTO_BAD_PARAMETER',
      `mnemonic entropy must be 16 bytes (12 words) or 32 bytes (24 words), got ${bytes.length}`,
    );
  }
  return bip39EntropyToMnemonic(bytes, wordlist);
}

/** The entropy a valid phrase encodes (16 or 32 bytes). */
export function mnemonicToEntropy(mnemonic: string): Uint8Array {
  return bip39MnemonicToEntropy(assertMnemonic(mnemonic), wordlist);
}

/**
 * The 64-byte BIP-39 seed: PBKDF2-HMAC-SHA512 over the canonical phrase with salt
 * "mnemonic" ‖ NFKD(passphrase), 2048 iterations. Validates the phrase first.
 */
export async function mnemonicToSeed(mnemonic: string, passphrase = ''): Promise<Uint8Array> {
  const canonical = assertMnemonic(mnemonic);
  if (typeof passphrase !== 'string') {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', `passphrase must be a string, got ${typeof passphrase}`);
  }
  return bip39MnemonicToSeed(canonical, passphrase);
}

/** A SLIP-0010 ed25519 extended private key. */
export interface Slip10Node {
  /** 32 bytes: used directly as an Ed25519 secret key (RFC 8032 seed). */
  readonly privateKey: Uint8Array;
  readonly chainCode: Uint8Array;
}

const ED25519_SEED_KEY = utf8('ed25519 seed');

function splitI(I: Uint8Array): Slip10Node {
  return { privateKey: I.slice(0, 32), chainCode: I.slice(32, 64) };
}

/** SLIP-0010 master key for ed25519 from a 16..64-byte seed. */
export function slip10MasterKey(seed: Uint8Array): Slip10Node {
  assertBytes(seed, undefined, 'SLIP-0010 seed', 'CRYPTO_BAD_LENGTH');
  if (seed.length < 16 || seed.length > 64) {
    throw new CryptoError('CRYPTO_BAD_LENGTH', `SLIP-0010 seed must be 16..64 bytes, got ${seed.length}`, {
      actual: seed.length,
    });
  }
  return splitI(hmac(sha512, ED25519_SEED_KEY, seed));
}

function assertIndex(index: number, what: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= HARDENED_OFFSET) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', `${what} must be an integer in 0..2^31-1, got ${index}`);
  }
}

/**
 * SLIP-0010 CKDpriv for ed25519, hardened child `index'` (pass the index without the 2^31 offset):
 * I = HMAC-SHA512(key = chainCode, 0x00 ‖ privateKey ‖ ser32(index + 2^31)).
 */
export function slip10DeriveHardened(parent: Slip10Node, index: number): Slip10Node {
  assertIndex(index, 'SLIP-0010 child index');
  const data = new Uint8Array(37);
  data.set(parent.privateKey, 1);
  new DataView(data.buffer).setUint32(33, index + HARDENED_OFFSET, false);
  return splitI(hmac(sha512, parent.chainCode, data));
}

/**
 * Parses "m/44'/7337'/0'/0'/0'" into [44, 7337, 0, 0, 0]. Every element must be hardened
 * (suffix ', h or H): ed25519 has no normal derivation.
 */
export function parseHardenedPath(path: string): number[] {
  if (typeof path !== 'string')
    throw new CryptoError('CRYPTO_BAD_PARAMETER', 'derivation path must be a string');
  const parts = path.split('/');
  if (parts[0] !== 'm')
    throw new CryptoError('CRYPTO_BAD_PARAMETER', `derivation path must start with "m": ${path}`);
  return parts.slice(1).map((part, i) => {
    const m = /^(\d+)['hH]$/.exec(part);
    if (!m) {
      throw new CryptoError(
        'CRYPTO_BAD_PARAMETER',
        `path element ${i + 1} "${part}" is not hardened (ed25519 supports hardened derivation only)`,
      );
    }
    const index = Number(m[1]);
    assertIndex(index, `path element ${i + 1}`);
    return index;
  });
}

/** Derives the node at `path` (a string, or hardened indices without the 2^31 offset). */
export function slip10DerivePath(seed: Uint8Array, path: string | readonly number[]): Slip10Node {
  const indices = typeof path === 'string' ? parseHardenedPath(path) : path;
  let node = slip10MasterKey(seed);
  for (const index of indices) node = slip10DeriveHardened(node, index);
  return node;
}

/** The derivation path of an account key: m/44'/7337'/account'/0'/index'. */
export function accountPath(account = 0, index = 0): string {
  assertIndex(account, 'account');
  assertIndex(index, 'index');
  return `m/44'/${COIN_TYPE}'/${account}'/0'/${index}'`;
}

export interface AccountKey {
  readonly path: string;
  /** 32-byte Ed25519 secret key (RFC 8032 seed). */
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly address: string;
}

/** The key pair and address at m/44'/7337'/account'/0'/index' of a BIP-39 seed. */
export function deriveAccountKey(seed: Uint8Array, account = 0, index = 0): AccountKey {
  const path = accountPath(account, index);
  const { privateKey } = slip10DerivePath(seed, [44, COIN_TYPE, account, 0, index]);
  const publicKey = ed25519.getPublicKey(privateKey);
  return { path, secretKey: privateKey, publicKey, address: addressFromPublicKey(publicKey) };
}

export interface Wallet {
  /** The 64-byte BIP-39 seed. Secret: anyone holding it controls every account. */
  readonly seed: Uint8Array;
  /** Account key at m/44'/7337'/account'/0'/index'. */
  derive(account?: number, index?: number): AccountKey;
  /** The default key, account 0 index 0. */
  readonly primary: AccountKey;
}

/** Restores a wallet from its phrase and optional BIP-39 passphrase (a different passphrase is a different wallet). */
export async function walletFromMnemonic(mnemonic: string, passphrase = ''): Promise<Wallet> {
  const seed = await mnemonicToSeed(mnemonic, passphrase);
  return {
    seed,
    derive: (account = 0, index = 0) => deriveAccountKey(seed, account, index),
    primary: deriveAccountKey(seed, 0, 0),
  };
}

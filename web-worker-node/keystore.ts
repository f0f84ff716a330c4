/**
 * The volunteer's keys at rest, in IndexedDB (via `idb`): one database, one object store, two records.
 * - `node`: the node identity, an Ed25519 seed (32 random bytes) and its public key. It signs IT_RES
 *   and is the libp2p identity too (`generateKeyPairFromSeed('Ed25519', seed)` of @libp2p/crypto
 *   gives the same key pair), so the peer id is stable across reloads.
 * - `wallet`: a BIP-39 mnemonic (24 words) and the address it derives to (SLIP-10, m/44'/7337'/0'/0'/0',
 *   bech32m `pouw1…`; shared/crypto/mnemonic.ts). Block rewards are paid there.
 * Both are created on first use, in one read-write transaction each, so two tabs opening a fresh
 * profile at once end up with the same keys. Every read re-derives what the record claims (public
 * key from seed, address from mnemonic) and a record that does not match itself is a
 * VolunteerError('KEYSTORE_CORRUPT'), never replaced silently: a wallet is only overwritten by an
 * explicit import.
 *
 * The records are not encrypted: this is a hot wallet for mining rewards in a browser profile; the
 * Wallet page offers the phrase for backup and moving funds to cold storage.
 */
import { type DBSchema, type IDBPDatabase, openDB } from 'idb';
import { bytesToHex, equalBytes } from '../shared/bytes.ts';
import { decodeAddress } from '../shared/crypto/address.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import {
  type AccountKey,
  assertMnemonic,
  generateMnemonic,
  walletFromMnemonic,
} from '../shared/crypto/mnemonic.ts';
import { VolunteerError } from '../shared/errors.ts';

export const KEYSTORE_DB = 'pouw-keystore';
const DB_VERSION = 1;
const RECORD_VERSION = 1;

interface NodeRecord {
  id: 'node';
  version: number;
  seed: Uint8Array;
  publicKey: Uint8Array;
  createdAt: number;
}

interface WalletRecord {
  id: 'wallet';
  version: number;
  mnemonic: string;
  address: string;
  createdAt: number;
}

type KeyRecord = NodeRecord | WalletRecord;

interface KeystoreSchema extends DBSchema {
  keys: { key: KeyRecord['id']; value: KeyRecord };
}

export interface NodeIdentity {
  /** Ed25519 seed (RFC 8032 secret key). */
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface WalletKeys extends AccountKey {
  /** The address's 20-byte payload (what block templates pay). */
  addressBytes: Uint8Array;
}

function corrupt(record: string, message: string): never {
  throw new VolunteerError('KEYSTORE_CORRUPT', `keystore ${record} record: ${message}`, 'REJECT', { record });
}

function isBytes32(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && x.length === 32;
}

export class Keystore {
  private wallets = new Map<string, WalletKeys>();

  private constructor(private readonly db: IDBPDatabase<KeystoreSchema>) {}

  /** Opens (creating if needed) the keystore database `name`. */
  static async open(name = KEYSTORE_DB): Promise<Keystore> {
    const db = await openDB<KeystoreSchema>(name, DB_VERSION, {
      upgrade(d) {
        d.createObjectStore('keys', { keyPath: 'id' });
      },
    });
    return new Keystore(db);
  }

  close(): void {
    this.db.close();
  }

  /** The node identity, created on first use. Throws KEYSTORE_CORRUPT for a bad record. */
  async nodeIdentity(): Promise<NodeIdentity> {
    const record = await this.getOrCreate('node', async () => {
      const seed = crypto.getRandomValues(new Uint8Array(32));
      return {
        id: 'node',
        version: RECORD_VERSION,
        seed,
        publicKey: await nobleEd25519.getPublicKey(seed),
        createdAt: Date.now(),
      };
    });
    return this.checkNode(record);
  }

  /** Replaces the node identity with a fresh one (the peer id changes; funds are not affected). */
  async resetNodeIdentity(): Promise<NodeIdentity> {
    await this.db.delete('keys', 'node');
    return this.nodeIdentity();
  }

  /** The wallet's primary account key, created (new mnemonic) on first use. Throws KEYSTORE_CORRUPT for a bad record. */
  async wallet(): Promise<WalletKeys> {
    const record = await this.getOrCreate('wallet', async () => {
      const mnemonic = generateMnemonic();
      const { primary } = await walletFromMnemonic(mnemonic);
      return {
        id: 'wallet',
        version: RECORD_VERSION,
        mnemonic,
        address: primary.address,
        createdAt: Date.now(),
      };
    });
    return this.checkWallet(record);
  }

  /** The wallet's recovery phrase (for backup). Throws KEYSTORE_CORRUPT for a bad record. */
  async exportMnemonic(): Promise<string> {
    await this.wallet();
    return ((await this.db.get('keys', 'wallet')) as WalletRecord).mnemonic;
  }

  /**
   * Replaces the wallet with the one `phrase` restores. A phrase that does not validate throws
   * CryptoError('CRYPTO_BAD_MNEMONIC') and changes nothing.
   */
  async importMnemonic(phrase: string): Promise<WalletKeys> {
    const mnemonic = assertMnemonic(phrase);
    const { primary } = await walletFromMnemonic(mnemonic);
    const record: WalletRecord = {
      id: 'wallet',
      version: RECORD_VERSION,
      mnemonic,
      address: primary.address,
      createdAt: Date.now(),
    };
    await this.db.put('keys', record);
    return this.checkWallet(record);
  }

  /**
   * Reads record `id`; if absent, stores `make()`'s, unless another tab stored one meanwhile (the
   * check and the write share one transaction; `make` runs before it, as key generation is async).
   */
  private async getOrCreate(id: KeyRecord['id'], make: () => Promise<KeyRecord>): Promise<unknown> {
    const existing = await this.db.get('keys', id);
    if (existing !== undefined) return existing;
    const fresh = await make();
    const tx = this.db.transaction('keys', 'readwrite');
    const raced = await tx.store.get(id);
    if (raced === undefined) await tx.store.add(fresh);
    await tx.done;
    return raced ?? fresh;
  }

  private async checkNode(r: unknown): Promise<NodeIdentity> {
    const rec = r as Partial<NodeRecord> | null;
    if (typeof rec !== 'object' || rec === null) corrupt('node', 'not an object');
    if (rec.version !== RECORD_VERSION) corrupt('node', `unknown version ${String(rec.version)}`);
    if (!isBytes32(rec.seed)) corrupt('node', 'seed is not 32 bytes');
    if (!isBytes32(rec.publicKey)) corrupt('node', 'public key is not 32 bytes');
    const derived = await nobleEd25519.getPublicKey(rec.seed);
    if (!equalBytes(derived, rec.publicKey)) corrupt('node', 'public key does not match the seed');
    return { secretKey: rec.seed.slice(), publicKey: rec.publicKey.slice() };
  }

  private async checkWallet(r: unknown): Promise<WalletKeys> {
    const rec = r as Partial<WalletRecord> | null;
    if (typeof rec !== 'object' || rec === null) corrupt('wallet', 'not an object');
    if (rec.version !== RECORD_VERSION) corrupt('wallet', `unknown version ${String(rec.version)}`);
    if (typeof rec.mnemonic !== 'string' || typeof rec.address !== 'string')
      corrupt('wallet', 'mnemonic or address missing');
    let canonical: string;
    try {
      canonical = assertMnemonic(rec.mnemonic);
    } catch (e) {
      corrupt('wallet', `stored phrase does not validate (${(e as Error).message})`);
    }
    const cached = this.wallets.get(canonical);
    const keys =
      cached ??
      (await (async () => {
        const { primary } = await walletFromMnemonic(canonical);
        return { ...primary, addressBytes: decodeAddress(primary.address) };
      })());
    if (keys.address !== rec.address)
      corrupt('wallet', `stored address ${rec.address} is not the phrase's (${keys.address})`);
    // PBKDF2 (2,048 rounds of SHA-512) per read would cost ~100 ms: derive once per phrase.
    this.wallets.set(canonical, keys);
    return { ...keys, secretKey: keys.secretKey.slice(), publicKey: keys.publicKey.slice() };
  }
}

/** Short fingerprint of a public key, for display (first 8 bytes, hex). */
export function keyFingerprint(publicKey: Uint8Array): string {
  return bytesToHex(publicKey.subarray(0, 8));
}

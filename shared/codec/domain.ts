/**
 * The one way we hash and sign protocol objects: SHA-256 over a domain prefix and the object's SSZ
 * bytes. The prefix is `len(tag) ‖ tag ‖ len(chainId) ‖ chainId` (length-prefixed, so no two
 * (tag, chainId) pairs share a prefix), which stops a signature or hash made for one message kind or
 * one chain from being replayed as another.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../bytes.ts';
import { CryptoError } from '../errors.ts';
import type { Codec } from './codec.ts';

/** Every domain in use. Adding a message kind means adding its tag here (typos do not compile). */
export const DOMAIN_TAGS = [
  'pouw/tx/v1',
  'pouw/wtx/v1',
  'pouw/merkle/v1',
  'pouw/utxo-key/v1',
  'pouw/utxo/v1',
  'pouw/block/v1',
  'pouw/itres/v1',
  'pouw/znb/v1',
  'pouw/proposal/v1',
  'pouw/prevote/v1',
  'pouw/precommit/v1',
  'pouw/finality/v1',
  'pouw/dkg/v1',
  'pouw/ticket/v1',
  'pouw/node/v1',
  'pouw/task/v1',
  'pouw/model/v1',
  'pouw/nonce/v1',
  'pouw/work/v1',
  'pouw/test/v1',
  // task membership (ADR 0012): a volunteer's join, the task lead's signed miner set
  'pouw/join/v1',
  'pouw/task-miners/v1',
] as const;
export type DomainTag = (typeof DOMAIN_TAGS)[number];

const CHAIN_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** Chain ids are 1–32 bytes of lowercase ASCII letters, digits and '-', e.g. `pouw-devnet-1`. */
export function assertChainId(chainId: string): void {
  if (typeof chainId !== 'string' || !CHAIN_ID.test(chainId)) {
    throw new CryptoError('CRYPTO_BAD_PARAMETER', `invalid chain id ${JSON.stringify(chainId)}`);
  }
}

const prefixCache = new Map<string, Uint8Array>();

export function domainPrefix(tag: DomainTag, chainId: string): Uint8Array {
  const key = `${tag}\u0000${chainId}`;
  let prefix = prefixCache.get(key);
  if (prefix === undefined) {
    if (!(DOMAIN_TAGS as readonly string[]).includes(tag)) {
      throw new CryptoError('CRYPTO_BAD_PARAMETER', `unknown domain tag ${JSON.stringify(tag)}`);
    }
    assertChainId(chainId);
    const t = utf8(tag);
    const c = utf8(chainId);
    prefix = new Uint8Array(2 + t.length + c.length);
    prefix[0] = t.length;
    prefix.set(t, 1);
    prefix[1 + t.length] = c.length;
    prefix.set(c, 2 + t.length);
    prefixCache.set(key, prefix);
  }
  return prefix;
}

/** SHA-256(prefix(tag, chainId) ‖ payload). */
export function taggedHash(tag: DomainTag, chainId: string, payload: Uint8Array): Uint8Array {
  return sha256.create().update(domainPrefix(tag, chainId)).update(payload).digest();
}

/** The 32-byte message that is signed for `value`: taggedHash over its canonical SSZ encoding. */
export function signingMessage<T>(tag: DomainTag, chainId: string, codec: Codec<T>, value: T): Uint8Array {
  return taggedHash(tag, chainId, codec.encode(value));
}

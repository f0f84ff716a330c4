/**
 * Ed25519 through node:crypto (OpenSSL), behind the shared `Ed25519` interface. Kept out of
 * shared/ so browser bundles never pull in node:crypto. The same strict pre-check as every other
 * implementation runs before OpenSSL's verify (see shared/crypto/ed25519.ts for the pinned rule);
 * OpenSSL then checks the cofactorless equation by encoding [S]B − [k]A and comparing with R.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { assertBytes, bytesToHex, concatBytes, isBytes } from '../shared/bytes.ts';
import {
  BoundedMap,
  checkStrictEncoding,
  type Ed25519,
  nobleEd25519,
  PKCS8_ED25519_PREFIX,
  PUBLIC_KEY_LENGTH,
  SECRET_KEY_LENGTH,
  SPKI_ED25519_PREFIX,
  seedCacheId,
  selectEd25519,
  webCryptoEd25519,
} from '../shared/crypto/ed25519.ts';
import { CryptoError } from '../shared/errors.ts';

interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: Uint8Array;
}

/** Public KeyObjects for repeated keys (accounts reuse keys), bounded. */
const publicKeys = new BoundedMap<string, KeyObject>(1024);
/** Private KeyObjects by `seedCacheId` (never by the seed itself), bounded. */
const signingKeys = new BoundedMap<string, SigningKey>(16);

function signingKey(seed: Uint8Array): SigningKey {
  assertBytes(seed, SECRET_KEY_LENGTH, 'Ed25519 secret key (seed)');
  const id = seedCacheId(seed);
  let entry = signingKeys.get(id);
  if (entry === undefined) {
    const privateKey = createPrivateKey({
      key: Buffer.from(concatBytes(PKCS8_ED25519_PREFIX, seed)),
      format: 'der',
      type: 'pkcs8',
    });
    const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    if (spki.length !== SPKI_ED25519_PREFIX.length + PUBLIC_KEY_LENGTH) {
      throw new CryptoError('CRYPTO_UNAVAILABLE', 'node:crypto returned a malformed Ed25519 public key');
    }
    entry = { privateKey, publicKey: new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length)) };
    signingKeys.set(id, entry);
  }
  return entry;
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = bytesToHex(publicKey);
  let key = publicKeys.get(id);
  if (key === undefined) {
    key = createPublicKey({
      key: Buffer.from(concatBytes(SPKI_ED25519_PREFIX, publicKey)),
      format: 'der',
      type: 'spki',
    });
    publicKeys.set(id, key);
  }
  return key;
}

/** node:crypto implementation: synchronous OpenSSL calls wrapped in the async interface. */
export const nodeCryptoEd25519: Ed25519 = Object.freeze({
  name: 'node:crypto',
  async getPublicKey(secretKey: Uint8Array): Promise<Uint8Array> {
    return signingKey(secretKey).publicKey.slice();
  },
  async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
    const { privateKey } = signingKey(secretKey);
    assertBytes(message, undefined, 'message');
    return new Uint8Array(sign(null, message, privateKey));
  },
  async verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (!isBytes(message)) return false;
    if (checkStrictEncoding(publicKey, signature) !== null) return false;
    try {
      return verify(null, message, publicKeyObject(publicKey), signature);
    } catch {
      return false;
    }
  },
});

let nodeDefault: Promise<Ed25519> | undefined;
/**
 * The fastest working implementation in a Node process, in preference order node:crypto
 * (synchronous OpenSSL, no promise hop through the thread pool), WebCrypto, noble.
 */
export function defaultNodeEd25519(): Promise<Ed25519> {
  nodeDefault ??= selectEd25519([nodeCryptoEd25519, webCryptoEd25519(), nobleEd25519]);
  return nodeDefault;
}

/**
 * Ed25519 sign and verify per implementation (noble, WebCrypto, node:crypto where passed in), with a
 * fixed seed and a fixed 64-byte message. Verify includes the strict pre-check (as in production)
 * with the public key already in the caches, the common case since accounts reuse keys.
 */
import { type Ed25519, nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { CryptoError } from '../../shared/errors.ts';
import type { BenchCase } from '../harness.ts';

const SEED = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 7) & 0xff);
const MESSAGE = Uint8Array.from({ length: 64 }, (_, i) => (i * 13 + 1) & 0xff);

export function ed25519Cases(impls: Ed25519[]): BenchCase[] {
  let publicKey: Uint8Array = new Uint8Array(0);
  let signature: Uint8Array = new Uint8Array(0);
  const prepare = async () => {
    if (signature.length > 0) return;
    publicKey = await nobleEd25519.getPublicKey(SEED);
    signature = await nobleEd25519.sign(SEED, MESSAGE);
  };
  return impls.flatMap((impl): BenchCase[] => [
    {
      group: 'ed25519',
      name: 'sign',
      impl: impl.name,
      setup: prepare,
      run: () => impl.sign(SEED, MESSAGE),
    },
    {
      group: 'ed25519',
      name: 'verify',
      impl: impl.name,
      setup: async () => {
        await prepare();
        if (!(await impl.verify(publicKey, MESSAGE, signature))) {
          throw new CryptoError('CRYPTO_BAD_SIGNATURE', `${impl.name}: verify failed`);
        }
      },
      run: () => impl.verify(publicKey, MESSAGE, signature),
    },
  ]);
}

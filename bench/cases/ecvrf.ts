/**
 * ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381) prove and verify, on noble's edwards25519 points.
 * Portable: runs under Node and inside the browser bench page.
 */
import { hexToBytes } from '../../shared/bytes.ts';
import { vrfProve, vrfPublicKey, vrfVerify } from '../../shared/crypto/ecvrf.ts';
import type { BenchCase } from '../harness.ts';

export function ecvrfCases(): BenchCase[] {
  // Fixed key and input (RFC 9381 Example 17's secret key; a 32-byte alpha like a round seed).
  const secretKey = hexToBytes('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb');
  const alpha = new Uint8Array(32).fill(0x42);
  let publicKey: Uint8Array = new Uint8Array(0);
  let proof: Uint8Array = new Uint8Array(0);
  return [
    {
      group: 'ecvrf',
      name: 'prove',
      impl: 'noble-points',
      run: () => vrfProve(secretKey, alpha),
    },
    {
      group: 'ecvrf',
      name: 'verify',
      impl: 'noble-points',
      setup: () => {
        publicKey = vrfPublicKey(secretKey);
        proof = vrfProve(secretKey, alpha);
      },
      run: () => {
        if (!vrfVerify(publicKey, alpha, proof).valid)
          throw new TypeError('ecvrf bench: proof did not verify');
      },
    },
  ];
}

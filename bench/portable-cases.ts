/**
 * The benchmark cases that run everywhere (Node and Chromium). Node-only implementations are added
 * by bench/run.ts.
 */

import { sha256 } from '@noble/hashes/sha2.js';
import type { Ed25519 } from '../shared/crypto/ed25519.ts';
import { nobleEd25519, webCryptoEd25519 } from '../shared/crypto/ed25519.ts';
import { blsCases } from './cases/bls.ts';
import { ecvrfCases } from './cases/ecvrf.ts';
import { ed25519Cases } from './cases/ed25519.ts';
import { stateTreeCases } from './cases/state-tree.ts';
import type { BenchCase } from './harness.ts';

export async function portableEd25519Impls(): Promise<Ed25519[]> {
  const impls: Ed25519[] = [nobleEd25519];
  try {
    const wc = await webCryptoEd25519();
    impls.push(wc);
  } catch {
    // WebCrypto without Ed25519: only noble is measured; the table shows which ran.
  }
  return impls;
}

export async function portableCases(extraEd25519: Ed25519[] = []): Promise<BenchCase[]> {
  return [
    ...ed25519Cases([...(await portableEd25519Impls()), ...extraEd25519]),
    ...blsCases(),
    ...ecvrfCases(),
    // The state tree at 10^4 entries (10^6 runs in bench/state-tree.ts, Node only).
    ...stateTreeCases({ hashers: [{ name: 'noble', hash: sha256 }], sizes: [10_000], buildCases: false }),
  ];
}

/**
 * A fast stand-in for Ed25519 and BLS partials in the big simulations (the real ones cost ~1 ms and
 * ~12/25 ms in pure JS). Signatures are keyed SHA-256 MACs; the verifier knows every simulated key,
 * so forging still fails: a Byzantine member can sign anything with its own key and nothing with
 * another's. The real path (pinnedVerifier, syncSigningKeys) is exercised by real-crypto tests.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, utf8 } from '../../../shared/bytes.ts';
import type { CommitteeMember } from '../../../shared/chain/types.ts';
import type { ConsensusVerifier, SyncSigningKeys } from '../../../shared/consensus/messages.ts';

function mac(key: Uint8Array, message: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const h = sha256.create().update(key).update(message).digest();
  for (let off = 0; off < length; off += 32) out.set(h.subarray(0, Math.min(32, length - off)), off);
  return out;
}

export interface StandinMember {
  member: CommitteeMember;
  keys: SyncSigningKeys;
}

export class StandinCrypto implements ConsensusVerifier {
  readonly #edKeys = new WeakMap<Uint8Array, Uint8Array>();
  readonly #blsKeys = new WeakMap<Uint8Array, Uint8Array>();
  verifications = 0;

  /** Member i of a simulated committee: public keys are hashes of the secrets. */
  member(label: string, index: number): StandinMember {
    const edSecret = sha256(utf8(`${label}/ed/${index}`));
    const blsSecret = sha256(utf8(`${label}/bls/${index}`));
    const nodeKey = sha256(edSecret);
    const blsPublicShare = new Uint8Array(48);
    blsPublicShare.set(sha256(blsSecret));
    this.#edKeys.set(nodeKey, edSecret);
    this.#blsKeys.set(blsPublicShare, blsSecret);
    return {
      member: { nodeKey, blsPublicShare },
      keys: { sign: (m) => mac(edSecret, m, 64), partialSign: (m) => mac(blsSecret, m, 96) },
    };
  }

  ed25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    this.verifications++;
    const secret = this.#edKeys.get(publicKey);
    return secret !== undefined && signature.length === 64 && equalBytes(mac(secret, message, 64), signature);
  }

  blsPartial(publicShare: Uint8Array, message: Uint8Array, partial: Uint8Array): boolean {
    this.verifications++;
    const secret = this.#blsKeys.get(publicShare);
    return secret !== undefined && partial.length === 96 && equalBytes(mac(secret, message, 96), partial);
  }
}

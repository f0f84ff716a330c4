/**
 * Identifiers and commitments: transaction ids, block hashes, the transaction Merkle root and the
 * keys and values of the UTXO state tree. Every hash is domain-tagged with the chain id (ADR 0002).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, equalBytes } from '../bytes.ts';
import { taggedHash } from '../codec/domain.ts';
import {
  BlockHeader,
  OutPoint,
  type Transaction,
  Transaction as TransactionCodec,
  TxBody,
  TxOut,
} from './types.ts';

/** Id of a transaction: hash of its body only, so witnesses cannot change it (no malleability). */
export function txId(chainId: string, body: TxBody): Uint8Array {
  return taggedHash('pouw/tx/v1', chainId, TxBody.encode(body));
}

/** Hash of the whole transaction, witnesses included: the Merkle leaf, so blocks commit to them. */
export function wtxId(chainId: string, tx: Transaction): Uint8Array {
  return taggedHash('pouw/wtx/v1', chainId, TransactionCodec.encode(tx));
}

/** Block hash and proof of work: double SHA-256 of the tagged serialized header. */
export function blockHash(chainId: string, header: BlockHeader): Uint8Array {
  return sha256(taggedHash('pouw/block/v1', chainId, BlockHeader.encode(header)));
}

/**
 * Merkle root over leaves. Internal node = tagged hash of left ‖ right; an odd node is carried up
 * unchanged (never duplicated, which is what made Bitcoin's tree ambiguous, CVE-2012-2459); the
 * leaf count is mixed into the root so trees of different sizes never share a root.
 */
export function merkleRoot(chainId: string, leaves: readonly Uint8Array[]): Uint8Array {
  let level = leaves.slice();
  while (level.length > 1) level = parentLevel(chainId, level);
  return mixInCount(chainId, leaves.length, level[0] ?? new Uint8Array(32));
}

/** One level up: pairs hashed, an odd last node carried up unchanged. */
function parentLevel(chainId: string, level: readonly Uint8Array[]): Uint8Array[] {
  const next: Uint8Array[] = [];
  for (let i = 0; i < level.length; i += 2) {
    const right = level[i + 1];
    next.push(
      right === undefined ? level[i]! : taggedHash('pouw/merkle/v1', chainId, concatBytes(level[i]!, right)),
    );
  }
  return next;
}

function mixInCount(chainId: string, count: number, node: Uint8Array): Uint8Array {
  const c = new Uint8Array(4);
  new DataView(c.buffer).setUint32(0, count, true);
  return taggedHash('pouw/merkle/v1', chainId, concatBytes(c, node));
}

/** Sibling path for leaf `index`: `null` marks a level where the node was carried up. */
export function merkleProof(
  chainId: string,
  leaves: readonly Uint8Array[],
  index: number,
): (Uint8Array | null)[] {
  const path: (Uint8Array | null)[] = [];
  let level = leaves.slice();
  let i = index;
  while (level.length > 1) {
    path.push((i % 2 === 0 ? level[i + 1] : level[i - 1]) ?? null);
    level = parentLevel(chainId, level);
    i = Math.floor(i / 2);
  }
  return path;
}

export function verifyMerkleProof(
  chainId: string,
  root: Uint8Array,
  leaf: Uint8Array,
  index: number,
  count: number,
  path: readonly (Uint8Array | null)[],
): boolean {
  if (index < 0 || index >= count) return false;
  let node = leaf;
  let i = index;
  for (const sibling of path) {
    // null: carried up (the last node of an odd-length level).
    if (sibling !== null) {
      node = taggedHash(
        'pouw/merkle/v1',
        chainId,
        i % 2 === 0 ? concatBytes(node, sibling) : concatBytes(sibling, node),
      );
    }
    i = Math.floor(i / 2);
  }
  return equalBytes(mixInCount(chainId, count, node), root);
}

/** In-memory map key of an outpoint (hex of its 36-byte encoding). */
export function outpointKey(op: OutPoint): string {
  return bytesToHex(OutPoint.encode(op));
}

/** State-tree key of an outpoint: uniformly distributed, so the tree stays balanced. */
export function stateKey(chainId: string, op: OutPoint): Uint8Array {
  return taggedHash('pouw/utxo-key/v1', chainId, OutPoint.encode(op));
}

/** State-tree value: commits to every field of the output. */
export function stateValue(chainId: string, out: TxOut): Uint8Array {
  return taggedHash('pouw/utxo/v1', chainId, TxOut.encode(out));
}

/**
 * IT_RES: the message a miner broadcasts after every iteration (DESIGN §4.4 step 6), signed with
 * its Ed25519 key over the domain-tagged body. Its id (the tagged hash of the body) is what the
 * message history indexes and its Merkle root is built over, and what peers list in `peerMsgIds`.
 *
 * Blocks name an iteration by its *work id* instead (`workId`): the tagged hash of only the fields
 * the work determines. The other fields (time, loss and accuracy bits within tolerance,
 * residualHash, znbHash, the peer id list) are the miner's free choice, so if `hashMsg` named the
 * IT_RES id, re-signing variants of one iteration would buy fresh headers for the same nonce range
 * (ADR 0009, "hashMsg grinding").
 */
import {
  ByteVectorType,
  ContainerType,
  ListBasicType,
  ListCompositeType,
  UintBigintType,
  UintNumberType,
} from '@chainsafe/ssz';
import { bytesToHex, equalBytes } from '../bytes.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { taggedHash } from '../codec/domain.ts';
import { bytes32 } from '../codec/ssz.ts';
import type { Ed25519 } from '../crypto/ed25519.ts';
import { WorkError } from '../errors.ts';
import { assertMap } from './residual.ts';

/** Hard cap on map entries in one message (4 MiB); the per-task cap is the parameter count. */
export const MAX_MAP_ENTRIES = 1 << 20;
/** Peer messages a miner may apply before one iteration. */
export const MAX_PEER_MSGS = 256;

export const ItResBody = defineCodec(
  'ItResBody',
  new ContainerType({
    taskId: bytes32,
    /** The miner's Ed25519 public key. */
    miner: bytes32,
    epoch: new UintNumberType(2),
    /** The miner's own iteration counter, from 0. */
    iteration: new UintNumberType(4),
    batchId: new UintNumberType(4),
    /** Hash of n after applying the listed peer maps, before this iteration's own map. */
    modelHash: bytes32,
    /** Commitment to the miner's residual after this iteration (float bytes; not replayed exactly). */
    residualHash: bytes32,
    /** IT_RES ids whose maps were applied before this iteration (not yet listed by an earlier one). */
    peerMsgIds: new ListCompositeType(bytes32, MAX_PEER_MSGS),
    map: new ListBasicType(new UintNumberType(4), MAX_MAP_ENTRIES),
    /** Mean batch loss and accuracy, float32 bits. */
    loss: new UintNumberType(4),
    accuracy: new UintNumberType(4),
    /** Zero-nonce block template committed for mining at iteration + k (zero: no commitment). */
    znbHash: bytes32,
    /** Miner's clock, ms. */
    time: new UintBigintType(8),
  }),
);
export type ItResBody = CodecValue<typeof ItResBody>;

export const ItRes = defineCodec(
  'ItRes',
  new ContainerType({ body: ItResBody.ssz, signature: new ByteVectorType(64) }),
);
export type ItRes = CodecValue<typeof ItRes>;

export function itResId(chainId: string, body: ItResBody): Uint8Array {
  return taggedHash('pouw/itres/v1', chainId, ItResBody.encode(body));
}

/**
 * What an iteration's work fixes: whose iteration of which task, on which batch, from which state
 * (modelHash, i.e. n after the peer maps: the peer updates count by their effect on n, so which
 * signed copy of a peer's message was listed does not matter), with which resulting map.
 */
export const ItResWork = defineCodec(
  'ItResWork',
  new ContainerType({
    taskId: bytes32,
    miner: bytes32,
    epoch: new UintNumberType(2),
    iteration: new UintNumberType(4),
    batchId: new UintNumberType(4),
    modelHash: bytes32,
    map: new ListBasicType(new UintNumberType(4), MAX_MAP_ENTRIES),
  }),
);
export type ItResWork = CodecValue<typeof ItResWork>;

export function workOf(body: ItResBody): ItResWork {
  const { taskId, miner, epoch, iteration, batchId, modelHash, map } = body;
  return { taskId, miner, epoch, iteration, batchId, modelHash, map };
}

/**
 * The work id of an IT_RES: H('pouw/work/v1' ‖ chainId ‖ SSZ(work fields)). A block's `hashMsg`,
 * the key of the "already rewarded" set, and what two IT_RES of one (miner, iteration) are
 * compared by.
 */
export function workId(chainId: string, body: ItResBody): Uint8Array {
  return taggedHash('pouw/work/v1', chainId, ItResWork.encode(workOf(body)));
}

/**
 * True when two IT_RES (or bodies) carry the same work: equal work fields, whatever their free
 * fields and signatures. A history that already holds one IT_RES of a (miner, iteration) refuses
 * any other; this tells a re-signed copy of the same work from different work (equivocation).
 */
export function sameWork(a: ItRes | ItResBody, b: ItRes | ItResBody): boolean {
  const x = workOf('body' in a ? a.body : a);
  const y = workOf('body' in b ? b.body : b);
  return equalBytes(ItResWork.encode(x), ItResWork.encode(y));
}

export async function signItRes(
  chainId: string,
  body: ItResBody,
  secretKey: Uint8Array,
  ed: Ed25519,
): Promise<ItRes> {
  return { body, signature: await ed.sign(secretKey, itResId(chainId, body)) };
}

export interface CheckedItRes {
  msg: ItRes;
  id: Uint8Array;
  idHex: string;
  map: Uint32Array;
}

/**
 * Stateless validation of a received IT_RES: map well formed for the task's parameter count and the
 * signature of the claimed miner. Throws WorkError (REJECT) otherwise.
 */
export async function checkItRes(
  chainId: string,
  msg: ItRes,
  parameterCount: number,
  ed: Ed25519,
): Promise<CheckedItRes> {
  const map = Uint32Array.from(msg.body.map);
  assertMap(map, parameterCount);
  const id = itResId(chainId, msg.body);
  if (!(await ed.verify(msg.body.miner, id, msg.signature))) {
    throw new WorkError('ITRES_BAD_SIGNATURE', 'IT_RES signature does not verify for its miner');
  }
  return { msg, id, idHex: bytesToHex(id), map };
}

/**
 * IT_RES: the message a miner broadcasts after every iteration (DESIGN §4.4 step 6), signed with
 * its Ed25519 key over the domain-tagged body. Its id (the tagged hash of the body) is what blocks
 * name in `hashMsg` and what the message history's Merkle root is built over.
 */
import {
  ByteVectorType,
  ContainerType,
  ListBasicType,
  ListCompositeType,
  UintBigintType,
  UintNumberType,
} from '@chainsafe/ssz';
import { bytesToHex } from '../bytes.ts';
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

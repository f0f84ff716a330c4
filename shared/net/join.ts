/**
 * Task membership on the devnet (ADR 0012): the bodies of the join protocol (PROTOCOLS.join) and
 * the two signed objects it carries.
 *
 * - `SignedJoin`: a volunteer asks for a miner slot of a task, signed by its node key (the key that
 *   will sign its IT_RES and is its libp2p identity), naming the address its templates pay.
 * - `SignedMinerSet`: the task's miners, ascending, signed (Ed25519 node key) by the task's lead
 *   supervisor, the committee member `leadIndex(taskId, n)`. The lead admits joins in arrival order
 *   until `minerSlots` are taken and signs once; every other supervisor forwards joins to it and
 *   serves its signed set. A set counts only with the lead's valid signature, checked against the
 *   committee's node keys from the genesis, so one signer means the supervisors never disagree on
 *   a task's miners.
 *
 * A request is `JoinRequest` (with a join, or without one: "what is this task's state?"); the
 * answer is `JoinResponse`, whose `minerSet` is present once the set is signed. Pure: codecs,
 * signing messages and checks only.
 */
import { ByteListType, ContainerType, ListBasicType, ListCompositeType, OptionalType } from '@chainsafe/ssz';
import { bytesToHex, equalBytes, utf8 } from '../bytes.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { signingMessage } from '../codec/domain.ts';
import { bytes20, bytes32, bytes64, uint16 } from '../codec/ssz.ts';
import type { Ed25519 } from '../crypto/ed25519.ts';
import { CryptoError, NetError } from '../errors.ts';
import { TaskDefinition } from '../pouw/task.ts';
import { MAX_TASK_MINERS } from './messages.ts';

/** Longest dataset URL a task announces (volunteers resolve it against their page or data folder). */
export const MAX_DATASET_URL_BYTES = 512;
/** Segments a task's data may be cut into (and so at most this many test segments). */
export const MAX_DATASET_SEGMENTS = 1024;

/** What a volunteer signs to ask for a miner slot. */
export const JoinBody = defineCodec(
  'JoinBody',
  new ContainerType({
    taskId: bytes32,
    /** The node key: signs this miner's IT_RES; its libp2p identity. */
    minerKey: bytes32,
    /** 20-byte address payload the miner's block templates pay. */
    payout: bytes20,
  }),
);
export type JoinBody = CodecValue<typeof JoinBody>;

export const SignedJoin = defineCodec(
  'SignedJoin',
  new ContainerType({ body: JoinBody.ssz, signature: bytes64 }),
);
export type SignedJoin = CodecValue<typeof SignedJoin>;

/** A task's miners as its lead fixed them. */
export const MinerSetBody = defineCodec(
  'MinerSetBody',
  new ContainerType({
    taskId: bytes32,
    /** Committee index of the signer: must be `leadIndex(taskId, n)`. */
    lead: uint16,
    /** Ed25519 node keys, strictly ascending (a miner's index sets its batch schedule). */
    miners: new ListCompositeType(bytes32, MAX_TASK_MINERS),
  }),
);
export type MinerSetBody = CodecValue<typeof MinerSetBody>;

export const SignedMinerSet = defineCodec(
  'SignedMinerSet',
  new ContainerType({ body: MinerSetBody.ssz, signature: bytes64 }),
);
export type SignedMinerSet = CodecValue<typeof SignedMinerSet>;

export const JoinRequest = defineCodec(
  'JoinRequest',
  new ContainerType({
    taskId: bytes32,
    /** The volunteer's signed join; none when the asker only wants the task's state (polling). */
    join: new OptionalType(SignedJoin.ssz),
  }),
);
export type JoinRequest = CodecValue<typeof JoinRequest>;

/** Where a task's training data is and how it was committed (web-worker-node DatasetSpec on the wire). */
export const DatasetLocator = defineCodec(
  'DatasetLocator',
  new ContainerType({
    /** Relative to the volunteer's page (browsers) or a data file name (edge volunteers), UTF-8. */
    url: new ByteListType(MAX_DATASET_URL_BYTES),
    segments: uint16,
    testSegments: new ListBasicType(uint16, MAX_DATASET_SEGMENTS),
  }),
);
export type DatasetLocator = CodecValue<typeof DatasetLocator>;

export const JoinResponse = defineCodec(
  'JoinResponse',
  new ContainerType({
    taskId: bytes32,
    definition: TaskDefinition.ssz,
    dataset: DatasetLocator.ssz,
    minerSlots: uint16,
    /** Joins the lead holds so far (advisory; the signed set is what counts). */
    admitted: uint16,
    /** The lead's signed miner set, once the slots are full. */
    minerSet: new OptionalType(SignedMinerSet.ssz),
  }),
);
export type JoinResponse = CodecValue<typeof JoinResponse>;

/** The committee member that admits a task's joins and signs its miner set. */
export function leadIndex(taskId: Uint8Array, committeeSize: number): number {
  if (taskId.length !== 32) throw new NetError('NET_MALFORMED', 'a task id is 32 bytes');
  if (!Number.isInteger(committeeSize) || committeeSize < 1)
    throw new NetError('NET_BAD_CONFIG', `committee size must be a positive integer, got ${committeeSize}`);
  return taskId[0]! % committeeSize;
}

export function joinMessage(chainId: string, body: JoinBody): Uint8Array {
  return signingMessage('pouw/join/v1', chainId, JoinBody, body);
}

export function minerSetMessage(chainId: string, body: MinerSetBody): Uint8Array {
  return signingMessage('pouw/task-miners/v1', chainId, MinerSetBody, body);
}

export async function signJoin(
  chainId: string,
  body: JoinBody,
  nodeKeySeed: Uint8Array,
  ed: Ed25519,
): Promise<SignedJoin> {
  return { body, signature: await ed.sign(nodeKeySeed, joinMessage(chainId, body)) };
}

/** Checks a join's signature by the miner key it names. Throws CryptoError('CRYPTO_BAD_SIGNATURE'). */
export async function checkJoin(chainId: string, join: SignedJoin, ed: Ed25519): Promise<void> {
  if (!(await ed.verify(join.body.minerKey, joinMessage(chainId, join.body), join.signature)))
    throw new CryptoError('CRYPTO_BAD_SIGNATURE', 'the join is not signed by the miner key it names', {
      miner: bytesToHex(join.body.minerKey),
    });
}

/** Miner keys in the set's order: ascending bytes, duplicates removed. */
export function sortMinerKeys(keys: readonly Uint8Array[]): Uint8Array[] {
  const byHex = new Map(keys.map((k) => [bytesToHex(k), k] as const));
  return [...byHex.keys()].sort().map((h) => byHex.get(h)!.slice());
}

export async function signMinerSet(
  chainId: string,
  body: MinerSetBody,
  nodeKeySeed: Uint8Array,
  ed: Ed25519,
): Promise<SignedMinerSet> {
  assertMinerOrder(body.miners);
  return { body, signature: await ed.sign(nodeKeySeed, minerSetMessage(chainId, body)) };
}

function assertMinerOrder(miners: readonly Uint8Array[]): void {
  if (miners.length === 0) throw new NetError('NET_MALFORMED', 'a miner set names at least one miner');
  for (let i = 1; i < miners.length; i++) {
    if (bytesToHex(miners[i - 1]!) >= bytesToHex(miners[i]!))
      throw new NetError('NET_MALFORMED', 'miner keys must be strictly ascending');
  }
}

/**
 * Checks a signed miner set against the committee's node keys (genesis order): the task it is for,
 * the signer is the task's lead, keys strictly ascending, and the lead's signature. Throws
 * NetError (NET_BAD_REQUEST for another task or signer, NET_MALFORMED for bad order) or
 * CryptoError('CRYPTO_BAD_SIGNATURE'); all REJECT.
 */
export async function checkMinerSet(
  chainId: string,
  committeeNodeKeys: readonly Uint8Array[],
  set: SignedMinerSet,
  ed: Ed25519,
  taskId?: Uint8Array,
): Promise<void> {
  const { body } = set;
  if (taskId !== undefined && !equalBytes(body.taskId, taskId))
    throw new NetError('NET_BAD_REQUEST', 'the miner set is for another task');
  const lead = leadIndex(body.taskId, committeeNodeKeys.length);
  if (body.lead !== lead)
    throw new NetError(
      'NET_BAD_REQUEST',
      `the miner set is signed by member ${body.lead}, the lead is ${lead}`,
    );
  assertMinerOrder(body.miners);
  if (!(await ed.verify(committeeNodeKeys[lead]!, minerSetMessage(chainId, body), set.signature)))
    throw new CryptoError(
      'CRYPTO_BAD_SIGNATURE',
      `the miner set is not signed by the task lead (member ${lead})`,
    );
}

/** The dataset locator of a task, from plain values (the URL as UTF-8). */
export function datasetLocator(d: {
  url: string;
  segments: number;
  testSegments: readonly number[];
}): DatasetLocator {
  return { url: utf8(d.url), segments: d.segments, testSegments: [...d.testSegments] };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The locator's URL as a string; NetError('NET_MALFORMED') when it is not UTF-8. */
export function datasetUrl(d: DatasetLocator): string {
  try {
    return decoder.decode(d.url);
  } catch {
    throw new NetError('NET_MALFORMED', 'the dataset URL is not UTF-8');
  }
}

/**
 * Role data carried in a transaction's 160-byte payload (the paper's structured OP_RETURN), one SSZ
 * type per kind. Larger documents (task definitions, evidence, rankings) travel off-chain and are
 * named here by their hash.
 */
import { ByteListType, ByteVectorType, ContainerType } from '@chainsafe/ssz';
import { type Codec, type CodecValue, defineCodec } from '../codec/codec.ts';
import { bytes32, uint8, uint16, uint32, uint64 } from '../codec/ssz.ts';
import { MAX_PAYLOAD_BYTES, TxKind } from './types.ts';

/** TRANSFER: an optional memo, the payload bytes themselves. */
export const TransferPayload = defineCodec('TransferPayload', new ByteListType(MAX_PAYLOAD_BYTES));
export type TransferPayload = CodecValue<typeof TransferPayload>;

/** COINBASE: the block height (makes every coinbase id unique) and free miner data. */
export const CoinbasePayload = defineCodec(
  'CoinbasePayload',
  new ContainerType({ height: uint64, extra: new ByteListType(64) }),
);
export type CoinbasePayload = CodecValue<typeof CoinbasePayload>;

/** PAY_FOR_TASK: the task (id = hash of its definition), the dataset commitment and the fee terms. */
export const PayForTaskPayload = defineCodec(
  'PayForTaskPayload',
  new ContainerType({
    taskId: bytes32,
    /** Root over the client's segment hashes (DESIGN §3, initialisation). */
    datasetCommitment: bytes32,
    /** Shares of the escrowed fee, basis points; the rest returns to the client. */
    minerShareBps: uint16,
    supervisorShareBps: uint16,
    evaluatorShareBps: uint16,
    maxMiners: uint16,
    /** Height by which the task must be settled. */
    deadlineHeight: uint64,
  }),
);
export type PayForTaskPayload = CodecValue<typeof PayForTaskPayload>;

/** BUY_TICKETS: stake for a role, with the VRF key used for the per-task lottery. */
export const BuyTicketsPayload = defineCodec(
  'BuyTicketsPayload',
  new ContainerType({
    role: uint8,
    ticketCount: uint32,
    /** ECVRF-EDWARDS25519-SHA512-TAI public key for selection proofs. */
    vrfPublicKey: bytes32,
    /** Height from which the stake returns to the owner (the stake output's lockUntil). */
    expiryHeight: uint64,
    /** Preferences: at most this many concurrent tasks, only tasks paying at least this per ticket. */
    maxTasks: uint16,
    minFeePerTicket: uint64,
    /** Hash of a longer off-chain preference document (hardware, backends), or zero. */
    preferencesHash: bytes32,
  }),
);
export type BuyTicketsPayload = CodecValue<typeof BuyTicketsPayload>;

/** SETTLE_TASK (committee-signed): pays the escrow out per the evaluators' ranking. */
export const SettleTaskPayload = defineCodec(
  'SettleTaskPayload',
  new ContainerType({
    taskId: bytes32,
    /** Hash of the off-chain ranking/result document the outputs follow. */
    resultsHash: bytes32,
    /** Message-history root the settlement is based on. */
    historyRoot: bytes32,
  }),
);
export type SettleTaskPayload = CodecValue<typeof SettleTaskPayload>;

/** Why a stake was confiscated. */
export const SlashReason = { FAILED_REPLAY: 0, EQUIVOCATION: 1, INVALID_MESSAGE: 2 } as const;

/** SLASH (committee-signed): confiscates an offender's stake into the task's fee pool. */
export const SlashPayload = defineCodec(
  'SlashPayload',
  new ContainerType({
    taskId: bytes32,
    offender: new ByteVectorType(20),
    reason: uint8,
    /** Hash of the evidence bundle (a failed replay, two conflicting signed votes). */
    evidenceHash: bytes32,
  }),
);
export type SlashPayload = CodecValue<typeof SlashPayload>;

/** The payload codec of each kind. Every one fits in 160 bytes (checked by a test). */
export const PAYLOAD_CODECS: Record<TxKind, Codec<unknown>> = {
  [TxKind.TRANSFER]: TransferPayload as Codec<unknown>,
  [TxKind.COINBASE]: CoinbasePayload as Codec<unknown>,
  [TxKind.PAY_FOR_TASK]: PayForTaskPayload as Codec<unknown>,
  [TxKind.BUY_TICKETS]: BuyTicketsPayload as Codec<unknown>,
  [TxKind.SETTLE_TASK]: SettleTaskPayload as Codec<unknown>,
  [TxKind.SLASH]: SlashPayload as Codec<unknown>,
};

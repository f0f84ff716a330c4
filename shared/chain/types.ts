/**
 * Chain wire types: transactions, outputs, blocks, finality certificates, genesis. Each constant is
 * the codec (SSZ, canonical decoding) and the type of the same name is its value.
 * Sizes are bounded here; the limits are consensus rules.
 */
import { ByteListType, ByteVectorType, ContainerType, ListCompositeType } from '@chainsafe/ssz';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { bytes20, bytes32, uint8, uint16, uint32, uint64 } from '../codec/ssz.ts';

export const MAX_TX_INPUTS = 256;
export const MAX_TX_OUTPUTS = 256;
export const MAX_PAYLOAD_BYTES = 160;
export const MAX_BLOCK_TXS = 4096;
export const MAX_COMMITTEE = 128;

/** Transaction kinds (DESIGN §4.3). */
export const TxKind = {
  TRANSFER: 0,
  COINBASE: 1,
  PAY_FOR_TASK: 2,
  BUY_TICKETS: 3,
  SETTLE_TASK: 4,
  SLASH: 5,
} as const;
export type TxKind = (typeof TxKind)[keyof typeof TxKind];
export const TX_KIND_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(TxKind).map(([k, v]) => [v, k]),
);

/**
 * Output locks. NONE: the owner spends it with a signature. STAKE: ticket stake; the owner spends it
 * from height `lockUntil` on; before that only a committee-signed SLASH can. ESCROW: a task's fee;
 * only a committee-signed SETTLE_TASK or SLASH for `lockTask` can spend it.
 */
export const LockKind = { NONE: 0, STAKE: 1, ESCROW: 2 } as const;
export type LockKind = (typeof LockKind)[keyof typeof LockKind];

/** Roles a ticket can be bought for. */
export const Role = { MINER: 0, SUPERVISOR: 1, VERIFIER: 2, EVALUATOR: 3 } as const;
export type Role = (typeof Role)[keyof typeof Role];

export const OutPoint = defineCodec('OutPoint', new ContainerType({ txId: bytes32, index: uint32 }));
export type OutPoint = CodecValue<typeof OutPoint>;

export const TxOut = defineCodec(
  'TxOut',
  new ContainerType({
    value: uint64,
    /** First 20 bytes of SHA-256(owner's Ed25519 public key). */
    owner: bytes20,
    lockKind: uint8,
    /** STAKE: first height at which the owner may spend it. Zero otherwise. */
    lockUntil: uint64,
    /** STAKE and ESCROW: the task it is bound to (zero for a stake not yet bound). Zero for NONE. */
    lockTask: bytes32,
  }),
);
export type TxOut = CodecValue<typeof TxOut>;

export const TxBody = defineCodec(
  'TxBody',
  new ContainerType({
    version: uint8,
    kind: uint8,
    inputs: new ListCompositeType(OutPoint.ssz, MAX_TX_INPUTS),
    outputs: new ListCompositeType(TxOut.ssz, MAX_TX_OUTPUTS),
    /** Role data, at most 160 bytes, one SSZ type per kind (payloads.ts). */
    payload: new ByteListType(MAX_PAYLOAD_BYTES),
  }),
);
export type TxBody = CodecValue<typeof TxBody>;

/** One witness per distinct input owner, in order of first appearance among the inputs. */
export const Witness = defineCodec(
  'Witness',
  new ContainerType({ publicKey: bytes32, signature: new ByteVectorType(64) }),
);
export type Witness = CodecValue<typeof Witness>;

export const Transaction = defineCodec(
  'Transaction',
  new ContainerType({
    body: TxBody.ssz,
    witnesses: new ListCompositeType(Witness.ssz, MAX_TX_INPUTS),
    /** SETTLE_TASK and SLASH: the committee's threshold BLS signature (96 bytes); empty otherwise. */
    committeeSignature: new ByteListType(96),
  }),
);
export type Transaction = CodecValue<typeof Transaction>;

/**
 * PoUW block header (DESIGN §4.3) plus `height`: a light client matches headers to finality
 * certificates and retarget windows by height without holding the chain (docs/adr/0004).
 */
export const BlockHeader = defineCodec(
  'BlockHeader',
  new ContainerType({
    version: uint32,
    height: uint64,
    prevHash: bytes32,
    merkleRoot: bytes32,
    stateRoot: bytes32,
    /** Milliseconds since the Unix epoch. */
    time: uint64,
    /** Compact target, Bitcoin's nBits encoding. */
    bits: uint32,
    nonce: bytes32,
    taskId: bytes32,
    /**
     * Work id (shared/pouw/itres.ts workId) of the IT_RES whose iteration earned the nonce: a hash of
     * its work-determined fields only, so re-signing an iteration cannot buy fresh nonces (ADR 0009).
     */
    hashMsg: bytes32,
    /** Root of the finalized message history the miner built on. */
    hashMsgHist: bytes32,
  }),
);
export type BlockHeader = CodecValue<typeof BlockHeader>;

export const Block = defineCodec(
  'Block',
  new ContainerType({
    header: BlockHeader.ssz,
    transactions: new ListCompositeType(Transaction.ssz, MAX_BLOCK_TXS),
  }),
);
export type Block = CodecValue<typeof Block>;

/** What the committee signs to finalize a block: tagged `pouw/finality/v1` with the chain id. */
export const FinalityMessage = defineCodec(
  'FinalityMessage',
  new ContainerType({ height: uint64, blockHash: bytes32, historyRoot: bytes32 }),
);
export type FinalityMessage = CodecValue<typeof FinalityMessage>;

export const FinalityCertificate = defineCodec(
  'FinalityCertificate',
  new ContainerType({
    chainId: new ByteListType(32),
    height: uint64,
    blockHash: bytes32,
    historyRoot: bytes32,
    groupSignature: new ByteVectorType(96),
  }),
);
export type FinalityCertificate = CodecValue<typeof FinalityCertificate>;

export const ChainParams = defineCodec(
  'ChainParams',
  new ContainerType({
    /** Target time between blocks, ms. */
    blockIntervalMs: uint64,
    /** Blocks per retarget window (difficulty moves every block, over this window). */
    retargetWindow: uint32,
    /** Easiest allowed target (compact). */
    powLimitBits: uint32,
    /** Target of block 1 (compact). */
    initialBits: uint32,
    initialReward: uint64,
    /** Blocks between reward halvings. */
    halvingInterval: uint64,
    maxBlockBytes: uint32,
    /** Minimum fee per byte of an encoded transaction for mempool admission. */
    minFeePerByte: uint64,
    /** Stake locked per ticket by BUY_TICKETS. */
    ticketPrice: uint64,
    /** Furthest a block time may be ahead of the validator's clock, ms. */
    maxFutureMs: uint64,
    /** Share of the block reward for the verifiers that attested it, basis points. */
    verifierShareBps: uint16,
  }),
);
export type ChainParams = CodecValue<typeof ChainParams>;

export const CommitteeMember = defineCodec(
  'CommitteeMember',
  new ContainerType({
    /** Ed25519 node key (libp2p identity and message signing). */
    nodeKey: bytes32,
    /** Its public share of the group key (threshold BLS), index = position + 1. */
    blsPublicShare: new ByteVectorType(48),
  }),
);
export type CommitteeMember = CodecValue<typeof CommitteeMember>;

export const Committee = defineCodec(
  'Committee',
  new ContainerType({
    groupPublicKey: new ByteVectorType(48),
    threshold: uint32,
    members: new ListCompositeType(CommitteeMember.ssz, MAX_COMMITTEE),
  }),
);
export type Committee = CodecValue<typeof Committee>;

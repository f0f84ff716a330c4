/**
 * Bodies of the request/response protocols in `protocols.ts` (DESIGN §4.9): one SSZ codec per
 * request and per response body, the response envelope every server answers with, and the block
 * candidate codec. A request is one length-prefixed frame holding the request body; the answer is
 * one length-prefixed frame holding a `ResponseEnvelope` whose `body` is the protocol's response
 * body when `status` is OK and empty otherwise, with `errorCode` naming the typed error (a PouwError
 * code such as `TX_OVERSPEND` or `NET_NOT_FOUND`) so the caller can tell a bad request from a
 * missing block or a busy server.
 *
 * Frame limits are checked before anything is decoded (node-common/p2p.ts): `requestLimit(name)`
 * for requests, MAX_RESPONSE_BYTES for answers. Candidates are the one request larger than
 * MAX_REQUEST_BYTES: they carry the miner's IT_RES of a residual segment, maps included.
 *
 * Pure: codecs and small helpers only, shared by browsers, workers and Node.
 */
import {
  ByteListType,
  ByteVectorType,
  ContainerType,
  ListBasicType,
  ListCompositeType,
  OptionalType,
} from '@chainsafe/ssz';
import { utf8 } from '../bytes.ts';
import { Block, BlockHeader, FinalityCertificate, OutPoint, Transaction, TxOut } from '../chain/types.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { bytes20, bytes32, uint8, uint16, uint32, uint64 } from '../codec/ssz.ts';
import { Commit } from '../consensus/types.ts';
import { isPouwError, NetError, type NetErrorCode, type PouwError } from '../errors.ts';
import type { BlockCandidate as BlockCandidateValue } from '../pouw/candidate.ts';
import { HistoryIds } from '../pouw/history.ts';
import { ItRes } from '../pouw/itres.ts';
import { TaskDefinition } from '../pouw/task.ts';
import { StateProof } from '../state/state-tree.ts';
import { MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, type ProtocolName } from './protocols.ts';

// ---------------------------------------------------------------------------------------------
// Limits

/** Longest error code and message an envelope carries (longer ones are cut, never rejected). */
export const MAX_ERROR_CODE_BYTES = 64;
export const MAX_ERROR_MESSAGE_BYTES = 256;
/** Envelope bytes around the body: status, two offsets' worth of lists, the error fields. */
const ENVELOPE_OVERHEAD = 1024;
/** IT_RES a candidate may carry in its segment (the task's R is at most this). */
export const MAX_CANDIDATE_SEGMENT = 1024;
/** IT_RES ids one history request may name; id-list page size. */
export const MAX_HISTORY_IDS = 64;
export const MAX_HISTORY_ID_PAGE = 4096;
/** Outpoints per proof request, and proofs per answer (an address may own many outputs). */
export const MAX_PROOF_OUTPOINTS = 64;
export const MAX_PROOF_ENTRIES = 256;
/** Examples in one batch answer. */
export const MAX_BATCH_EXAMPLES = 4096;
/** Tasks per answer and miners per task. */
export const MAX_TASKS = 64;
export const MAX_TASK_MINERS = 1024;
/** Commits per catch-up answer (a lagging supervisor asks again from where the answer ended). */
export const MAX_CATCHUP_COMMITS = 16;

/** The largest request frame `name` accepts: candidates carry IT_RES maps, everything else is small. */
export function requestLimit(name: ProtocolName): number {
  return name === 'candidate' ? MAX_RESPONSE_BYTES : MAX_REQUEST_BYTES;
}

// ---------------------------------------------------------------------------------------------
// Response envelope

/** Outcome of a request, the envelope's first byte. */
export const ResponseStatus = {
  /** `body` is the protocol's response body. */
  ok: 0,
  /** The request decoded but broke a rule (`errorCode` names it): the requester's fault. */
  invalid: 1,
  /** Well-formed, but the server does not hold what was asked for. */
  notFound: 2,
  /** The server is busy, rate-limiting this peer, or not ready (still syncing). */
  unavailable: 3,
  /** The server failed (a bug or a broken store). */
  error: 4,
} as const;
export type ResponseStatus = (typeof ResponseStatus)[keyof typeof ResponseStatus];

export const ResponseEnvelope = defineCodec(
  'ResponseEnvelope',
  new ContainerType({
    status: uint8,
    errorCode: new ByteListType(MAX_ERROR_CODE_BYTES),
    message: new ByteListType(MAX_ERROR_MESSAGE_BYTES),
    body: new ByteListType(MAX_RESPONSE_BYTES - ENVELOPE_OVERHEAD),
  }),
);
export type ResponseEnvelope = CodecValue<typeof ResponseEnvelope>;

const EMPTY = new Uint8Array(0);

function clippedUtf8(s: string, max: number): Uint8Array {
  const b = utf8(s);
  if (b.length <= max) return b;
  // Cut on a character boundary (continuation bytes are 10xxxxxx).
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

export function okEnvelope(body: Uint8Array): Uint8Array {
  return ResponseEnvelope.encode({ status: ResponseStatus.ok, errorCode: EMPTY, message: EMPTY, body });
}

export function errorEnvelope(status: ResponseStatus, code: string, message: string): Uint8Array {
  return ResponseEnvelope.encode({
    status,
    errorCode: clippedUtf8(code, MAX_ERROR_CODE_BYTES),
    message: clippedUtf8(message, MAX_ERROR_MESSAGE_BYTES),
    body: EMPTY,
  });
}

/**
 * The envelope a server sends for an error thrown while handling a request: a REJECT-verdict typed
 * error (the request broke a rule) is `invalid`; an IGNORE-verdict one (valid but not useful now:
 * a candidate for a decided height, a duplicate transaction) is `unavailable` with its code, and
 * NET_NOT_FOUND is `notFound`; anything untyped is a server `error` whose details stay on the server.
 */
export function envelopeForError(e: unknown): Uint8Array {
  if (!isPouwError(e)) return errorEnvelope(ResponseStatus.error, 'NET_REMOTE_ERROR', 'internal error');
  const err = e as PouwError;
  if (err.code === 'NET_NOT_FOUND') return errorEnvelope(ResponseStatus.notFound, err.code, err.message);
  if (err.verdict !== 'REJECT') return errorEnvelope(ResponseStatus.unavailable, err.code, err.message);
  return errorEnvelope(ResponseStatus.invalid, err.code, err.message);
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * Opens an answer: returns the body for status OK, else throws a NetError whose code says what
 * happened (`detail.remoteCode` carries the server's typed code). A server that answers `invalid`
 * judged our request; `notFound` and `unavailable` are IGNORE, server errors too (not our fault).
 */
export function openEnvelope(bytes: Uint8Array): Uint8Array {
  const env = ResponseEnvelope.decode(bytes);
  if (env.status === ResponseStatus.ok) {
    if (env.errorCode.length !== 0 || env.message.length !== 0)
      throw new NetError('NET_MALFORMED', 'an OK answer carries an error code');
    return env.body;
  }
  if (env.body.length !== 0) throw new NetError('NET_MALFORMED', 'an error answer carries a body');
  const remoteCode = decoder.decode(env.errorCode);
  const message = decoder.decode(env.message);
  const detail = { remoteCode, remoteMessage: message, status: env.status };
  const codes: Record<number, [NetErrorCode, 'REJECT' | 'IGNORE']> = {
    [ResponseStatus.invalid]: ['NET_BAD_REQUEST', 'REJECT'],
    [ResponseStatus.notFound]: ['NET_NOT_FOUND', 'IGNORE'],
    [ResponseStatus.unavailable]: ['NET_UNAVAILABLE', 'IGNORE'],
    [ResponseStatus.error]: ['NET_REMOTE_ERROR', 'IGNORE'],
  };
  const mapped = codes[env.status];
  if (mapped === undefined) throw new NetError('NET_MALFORMED', `unknown response status ${env.status}`);
  throw new NetError(mapped[0], `${remoteCode}: ${message}`, mapped[1], detail);
}

// ---------------------------------------------------------------------------------------------
// Shared bodies

/** A finalized block with its certificate (none for genesis): block answers and the blocks topic. */
export const FinalizedBlock = defineCodec(
  'FinalizedBlock',
  new ContainerType({
    block: Block.ssz,
    certificate: new OptionalType(FinalityCertificate.ssz),
  }),
);
export type FinalizedBlock = CodecValue<typeof FinalizedBlock>;

/** A block candidate (shared/pouw/candidate.ts) on the wire. */
export const BlockCandidate = defineCodec(
  'BlockCandidate',
  new ContainerType({
    block: Block.ssz,
    lucky: ItRes.ssz,
    znbSource: ItRes.ssz,
    segment: new ListCompositeType(ItRes.ssz, MAX_CANDIDATE_SEGMENT),
  }),
);
export type BlockCandidate = BlockCandidateValue;

/**
 * The payload of a supervisor's consensus value (shared/consensus ConsensusValue.payload): the
 * proposed block and the message-history ids the proposal adds to the decided history. The value's
 * historyRoot is the Merkle root over the decided ids followed by these; every member checks both.
 */
export const ConsensusPayload = defineCodec(
  'ConsensusPayload',
  new ContainerType({ block: Block.ssz, history: HistoryIds.ssz }),
);
export type ConsensusPayload = CodecValue<typeof ConsensusPayload>;

// ---------------------------------------------------------------------------------------------
// status

/** Roles a node reports in `status`. */
export const NodeRole = { supervisor: 0, relay: 1, worker: 2 } as const;
export type NodeRole = (typeof NodeRole)[keyof typeof NodeRole];
/** `memberIndex` of a node that is not in the committee. */
export const NOT_A_MEMBER = 0xffff;

export const StatusRequest = defineCodec(
  'StatusRequest',
  new ContainerType({
    /** The asker's chain: a server on another chain answers `invalid` (NET_BAD_REQUEST). */
    chainId: new ByteListType(32),
  }),
);
export type StatusRequest = CodecValue<typeof StatusRequest>;

export const StatusResponse = defineCodec(
  'StatusResponse',
  new ContainerType({
    chainId: new ByteListType(32),
    genesisHash: bytes32,
    role: uint8,
    /** The finalized tip. */
    tipHeight: uint64,
    tipHash: bytes32,
    /** Where consensus is now (supervisors; zero for others). */
    consensusHeight: uint64,
    consensusRound: uint32,
    committeeSize: uint16,
    threshold: uint16,
    groupPublicKey: new ByteVectorType(48),
    /** This node's committee index, NOT_A_MEMBER otherwise. */
    memberIndex: uint16,
  }),
);
export type StatusResponse = CodecValue<typeof StatusResponse>;

// ---------------------------------------------------------------------------------------------
// template

export const TemplateRequest = defineCodec(
  'TemplateRequest',
  new ContainerType({
    /** 20-byte address payload that receives subsidy and fees. */
    payout: bytes20,
    /** The task the miner trains (goes into the header). */
    taskId: bytes32,
    /** Free coinbase data (≤ 64 bytes). */
    extra: new ByteListType(64),
  }),
);
export type TemplateRequest = CodecValue<typeof TemplateRequest>;

export const TemplateResponse = defineCodec(
  'TemplateResponse',
  new ContainerType({
    /** Zero nonce and hashMsg: the miner fills those in. */
    template: Block.ssz,
    /** Certificate of the tip the template builds on (none when the tip is genesis). */
    tipCertificate: new OptionalType(FinalityCertificate.ssz),
  }),
);
export type TemplateResponse = CodecValue<typeof TemplateResponse>;

// ---------------------------------------------------------------------------------------------
// batch

export const BatchRequest = defineCodec(
  'BatchRequest',
  new ContainerType({ taskId: bytes32, epoch: uint16, batchId: uint32 }),
);
export type BatchRequest = CodecValue<typeof BatchRequest>;

export const BatchResponse = defineCodec(
  'BatchResponse',
  new ContainerType({
    taskId: bytes32,
    epoch: uint16,
    batchId: uint32,
    /** Training-set indices of the batch, in batch order. */
    indices: new ListBasicType(uint32, MAX_BATCH_EXAMPLES),
    /** indices.length × (featureBytes + 1) bytes: features then label per example. */
    examples: new ByteListType(MAX_RESPONSE_BYTES - 64 * 1024),
  }),
);
export type BatchResponse = CodecValue<typeof BatchResponse>;

// ---------------------------------------------------------------------------------------------
// history

export const HistoryRequest = defineCodec(
  'HistoryRequest',
  new ContainerType({
    /** IT_RES wanted by id; when empty, the answer pages the recorded id list instead. */
    ids: new ListCompositeType(bytes32, MAX_HISTORY_IDS),
    /** Id-list page: recorded ids [fromIndex, fromIndex + count), count ≤ MAX_HISTORY_ID_PAGE. */
    fromIndex: uint64,
    count: uint32,
    /**
     * When set (a member's 32-byte key): that member's recorded IT_RES for iterations
     * [fromIteration, fromIteration + count), count ≤ MAX_HISTORY_IDS, in `messages`. This is how a
     * supervisor fills a gap below parked messages, whose ids it cannot know.
     */
    miner: new ByteListType(32),
    fromIteration: uint32,
  }),
);
export type HistoryRequest = CodecValue<typeof HistoryRequest>;

export const HistoryResponse = defineCodec(
  'HistoryResponse',
  new ContainerType({
    /** The requested IT_RES the server holds (missing ones are left out). */
    messages: new ListCompositeType(ItRes.ssz, MAX_HISTORY_IDS),
    /** The id-list page. */
    ids: new ListCompositeType(bytes32, MAX_HISTORY_ID_PAGE),
    /** Ids recorded in all, and the Merkle root over them. */
    total: uint64,
    root: bytes32,
  }),
);
export type HistoryResponse = CodecValue<typeof HistoryResponse>;

// ---------------------------------------------------------------------------------------------
// block

export const BlockRequest = defineCodec(
  'BlockRequest',
  new ContainerType({
    height: uint64,
    /** When 32 bytes: the block with this hash (height is ignored). */
    hash: new ByteListType(32),
  }),
);
export type BlockRequest = CodecValue<typeof BlockRequest>;

export const BlockResponse = FinalizedBlock;
export type BlockResponse = FinalizedBlock;

// ---------------------------------------------------------------------------------------------
// proof

export const ProofRequest = defineCodec(
  'ProofRequest',
  new ContainerType({
    /** Outpoints to prove present or absent. */
    outpoints: new ListCompositeType(OutPoint.ssz, MAX_PROOF_OUTPOINTS),
    /** When 20 bytes: also every unspent output of this address (up to MAX_PROOF_ENTRIES in all). */
    address: new ByteListType(20),
  }),
);
export type ProofRequest = CodecValue<typeof ProofRequest>;

export const ProofEntry = defineCodec(
  'ProofEntry',
  new ContainerType({
    outpoint: OutPoint.ssz,
    /** The output when unspent; none with an absence proof. */
    out: new OptionalType(TxOut.ssz),
    proof: StateProof.ssz,
  }),
);
export type ProofEntry = CodecValue<typeof ProofEntry>;

export const ProofResponse = defineCodec(
  'ProofResponse',
  new ContainerType({
    /** The finalized header the proofs are against, with its certificate (none at genesis). */
    header: BlockHeader.ssz,
    certificate: new OptionalType(FinalityCertificate.ssz),
    entries: new ListCompositeType(ProofEntry.ssz, MAX_PROOF_ENTRIES),
  }),
);
export type ProofResponse = CodecValue<typeof ProofResponse>;

// ---------------------------------------------------------------------------------------------
// submitTx

/** The request body is the transaction itself. */
export const SubmitTxRequest = Transaction;
export type SubmitTxRequest = Transaction;

export const SubmitTxResponse = defineCodec(
  'SubmitTxResponse',
  new ContainerType({
    /** Id of the admitted transaction (rejections come back as `invalid` with the ledger's code). */
    txId: bytes32,
  }),
);
export type SubmitTxResponse = CodecValue<typeof SubmitTxResponse>;

// ---------------------------------------------------------------------------------------------
// candidate

export const CandidateRequest = defineCodec(
  'CandidateRequest',
  new ContainerType({
    /** A miner submits its candidate here; when none, the request fetches one by `blockHash`. */
    candidate: new OptionalType(BlockCandidate.ssz),
    blockHash: new ByteListType(32),
  }),
);
export type CandidateRequest = CodecValue<typeof CandidateRequest>;

export const CandidateResponse = defineCodec(
  'CandidateResponse',
  new ContainerType({
    /** Hash of the submitted (or fetched) block. */
    blockHash: bytes32,
    /** The fetched candidate; none in a submission's receipt. */
    candidate: new OptionalType(BlockCandidate.ssz),
  }),
);
export type CandidateResponse = CodecValue<typeof CandidateResponse>;

// ---------------------------------------------------------------------------------------------
// tasks

export const TasksRequest = defineCodec(
  'TasksRequest',
  new ContainerType({
    /** When 32 bytes: only this task; when empty: every open task. */
    taskId: new ByteListType(32),
  }),
);
export type TasksRequest = CodecValue<typeof TasksRequest>;

export const TaskEntry = defineCodec(
  'TaskEntry',
  new ContainerType({
    taskId: bytes32,
    definition: TaskDefinition.ssz,
    /** The task's miners (Ed25519 keys), sorted ascending: a miner's index sets its batch schedule. */
    miners: new ListCompositeType(bytes32, MAX_TASK_MINERS),
  }),
);
export type TaskEntry = CodecValue<typeof TaskEntry>;

export const TasksResponse = defineCodec(
  'TasksResponse',
  new ContainerType({ tasks: new ListCompositeType(TaskEntry.ssz, MAX_TASKS) }),
);
export type TasksResponse = CodecValue<typeof TasksResponse>;

// ---------------------------------------------------------------------------------------------
// consensus (supervisor to supervisor: catch-up)

export const ConsensusRequest = defineCodec(
  'ConsensusRequest',
  new ContainerType({
    /** The first height whose commit is wanted; the answer holds consecutive ones from there. */
    fromHeight: uint64,
    count: uint16,
  }),
);
export type ConsensusRequest = CodecValue<typeof ConsensusRequest>;

export const ConsensusResponse = defineCodec(
  'ConsensusResponse',
  new ContainerType({
    /** Self-certifying commits (proposal with the block as payload, 2f+1 precommits), by height. */
    commits: new ListCompositeType(Commit.ssz, MAX_CATCHUP_COMMITS),
  }),
);
export type ConsensusResponse = CodecValue<typeof ConsensusResponse>;

// ---------------------------------------------------------------------------------------------
// The table the network layer serves from.

interface BodyCodec<T> {
  readonly typeName: string;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** Request and response codecs per protocol (DKG bodies are the DKG's own, in supervisor-node). */
export const BODIES = {
  status: { request: StatusRequest, response: StatusResponse },
  template: { request: TemplateRequest, response: TemplateResponse },
  batch: { request: BatchRequest, response: BatchResponse },
  history: { request: HistoryRequest, response: HistoryResponse },
  block: { request: BlockRequest, response: BlockResponse },
  proof: { request: ProofRequest, response: ProofResponse },
  submitTx: { request: SubmitTxRequest, response: SubmitTxResponse },
  candidate: { request: CandidateRequest, response: CandidateResponse },
  tasks: { request: TasksRequest, response: TasksResponse },
  consensus: { request: ConsensusRequest, response: ConsensusResponse },
} as const satisfies Partial<
  Record<ProtocolName, { request: BodyCodec<unknown>; response: BodyCodec<unknown> }>
>;
export type BodyProtocol = keyof typeof BODIES;
export type RequestOf<P extends BodyProtocol> = CodecValue<(typeof BODIES)[P]['request']>;
export type ResponseOf<P extends BodyProtocol> = CodecValue<(typeof BODIES)[P]['response']>;

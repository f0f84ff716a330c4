/**
 * The network contract every node shares (DESIGN §4.9): gossipsub topic names, request/response
 * protocol ids, and the size limits a node enforces before decoding anything. Pure constants and
 * name builders, so the relay, supervisors, browser tabs and edge volunteers cannot drift apart.
 *
 * Protocol ids are versioned `/pouw/<name>/<major>.<minor>.<patch>`; a breaking change to a body
 * codec bumps the major version and both versions are served during the change.
 */
import { bytesToHex } from '../bytes.ts';
import { assertChainId } from '../codec/domain.ts';

/** Request/response protocols served by supervisors (and, for `status`, by every node). */
export const PROTOCOLS = {
  /** Chain tip and committee summary. */
  status: '/pouw/status/1.0.0',
  /** A block template for a miner's payout address (DESIGN §4.4 step 1). */
  template: '/pouw/template/1.0.0',
  /** The examples of one batch of a task (DESIGN §4.7). */
  batch: '/pouw/batch/1.0.0',
  /** Recorded IT_RES by id, and the id list of a proposal (DESIGN §4.6). */
  history: '/pouw/history/1.0.0',
  /** A finalized block with its finality certificate, by height or hash. */
  block: '/pouw/block/1.0.0',
  /** Light-client inclusion/absence proofs for outpoints or addresses. */
  proof: '/pouw/proof/1.0.0',
  /** Transaction submission (mempool admission; the reply carries the verdict). */
  submitTx: '/pouw/tx/1.0.0',
  /** Block candidates from miners to supervisors (DESIGN §4.4 step 7). */
  candidate: '/pouw/candidate/1.0.0',
  /** Task definitions and their miner assignments. */
  tasks: '/pouw/tasks/1.0.0',
  /** A volunteer asks for a miner slot of a task; the reply is the signed miner set once it is full. */
  join: '/pouw/join/1.0.0',
  /** Supervisor-to-supervisor: DKG messages over Noise-authenticated connections. */
  dkg: '/pouw/dkg/1.0.0',
  /** Supervisor-to-supervisor: direct consensus message delivery and catch-up. */
  consensus: '/pouw/consensus/1.0.0',
} as const;
export type ProtocolName = keyof typeof PROTOCOLS;

/** Largest request body any protocol accepts; larger frames are dropped before decoding. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Largest single response frame (a block with its certificate, a batch, a history page). */
export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Largest gossip message (an IT_RES with a full map is ~4 MiB at the codec cap). */
export const MAX_GOSSIP_BYTES = 4 * 1024 * 1024 + 64 * 1024;

/** Gossipsub topics. Task topics are per task so a miner only receives its task's traffic. */
export const topics = {
  /** IT_RES of one task (miners publish, miners and supervisors subscribe). */
  itres(chainId: string, taskId: Uint8Array): string {
    assertChainId(chainId);
    return `/pouw/${chainId}/task/${bytesToHex(taskId)}/itres/1`;
  },
  /** Finalized blocks with their certificates. */
  blocks(chainId: string): string {
    assertChainId(chainId);
    return `/pouw/${chainId}/blocks/1`;
  },
  /** Transactions for the mempool. */
  transactions(chainId: string): string {
    assertChainId(chainId);
    return `/pouw/${chainId}/tx/1`;
  },
  /** Consensus proposals, votes and commits (supervisors only). */
  consensus(chainId: string): string {
    assertChainId(chainId);
    return `/pouw/${chainId}/consensus/1`;
  },
} as const;

/**
 * The volunteer's view of the network: the one interface between the page (or the edge process)
 * and whatever carries the bytes. The volunteer worker never sees it directly: the page bridges it
 * to the worker's port (port-protocol.ts). Two implementations: `LoopbackNetwork` (loopback.ts: an
 * in-page chain, task and IT_RES bus for the demo and tests) and the libp2p node (gossip for IT_RES
 * and finalized blocks, request/response for the rest, shared/net/protocols.ts).
 *
 * Trust: nothing here is believed for a balance. Finalized headers come with their certificates and
 * wallet outputs with state proofs, and the light client (balance.ts) checks both against the chain
 * anchor the volunteer already holds; IT_RES and candidates are checked by the miner and the
 * supervisors themselves.
 */
import type { ProvenOutput } from '../shared/chain/light-client.ts';
import type { Block, BlockHeader, FinalityCertificate, OutPoint } from '../shared/chain/types.ts';
import type { BlockCandidate } from '../shared/pouw/candidate.ts';
import type { ItRes } from '../shared/pouw/itres.ts';
import type { TaskDefinition } from '../shared/pouw/task.ts';
import type { StateProof } from '../shared/state/state-tree.ts';
import type { DatasetSpec } from './data/committed.ts';

export type Unsubscribe = () => void;

/** A finalized header and the committee's certificate for it. */
export interface FinalizedHeader {
  header: BlockHeader;
  certificate: FinalityCertificate;
}

/** What a light client must already hold to check finality: never taken from the network. */
export interface ChainAnchor {
  chainId: string;
  /** The supervisor committee's BLS group public key (genesis, or a verified committee change). */
  groupPublicKey: Uint8Array;
}

/** The task this volunteer trains, as the network assigns it. */
export interface TaskAssignment {
  chainId: string;
  task: TaskDefinition;
  /** Ed25519 public keys of the task's miners, this volunteer's included (order irrelevant). */
  miners: Uint8Array[];
  dataset: DatasetSpec;
}

export interface JoinRequest {
  /** The node key that signs this volunteer's IT_RES. */
  minerKey: Uint8Array;
  /** 20-byte address payload the block templates pay. */
  payout: Uint8Array;
}

export type CandidateVerdict =
  | { accepted: true; height: bigint; blockHash: Uint8Array }
  | { accepted: false; code: string; reason: string };

/** Wallet outputs proven against the state of the finalized header at `height`. */
export interface WalletProofs {
  height: bigint;
  present: ProvenOutput[];
  /** Absence proofs for outpoints the wallet knew and that are spent now. */
  spent: { outpoint: OutPoint; proof: StateProof }[];
}

export interface VolunteerNetwork {
  /** A short human-readable description (what the UI shows as "network"). */
  readonly description: string;
  /** Joins a task; resolves once the task's miner set is known. */
  joinTask(request: JoinRequest): Promise<TaskAssignment>;
  /** Broadcasts one of this volunteer's IT_RES to its task's group. */
  publishItRes(msg: ItRes): Promise<void>;
  /** Peer IT_RES of the joined task (never this node's own). */
  onItRes(handler: (msg: ItRes) => void): Unsubscribe;
  /** A template on the finalized tip paying `payout`, or undefined while there is none. */
  fetchTemplate(request: { payout: Uint8Array; taskId: Uint8Array }): Promise<Block | undefined>;
  /** Hands a block candidate to the supervisors; resolves with their verdict. */
  submitCandidate(candidate: BlockCandidate): Promise<CandidateVerdict>;
  /** Every newly finalized header, with its certificate (unverified: check before use). */
  onFinalized(handler: (finalized: FinalizedHeader) => void): Unsubscribe;
  /** Finalized headers from `fromHeight` on, at most `max`, ascending. */
  fetchFinalized(fromHeight: bigint, max: number): Promise<FinalizedHeader[]>;
  /** The wallet's outputs (and spends of the `known` ones) proven at a finalized height. */
  fetchWalletProofs(owner: Uint8Array, known: readonly OutPoint[]): Promise<WalletProofs>;
  close(): Promise<void>;
}

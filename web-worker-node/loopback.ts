/**
 * A whole network in one page (or one Node process), for the UI's demo mode and for tests: a
 * chain (shared/chain/testkit.ts: a 4-member committee whose group secret certifies blocks), one
 * task with a fixed number of miner slots, an IT_RES bus between the connected volunteers, block
 * templates built on the finalized tip, and a committee that checks each candidate (the ledger's
 * block rules: PoW against the template's bits, tip, coinbase, merkle and state roots; plus an
 * optional `verify`, e.g. the full replay of shared/pouw/verify.ts where a TF.js engine is at hand)
 * and finalizes the first valid one per height with a real BLS certificate. Wallet answers carry
 * real state proofs, so the light client checks them exactly as it would a supervisor's.
 *
 * Messages cross the bus as SSZ bytes, decoded per delivery (members never share objects), and
 * handlers run on a later macrotask, as they would behind a socket.
 */
import { bytesToHex, equalBytes, hexToBytes } from '../shared/bytes.ts';
import { blockHash } from '../shared/chain/ids.ts';
import { buildBlockTemplate } from '../shared/chain/template.ts';
import {
  certify,
  createTestChain,
  TEST_CHAIN_ID,
  TEST_PARAMS,
  type TestChain,
} from '../shared/chain/testkit.ts';
import { Block, OutPoint } from '../shared/chain/types.ts';
import { isPouwError, LedgerError, NetError } from '../shared/errors.ts';
import type { BlockCandidate } from '../shared/pouw/candidate.ts';
import { ItRes } from '../shared/pouw/itres.ts';
import { type TaskDefinition, taskId } from '../shared/pouw/task.ts';
import type { DatasetSpec } from './data/committed.ts';
import type {
  CandidateVerdict,
  ChainAnchor,
  FinalizedHeader,
  JoinRequest,
  TaskAssignment,
  Unsubscribe,
  VolunteerNetwork,
  WalletProofs,
} from './network.ts';

/** The chain id of every loopback network (the test chain's). */
export const LOOPBACK_CHAIN_ID = TEST_CHAIN_ID;

export interface LoopbackOptions {
  task: TaskDefinition;
  dataset: DatasetSpec;
  /** The task starts once this many volunteers have joined (its miner set is then fixed). */
  minerSlots: number;
  /** Compact target of the first blocks (default 0x207fffff: about every other hash wins). */
  initialBits?: number;
  /** Block interval the difficulty retargets toward, and the retarget window (default 3 s, 10 blocks). */
  blockIntervalMs?: bigint;
  retargetWindow?: number;
  /**
   * Chain clock in ms (template times, the ledger's future-time rule). Default: the test chain's
   * genesis time plus the wall time since this network was created (its genesis lies in the future).
   */
  clock?: () => bigint;
  /** IT_RES delivery delay in ms (default 0: the next macrotask). */
  delayMs?: number;
  /** An extra check before the ledger's: throw a PouwError to reject the candidate. */
  verify?: (candidate: BlockCandidate) => Promise<unknown>;
}

export interface LoopbackStats {
  published: number;
  delivered: number;
  bytes: number;
  candidates: number;
  accepted: number;
  /** Rejected candidates by error code. */
  rejected: Record<string, number>;
}

interface Member {
  name: string;
  itres: Set<(msg: ItRes) => void>;
  finalized: Set<(f: FinalizedHeader) => void>;
  closed: boolean;
}

export class LoopbackNetwork {
  readonly chainId: string;
  readonly taskId: Uint8Array;
  readonly anchor: ChainAnchor;
  readonly stats: LoopbackStats = {
    published: 0,
    delivered: 0,
    bytes: 0,
    candidates: 0,
    accepted: 0,
    rejected: {},
  };
  private readonly members: Member[] = [];
  private readonly observers = new Set<(msg: ItRes) => void>();
  private readonly headers: FinalizedHeader[] = [];
  private readonly joined = new Map<string, Uint8Array>();
  private readonly full: Promise<void>;
  private markFull!: () => void;
  /** Candidates are checked and applied one at a time (the ledger has one writer). */
  private committee: Promise<unknown> = Promise.resolve();
  private readonly clock: () => bigint;

  private constructor(
    private readonly chain: TestChain,
    private readonly opts: LoopbackOptions,
  ) {
    if (!Number.isInteger(opts.minerSlots) || opts.minerSlots < 1)
      throw new NetError('NET_BAD_CONFIG', `minerSlots must be a positive integer, got ${opts.minerSlots}`);
    this.chainId = chain.genesis.chainId;
    this.taskId = taskId(this.chainId, opts.task);
    this.anchor = { chainId: this.chainId, groupPublicKey: chain.genesis.committee.groupPublicKey };
    const created = Date.now();
    this.clock = opts.clock ?? (() => chain.genesis.time + BigInt(Date.now() - created));
    this.full = new Promise((resolve) => {
      this.markFull = resolve;
    });
  }

  static async create(opts: LoopbackOptions): Promise<LoopbackNetwork> {
    const chain = await createTestChain({
      params: {
        ...TEST_PARAMS,
        initialBits: opts.initialBits ?? TEST_PARAMS.initialBits,
        blockIntervalMs: opts.blockIntervalMs ?? 3000n,
        retargetWindow: opts.retargetWindow ?? 10,
      },
    });
    return new LoopbackNetwork(chain, opts);
  }

  /** The finalized tip. */
  get tip(): { height: bigint; hash: Uint8Array } {
    const t = this.chain.ledger.tip;
    return { height: t.height, hash: t.hash };
  }

  /** The task's miners so far (all of them once the task has started), ascending. */
  get miners(): Uint8Array[] {
    return [...this.joined.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, k]) => k.slice());
  }

  /** Sees every IT_RES published (tests record the message history with it). */
  observe(handler: (msg: ItRes) => void): Unsubscribe {
    this.observers.add(handler);
    return () => this.observers.delete(handler);
  }

  /** A volunteer's connection to this network. */
  connect(name = `member-${this.members.length}`): VolunteerNetwork {
    const member: Member = { name, itres: new Set(), finalized: new Set(), closed: false };
    this.members.push(member);
    const live = () => {
      if (member.closed) throw new NetError('NET_CLOSED', `${name} is closed`, 'IGNORE');
    };
    return {
      description: `demo network in this page (${this.opts.minerSlots} miner${this.opts.minerSlots === 1 ? '' : 's'})`,
      joinTask: async (request) => {
        live();
        return this.join(request);
      },
      publishItRes: async (msg) => {
        live();
        this.publish(member, msg);
      },
      onItRes: (handler) => {
        member.itres.add(handler);
        return () => member.itres.delete(handler);
      },
      fetchTemplate: async (request) => {
        live();
        return this.template(request.payout, request.taskId);
      },
      submitCandidate: async (candidate) => {
        live();
        return this.submit(candidate);
      },
      onFinalized: (handler) => {
        member.finalized.add(handler);
        return () => member.finalized.delete(handler);
      },
      fetchFinalized: async (fromHeight, max) => {
        live();
        return this.headers.filter((h) => h.header.height >= fromHeight).slice(0, Math.max(0, max));
      },
      fetchWalletProofs: async (owner, known) => {
        live();
        return this.walletProofs(owner, known);
      },
      close: async () => {
        member.closed = true;
        member.itres.clear();
        member.finalized.clear();
      },
    };
  }

  private async join(request: JoinRequest): Promise<TaskAssignment> {
    const key = bytesToHex(request.minerKey);
    if (!this.joined.has(key)) {
      if (this.joined.size >= this.opts.minerSlots)
        throw new NetError('NET_BAD_REQUEST', 'the task has no free miner slot', 'IGNORE');
      this.joined.set(key, request.minerKey.slice());
      if (this.joined.size === this.opts.minerSlots) this.markFull();
    }
    await this.full;
    return {
      chainId: this.chainId,
      task: this.opts.task,
      miners: [...this.joined.values()].map((k) => k.slice()),
      dataset: this.opts.dataset,
    };
  }

  private publish(from: Member, msg: ItRes): void {
    const bytes = ItRes.encode(msg);
    this.stats.published++;
    this.stats.bytes += bytes.length;
    for (const o of this.observers) o(ItRes.decode(bytes));
    for (const to of this.members) {
      if (to === from || to.closed) continue;
      setTimeout(() => {
        if (to.closed) return;
        for (const h of to.itres) {
          this.stats.delivered++;
          h(ItRes.decode(bytes));
        }
      }, this.opts.delayMs ?? 0);
    }
  }

  private async template(payout: Uint8Array, forTask: Uint8Array): Promise<Block | undefined> {
    if (!equalBytes(forTask, this.taskId)) return undefined;
    const block = await buildBlockTemplate(this.chain.ledger, undefined, {
      payout,
      time: this.clock(),
      taskId: this.taskId,
    });
    // A copy: the caller fills in hashMsg and nonce.
    return Block.decode(Block.encode(block));
  }

  private submit(candidate: BlockCandidate): Promise<CandidateVerdict> {
    const run = this.committee.then(() => this.decide(candidate));
    this.committee = run.catch(() => undefined);
    return run;
  }

  private async decide(candidate: BlockCandidate): Promise<CandidateVerdict> {
    this.stats.candidates++;
    const { block } = candidate;
    try {
      if (!equalBytes(block.header.taskId, this.taskId))
        throw new NetError('NET_BAD_REQUEST', 'candidate for another task');
      // A candidate on an old tip lost the race: no replay for it.
      if (!equalBytes(block.header.prevHash, this.chain.ledger.tip.hash))
        throw new LedgerError('BLOCK_BAD_PREV_HASH', 'does not build on the finalized tip', 'IGNORE');
      await this.opts.verify?.(candidate);
      const certificate = certify(this.chainId, block, this.chain.committee.groupSecret);
      await this.chain.ledger.applyFinalized(block, certificate, { now: this.clock() });
      this.stats.accepted++;
      const finalized: FinalizedHeader = { header: block.header, certificate };
      this.headers.push(finalized);
      for (const m of this.members) {
        if (m.closed) continue;
        setTimeout(() => {
          for (const h of m.finalized) h(finalized);
        }, 0);
      }
      return {
        accepted: true,
        height: block.header.height,
        blockHash: blockHash(this.chainId, block.header),
      };
    } catch (e) {
      if (!isPouwError(e)) throw e;
      this.stats.rejected[e.code] = (this.stats.rejected[e.code] ?? 0) + 1;
      return { accepted: false, code: e.code, reason: e.message };
    }
  }

  private walletProofs(owner: Uint8Array, known: readonly OutPoint[]): WalletProofs {
    const { ledger } = this.chain;
    const present: WalletProofs['present'] = [];
    for (const { key, out } of ledger.unspent()) {
      if (!equalBytes(out.owner, owner)) continue;
      const outpoint = OutPoint.decode(hexToBytes(key));
      present.push({ outpoint, out, proof: ledger.proveUtxo(outpoint).proof });
    }
    const spent = known
      .filter((op) => ledger.getUtxo(op) === undefined)
      .map((outpoint) => ({ outpoint, proof: ledger.proveUtxo(outpoint).proof }));
    return { height: ledger.tip.height, present, spent };
  }
}

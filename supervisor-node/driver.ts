/**
 * The consensus driver: the single writer around the pure Tendermint core
 * (shared/consensus/tendermint.ts). It owns time, signing, the network and the write-ahead log, and
 * executes the core's effects in order, with the same semantics as the simulator's honest driver
 * (tests/sim/consensus/sim.ts):
 *
 * - `persist`: consecutive records are appended to the LevelDB WAL in one synced batch, and the
 *   driver waits for it before it executes the next effect. Every own proposal or vote is preceded
 *   by its record, so nothing is signed or sent that a crash could make this member forget
 *   (persist → sign → send);
 * - `broadcast`: signs exactly the message the core emitted (Ed25519, plus the BLS partial over the
 *   value id for a non-nil precommit), publishes it with its relay messages, and feeds the signed
 *   copy back in as an ordinary input;
 * - `schedule-timeout`: a timer that feeds the timeout back (timers of a past incarnation never fire);
 * - `request-value` / `validate-value`: asks the app; the answer comes back as an input later, so a
 *   long verification never blocks the loop. A proposer with no value yet is asked again when the
 *   app reports a new candidate;
 * - `decide`: the app makes the block durable (chain store), then the WAL drops that height.
 *
 * Inputs are processed one at a time (one promise chain). Received messages arrive already checked
 * statelessly (signature, membership, structure); here they are judged against the view: older
 * heights are dropped (the sender catches up by itself), the next height is buffered, anything
 * further ahead means this member lags and fetches commits from the sender. When a whole gossip
 * period passes without progress, this member's own messages of the current, valid and locked
 * rounds are published again (peers that missed them, or restarted, get them), with backoff.
 *
 * On start the driver re-applies decisions its log holds and the store lacks (a crash between the
 * decision record and the block write), then `recover`s the height in progress from the log: every
 * own message of that height is restored, so the core re-sends them and never signs a different one.
 */

import type { WalStore } from '../node-common/wal-store.ts';
import { bytesToHex } from '../shared/bytes.ts';
import {
  Commit,
  type ConsensusMessage,
  type ConsensusValue,
  checkAgainstState,
  checkView,
  decisionsIn,
  type Effect,
  encodeMessage,
  heightRound,
  type Input,
  initialState,
  messagesAt,
  recover,
  type SignedProposal,
  type SignedVote,
  type SigningKeys,
  senderOf,
  signMessage,
  step,
  type TendermintParams,
  type TendermintState,
  type WalRecord,
} from '../shared/consensus/index.ts';
import { isPouwError } from '../shared/errors.ts';

export interface Decision {
  height: bigint;
  round: number;
  value: ConsensusValue;
  proposal: SignedProposal;
  commit: SignedVote[];
}

/** The chain application behind the core: values, validity and durable decisions. */
export interface DriverApp {
  /** Height of the last block durably stored (the driver resumes at the next one). */
  storedHeight(): bigint;
  /** The value this member proposes at (height, round), or undefined if it has none yet. */
  proposeValue(height: bigint, round: number): Promise<ConsensusValue | undefined>;
  /**
   * valid(v). `committed`: the value arrived in a commit signed by 2f+1 members (catch-up), so only
   * the checks this node needs to apply the block are required, not the useful-work replay.
   */
  validateValue(height: bigint, value: ConsensusValue, committed: boolean): Promise<boolean>;
  /** Makes the decided block durable; resolves once it is (the WAL is pruned after). */
  applyDecision(decision: Decision): Promise<void>;
}

/** How the driver reaches the other members. */
export interface DriverNetwork {
  /** Publishes an encoded consensus message to every member (gossip). */
  publish(bytes: Uint8Array): void;
  /** Fetches commits from `peer` for heights from `fromHeight` (catch-up); [] if it has none. */
  fetchCommits(peer: string, fromHeight: bigint): Promise<Commit[]>;
  /** Checks a fetched commit statelessly (signatures, 2f+1 members); throws a typed error otherwise. */
  verifyCommit(commit: Commit): Promise<void>;
}

export interface DriverTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const nodeTimers: DriverTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export type DriverLog = (event: string, fields?: Record<string, unknown>) => void;

export interface DriverOptions {
  params: TendermintParams;
  keys: SigningKeys;
  wal: WalStore;
  app: DriverApp;
  network: DriverNetwork;
  timers?: DriverTimers;
  log?: DriverLog;
  /** No progress for this long: publish the held messages again (default 1000 ms). */
  gossipMs?: number;
  /** Log every input and effect (debugging). */
  trace?: boolean;
}

/** Commits buffered this far ahead of the current height (as the simulator). */
const FUTURE_COMMITS = 16n;
const MAX_FUTURE = 4096;

export interface DriverStats {
  inputs: number;
  signed: number;
  published: number;
  walBatches: number;
  decided: number;
  regossiped: number;
  catchups: number;
  /** Commits of old heights re-published for a peer still working on them. */
  commitsForLaggards: number;
  refusedConflicts: number;
  evidence: number;
  ignored: Record<string, number>;
}

export class ConsensusDriver {
  readonly #o: Required<Omit<DriverOptions, 'log'>> & { log: DriverLog };
  #state: TendermintState | null = null;
  #pending: Input[] = [];
  #running: Promise<void> | null = null;
  #future: { message: ConsensusMessage; from: string }[] = [];
  #timers = new Set<unknown>();
  #gossipTimer: unknown = null;
  #gossipKey = '';
  #gossipBackoff = 1;
  #stopped = false;
  /** Value ids that arrived inside a commit (validated without the useful-work replay). */
  #committedIds = new Set<string>();
  /** A value request the app could not answer yet. */
  #waitingValue: { height: bigint; round: number } | null = null;
  #catchupAt = new Map<string, number>();
  /** When this member last re-published the commit of an old height for a lagging peer. */
  #helpedAt = new Map<bigint, number>();
  #catchupInFlight = false;
  #failure: unknown = null;
  readonly stats: DriverStats = {
    inputs: 0,
    signed: 0,
    published: 0,
    walBatches: 0,
    decided: 0,
    regossiped: 0,
    commitsForLaggards: 0,
    catchups: 0,
    refusedConflicts: 0,
    evidence: 0,
    ignored: {},
  };
  /** Observers (tests, metrics): every effect before it runs, and every decision once durable. */
  onEffect: ((e: Effect) => void) | undefined;
  onDecided: ((d: Decision) => void) | undefined;

  constructor(opts: DriverOptions) {
    this.#o = {
      timers: nodeTimers,
      gossipMs: 1000,
      trace: false,
      ...opts,
      log: opts.log ?? (() => {}),
    };
  }

  get state(): TendermintState | null {
    return this.#state;
  }

  get height(): bigint {
    return this.#state?.height ?? this.#o.app.storedHeight() + 1n;
  }

  get round(): number {
    return this.#state?.round ?? 0;
  }

  /** The first error that stopped the loop (a failed WAL write or block store), if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Re-applies logged decisions the store lacks, recovers the height in progress and starts. */
  async start(): Promise<void> {
    const { wal, app, params } = this.#o;
    const records = await wal.records();
    for (const d of decisionsIn(records)) {
      if (d.height === app.storedHeight() + 1n) {
        this.#o.log('reapply-decision', { height: String(d.height), round: d.round });
        await app.applyDecision(d);
        await wal.finishHeight(d.height, Commit.encode({ proposal: d.proposal, precommits: d.commit }));
      }
    }
    const stored = app.storedHeight();
    await wal.prune(stored);
    const live = records.filter((r) => r.height > stored);
    this.#state = live.length > 0 ? recover(params, live, stored + 1n) : initialState(params, stored + 1n);
    this.#o.log('consensus-start', {
      height: String(this.#state.height),
      round: this.#state.round,
      step: this.#state.step,
      recovered: live.length,
      locked: this.#state.lockedRound,
    });
    this.#armGossip();
    this.#input({ type: 'start' });
    await this.idle();
  }

  /** Resolves when no input is being processed (tests). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops timers and waits for the input in progress; nothing else is processed. */
  async stop(): Promise<void> {
    this.#halt();
    await this.idle();
  }

  /** Stops timers and drops queued input, without waiting (the loop itself calls this). */
  #halt(): void {
    this.#stopped = true;
    for (const t of this.#timers) this.#o.timers.clearTimeout(t);
    this.#timers.clear();
    if (this.#gossipTimer !== null) this.#o.timers.clearTimeout(this.#gossipTimer);
    this.#pending = [];
  }

  /** A message that passed the stateless checks, from gossip or catch-up, relayed by `from`. */
  receive(message: ConsensusMessage, from: string): void {
    const s = this.#state;
    if (!s || this.#stopped) return;
    const { height } = heightRound(message);
    if (height < s.height) {
      this.#ignore('CONSENSUS_OLD_HEIGHT');
      this.#helpLaggard(height);
      return;
    }
    const ahead = height - s.height;
    if (ahead > 0n) {
      if (
        (ahead === 1n || (message.kind === 'commit' && ahead <= FUTURE_COMMITS)) &&
        this.#future.length < MAX_FUTURE
      ) {
        this.#future.push({ message, from });
      }
      // Members are deciding later heights: fetch the commits we lack from the one that told us.
      this.#catchUp(from);
      return;
    }
    try {
      checkView(message, { height: s.height, round: s.round, roundWindow: s.params.roundWindow });
      checkAgainstState(s, message);
    } catch (e) {
      this.#ignore(isPouwError(e) ? e.code : 'UNTYPED');
      return;
    }
    if (message.kind === 'commit') {
      this.#committedIds.add(this.#valueKey(message.commit.proposal.proposal.value, height));
    }
    this.#input(toInput(message));
  }

  /** The app has a new candidate: a proposer still waiting for a value asks again. */
  valueAvailable(): void {
    const w = this.#waitingValue;
    const s = this.#state;
    if (!w || !s || w.height !== s.height || w.round !== s.round || s.step !== 'propose') return;
    this.#waitingValue = null;
    this.#requestValue(w.height, w.round);
  }

  // -------------------------------------------------------------------------------------------

  #ignore(code: string): void {
    this.stats.ignored[code] = (this.stats.ignored[code] ?? 0) + 1;
  }

  #valueKey(value: ConsensusValue, height: bigint): string {
    return `${height}/${bytesToHex(value.blockHash)}/${bytesToHex(value.historyRoot)}`;
  }

  #input(i: Input): void {
    if (this.#stopped || this.#failure) return;
    this.#pending.push(i);
    this.#kick();
  }

  #kick(): void {
    if (this.#running || this.#pending.length === 0 || this.#stopped) return;
    this.#running = this.#loop().finally(() => {
      this.#running = null;
      // An input queued by a microtask after the loop's last check is not left waiting.
      this.#kick();
    });
  }

  async #loop(): Promise<void> {
    while (this.#pending.length > 0 && this.#state && !this.#stopped) {
      const input = this.#pending.shift()!;
      const before = this.#state.height;
      const r = this.#step(input);
      if (!r) return;
      try {
        await this.#run(r);
      } catch (e) {
        // A WAL or store write failed: stop acting (nothing later may rely on an undurable record).
        this.#failure = e;
        this.#o.log('driver-failed', { error: String(e) });
        // Not stop(): it waits for this very loop to finish, which would never happen.
        this.#halt();
        return;
      }
      if (this.#state && this.#state.height !== before) this.#flushFuture();
    }
  }

  #step(input: Input): Effect[] | null {
    if (!this.#state) return null;
    this.stats.inputs++;
    if (this.#o.trace)
      this.#o.log('trace-input', {
        type: input.type,
        height: String(this.#state.height),
        round: this.#state.round,
        step: this.#state.step,
      });
    const r = step(this.#state, input);
    if (this.#o.trace) this.#o.log('trace-effects', { types: r.effects.map((e) => e.type) });
    this.#state = r.state;
    return r.effects;
  }

  async #run(effects: Effect[]): Promise<void> {
    let batch: WalRecord[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const records = batch;
      batch = [];
      await this.#o.wal.append(records);
      this.stats.walBatches++;
      this.#o.log('wal', {
        height: String(records[0]!.height),
        records: records.map((r) =>
          r.kind === 'vote' ? `vote${r.type}/${r.round}` : `${r.kind}/${r.round}`,
        ),
      });
    };
    for (const e of effects) {
      // A stopped driver acts no further (shutdown, or a crash point in tests): the records already
      // appended describe everything it may have sent.
      if (this.#stopped) return;
      this.onEffect?.(e);
      if (e.type === 'persist') {
        batch.push(e.record);
        continue;
      }
      await flush();
      await this.#effect(e);
    }
    await flush();
  }

  async #effect(e: Effect): Promise<void> {
    const o = this.#o;
    switch (e.type) {
      case 'persist':
        return;
      case 'broadcast': {
        const signed = await signMessage(o.keys, o.params.chainId, e.message);
        this.stats.signed++;
        const x = e.message.kind === 'proposal' ? e.message.proposal : e.message.vote;
        o.log('signed', {
          height: String(x.height),
          round: x.round,
          kind:
            e.message.kind === 'proposal' ? 'proposal' : e.message.vote.type === 1 ? 'prevote' : 'precommit',
          value:
            e.message.kind === 'proposal'
              ? bytesToHex(e.message.proposal.value.blockHash)
              : bytesToHex(e.message.vote.valueId) || 'nil',
        });
        this.#publish(signed);
        for (const m of e.relay) this.#publish(m);
        this.#pending.push(toInput(signed));
        return;
      }
      case 'schedule-timeout': {
        const handle = o.timers.setTimeout(() => {
          this.#timers.delete(handle);
          this.#input({ type: 'timeout', height: e.height, round: e.round, step: e.step });
        }, e.delayMs);
        this.#timers.add(handle);
        return;
      }
      case 'request-value':
        this.#requestValue(e.height, e.round);
        return;
      case 'validate-value': {
        const committed = this.#committedIds.has(this.#valueKey(e.value, e.height));
        o.app.validateValue(e.height, e.value, committed).then(
          (valid) => {
            o.log('validity', { height: String(e.height), valid, committed });
            this.#input({ type: 'validity', height: e.height, valueId: e.valueId, valid });
          },
          (err: unknown) => {
            o.log('validate-failed', { height: String(e.height), error: String(err) });
            this.#input({ type: 'validity', height: e.height, valueId: e.valueId, valid: false });
          },
        );
        return;
      }
      case 'decide': {
        const d: Decision = {
          height: e.height,
          round: e.round,
          value: e.value,
          proposal: e.proposal,
          commit: e.commit,
        };
        await o.app.applyDecision(d);
        await o.wal.finishHeight(e.height, Commit.encode({ proposal: e.proposal, precommits: e.commit }));
        this.stats.decided++;
        this.#waitingValue = null;
        for (const k of this.#committedIds) if (k.startsWith(`${e.height}/`)) this.#committedIds.delete(k);
        o.log('decided', {
          height: String(e.height),
          round: e.round,
          blockHash: bytesToHex(e.value.blockHash),
          signers: e.commit.map((c) => c.vote.validator),
        });
        this.onDecided?.(d);
        return;
      }
      case 'evidence':
        this.stats.evidence++;
        o.log('evidence', { kind: e.evidence.kind });
        return;
      case 'refused-conflict':
        this.stats.refusedConflicts++;
        o.log('refused-conflict', { height: String(e.height), round: e.round, what: e.what });
        return;
    }
  }

  #requestValue(height: bigint, round: number): void {
    this.#o.app.proposeValue(height, round).then(
      (value) => {
        if (value) this.#input({ type: 'value', height, round, value });
        else this.#waitingValue = { height, round };
      },
      (err: unknown) => {
        this.#o.log('propose-failed', { height: String(height), error: String(err) });
        this.#waitingValue = { height, round };
      },
    );
  }

  #publish(m: ConsensusMessage): void {
    this.stats.published++;
    this.#o.network.publish(encodeMessage(m));
  }

  #flushFuture(): void {
    const buffered = this.#future;
    this.#future = [];
    for (const b of buffered) this.receive(b.message, b.from);
  }

  /**
   * A peer still works on a height decided here: publish that height's commit, which lets it decide
   * and then catch up. Without it a member that missed a decision waits for traffic of a later
   * height, and a quiet chain (no candidates) has none. At most once per height per four gossip
   * periods, so a laggard's re-gossip does not turn into a flood of commits.
   */
  #helpLaggard(height: bigint): void {
    const now = Date.now();
    const last = this.#helpedAt.get(height);
    if (last !== undefined && now - last < this.#o.gossipMs * 4) return;
    this.#helpedAt.set(height, now);
    if (this.#helpedAt.size > 64) this.#helpedAt.delete(this.#helpedAt.keys().next().value!);
    this.#o.wal.commits(height, 1).then(
      ([c]) => {
        if (c === undefined || this.#stopped) return;
        this.stats.commitsForLaggards++;
        this.#publish({ kind: 'commit', commit: Commit.decode(c) });
      },
      () => {},
    );
  }

  /**
   * Fetches commits from `peer` from our height on: one fetch at a time, none while the next
   * height's commit is already buffered, at most once per gossip period per peer and height.
   */
  #catchUp(peer: string): void {
    const s = this.#state;
    if (!s || this.#catchupInFlight) return;
    if (
      this.#future.some((f) => f.message.kind === 'commit' && heightRound(f.message).height === s.height + 1n)
    )
      return;
    const key = `${peer}/${s.height}`;
    const now = Date.now();
    const last = this.#catchupAt.get(key);
    if (last !== undefined && now - last < this.#o.gossipMs) return;
    this.#catchupAt.set(key, now);
    if (this.#catchupAt.size > 1024) this.#catchupAt.delete(this.#catchupAt.keys().next().value!);
    this.stats.catchups++;
    const from = s.height;
    this.#catchupInFlight = true;
    this.#o.network
      .fetchCommits(peer, from)
      .then(
        async (commits) => {
          for (const c of commits) {
            if (this.#stopped) return;
            // Heights decided meanwhile need no check.
            if (heightRound({ kind: 'commit', commit: c }).height < this.height) continue;
            try {
              await this.#o.network.verifyCommit(c);
            } catch (e) {
              this.#o.log('catchup-bad-commit', { peer, error: isPouwError(e) ? e.code : String(e) });
              return;
            }
            this.receive({ kind: 'commit', commit: c }, peer);
          }
          if (commits.length > 0)
            this.#o.log('catchup', { peer, from: String(from), commits: commits.length });
        },
        (e: unknown) => this.#o.log('catchup-failed', { peer, error: isPouwError(e) ? e.code : String(e) }),
      )
      .finally(() => {
        this.#catchupInFlight = false;
      });
  }

  /**
   * Re-gossip after a stall. Gossipsub already delivers every message to every member, so a member
   * re-sends only its own messages of the current, valid and locked rounds (what a peer that missed
   * them, or restarted, needs from it); the period doubles while the stall lasts (up to 8×), so a
   * slow committee is not flooded by its own retries.
   */
  #armGossip(): void {
    if (this.#stopped) return;
    this.#gossipTimer = this.#o.timers.setTimeout(() => {
      this.#gossipTimer = null;
      const s = this.#state;
      if (!s || this.#stopped) return;
      const key = `${s.height}/${s.round}/${s.step}`;
      if (key === this.#gossipKey) {
        const rounds = [s.round, s.validRound, s.lockedRound].filter((r) => r >= 0);
        for (const m of messagesAt(s, rounds)) {
          if (senderOf(m) !== s.params.self) continue;
          this.stats.regossiped++;
          this.#publish(m);
        }
        this.#gossipBackoff = Math.min(this.#gossipBackoff * 2, 8);
      } else {
        this.#gossipBackoff = 1;
      }
      this.#gossipKey = key;
      this.#armGossip();
    }, this.#o.gossipMs * this.#gossipBackoff);
  }
}

function toInput(m: ConsensusMessage): Input {
  return m.kind === 'proposal'
    ? { type: 'proposal', signed: m.signed }
    : m.kind === 'vote'
      ? { type: 'vote', signed: m.signed }
      : { type: 'commit', commit: m.commit };
}

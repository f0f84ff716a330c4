/**
 * Deterministic simulator for the Tendermint state machine (shared/consensus/tendermint.ts).
 *
 * - Virtual clock and one event queue; all randomness from one seed (forked per component).
 * - Network: per-message delay (uniform plus a heavy tail, so messages reorder), loss,
 *   duplication, partitions that heal; after GST no loss and a small bounded delay. Messages are
 *   real SSZ bytes, decoded and validated (stand-in signatures) at every receiver.
 * - Honest validators run a driver like the networked one will: a write-ahead log fed by the
 *   `persist` effects (appended in effect order, so a crash between any two effects loses exactly
 *   the effects after it), crash and restart from the log, app answers for getValue / valid(v),
 *   re-gossip of the current round when stalled, catch-up commits for lagging peers, a buffer for
 *   the next height.
 * - Byzantine validators run an honest core as a shadow (to follow heights and rounds) and mutate
 *   what it sends: silence, withheld votes, equivocating proposals and votes, votes for random
 *   values and rounds, bad signatures and garbage bytes, or a colluding split-brain attack.
 * - Checkers: safety (no two honest validators decide different values at one height), no honest
 *   validator ever signs two different messages for one (height, round, kind) (a ledger of every
 *   signature, across crashes), every decision's commit verifies, liveness after GST.
 */
import { bytesToHex } from '../../../shared/bytes.ts';
import type { Committee } from '../../../shared/chain/types.ts';
import { verifyCommit } from '../../../shared/consensus/certificate.ts';
import { proposerIndex, quorum } from '../../../shared/consensus/committee.ts';
import { ConsensusError } from '../../../shared/consensus/errors.ts';
import {
  type ConsensusVerifier,
  checkView,
  encodeMessage,
  heightRound,
  type SyncSigningKeys,
  senderOf,
  signMessageSync,
  type UnsignedMessage,
  validateMessage,
  valueId,
} from '../../../shared/consensus/messages.ts';
import {
  checkAgainstState,
  decisionsIn,
  type Effect,
  type Input,
  initialState,
  messagesAt,
  recover,
  type Step,
  step,
  type TendermintParams,
  type TendermintState,
  type TimeoutConfig,
  type WalRecord,
} from '../../../shared/consensus/tendermint.ts';
import {
  type ConsensusMessage,
  type ConsensusValue,
  MessageKind,
  NIL_ROUND,
  type SignedProposal,
  type SignedVote,
  VoteType,
} from '../../../shared/consensus/types.ts';
import { isPouwError } from '../../../shared/errors.ts';
import { EventQueue } from './event-queue.ts';
import { Rng } from './rng.ts';
import { StandinCrypto } from './standin-crypto.ts';

export const CHAIN_ID = 'pouw-sim';
/** Liveness: a height undecided at GST is decided within this many honest-proposer rounds begun after GST. */
export const LIVENESS_ROUNDS = 3;

export type ByzantineStrategy =
  | 'silent'
  | 'withhold'
  | 'equivocate'
  | 'random'
  | 'garbage'
  | 'mixed'
  | 'split';
export const BYZANTINE_STRATEGIES: readonly ByzantineStrategy[] = [
  'silent',
  'withhold',
  'equivocate',
  'random',
  'garbage',
  'mixed',
  'split',
];

export interface NetworkSpec {
  minDelayMs: number;
  maxDelayMs: number;
  /** Share of messages delayed up to tailMaxMs instead (reordering). */
  tailRate: number;
  tailMaxMs: number;
  lossRate: number;
  dupRate: number;
  /** Global stabilization time: from here on no loss, no partition, delay ≤ afterGstMaxDelayMs. */
  gstMs: number;
  afterGstMaxDelayMs: number;
}

/** Messages between members of different groups are dropped in [fromMs, toMs); unlisted members reach everyone. */
export interface PartitionSpec {
  fromMs: number;
  toMs: number;
  groups: number[][];
}

/** Crash `node` at the `effects`-th effect it runs after atMs (so between two effects of one step). */
export interface CrashSpec {
  node: number;
  atMs: number;
  effects: number;
  downMs: number;
}

/** Crash `node` before the effect with index `effectIndex` among those it runs at `height` (WAL positions). */
export interface WalCrashSpec {
  node: number;
  height: bigint;
  effectIndex: number;
  downMs: number;
  /** Negative control: restart with the log lost (the checker must catch the double signature). */
  amnesia?: boolean;
}

export interface SimConfig {
  scenario: string;
  seed: number;
  n: number;
  byzantine: { index: number; strategy: ByzantineStrategy }[];
  /** Heights 1..heights must be decided by every honest validator. */
  heights: number;
  network: NetworkSpec;
  partitions: PartitionSpec[];
  crashes: CrashSpec[];
  walCrash?: WalCrashSpec;
  timeouts: Record<Step, TimeoutConfig>;
  roundWindow: number;
  /** A stalled validator re-gossips its current round every gossipMs. */
  gossipMs: number;
  validationDelayMaxMs: number;
  deadlineMs: number;
  /** Honest groups the split adversary plays against each other. */
  splitGroups?: number[][];
  /** Check liveness (false for scenarios that break the fault assumption). */
  expectLiveness: boolean;
}

/** Keys and verifier of a simulated committee (default: the fast stand-in). */
export interface SimCrypto {
  committee: Committee;
  keys: SyncSigningKeys[];
  verifier: ConsensusVerifier;
}

export function standinCrypto(label: string, n: number): SimCrypto & { standin: StandinCrypto } {
  const standin = new StandinCrypto();
  const members = [];
  const keys: SyncSigningKeys[] = [];
  for (let i = 0; i < n; i++) {
    const m = standin.member(label, i);
    members.push(m.member);
    keys.push(m.keys);
  }
  return {
    committee: { groupPublicKey: new Uint8Array(48), threshold: quorum(n), members },
    keys,
    verifier: standin,
    standin,
  };
}

export interface SimStats {
  sent: number;
  delivered: number;
  lost: number;
  partitioned: number;
  duplicated: number;
  rejected: Record<string, number>;
  ignored: Record<string, number>;
  evidence: number;
  crashes: number;
  restarts: number;
  refusedConflicts: number;
  regossiped: number;
  catchups: number;
  events: number;
}

export interface Decision {
  id: string;
  round: number;
  atMs: number;
}

export interface SimResult {
  config: SimConfig;
  safety: string[];
  doubleSigns: string[];
  commitErrors: string[];
  liveness: string[];
  /** For heights not decided by any honest validator at GST: decision round − (highest honest round at GST) + 1. */
  roundsAfterGst: number[];
  /** Decision round of every height (lowest over honest validators). */
  decisionRounds: number[];
  stats: SimStats;
  endMs: number;
  /** Effects run by the WAL-crash node at the WAL-crash height (to enumerate positions). */
  walCrashEffects: number;
  walCrashFired: boolean;
  decisions: Map<number, Map<bigint, Decision>>;
}

// ---------------------------------------------------------------------------------------------

interface Actor {
  readonly index: number;
  readonly honest: boolean;
  start(): void;
  receive(from: number, bytes: Uint8Array): void;
}

function bump(r: Record<string, number>, k: string): void {
  r[k] = (r[k] ?? 0) + 1;
}

export function makeValue(rng: Rng, valid = true): ConsensusValue {
  const blockHash = rng.bytes(32);
  blockHash[0] = valid ? blockHash[0]! & 0x7f : 0xff;
  return { blockHash, historyRoot: rng.bytes(32), payload: rng.bytes(rng.int(0, 24)) };
}

/** The simulated app's valid(v): blocks whose hash starts with 0xff are "invalid". */
export function isValidValue(v: ConsensusValue): boolean {
  return v.blockHash[0] !== 0xff;
}

export class Simulation {
  readonly config: SimConfig;
  readonly queue = new EventQueue();
  readonly rng: Rng;
  readonly verifier: ConsensusVerifier;
  readonly committee: Committee;
  readonly keys: SyncSigningKeys[];
  readonly actors: Actor[] = [];
  readonly byzantine = new Set<number>();
  readonly stats: SimStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    partitioned: 0,
    duplicated: 0,
    rejected: {},
    ignored: {},
    evidence: 0,
    crashes: 0,
    restarts: 0,
    refusedConflicts: 0,
    regossiped: 0,
    catchups: 0,
    events: 0,
  };
  readonly safety: string[] = [];
  readonly doubleSigns: string[] = [];
  readonly commitErrors: string[] = [];
  readonly decisions = new Map<number, Map<bigint, Decision>>();
  /** The first commit seen per height (for certificate assembly). */
  readonly commits = new Map<bigint, { value: ConsensusValue; round: number; commit: SignedVote[] }>();
  readonly #decidedIds = new Map<bigint, string>();
  readonly #verifiedCommits = new Set<string>();
  readonly #signed = new Map<string, string>();
  readonly #validated = new WeakMap<Uint8Array, ConsensusMessage | Error>();
  readonly #encoded = new WeakMap<object, Uint8Array>();
  readonly #netRng: Rng;
  /** (height, round) of every honest validator at GST. */
  gstSnapshot: { height: bigint; round: number }[] | null = null;
  /** Debugging hook, called after every event. */
  onEvent: (() => void) | undefined;
  split: SplitAdversary | null = null;

  constructor(config: SimConfig, crypto: SimCrypto = standinCrypto(`sim-${config.seed}`, config.n)) {
    this.config = config;
    this.rng = new Rng(`consensus-sim/${config.scenario}/${config.n}/${config.seed}`);
    this.#netRng = this.rng.fork('network');
    this.committee = crypto.committee;
    this.keys = crypto.keys;
    this.verifier = crypto.verifier;
    for (const b of config.byzantine) this.byzantine.add(b.index);
    if (config.byzantine.some((b) => b.strategy === 'split')) {
      this.split = new SplitAdversary(
        this,
        config.splitGroups ?? halves(this.honestIndices(), this.rng.fork('split')),
      );
    }
    for (let i = 0; i < config.n; i++) {
      const b = config.byzantine.find((x) => x.index === i);
      this.actors.push(b ? new ByzantineNode(this, i, b.strategy) : new HonestNode(this, i));
    }
  }

  honestIndices(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.config.n; i++) if (!this.byzantine.has(i)) out.push(i);
    return out;
  }

  params(self: number): TendermintParams {
    return {
      chainId: CHAIN_ID,
      n: this.config.n,
      self,
      timeouts: this.config.timeouts,
      roundWindow: this.config.roundWindow,
    };
  }

  get now(): number {
    return this.queue.now;
  }

  // -- messages ---------------------------------------------------------------------------------

  /** Stateless validation, memoized per byte array (every receiver would compute the same). */
  validate(bytes: Uint8Array): ConsensusMessage {
    let r = this.#validated.get(bytes);
    if (r === undefined) {
      try {
        r = validateMessage(bytes, { chainId: CHAIN_ID, committee: this.committee }, this.verifier);
      } catch (e) {
        r = e as Error;
      }
      this.#validated.set(bytes, r);
    }
    if (r instanceof Error) throw r;
    return r;
  }

  encode(m: ConsensusMessage): Uint8Array {
    const key = m.kind === 'commit' ? m.commit : m.signed;
    let b = this.#encoded.get(key);
    if (b === undefined) {
      b = encodeMessage(m);
      this.#encoded.set(key, b);
    }
    return b;
  }

  /** Signs for member `signer`; for honest signers every signature goes through the double-sign ledger. */
  sign(signer: number, m: UnsignedMessage): ConsensusMessage {
    const signed = signMessageSync(this.keys[signer]!, CHAIN_ID, m);
    if (!this.byzantine.has(signer)) {
      const x = m.kind === 'proposal' ? m.proposal : m.vote;
      const kind =
        m.kind === 'proposal' ? 'proposal' : m.vote.type === VoteType.prevote ? 'prevote' : 'precommit';
      const key = `${signer}/${x.height}/${x.round}/${kind}`;
      const content =
        m.kind === 'proposal'
          ? `${m.proposal.polRound}/${bytesToHex(valueId(CHAIN_ID, m.proposal.height, m.proposal.value))}/${bytesToHex(m.proposal.value.payload)}`
          : bytesToHex(m.vote.valueId) || 'nil';
      const prev = this.#signed.get(key);
      if (prev !== undefined && prev !== content) {
        this.doubleSigns.push(
          `t=${this.now}: validator ${signer} signed two ${kind}s at ${x.height}/${x.round}`,
        );
      }
      this.#signed.set(key, content);
    }
    return signed;
  }

  #partitioned(from: number, to: number): boolean {
    for (const p of this.config.partitions) {
      if (this.now < p.fromMs || this.now >= p.toMs || this.now >= this.config.network.gstMs) continue;
      const gf = p.groups.findIndex((g) => g.includes(from));
      const gt = p.groups.findIndex((g) => g.includes(to));
      if (gf >= 0 && gt >= 0 && gf !== gt) return true;
    }
    return false;
  }

  /** Partial synchrony: a message not lost arrives by max(sent, GST) + Δ. */
  #delay(): number {
    const net = this.config.network;
    const r = this.#netRng;
    if (this.now >= net.gstMs) return r.int(net.minDelayMs, Math.max(net.minDelayMs, net.afterGstMaxDelayMs));
    const d = r.chance(net.tailRate)
      ? r.int(net.maxDelayMs, net.tailMaxMs)
      : r.int(net.minDelayMs, net.maxDelayMs);
    return Math.min(d, net.gstMs + net.afterGstMaxDelayMs - this.now);
  }

  send(from: number, to: number, bytes: Uint8Array): void {
    this.stats.sent++;
    const net = this.config.network;
    if (from !== to) {
      if (this.#partitioned(from, to)) {
        this.stats.partitioned++;
        return;
      }
      if (this.now < net.gstMs && this.#netRng.chance(net.lossRate)) {
        this.stats.lost++;
        return;
      }
    }
    const copies =
      from !== to && this.#netRng.chance(this.now < net.gstMs ? net.dupRate : net.dupRate / 4) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let c = 0; c < copies; c++) {
      const delay = from === to ? 0 : this.#delay();
      this.queue.after(delay, () => {
        this.stats.delivered++;
        this.actors[to]!.receive(from, bytes);
      });
    }
  }

  broadcast(from: number, bytes: Uint8Array, includeSelf = false): void {
    for (let to = 0; to < this.config.n; to++) if (to !== from || includeSelf) this.send(from, to, bytes);
  }

  // -- checkers ---------------------------------------------------------------------------------

  onDecision(node: number, height: bigint, round: number, value: ConsensusValue, commit: SignedVote[]): void {
    const id = bytesToHex(valueId(CHAIN_ID, height, value));
    let mine = this.decisions.get(node);
    if (!mine) {
      mine = new Map();
      this.decisions.set(node, mine);
    }
    if (mine.has(height)) {
      if (mine.get(height)!.id !== id)
        this.safety.push(`validator ${node} decided twice at height ${height}`);
      return;
    }
    mine.set(height, { id, round, atMs: this.now });
    const first = this.#decidedIds.get(height);
    if (first === undefined) {
      this.#decidedIds.set(height, id);
      this.commits.set(height, { value, round, commit });
    } else if (first !== id) {
      this.safety.push(
        `t=${this.now}: height ${height}: validator ${node} decided ${id.slice(0, 12)}…, another ${first.slice(0, 12)}…`,
      );
    }
    const key = `${height}/${id}`;
    if (!this.#verifiedCommits.has(key)) {
      this.#verifiedCommits.add(key);
      try {
        verifyCommit(CHAIN_ID, this.committee, height, value, commit, this.verifier);
      } catch (e) {
        this.commitErrors.push(`height ${height}: ${(e as Error).message}`);
      }
    }
  }

  allHonestDecided(): boolean {
    const h = BigInt(this.config.heights);
    for (const i of this.honestIndices()) {
      const d = this.decisions.get(i);
      if (!d) return false;
      for (let x = 1n; x <= h; x++) if (!d.has(x)) return false;
    }
    return true;
  }

  // -- run --------------------------------------------------------------------------------------

  run(): SimResult {
    const cfg = this.config;
    for (const a of this.actors) a.start();
    for (const c of cfg.crashes) {
      const node = this.actors[c.node];
      if (node instanceof HonestNode) this.queue.at(c.atMs, () => node.planCrash(c.effects, c.downMs));
    }
    this.queue.at(cfg.network.gstMs, () => {
      this.gstSnapshot = this.actors.map((a) =>
        a instanceof HonestNode && a.state
          ? { height: a.state.height, round: a.state.round }
          : { height: -1n, round: 0 },
      );
    });
    while (this.queue.runNext(cfg.deadlineMs)) {
      if ((this.now > cfg.network.gstMs || !cfg.expectLiveness) && this.allHonestDecided()) break;
      if (!cfg.expectLiveness && this.safety.length > 0) break;
      this.onEvent?.();
    }
    this.stats.events = this.queue.processed;
    return this.#result();
  }

  #result(): SimResult {
    const cfg = this.config;
    const liveness: string[] = [];
    const roundsAfterGst: number[] = [];
    const decisionRounds: number[] = [];
    const honest = this.honestIndices();
    for (let h = 1n; h <= BigInt(cfg.heights); h++) {
      let round = Number.POSITIVE_INFINITY;
      let decidedBeforeGst = false;
      for (const i of honest) {
        const d = this.decisions.get(i)?.get(h);
        if (!d) {
          if (cfg.expectLiveness)
            liveness.push(`validator ${i} did not decide height ${h} by t=${cfg.deadlineMs}`);
          continue;
        }
        round = Math.min(round, d.round);
        if (d.atMs < cfg.network.gstMs) decidedBeforeGst = true;
      }
      if (!Number.isFinite(round)) continue;
      decisionRounds.push(round);
      if (decidedBeforeGst || !this.gstSnapshot) continue;
      let r0 = 0;
      let inProgress = false;
      for (const i of honest) {
        const s = this.gstSnapshot[i]!;
        if (s.height !== h) continue;
        inProgress = true;
        if (s.round > r0) r0 = s.round;
      }
      roundsAfterGst.push(Math.max(1, round - r0 + 1));
      if (cfg.expectLiveness) {
        // Rounds that begin after GST: the one in progress at GST may have lost messages before it.
        const from = inProgress ? r0 + 1 : 0;
        let honestProposerRounds = 0;
        for (let r = from; r <= round; r++) {
          if (!this.byzantine.has(proposerIndex(cfg.n, h, r))) honestProposerRounds++;
        }
        if (honestProposerRounds > LIVENESS_ROUNDS) {
          liveness.push(
            `height ${h}: decided in round ${round}, after ${honestProposerRounds} honest-proposer rounds begun after GST (from round ${from})`,
          );
        }
      }
    }
    const wal = this.actors.find((a) => a instanceof HonestNode && a.index === cfg.walCrash?.node) as
      | HonestNode
      | undefined;
    return {
      config: cfg,
      safety: this.safety,
      doubleSigns: this.doubleSigns,
      commitErrors: this.commitErrors,
      liveness,
      roundsAfterGst,
      decisionRounds,
      stats: this.stats,
      endMs: this.now,
      walCrashEffects: wal?.walEffects ?? 0,
      walCrashFired: wal?.walCrashFired ?? false,
      decisions: this.decisions,
    };
  }

  noteRejection(e: unknown): void {
    if (isPouwError(e)) bump(e.verdict === 'IGNORE' ? this.stats.ignored : this.stats.rejected, e.code);
    else bump(this.stats.rejected, 'UNTYPED');
  }
}

function halves(items: number[], rng: Rng): number[][] {
  const s = rng.shuffle(items);
  const k = Math.ceil(s.length / 2);
  return [s.slice(0, k), s.slice(k)];
}

// ---------------------------------------------------------------------------------------------
// Honest validator: the driver around the pure core.

/** Commits sent at once to a lagging peer (it buffers commits this far ahead). */
const CATCH_UP_BATCH = 16n;

function toInput(m: ConsensusMessage): Input {
  return m.kind === 'proposal'
    ? { type: 'proposal', signed: m.signed }
    : m.kind === 'vote'
      ? { type: 'vote', signed: m.signed }
      : { type: 'commit', commit: m.commit };
}

export class HonestNode implements Actor {
  readonly honest = true;
  readonly index: number;
  readonly #sim: Simulation;
  readonly #params: TendermintParams;
  readonly #rng: Rng;
  state: TendermintState | null = null;
  /** Durable: the write-ahead log and the app's store of decided heights. */
  wal: WalRecord[] = [];
  readonly store = new Map<bigint, string>();
  #incarnation = 0;
  #pending: Input[] = [];
  #busy = false;
  #future: Uint8Array[] = [];
  readonly #commits = new Map<bigint, Uint8Array>();
  readonly #catchupAt = new Map<string, number>();
  #gossipKey = '';
  #crashIn: number | null = null;
  #crashDownMs = 0;
  walEffects = 0;
  walCrashFired = false;

  constructor(sim: Simulation, index: number) {
    this.#sim = sim;
    this.index = index;
    this.#params = sim.params(index);
    this.#rng = sim.rng.fork(`node-${index}`);
  }

  start(): void {
    this.state = initialState(this.#params, 1n);
    this.#armGossip();
    this.input({ type: 'start' });
  }

  planCrash(effects: number, downMs: number): void {
    if (!this.state) return;
    this.#crashIn = effects;
    this.#crashDownMs = downMs;
  }

  receive(from: number, bytes: Uint8Array): void {
    const s = this.state;
    if (!s) return;
    let m: ConsensusMessage;
    try {
      m = this.#sim.validate(bytes);
    } catch (e) {
      this.#sim.noteRejection(e);
      return;
    }
    const { height } = heightRound(m);
    if (height < s.height) {
      this.#catchUp(from, height);
      this.#sim.noteRejection(new ConsensusError('CONSENSUS_OLD_HEIGHT', '', 'IGNORE'));
      return;
    }
    if (height === s.height && m.kind !== 'commit') {
      const { round } = heightRound(m);
      if (round < s.round) this.#roundCatchUp(from, round);
    }
    const ahead = height - s.height;
    if (
      (ahead === 1n || (m.kind === 'commit' && ahead > 0n && ahead <= CATCH_UP_BATCH)) &&
      this.#future.length < 4096
    ) {
      this.#future.push(bytes);
      return;
    }
    try {
      checkView(m, { height: s.height, round: s.round, roundWindow: this.#params.roundWindow });
      checkAgainstState(s, m); // duplicates throw; equivocations come back as evidence effects from the core
    } catch (e) {
      this.#sim.noteRejection(e);
      return;
    }
    this.input(toInput(m));
  }

  input(i: Input): void {
    this.#pending.push(i);
    if (this.#busy) return;
    this.#busy = true;
    const before = this.state?.height;
    while (this.#pending.length > 0 && this.state) {
      const x = this.#pending.shift()!;
      const stepHeight = this.state.height;
      const r = step(this.state, x);
      this.state = r.state;
      this.#runEffects(r.effects, stepHeight);
    }
    this.#busy = false;
    if (this.state && before !== undefined && this.state.height !== before) this.#flushFuture();
  }

  #flushFuture(): void {
    const buffered = this.#future;
    this.#future = [];
    for (const b of buffered) this.receive(this.index, b);
  }

  #crashDue(stepHeight: bigint): boolean {
    if (this.#crashIn !== null && this.#crashIn-- <= 0) return true;
    const w = this.#sim.config.walCrash;
    if (w && w.node === this.index && w.height === stepHeight && !this.walCrashFired) {
      if (this.walEffects++ === w.effectIndex) {
        this.walCrashFired = true;
        this.#crashDownMs = w.downMs;
        return true;
      }
    }
    return false;
  }

  #runEffects(effects: Effect[], stepHeight: bigint): void {
    for (const e of effects) {
      if (this.#crashDue(stepHeight)) {
        this.#crash();
        return;
      }
      this.#effect(e);
    }
  }

  #effect(e: Effect): void {
    const sim = this.#sim;
    switch (e.type) {
      case 'persist':
        this.wal.push(e.record);
        return;
      case 'broadcast': {
        const signed = sim.sign(this.index, e.message);
        const bytes = sim.encode(signed);
        sim.broadcast(this.index, bytes);
        for (const m of e.relay) sim.broadcast(this.index, sim.encode(m));
        this.#pending.push(toInput(signed));
        return;
      }
      case 'schedule-timeout': {
        const inc = this.#incarnation;
        sim.queue.after(e.delayMs, () => {
          if (this.#incarnation === inc && this.state) {
            this.input({ type: 'timeout', height: e.height, round: e.round, step: e.step });
          }
        });
        return;
      }
      case 'request-value':
        this.#pending.push({ type: 'value', height: e.height, round: e.round, value: makeValue(this.#rng) });
        return;
      case 'validate-value': {
        const inc = this.#incarnation;
        const valid = isValidValue(e.value);
        const delay = this.#rng.int(0, sim.config.validationDelayMaxMs);
        sim.queue.after(delay, () => {
          if (this.#incarnation === inc && this.state) {
            this.input({ type: 'validity', height: e.height, valueId: e.valueId, valid });
          }
        });
        return;
      }
      case 'decide':
        this.#applyDecision(e.height, e.round, e.value, e.proposal, e.commit);
        return;
      case 'evidence':
        sim.stats.evidence++;
        return;
      case 'refused-conflict':
        sim.stats.refusedConflicts++;
        return;
    }
  }

  #applyDecision(
    height: bigint,
    round: number,
    value: ConsensusValue,
    proposal: SignedProposal,
    commit: SignedVote[],
  ): void {
    const sim = this.#sim;
    this.store.set(height, bytesToHex(valueId(CHAIN_ID, height, value)));
    sim.onDecision(this.index, height, round, value, commit);
    // Kept for every height (a real node serves old commits from its block store).
    this.#commits.set(height, sim.encode({ kind: 'commit', commit: { proposal, precommits: commit } }));
  }

  /** A peer sent something for a height we decided: send it the commits from there on (rate-limited). */
  #catchUp(to: number, height: bigint): void {
    if (!this.#commits.has(height) || to === this.index) return;
    const key = `${to}/${height}`;
    const last = this.#catchupAt.get(key);
    if (last !== undefined && this.#sim.now - last < this.#sim.config.gossipMs) return;
    this.#catchupAt.set(key, this.#sim.now);
    this.#sim.stats.catchups++;
    for (let h = height; h < height + CATCH_UP_BATCH; h++) {
      const c = this.#commits.get(h);
      if (!c) break;
      this.#sim.send(this.index, to, c);
    }
  }

  /**
   * A peer is still in an earlier round of our height: send it what we hold for that round (it may
   * lack the 2f+1 precommits that let it time out and move on). Peer-state gossip in miniature.
   */
  #roundCatchUp(to: number, round: number): void {
    const s = this.state;
    if (!s || to === this.index) return;
    const key = `${to}/${s.height}/${round}`;
    const last = this.#catchupAt.get(key);
    if (last !== undefined && this.#sim.now - last < this.#sim.config.gossipMs) return;
    this.#catchupAt.set(key, this.#sim.now);
    this.#sim.stats.catchups++;
    for (const m of messagesAt(s, [round])) this.#sim.send(this.index, to, this.#sim.encode(m));
  }

  #armGossip(): void {
    const inc = this.#incarnation;
    this.#sim.queue.after(this.#sim.config.gossipMs, () => {
      if (this.#incarnation !== inc || !this.state) return;
      const s = this.state;
      const key = `${s.height}/${s.round}/${s.step}`;
      if (key === this.#gossipKey) {
        // No progress for a whole period: re-gossip what we hold for this round and the polka we rely on.
        const rounds = [s.round, s.validRound, s.lockedRound].filter((r) => r >= 0);
        for (const m of messagesAt(s, rounds)) {
          this.#sim.stats.regossiped++;
          this.#sim.broadcast(this.index, this.#sim.encode(m));
        }
      }
      this.#gossipKey = key;
      this.#armGossip();
    });
  }

  #crash(): void {
    const sim = this.#sim;
    sim.stats.crashes++;
    this.state = null;
    this.#pending = [];
    this.#future = [];
    this.#crashIn = null;
    this.#incarnation++;
    sim.queue.after(this.#crashDownMs, () => this.#restart());
  }

  #restart(): void {
    const sim = this.#sim;
    sim.stats.restarts++;
    const w = sim.config.walCrash;
    if (w?.amnesia && w.node === this.index) this.wal = [];
    // The log may hold a decision the store never applied (crash between persist and decide).
    const store = (d: Extract<WalRecord, { kind: 'decision' }>) => {
      if (!this.store.has(d.height)) this.#applyDecision(d.height, d.round, d.value, d.proposal, d.commit);
    };
    for (const d of decisionsIn(this.wal)) store(d);
    let tip = 0n;
    for (const h of this.store.keys()) if (h > tip) tip = h;
    this.state = recover(this.#params, this.wal, tip + 1n);
    this.#incarnation++;
    this.#gossipKey = '';
    this.#armGossip();
    this.input({ type: 'start' });
  }
}

// ---------------------------------------------------------------------------------------------
// Byzantine validators

class ByzantineNode implements Actor {
  readonly honest = false;
  readonly index: number;
  readonly #sim: Simulation;
  readonly #strategy: ByzantineStrategy;
  readonly #rng: Rng;
  readonly #params: TendermintParams;
  #shadow: TendermintState;
  #pending: Input[] = [];
  #busy = false;
  #oversizedSent = false;

  constructor(sim: Simulation, index: number, strategy: ByzantineStrategy) {
    this.#sim = sim;
    this.index = index;
    this.#strategy = strategy;
    this.#rng = sim.rng.fork(`byzantine-${index}`);
    this.#params = sim.params(index);
    this.#shadow = initialState(this.#params, 1n);
  }

  start(): void {
    this.#input({ type: 'start' });
  }

  receive(_from: number, bytes: Uint8Array): void {
    let m: ConsensusMessage;
    try {
      m = this.#sim.validate(bytes);
    } catch {
      return;
    }
    this.#sim.split?.observe(m);
    const { height } = heightRound(m);
    if (height > this.#shadow.height) {
      // Byzantine members need not decide: jump to where the others are.
      this.#shadow = initialState(this.#params, height);
      this.#input({ type: 'start' });
    }
    if (height !== this.#shadow.height) return;
    try {
      checkAgainstState(this.#shadow, m);
    } catch {
      return;
    }
    this.#input(toInput(m));
  }

  #input(i: Input): void {
    this.#pending.push(i);
    if (this.#busy) return;
    this.#busy = true;
    while (this.#pending.length > 0) {
      const r = step(this.#shadow, this.#pending.shift()!);
      this.#shadow = r.state;
      for (const e of r.effects) this.#effect(e);
    }
    this.#busy = false;
  }

  #effect(e: Effect): void {
    const sim = this.#sim;
    switch (e.type) {
      case 'broadcast': {
        const signed = sim.sign(this.index, e.message);
        this.#pending.push(toInput(signed));
        this.#emit(e.message, signed);
        return;
      }
      case 'schedule-timeout':
        sim.queue.after(e.delayMs, () =>
          this.#input({ type: 'timeout', height: e.height, round: e.round, step: e.step }),
        );
        return;
      case 'request-value':
        this.#pending.push({
          type: 'value',
          height: e.height,
          round: e.round,
          value: makeValue(this.#rng, this.#rng.chance(0.8)),
        });
        return;
      case 'validate-value':
        this.#pending.push({
          type: 'validity',
          height: e.height,
          valueId: e.valueId,
          valid: isValidValue(e.value),
        });
        return;
      default:
        return;
    }
  }

  #others(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.#sim.config.n; i++) if (i !== this.index) out.push(i);
    return out;
  }

  #sendTo(targets: readonly number[], m: ConsensusMessage): void {
    const bytes = this.#sim.encode(m);
    for (const t of targets) this.#sim.send(this.index, t, bytes);
  }

  /** A conflicting twin of an own message. */
  #twin(m: UnsignedMessage): ConsensusMessage {
    const rng = this.#rng;
    if (m.kind === 'proposal') {
      return this.#sim.sign(this.index, {
        kind: 'proposal',
        proposal: { ...m.proposal, value: makeValue(rng, rng.chance(0.8)) },
      });
    }
    const v = m.vote;
    const alt =
      v.valueId.length === 0 || rng.chance(0.5) ? this.#someValueId(v.height, v.round) : new Uint8Array(0);
    return this.#sim.sign(this.index, { kind: 'vote', vote: { ...v, valueId: alt } });
  }

  /** The id of a proposal seen in that round (to make equivocation plausible), else a random one. */
  #someValueId(height: bigint, round: number): Uint8Array {
    const rs = this.#shadow.height === height ? this.#shadow.rounds[String(round)] : undefined;
    const id = rs?.proposalIds[0];
    if (id && this.#rng.chance(0.7)) return id;
    return valueId(CHAIN_ID, height, makeValue(this.#rng));
  }

  #emit(m: UnsignedMessage, honest: ConsensusMessage): void {
    const rng = this.#rng;
    let strategy = this.#strategy;
    if (strategy === 'mixed')
      strategy = rng.pick([
        'silent',
        'withhold',
        'equivocate',
        'random',
        'garbage',
        'honest' as const,
      ]) as ByzantineStrategy;
    const others = this.#others();
    switch (strategy) {
      case 'silent':
      case 'split': // the split adversary acts on what it observes, not on the shadow
        return;
      case 'withhold':
        if (m.kind === 'vote' && (m.vote.type === VoteType.precommit || rng.chance(0.5))) return;
        this.#sendTo(others, honest);
        return;
      case 'equivocate': {
        const [a, b] = halves(others, rng);
        this.#sendTo(a!, honest);
        this.#sendTo(b!, this.#twin(m));
        return;
      }
      case 'random': {
        if (m.kind === 'proposal') {
          this.#sendTo(others, this.#twin(m));
          return;
        }
        const v = { ...m.vote };
        if (rng.chance(0.6))
          v.valueId = rng.chance(0.5) ? rng.bytes(32) : this.#someValueId(v.height, v.round);
        if (rng.chance(0.3)) v.round += rng.int(1, 3);
        if (rng.chance(0.1)) v.height += 1n;
        this.#sendTo(others, this.#sim.sign(this.index, { kind: 'vote', vote: v }));
        return;
      }
      case 'garbage': {
        this.#sendTo(others, honest);
        const good = this.#sim.encode(honest);
        if (honest.kind === 'commit') return;
        const flipped = honest.signed.signature.slice();
        flipped[rng.int(0, 63)]! ^= 1 << rng.int(0, 7);
        const badSig: ConsensusMessage =
          honest.kind === 'vote'
            ? { kind: 'vote', signed: { ...honest.signed, signature: flipped } }
            : { kind: 'proposal', signed: { ...honest.signed, signature: flipped } };
        this.#sim.send(this.index, rng.pick(others), encodeMessage(badSig));
        this.#sim.send(this.index, rng.pick(others), rng.bytes(rng.int(0, 200)));
        this.#sim.send(this.index, rng.pick(others), good.subarray(0, rng.int(0, good.length - 1)));
        const wrongKind = good.slice();
        wrongKind[0] = honest.kind === 'vote' ? MessageKind.proposal : 7;
        this.#sim.send(this.index, rng.pick(others), wrongKind);
        if (!this.#oversizedSent) {
          this.#oversizedSent = true;
          const oversized = new Uint8Array(400 * 1024);
          oversized[0] = MessageKind.proposal;
          this.#sim.send(this.index, rng.pick(others), oversized);
        }
        return;
      }
      default:
        this.#sendTo(others, honest);
    }
  }
}

/**
 * The colluding split-brain adversary: honest validators are split into groups (the scenario
 * partitions them from each other); every Byzantine member echoes each group's own votes back to
 * that group only, and Byzantine proposers propose a different value to each group. With f
 * Byzantine members a group never reaches 2f+1 on its own side, so this must fail; with f+1 it
 * splits the decision.
 */
export class SplitAdversary {
  readonly #sim: Simulation;
  readonly #groups: number[][];
  readonly #done = new Set<string>();
  readonly #byz: number[];

  constructor(sim: Simulation, groups: number[][]) {
    this.#sim = sim;
    this.#groups = groups;
    this.#byz = [...sim.byzantine].sort((a, b) => a - b);
  }

  #groupOf(node: number): number {
    return this.#groups.findIndex((g) => g.includes(node));
  }

  #once(key: string): boolean {
    if (this.#done.has(key)) return false;
    this.#done.add(key);
    return true;
  }

  #send(from: number, group: number, m: ConsensusMessage): void {
    const bytes = this.#sim.encode(m);
    for (const to of this.#groups[group]!) this.#sim.send(from, to, bytes);
  }

  #propose(group: number, height: bigint, round: number): void {
    const sim = this.#sim;
    const proposer = proposerIndex(sim.config.n, height, round);
    if (!sim.byzantine.has(proposer) || !this.#once(`p/${height}/${round}/${group}`)) return;
    const value = makeValue(sim.rng.fork(`split-value/${height}/${round}/${group}`));
    const proposal = { height, round, polRound: NIL_ROUND, proposer, value };
    this.#send(proposer, group, sim.sign(proposer, { kind: 'proposal', proposal }));
  }

  observe(m: ConsensusMessage): void {
    const sim = this.#sim;
    const sender = senderOf(m);
    if (sim.byzantine.has(sender)) return;
    const group = this.#groupOf(sender);
    if (group < 0) return;
    const { height, round } = heightRound(m);
    // Proposals ahead of the group: this round, the next, and round 0 of the next height.
    this.#propose(group, height, round);
    this.#propose(group, height, round + 1);
    this.#propose(group, height + 1n, 0);
    if (m.kind !== 'vote') return;
    const v = m.signed.vote;
    const types = v.type === VoteType.prevote ? [VoteType.prevote, VoteType.precommit] : [VoteType.precommit];
    for (const b of this.#byz) {
      for (const type of types) {
        if (!this.#once(`v/${b}/${height}/${round}/${type}/${group}`)) continue;
        this.#send(b, group, sim.sign(b, { kind: 'vote', vote: { ...v, type, validator: b } }));
      }
    }
  }
}

/**
 * Tendermint (Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus", arXiv 1807.04938,
 * Algorithm 1) for one validator, as a pure, synchronous state machine:
 *
 *     step(state, input) → { state, effects }
 *
 * The input state is never mutated. The driver owns time, the network, signing and the
 * write-ahead log, and must execute effects in order: every own proposal or vote is preceded by a
 * `persist` effect carrying it, so a driver that appends (and fsyncs) before it signs and sends
 * can never send a vote it would forget after a crash. The state also records every own message
 * of the current height and refuses to emit a conflicting one (the last line of defence against
 * double signing, e.g. after a restart from a stale log): it re-sends what it signed instead and
 * reports `refused-conflict`.
 *
 * Own messages are emitted unsigned; the driver signs exactly those (Ed25519, plus a BLS partial
 * over the value id for a non-nil precommit) and feeds the signed copy back as an ordinary input,
 * like every other validator's message (the paper's "broadcast" includes the sender).
 *
 * Values arrive through effects answered by inputs: `request-value` → `value` (the paper's
 * getValue()), `validate-value` → `validity` (valid(v)); an upon-rule that needs valid(v) waits
 * for the verdict. Line numbers below refer to Algorithm 1 of the paper.
 */
import { bytesToHex, equalBytes, hexToBytes } from '../bytes.ts';
import { proposerIndex, quorum, weakQuorum } from './committee.ts';
import { ConsensusError } from './errors.ts';
import { polRoundOf, sameProposal, type UnsignedMessage, valueId } from './messages.ts';
import {
  type Commit,
  type ConsensusMessage,
  type ConsensusValue,
  type Evidence,
  MAX_ROUND,
  NIL_ROUND,
  type Proposal,
  type SignedProposal,
  type SignedVote,
  type Vote,
  VoteType,
} from './types.ts';

export type Step = 'propose' | 'prevote' | 'precommit';
const STEP_ORDER: Record<Step, number> = { propose: 0, prevote: 1, precommit: 2 };

export interface TimeoutConfig {
  baseMs: number;
  deltaMs: number;
}

export interface TendermintParams {
  chainId: string;
  /** Committee size; members are 0..n−1 (BLS share index = member + 1). */
  n: number;
  /** This validator's index. */
  self: number;
  /** timeoutX(r) = baseMs + r · deltaMs per step kind (the paper's initTimeoutX + r · timeoutDelta). */
  timeouts: Record<Step, TimeoutConfig>;
  /** Messages for rounds above round + roundWindow are dropped (bounds memory per height). */
  roundWindow: number;
}

export const DEFAULT_TIMEOUTS: Record<Step, TimeoutConfig> = {
  propose: { baseMs: 3000, deltaMs: 500 },
  prevote: { baseMs: 1000, deltaMs: 500 },
  precommit: { baseMs: 1000, deltaMs: 500 },
};
export const DEFAULT_ROUND_WINDOW = 64;

export function timeoutMs(params: TendermintParams, step: Step, round: number): number {
  const t = params.timeouts[step];
  return t.baseMs + round * t.deltaMs;
}

/**
 * Messages received for one round of the current height: the paper's message log. An equivocating
 * member appears once per distinct value it signed (up to MAX_VOTES_PER_SENDER; a commit input
 * bypasses the bound) and counts toward each, as in the paper; honest members appear once.
 * Proposals likewise (the first one received drives this member's prevote).
 */
export interface RoundState {
  proposals: SignedProposal[];
  /** id(v) of each proposal's value (cached: it is a hash). */
  proposalIds: Uint8Array[];
  /** Distinct (validator, value id) pairs. */
  prevotes: SignedVote[];
  precommits: SignedVote[];
  /** Distinct members with at least one prevote / precommit here. */
  prevoteSenders: number;
  precommitSenders: number;
  /** "for the first time" flags of lines 34, 36 and 47. */
  prevoteWaitArmed: boolean;
  polkaSeen: boolean;
  precommitWaitArmed: boolean;
}

/** Distinct votes kept per member, round and kind (bounds what an equivocator can make us store). */
export const MAX_VOTES_PER_SENDER = 3;
/** Distinct proposals kept per round from gossip (a commit input may add its own). */
export const MAX_PROPOSALS_PER_ROUND = 3;

export interface OwnProposal {
  polRound: number;
  value: ConsensusValue;
}

export interface TendermintState {
  params: TendermintParams;
  height: bigint;
  round: number;
  step: Step;
  /** False until the `start` input (so a recovered state re-arms its timers and re-sends once). */
  started: boolean;
  lockedValue: ConsensusValue | null;
  lockedId: Uint8Array | null;
  lockedRound: number;
  validValue: ConsensusValue | null;
  validRound: number;
  /** By round (decimal string), current height only. */
  rounds: Record<string, RoundState>;
  /** valid(v) verdicts by value id (hex), current height only. */
  validity: Record<string, boolean>;
  pendingValidation: Record<string, true>;
  /** Own proposals by round and own votes by `${type}/${round}` (value id, empty for nil): never contradicted. */
  ownProposals: Record<string, OwnProposal>;
  ownVotes: Record<string, Uint8Array>;
  /** Equivocations already reported, by `${kind}/${round}/${validator}`. */
  evidenceSeen: Record<string, true>;
}

/** A proposal and 2f+1 prevotes for its value in its round: what justifies a lock or a valid value. */
export interface Polka {
  proposal: SignedProposal;
  prevotes: SignedVote[];
}

/**
 * What the driver must make durable before acting on the effects that follow it. A lock and a valid
 * value are logged with their polka: after a restart the validator must be able to show it again
 * (to re-propose the value, or to let others learn it), and a Byzantine prevote in it is never re-sent.
 */
export type WalRecord =
  | { kind: 'proposal'; height: bigint; round: number; polRound: number; value: ConsensusValue }
  | {
      kind: 'vote';
      height: bigint;
      round: number;
      type: VoteType;
      /** Empty for nil. */
      valueId: Uint8Array;
      /** For a non-nil precommit: the polka behind the lock it takes. */
      polka: Polka | null;
    }
  | { kind: 'valid'; height: bigint; round: number; polka: Polka }
  | {
      kind: 'decision';
      height: bigint;
      round: number;
      value: ConsensusValue;
      proposal: SignedProposal;
      commit: SignedVote[];
    };

export type Input =
  | { type: 'start' }
  | { type: 'proposal'; signed: SignedProposal }
  | { type: 'vote'; signed: SignedVote }
  /** A verified commit (catch-up): stored beyond the per-sender bounds, then the usual rules decide. */
  | { type: 'commit'; commit: Commit }
  | { type: 'timeout'; height: bigint; round: number; step: Step }
  | { type: 'value'; height: bigint; round: number; value: ConsensusValue }
  | { type: 'validity'; height: bigint; valueId: Uint8Array; valid: boolean };

export type Effect =
  | { type: 'persist'; record: WalRecord }
  /**
   * Sign and send to every member (and feed the signed copy back). `relay`: messages to send along
   * that receivers may lack: a re-proposal's polka, or the polka a locked member holds when it
   * prevotes nil (so proposers learn the latest polka and re-propose its value).
   */
  | { type: 'broadcast'; message: UnsignedMessage; relay: ConsensusMessage[] }
  | { type: 'schedule-timeout'; height: bigint; round: number; step: Step; delayMs: number }
  | { type: 'request-value'; height: bigint; round: number }
  | { type: 'validate-value'; height: bigint; valueId: Uint8Array; value: ConsensusValue }
  /** The 2f+1 (or more) precommits for the value in `round` form the commit; their BLS partials the certificate. */
  | {
      type: 'decide';
      height: bigint;
      round: number;
      value: ConsensusValue;
      proposal: SignedProposal;
      commit: SignedVote[];
    }
  | { type: 'evidence'; evidence: Evidence }
  /** The double-sign guard fired: the machine was about to contradict an own message (a bug or a stale log). */
  | { type: 'refused-conflict'; height: bigint; round: number; what: 'proposal' | 'prevote' | 'precommit' };

export interface StepResult {
  state: TendermintState;
  effects: Effect[];
}

export function assertParams(params: TendermintParams): void {
  const bad = (why: string) => new ConsensusError('CONSENSUS_BAD_PARAMS', why, 'REJECT');
  if (!Number.isSafeInteger(params.n) || params.n < 1 || params.n > 65535) throw bad('n out of range');
  if (!Number.isSafeInteger(params.self) || params.self < 0 || params.self >= params.n)
    throw bad('self out of range');
  if (!Number.isSafeInteger(params.roundWindow) || params.roundWindow < 1)
    throw bad('roundWindow must be >= 1');
  for (const s of ['propose', 'prevote', 'precommit'] as const) {
    const t = params.timeouts[s];
    if (!(t.baseMs > 0) || !(t.deltaMs >= 0)) throw bad(`timeout ${s} must have baseMs > 0, deltaMs >= 0`);
  }
}

/** A validator at `height`, round 0, not started. */
export function initialState(params: TendermintParams, height: bigint): TendermintState {
  assertParams(params);
  return {
    params,
    height,
    round: 0,
    step: 'propose',
    started: false,
    lockedValue: null,
    lockedId: null,
    lockedRound: -1,
    validValue: null,
    validRound: -1,
    rounds: {},
    validity: {},
    pendingValidation: {},
    ownProposals: {},
    ownVotes: {},
    evidenceSeen: {},
  };
}

export function step(state: TendermintState, input: Input): StepResult {
  const m = new Machine(state);
  m.handle(input);
  if (m.s.started) m.applyRules();
  return { state: m.s, effects: m.effects };
}

/** Applies inputs in order (tests, replay). */
export function stepAll(state: TendermintState, inputs: readonly Input[]): StepResult {
  let s = state;
  const effects: Effect[] = [];
  for (const i of inputs) {
    const r = step(s, i);
    s = r.state;
    effects.push(...r.effects);
  }
  return { state: s, effects };
}

function emptyRound(): RoundState {
  return {
    proposals: [],
    proposalIds: [],
    prevotes: [],
    precommits: [],
    prevoteSenders: 0,
    precommitSenders: 0,
    prevoteWaitArmed: false,
    polkaSeen: false,
    precommitWaitArmed: false,
  };
}

function voteKey(type: VoteType, round: number): string {
  return `${type}/${round}`;
}

const NIL = new Uint8Array(0);

/** One step's worth of copy-on-write edits over an immutable state. */
class Machine {
  readonly s: TendermintState;
  readonly effects: Effect[] = [];
  readonly #copiedRounds = new Set<string>();
  readonly #copiedRecords = new Set<string>();
  readonly #n: number;
  readonly #q: number;
  readonly #weak: number;

  constructor(state: TendermintState) {
    this.s = { ...state };
    this.#n = state.params.n;
    this.#q = quorum(this.#n);
    this.#weak = weakQuorum(this.#n);
  }

  // -- copy-on-write helpers --------------------------------------------------------------------

  #record<
    K extends 'validity' | 'pendingValidation' | 'ownProposals' | 'ownVotes' | 'evidenceSeen' | 'rounds',
  >(k: K): TendermintState[K] {
    if (!this.#copiedRecords.has(k)) {
      this.#copiedRecords.add(k);
      (this.s as unknown as Record<string, unknown>)[k] = { ...this.s[k] };
    }
    return this.s[k];
  }

  #roundMut(round: number): RoundState {
    const key = String(round);
    const rounds = this.#record('rounds');
    if (!this.#copiedRounds.has(key)) {
      this.#copiedRounds.add(key);
      const old = rounds[key];
      rounds[key] = old
        ? {
            ...old,
            proposals: old.proposals.slice(),
            proposalIds: old.proposalIds.slice(),
            prevotes: old.prevotes.slice(),
            precommits: old.precommits.slice(),
          }
        : emptyRound();
    }
    return rounds[key]!;
  }

  #round(round: number): RoundState | undefined {
    return this.s.rounds[String(round)];
  }

  #resetHeight(height: bigint): void {
    const s = this.s;
    s.height = height;
    s.round = 0;
    s.step = 'propose';
    s.lockedValue = null;
    s.lockedId = null;
    s.lockedRound = -1;
    s.validValue = null;
    s.validRound = -1;
    s.rounds = {};
    s.validity = {};
    s.pendingValidation = {};
    s.ownProposals = {};
    s.ownVotes = {};
    s.evidenceSeen = {};
    // Fresh objects: they are owned by this step now.
    for (const k of ['rounds', 'validity', 'pendingValidation', 'ownProposals', 'ownVotes', 'evidenceSeen']) {
      this.#copiedRecords.add(k);
    }
    this.#copiedRounds.clear();
  }

  // -- inputs -----------------------------------------------------------------------------------

  handle(input: Input): void {
    const s = this.s;
    switch (input.type) {
      case 'start':
        if (!s.started) {
          s.started = true;
          this.#resume();
        }
        return;
      case 'proposal':
        this.#onProposal(input.signed);
        return;
      case 'vote':
        this.#onVote(input.signed, false);
        return;
      case 'commit':
        this.#onCommit(input.commit);
        return;
      case 'timeout':
        if (s.started) this.#onTimeout(input.height, input.round, input.step);
        return;
      case 'value':
        if (
          s.started &&
          input.height === s.height &&
          input.round === s.round &&
          s.step === 'propose' &&
          this.#isProposer(s.round) &&
          s.ownProposals[String(s.round)] === undefined
        ) {
          this.#propose(s.validValue ?? input.value, s.validValue ? s.validRound : -1);
        }
        return;
      case 'validity':
        if (input.height === s.height) {
          const hex = bytesToHex(input.valueId);
          this.#record('validity')[hex] = input.valid;
          delete this.#record('pendingValidation')[hex];
        }
        return;
    }
  }

  #inWindow(height: bigint, round: number): boolean {
    return height === this.s.height && round < MAX_ROUND && round <= this.s.round + this.s.params.roundWindow;
  }

  #onProposal(signed: SignedProposal, bypass = false): void {
    const p = signed.proposal;
    if (!(bypass ? p.height === this.s.height && p.round < MAX_ROUND : this.#inWindow(p.height, p.round)))
      return;
    if (p.proposer !== proposerIndex(this.#n, p.height, p.round)) return;
    if (p.polRound !== NIL_ROUND && p.polRound >= p.round) return;
    const existing = this.#round(p.round)?.proposals ?? [];
    if (existing.some((e) => sameProposal(e.proposal, p))) return;
    if (existing.length > 0) {
      this.#evidence(`p/${p.round}/${p.proposer}`, {
        kind: 'conflicting-proposals',
        proposals: { first: existing[0]!, second: signed },
      });
      if (!bypass && existing.length >= MAX_PROPOSALS_PER_ROUND) return;
    }
    const rs = this.#roundMut(p.round);
    const id = valueId(this.s.params.chainId, p.height, p.value);
    rs.proposals.push(signed);
    rs.proposalIds.push(id);
    const hex = bytesToHex(id);
    if (this.s.validity[hex] === undefined && this.s.pendingValidation[hex] === undefined) {
      this.#record('pendingValidation')[hex] = true;
      this.effects.push({ type: 'validate-value', height: p.height, valueId: id, value: p.value });
    }
  }

  #onVote(signed: SignedVote, bypass: boolean): void {
    const v = signed.vote;
    if (!(bypass ? v.height === this.s.height && v.round < MAX_ROUND : this.#inWindow(v.height, v.round)))
      return;
    if (v.validator >= this.#n || (v.type !== VoteType.prevote && v.type !== VoteType.precommit)) return;
    const prevote = v.type === VoteType.prevote;
    const held = (prevote ? this.#round(v.round)?.prevotes : this.#round(v.round)?.precommits) ?? [];
    let mine = 0;
    let first: SignedVote | undefined;
    for (const x of held) {
      if (x.vote.validator !== v.validator) continue;
      if (equalBytes(x.vote.valueId, v.valueId)) return; // duplicate
      first ??= x;
      mine++;
    }
    if (first) {
      this.#evidence(`${v.type}/${v.round}/${v.validator}`, {
        kind: 'conflicting-votes',
        votes: { first, second: signed },
      });
      if (!bypass && mine >= MAX_VOTES_PER_SENDER) return;
    }
    const rs = this.#roundMut(v.round);
    if (prevote) {
      rs.prevotes.push(signed);
      if (mine === 0) rs.prevoteSenders++;
    } else {
      rs.precommits.push(signed);
      if (mine === 0) rs.precommitSenders++;
    }
  }

  /** Recovery: a logged polka joins the message log again. */
  restorePolka(polka: Polka): void {
    this.#onProposal(polka.proposal, true);
    for (const v of polka.prevotes) this.#onVote(v, true);
  }

  /** A commit: its proposal and precommits join the log whatever the per-sender bounds. */
  #onCommit(commit: Commit): void {
    const p = commit.proposal.proposal;
    if (p.height !== this.s.height) return;
    const id = valueId(this.s.params.chainId, p.height, p.value);
    for (const c of commit.precommits) {
      const v = c.vote;
      if (
        v.type !== VoteType.precommit ||
        v.height !== p.height ||
        v.round !== p.round ||
        !equalBytes(v.valueId, id)
      ) {
        return;
      }
    }
    // A value judged not valid earlier is asked about again: the answer is often "not valid *now*"
    // (its candidate or history had not arrived), 2f+1 precommits are reason to look again, and a
    // member that kept the first answer would never decide this height.
    const hex = bytesToHex(id);
    if (this.s.validity[hex] === false && this.s.pendingValidation[hex] === undefined) {
      delete this.#record('validity')[hex];
      this.#record('pendingValidation')[hex] = true;
      this.effects.push({ type: 'validate-value', height: p.height, valueId: id, value: p.value });
    }
    this.#onProposal(commit.proposal, true);
    for (const c of commit.precommits) this.#onVote(c, true);
  }

  #evidence(key: string, evidence: Evidence): void {
    if (this.s.evidenceSeen[key]) return;
    this.#record('evidenceSeen')[key] = true;
    this.effects.push({ type: 'evidence', evidence });
  }

  #onTimeout(height: bigint, round: number, step: Step): void {
    const s = this.s;
    if (height !== s.height || round !== s.round) return;
    if (step === 'propose' && s.step === 'propose') {
      // line 57
      this.#vote(VoteType.prevote, NIL, null);
      s.step = 'prevote';
    } else if (step === 'prevote' && s.step === 'prevote') {
      // line 61
      this.#vote(VoteType.precommit, NIL, null);
      s.step = 'precommit';
    } else if (step === 'precommit') {
      // line 65
      this.#startRound(s.round + 1);
    }
  }

  // -- actions ----------------------------------------------------------------------------------

  #isProposer(round: number): boolean {
    return proposerIndex(this.#n, this.s.height, round) === this.s.params.self;
  }

  #schedule(step: Step, round: number): void {
    this.effects.push({
      type: 'schedule-timeout',
      height: this.s.height,
      round,
      step,
      delayMs: timeoutMs(this.s.params, step, round),
    });
  }

  /** StartRound (line 11). Every member arms timeoutPropose, the proposer too (its value may never come). */
  #startRound(round: number): void {
    const s = this.s;
    s.round = round;
    s.step = 'propose';
    if (this.#isProposer(round)) {
      const own = s.ownProposals[String(round)];
      if (own) this.#broadcastProposal(own);
      else if (s.validValue) this.#propose(s.validValue, s.validRound);
      else this.effects.push({ type: 'request-value', height: s.height, round });
    }
    this.#schedule('propose', round);
  }

  /** After `start`: enter the current step again, re-sending own messages of this round and re-arming its timer. */
  /**
   * After `start`: re-send every own message of this height (peers still in an earlier round may
   * need our precommit there, and a restarted validator's log of received messages is gone), then
   * enter the current step again and re-arm its timer.
   */
  #resume(): void {
    const s = this.s;
    for (const key in s.ownProposals) {
      const round = Number(key);
      if (round !== s.round) this.#broadcastProposal(s.ownProposals[key]!, round);
    }
    for (const key in s.ownVotes) {
      const [type, round] = key.split('/').map(Number) as [VoteType, number];
      if (round !== s.round) this.#broadcastVote(type, round, s.ownVotes[key]!);
    }
    if (s.step === 'propose' && s.ownVotes[voteKey(VoteType.prevote, s.round)] === undefined) {
      this.#startRound(s.round);
      return;
    }
    const own = s.ownProposals[String(s.round)];
    if (own) this.#broadcastProposal(own);
    for (const type of [VoteType.prevote, VoteType.precommit]) {
      const id = s.ownVotes[voteKey(type, s.round)];
      if (id !== undefined) this.#broadcastVote(type, s.round, id);
    }
    this.#schedule(s.step, s.round);
  }

  #proposalMessage(round: number, own: OwnProposal): Proposal {
    return {
      height: this.s.height,
      round,
      polRound: own.polRound < 0 ? NIL_ROUND : own.polRound,
      proposer: this.s.params.self,
      value: own.value,
    };
  }

  #broadcastProposal(own: OwnProposal, round = this.s.round): void {
    const proposal = this.#proposalMessage(round, own);
    let relay: ConsensusMessage[] = [];
    if (own.polRound >= 0) {
      const id = valueId(this.s.params.chainId, this.s.height, own.value);
      relay = votesFor(this.#round(own.polRound)?.prevotes ?? [], id).map((signed) => ({
        kind: 'vote',
        signed,
      }));
    }
    this.effects.push({ type: 'broadcast', message: { kind: 'proposal', proposal }, relay });
  }

  /** The proposal and prevotes of the polka behind our lock. */
  #lockPolka(): ConsensusMessage[] {
    const s = this.s;
    const rs = this.#round(s.lockedRound);
    if (!rs || !s.lockedId) return [];
    const out: ConsensusMessage[] = [];
    rs.proposalIds.forEach((id, k) => {
      if (equalBytes(id, s.lockedId!)) out.push({ kind: 'proposal', signed: rs.proposals[k]! });
    });
    for (const signed of votesFor(rs.prevotes, s.lockedId)) out.push({ kind: 'vote', signed });
    return out;
  }

  #propose(value: ConsensusValue, polRound: number): void {
    const s = this.s;
    const key = String(s.round);
    const existing = s.ownProposals[key];
    if (existing) {
      const same =
        existing.polRound === polRound &&
        equalBytes(existing.value.blockHash, value.blockHash) &&
        equalBytes(existing.value.historyRoot, value.historyRoot) &&
        equalBytes(existing.value.payload, value.payload);
      if (!same)
        this.effects.push({ type: 'refused-conflict', height: s.height, round: s.round, what: 'proposal' });
      this.#broadcastProposal(existing);
      return;
    }
    const own = { polRound, value };
    this.#record('ownProposals')[key] = own;
    // Our own value (from getValue or our validValue) needs no validation round trip.
    this.#record('validity')[bytesToHex(valueId(s.params.chainId, s.height, value))] = true;
    this.effects.push({
      type: 'persist',
      record: { kind: 'proposal', height: s.height, round: s.round, polRound, value },
    });
    this.#broadcastProposal(own);
  }

  #broadcastVote(type: VoteType, round: number, id: Uint8Array, relay: ConsensusMessage[] = []): void {
    const vote: Vote = { type, height: this.s.height, round, validator: this.s.params.self, valueId: id };
    this.effects.push({ type: 'broadcast', message: { kind: 'vote', vote }, relay });
  }

  /**
   * Signs (through the driver) an own vote for the current round, unless one of this kind was
   * already signed: then that one is re-sent, and a conflicting request is refused. Returns the
   * value id actually voted.
   */
  #vote(type: VoteType, id: Uint8Array, polka: Polka | null, relay: ConsensusMessage[] = []): Uint8Array {
    const s = this.s;
    const key = voteKey(type, s.round);
    const existing = s.ownVotes[key];
    if (existing !== undefined) {
      if (!equalBytes(existing, id)) {
        this.effects.push({
          type: 'refused-conflict',
          height: s.height,
          round: s.round,
          what: type === VoteType.prevote ? 'prevote' : 'precommit',
        });
      }
      this.#broadcastVote(type, s.round, existing);
      return existing;
    }
    this.#record('ownVotes')[key] = id;
    this.effects.push({
      type: 'persist',
      record: { kind: 'vote', height: s.height, round: s.round, type, valueId: id, polka },
    });
    this.#broadcastVote(type, s.round, id, relay);
    return id;
  }

  // -- upon rules -------------------------------------------------------------------------------

  applyRules(): void {
    // Each rule that fires changes the step, the round or a first-time flag, so this terminates;
    // the bound is a backstop only.
    for (let i = 0; i < 100_000; i++) {
      if (
        this.#ruleDecide() ||
        this.#ruleSkipRound() ||
        this.#ruleLaterPolka() ||
        this.#ruleProposal() ||
        this.#rulePrevoteWait() ||
        this.#rulePolka() ||
        this.#rulePolkaNil() ||
        this.#rulePrecommitWait()
      ) {
        continue;
      }
      return;
    }
  }

  #valid(id: Uint8Array): boolean | undefined {
    return this.s.validity[bytesToHex(id)];
  }

  /** Line 49: a proposal and 2f+1 precommits for it in any round of this height. */
  #ruleDecide(): boolean {
    const s = this.s;
    for (const key in s.rounds) {
      const rs = s.rounds[key]!;
      if (rs.precommitSenders < this.#q) continue;
      for (let k = 0; k < rs.proposals.length; k++) {
        const id = rs.proposalIds[k]!;
        if (countFor(rs.precommits, id) < this.#q || this.#valid(id) !== true) continue;
        const proposal = rs.proposals[k]!;
        const round = Number(key);
        const value = proposal.proposal.value;
        const commit = votesFor(rs.precommits, id);
        const decided = { height: s.height, round, value, proposal, commit };
        this.effects.push({ type: 'persist', record: { kind: 'decision', ...decided } });
        this.effects.push({ type: 'decide', ...decided });
        this.#resetHeight(s.height + 1n);
        this.#startRound(0);
        return true;
      }
    }
    return false;
  }

  /** Line 55: f+1 members have sent something for a higher round: go there. */
  #ruleSkipRound(): boolean {
    const s = this.s;
    let target = -1;
    for (const key in s.rounds) {
      const round = Number(key);
      if (round <= s.round || round <= target) continue;
      const rs = s.rounds[key]!;
      const senders = new Set<number>();
      for (const v of rs.prevotes) senders.add(v.vote.validator);
      for (const v of rs.precommits) senders.add(v.vote.validator);
      if (rs.proposals.length > 0) senders.add(rs.proposals[0]!.proposal.proposer);
      if (senders.size >= this.#weak) target = round;
    }
    if (target < 0) return false;
    this.#startRound(target);
    return true;
  }

  /**
   * Not in Algorithm 1: a polka observed for an earlier round r > validRound also updates validValue
   * (line 36 only looks at the current round). validValue only decides what this member proposes,
   * and receivers accept a re-proposal (line 28) only with the polka in hand and their lock at or
   * below it, so safety is untouched; liveness gains, because a proposer that was elsewhere when a
   * polka formed re-proposes its value instead of a fresh one the locked members must refuse.
   */
  #ruleLaterPolka(): boolean {
    const s = this.s;
    for (const key in s.rounds) {
      const r = Number(key);
      if (r <= s.validRound || r >= s.round) continue;
      const rs = s.rounds[key]!;
      if (rs.prevoteSenders < this.#q) continue;
      const k = rs.proposalIds.findIndex(
        (id) => this.#valid(id) === true && countFor(rs.prevotes, id) >= this.#q,
      );
      if (k < 0) continue;
      const polka: Polka = {
        proposal: rs.proposals[k]!,
        prevotes: votesFor(rs.prevotes, rs.proposalIds[k]!),
      };
      s.validValue = polka.proposal.proposal.value;
      s.validRound = r;
      this.effects.push({ type: 'persist', record: { kind: 'valid', height: s.height, round: r, polka } });
      return true;
    }
    return false;
  }

  /** Lines 22 and 28: the proposal of this round, once its validity is known. */
  #ruleProposal(): boolean {
    const s = this.s;
    if (s.step !== 'propose') return false;
    const rs = this.#round(s.round);
    const proposal = rs?.proposals[0];
    if (!rs || !proposal) return false;
    const id = rs.proposalIds[0]!;
    const valid = this.#valid(id);
    if (valid === undefined) return false;
    const vr = polRoundOf(proposal.proposal);
    const lockedOnIt = s.lockedId !== null && equalBytes(s.lockedId, id);
    let accept: boolean;
    if (vr < 0) {
      accept = valid && (s.lockedRound === -1 || lockedOnIt); // line 22
    } else {
      if (countFor(this.#round(vr)?.prevotes ?? [], id) < this.#q) return false; // line 28 needs the polka of vr
      accept = valid && (s.lockedRound <= vr || lockedOnIt);
    }
    // A locked member that refuses a proposal relays its lock's polka: the next proposers learn it.
    const relay = !accept && s.lockedRound >= 0 && !lockedOnIt ? this.#lockPolka() : [];
    this.#vote(VoteType.prevote, accept ? id : NIL, null, relay);
    s.step = 'prevote';
    return true;
  }

  /** Line 34: 2f+1 prevotes of any kind in this round arm timeoutPrevote. */
  #rulePrevoteWait(): boolean {
    const s = this.s;
    if (s.step !== 'prevote') return false;
    const rs = this.#round(s.round);
    if (!rs || rs.prevoteWaitArmed || rs.prevoteSenders < this.#q) return false;
    this.#roundMut(s.round).prevoteWaitArmed = true;
    this.#schedule('prevote', s.round);
    return true;
  }

  /** Line 36: the proposal and 2f+1 prevotes for it: lock and precommit (in step prevote), remember as valid. */
  #rulePolka(): boolean {
    const s = this.s;
    if (STEP_ORDER[s.step] < STEP_ORDER.prevote) return false;
    const rs = this.#round(s.round);
    if (!rs || rs.polkaSeen || rs.prevoteSenders < this.#q) return false;
    // Two polkas in one round would need an honest member to prevote twice: at most one matches.
    const k = rs.proposalIds.findIndex(
      (id) => this.#valid(id) === true && countFor(rs.prevotes, id) >= this.#q,
    );
    if (k < 0) return false;
    const id = rs.proposalIds[k]!;
    this.#roundMut(s.round).polkaSeen = true;
    const polka: Polka = { proposal: rs.proposals[k]!, prevotes: votesFor(rs.prevotes, id) };
    const value = polka.proposal.proposal.value;
    if (s.step === 'prevote') {
      const voted = this.#vote(VoteType.precommit, id, polka);
      if (equalBytes(voted, id)) {
        s.lockedValue = value;
        s.lockedId = id;
        s.lockedRound = s.round;
      }
      s.step = 'precommit';
    } else {
      this.effects.push({
        type: 'persist',
        record: { kind: 'valid', height: s.height, round: s.round, polka },
      });
    }
    s.validValue = value;
    s.validRound = s.round;
    return true;
  }

  /** Line 44: 2f+1 nil prevotes: precommit nil. */
  #rulePolkaNil(): boolean {
    const s = this.s;
    if (s.step !== 'prevote') return false;
    const rs = this.#round(s.round);
    if (!rs || countFor(rs.prevotes, NIL) < this.#q) return false;
    this.#vote(VoteType.precommit, NIL, null);
    s.step = 'precommit';
    return true;
  }

  /** Line 47: 2f+1 precommits of any kind in this round arm timeoutPrecommit. */
  #rulePrecommitWait(): boolean {
    const s = this.s;
    const rs = this.#round(s.round);
    if (!rs || rs.precommitWaitArmed || rs.precommitSenders < this.#q) return false;
    this.#roundMut(s.round).precommitWaitArmed = true;
    this.#schedule('precommit', s.round);
    return true;
  }
}

/** Members with a vote for `id` (entries are distinct (member, id) pairs, so this counts members). */
function countFor(votes: readonly SignedVote[], id: Uint8Array): number {
  let c = 0;
  for (const v of votes) if (equalBytes(v.vote.valueId, id)) c++;
  return c;
}

function votesFor(votes: readonly SignedVote[], id: Uint8Array): SignedVote[] {
  return votes
    .filter((v) => equalBytes(v.vote.valueId, id))
    .sort((a, b) => a.vote.validator - b.vote.validator);
}

// ---------------------------------------------------------------------------------------------
// Queries for the driver

/** Throws IGNORE errors for a message the state already holds (duplicate) or contradicts (equivocation). */
/**
 * Judges a message against what the state already holds: throws CONSENSUS_DUPLICATE (IGNORE) for
 * one it holds; for the second half of an equivocation returns the evidence (the message is still
 * useful: the paper's log keeps both halves). Commits are never judged here.
 */
export function checkAgainstState(state: TendermintState, m: ConsensusMessage): Evidence | null {
  if (m.kind === 'commit') return null;
  if (m.kind === 'proposal') {
    const p = m.signed.proposal;
    if (p.height !== state.height) return null;
    const existing = state.rounds[String(p.round)]?.proposals ?? [];
    if (existing.some((e) => sameProposal(e.proposal, p))) {
      throw new ConsensusError('CONSENSUS_DUPLICATE', 'proposal already received', 'IGNORE');
    }
    return existing[0]
      ? { kind: 'conflicting-proposals', proposals: { first: existing[0], second: m.signed } }
      : null;
  }
  const v = m.signed.vote;
  if (v.height !== state.height) return null;
  const rs = state.rounds[String(v.round)];
  const held = (v.type === VoteType.prevote ? rs?.prevotes : rs?.precommits) ?? [];
  let first: SignedVote | undefined;
  for (const x of held) {
    if (x.vote.validator !== v.validator) continue;
    if (equalBytes(x.vote.valueId, v.valueId)) {
      throw new ConsensusError('CONSENSUS_DUPLICATE', 'vote already received', 'IGNORE');
    }
    first ??= x;
  }
  return first ? { kind: 'conflicting-votes', votes: { first, second: m.signed } } : null;
}

/** Every message held for the current height at the given rounds (for re-gossip after a stall). */
export function messagesAt(state: TendermintState, rounds: readonly number[]): ConsensusMessage[] {
  const out: ConsensusMessage[] = [];
  for (const r of new Set(rounds)) {
    const rs = state.rounds[String(r)];
    if (!rs) continue;
    for (const p of rs.proposals) out.push({ kind: 'proposal', signed: p });
    for (const v of rs.prevotes) out.push({ kind: 'vote', signed: v });
    for (const v of rs.precommits) out.push({ kind: 'vote', signed: v });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Restart: rebuild the state from the write-ahead log

/**
 * Rebuilds a validator from its write-ahead log. The height is the one after the last decision in
 * the log (or `minHeight`, the chain store's tip + 1, if higher). For that height it restores every
 * own proposal and vote (so nothing contradicting them can be signed), the lock (the latest non-nil
 * own precommit) and the valid value with the polkas behind them, and the round and step of the
 * latest own message. Other received messages are not in the log: peers re-gossip them. The result
 * is not started; send `start`.
 * Throws CONSENSUS_BAD_WAL for a log that contradicts itself.
 */
export function recover(
  params: TendermintParams,
  records: readonly WalRecord[],
  minHeight: bigint,
): TendermintState {
  let height = minHeight;
  for (const r of records) if (r.kind === 'decision' && r.height + 1n > height) height = r.height + 1n;
  const s = initialState(params, height);
  const bad = (why: string) =>
    new ConsensusError('CONSENSUS_BAD_WAL', why, 'REJECT', { height: String(height) });
  let round = 0;
  let seen = false;
  const polkas: Polka[] = [];
  for (const r of records) {
    if (r.kind === 'decision' || r.height !== height) continue;
    seen = true;
    if (r.round > round) round = r.round;
    if (r.kind === 'proposal') {
      const key = String(r.round);
      const prev = s.ownProposals[key];
      if (
        prev &&
        !equalBytes(valueId(params.chainId, height, prev.value), valueId(params.chainId, height, r.value))
      ) {
        throw bad(`two own proposals in round ${r.round}`);
      }
      s.ownProposals[key] = { polRound: r.polRound, value: r.value };
      s.validity[bytesToHex(valueId(params.chainId, height, r.value))] = true;
    } else if (r.kind === 'vote') {
      const key = voteKey(r.type, r.round);
      const prev = s.ownVotes[key];
      if (prev !== undefined && !equalBytes(prev, r.valueId)) throw bad(`two own votes ${key}`);
      s.ownVotes[key] = r.valueId;
      if (r.type === VoteType.precommit && r.polka && r.round > s.lockedRound) {
        s.lockedValue = r.polka.proposal.proposal.value;
        s.lockedId = r.valueId;
        s.lockedRound = r.round;
      }
    }
    const polka = r.kind === 'valid' ? r.polka : r.kind === 'vote' ? r.polka : null;
    if (polka) {
      polkas.push(polka);
      s.validity[bytesToHex(valueId(params.chainId, height, polka.proposal.proposal.value))] = true;
      if (r.round > s.validRound) {
        s.validValue = polka.proposal.proposal.value;
        s.validRound = r.round;
      }
    }
  }
  if (seen) {
    s.round = round;
    if (s.ownVotes[voteKey(VoteType.precommit, round)] !== undefined) s.step = 'precommit';
    else if (s.ownVotes[voteKey(VoteType.prevote, round)] !== undefined) s.step = 'prevote';
  }
  const m = new Machine(s);
  for (const p of polkas) m.restorePolka(p);
  return m.s;
}

/** Decisions recorded in a write-ahead log, by height (the driver re-applies any its store lacks). */
export function decisionsIn(records: readonly WalRecord[]): Extract<WalRecord, { kind: 'decision' }>[] {
  return records.filter((r): r is Extract<WalRecord, { kind: 'decision' }> => r.kind === 'decision');
}

// ---------------------------------------------------------------------------------------------
// Serialization: states and log records as JSON (bytes as hex, bigints as decimal strings).

export function toJson(value: unknown): string {
  // The replacer reads the holder's raw value: JSON.stringify calls `toJSON` before the replacer,
  // and a Node Buffer (what SSZ decoding may hand back for byte fields) would arrive as
  // `{ type: 'Buffer', data: [...] }` instead of as a Uint8Array.
  return JSON.stringify(value, function (this: Record<string, unknown>, k: string, v: unknown) {
    const raw = this[k];
    if (typeof raw === 'bigint') return { $bigint: raw.toString() };
    if (raw instanceof Uint8Array) return { $bytes: bytesToHex(raw) };
    return v;
  });
}

export function fromJson<T>(json: string): T {
  return JSON.parse(json, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && typeof o['$bigint'] === 'string') return BigInt(o['$bigint']);
      if (keys.length === 1 && typeof o['$bytes'] === 'string') return hexToBytes(o['$bytes']);
    }
    return v;
  }) as T;
}

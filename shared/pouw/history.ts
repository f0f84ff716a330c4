/**
 * The supervisors' message history of one task (DESIGN §4.5 last paragraph, §4.6; ADR 0011).
 *
 * A supervisor node hands every IT_RES of the task to `offer()`. The history runs the stateless
 * checks (size, task, membership, signature), ignores duplicates, audits the message on arrival
 * against the state it tracks for the miner (`auditItRes`: expected iteration, batch schedule, peer
 * updates, modelHash against n, map well formed and bounded) and records it. Messages that arrive
 * early (a later iteration than the one expected, or peer ids not recorded yet) wait in a bounded
 * per-miner queue and are audited when what they need arrives. A second IT_RES for a (miner,
 * iteration) the history holds is refused and kept as equivocation evidence.
 *
 * The recorded ids form one ordered list: the decided prefix (agreed by consensus, in the order the
 * proposals listed them) followed by the local tail (in recording order). Its Merkle root is the
 * `historyRoot` of the consensus value; a proposal lists the tail (`proposal()`, SSZ `HistoryIds`),
 * others fetch what they miss (`checkProposalIds`) before prevoting and adopt the list once decided
 * (`applyDecided`). It is also the `MessageHistory` the verifier reads, and it keeps per-miner tallies
 * of verdicts by code, from the audit and from the sampled full replays (`shouldReplay`, `replay`).
 *
 * Pure: no clock, no I/O; Ed25519 and the digest come in as parameters. Every store is bounded by
 * `HistoryLimits` (ADR 0011 states the bounds and the retention policy).
 */
import { ContainerType, ListCompositeType, UintNumberType } from '@chainsafe/ssz';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, equalBytes, hexToBytes } from '../bytes.ts';
import { merkleRoot } from '../chain/ids.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { bytes32 } from '../codec/ssz.ts';
import type { Ed25519 } from '../crypto/ed25519.ts';
import { HistoryError, isPouwError, type PouwError, type Verdict, WorkError } from '../errors.ts';
import type { MessageHistory } from './candidate.ts';
import { ItRes, itResId, MAX_PEER_MSGS, sameWork } from './itres.ts';
import type { Digest } from './mining.ts';
import { assertMap } from './residual.ts';
import { batchesPerEpoch, type TaskDefinition, taskId as taskIdOf, validateTask } from './task.ts';
import {
  type AuditContext,
  auditItRes,
  type TrackedMiner,
  trackMiner,
  type VerifyContext,
  verifyIteration,
} from './verify.ts';

// ---------------------------------------------------------------------------------------------
// Wire types.

/**
 * Ids one proposal lists at most: 4096 × 32 B = 128 KiB, half of a consensus payload
 * (MAX_VALUE_PAYLOAD, 256 KiB); a longer tail goes out over several heights.
 */
export const MAX_PROPOSAL_IDS = 4096;
/** Hard cap on the messages one task's history records (the Merkle root mixes in a uint32 count). */
export const MAX_TASK_MESSAGES = 1 << 20;

/** The ids a proposal adds to the decided history: `from` = how many were decided before them. */
export const HistoryIds = defineCodec(
  'HistoryIds',
  new ContainerType({
    from: new UintNumberType(4),
    ids: new ListCompositeType(bytes32, MAX_PROPOSAL_IDS),
  }),
);
export type HistoryIds = CodecValue<typeof HistoryIds>;

/** Two different IT_RES a miner signed for one iteration of one task: self-verifying SLASH evidence. */
export const ItResEquivocation = defineCodec(
  'ItResEquivocation',
  new ContainerType({ first: ItRes.ssz, second: ItRes.ssz }),
);
export type ItResEquivocation = CodecValue<typeof ItResEquivocation>;

/** True when `ev` proves an equivocation: same task, miner and iteration, different ids, both signed by the miner. */
export async function verifyEquivocation(
  chainId: string,
  ev: ItResEquivocation,
  ed: Ed25519,
): Promise<boolean> {
  const a = ev.first.body;
  const b = ev.second.body;
  if (!equalBytes(a.taskId, b.taskId) || !equalBytes(a.miner, b.miner) || a.iteration !== b.iteration)
    return false;
  const ida = itResId(chainId, a);
  const idb = itResId(chainId, b);
  if (equalBytes(ida, idb)) return false;
  return (
    (await ed.verify(a.miner, ida, ev.first.signature)) &&
    (await ed.verify(b.miner, idb, ev.second.signature))
  );
}

// ---------------------------------------------------------------------------------------------
// Limits.

export interface HistoryLimits {
  /** IT_RES recorded for the task at most (default: every batch of every epoch once, ≤ MAX_TASK_MESSAGES). */
  maxMessages: number;
  /** Encoded bytes of the recorded IT_RES at most (default 256 MiB). */
  maxBodyBytes: number;
  /** Early messages waiting per miner (default 32). */
  maxParkedPerMiner: number;
  /** Equivocation proofs kept per miner (one suffices for SLASH; default 2). */
  maxEvidencePerMiner: number;
  /** Ids of refused messages remembered, oldest forgotten first (so a re-sent one is dropped unchecked; default 4096). */
  maxRememberedRefusals: number;
  /** Map entries in one IT_RES at most (default: the task's parameter count). */
  maxMapEntries: number;
}

export function defaultHistoryLimits(task: TaskDefinition): HistoryLimits {
  const layout = validateTask(task);
  return {
    // assignedBatch gives every (epoch, batch) slot to exactly one (miner, iteration).
    maxMessages: Math.min(MAX_TASK_MESSAGES, task.epochs * batchesPerEpoch(task)),
    maxBodyBytes: 256 * 1024 * 1024,
    maxParkedPerMiner: 32,
    maxEvidencePerMiner: 2,
    maxRememberedRefusals: 4096,
    maxMapEntries: layout.parameterCount,
  };
}

/** SSZ size of an IT_RES with no peer ids and an empty map. */
const ITRES_FIXED_BYTES = ItRes.encode(ItRes.defaultValue()).length;

/** Exact SSZ size of an IT_RES, without encoding it. */
export function encodedSize(msg: ItRes): number {
  return ITRES_FIXED_BYTES + 32 * msg.body.peerMsgIds.length + 4 * msg.body.map.length;
}

// ---------------------------------------------------------------------------------------------
// Outcomes and tallies.

export interface Outcome {
  /** The IT_RES id, hex ('' when refused for its size, before hashing). */
  idHex: string;
  minerHex: string;
  iteration: number;
  /** For the peer that relayed the message: ACCEPT (recorded), IGNORE (parked, duplicate, full) or REJECT. */
  verdict: Verdict;
  /** 'ACCEPT' (recorded; for a replay: verified), 'PARKED' (waits for what it needs), or the error's code. */
  code: string;
  error?: PouwError;
}

export interface OfferResult extends Outcome {
  /** Parked messages audited because this one was recorded, in order, each with its own outcome. */
  released: Outcome[];
}

/** Verdict counts of one miner, by code ('ACCEPT' or the failed check). */
export interface MinerTally {
  /** The audit on arrival of authenticated messages (signature valid), early ones counted once audited. */
  audit: Record<string, number>;
  /** Sampled full replays (`replay`). */
  replay: Record<string, number>;
}

/**
 * The answer to a proposal's id list: all recorded here (with the root the decided history would
 * have), some missing (fetch them, `offer` them, check again), or a list no honest history produces.
 */
export type ProposalCheck =
  | { status: 'complete'; root: Uint8Array; count: number }
  | { status: 'missing'; missing: string[] }
  | { status: 'invalid'; error: HistoryError };

/** What a sampled replay needs besides the history: the training data and an engine. */
export type ReplayContext = Omit<
  VerifyContext,
  'chainId' | 'task' | 'taskId' | 'miners' | 'history' | 'ed25519'
>;

export interface HistoryUsage {
  messages: number;
  decided: number;
  bodyBytes: number;
  parked: number;
  evidence: number;
  rememberedRefusals: number;
  rewarded: number;
  limits: HistoryLimits;
}

/**
 * Whether a supervisor replays this IT_RES in full: SHA-256(seed ‖ id), read as a 32-bit fraction,
 * below `rate`. Deterministic for a seed; the seed must be one the miner cannot know when it
 * broadcasts (the supervisor's own secret, or a block hash finalized afterwards), or a miner
 * would cheat only on the messages that will not be sampled. A local decision: no domain tag.
 */
export function shouldReplay(id: Uint8Array | string, seed: Uint8Array, rate: number): boolean {
  if (!(rate > 0)) return false;
  if (rate >= 1) return true;
  const h = sha256(concatBytes(seed, typeof id === 'string' ? hexToBytes(id) : id));
  const x = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
  return x / 2 ** 32 < rate;
}

// ---------------------------------------------------------------------------------------------
// The history.

export interface TaskHistoryOptions {
  chainId: string;
  task: TaskDefinition;
  /** The task's miners (Ed25519 public keys), sorted ascending: a miner's index sets its batch schedule. */
  miners: readonly Uint8Array[];
  ed25519: Ed25519;
  /** SHA-256 over n for model hashes (node:crypto or WebCrypto is ~30× noble on large models). */
  digest?: Digest;
  limits?: Partial<HistoryLimits>;
}

interface Recorded {
  msg: ItRes;
  id: Uint8Array;
  idHex: string;
  minerHex: string;
  bytes: number;
}

interface Parked {
  msg: ItRes;
  id: Uint8Array;
  idHex: string;
}

interface MinerState {
  key: Uint8Array;
  /** Created with the miner's first authenticated message (|M| int32s). */
  track: TrackedMiner | null;
  /** Early messages by iteration. */
  parked: Map<number, Parked>;
  tally: MinerTally;
  evidence: ItResEquivocation[];
}

function bump(counts: Record<string, number>, code: string): void {
  counts[code] = (counts[code] ?? 0) + 1;
}

function copyTally(t: MinerTally): MinerTally {
  return { audit: { ...t.audit }, replay: { ...t.replay } };
}

const ROOT_CACHE_ENTRIES = 16;

export class TaskHistory implements MessageHistory {
  readonly chainId: string;
  readonly task: TaskDefinition;
  readonly taskId: Uint8Array;
  readonly miners: readonly Uint8Array[];
  readonly limits: HistoryLimits;
  private readonly ed: Ed25519;
  private readonly digest: Digest | undefined;
  private readonly parameterCount: number;

  private readonly byId = new Map<string, Recorded>();
  /** `${minerHex}/${iteration}` → the one IT_RES recorded for it. */
  private readonly byKey = new Map<string, Recorded>();
  /** Decided ids in the decided order, then the local tail in recording order. */
  private readonly decided: string[] = [];
  private readonly decidedSet = new Set<string>();
  private tail: string[] = [];
  private bodyBytes = 0;
  private readonly minerStates = new Map<string, MinerState>();
  /** Work ids (hex) named by finalized blocks. */
  private readonly rewarded = new Set<string>();
  /** Ids of messages refused with REJECT, insertion-ordered, bounded. */
  private readonly refused = new Set<string>();
  /** Replay verdict per replayed id (a message is replayed and tallied once). */
  private readonly replayed = new Map<string, Outcome>();
  /** Verdicts of messages that cannot be attributed to a member (bad signature, non-member, other task). */
  private readonly unattributedCounts: Record<string, number> = {};
  private readonly rootCache = new Map<number, Uint8Array>();
  /** Offers run one at a time: a miner's audits must not interleave. */
  private pending: Promise<unknown> = Promise.resolve();

  constructor(opts: TaskHistoryOptions) {
    const layout = validateTask(opts.task);
    for (let i = 1; i < opts.miners.length; i++) {
      if (bytesToHex(opts.miners[i - 1]!) >= bytesToHex(opts.miners[i]!))
        throw new WorkError('TASK_INVALID', 'the miner list must be sorted and unique');
    }
    this.chainId = opts.chainId;
    this.task = opts.task;
    this.taskId = taskIdOf(opts.chainId, opts.task);
    this.miners = opts.miners;
    this.ed = opts.ed25519;
    this.digest = opts.digest;
    this.parameterCount = layout.parameterCount;
    this.limits = { ...defaultHistoryLimits(opts.task), ...opts.limits };
    if (this.limits.maxMessages > MAX_TASK_MESSAGES)
      throw new WorkError('TASK_INVALID', `maxMessages above ${MAX_TASK_MESSAGES}`);
    for (const key of opts.miners)
      this.minerStates.set(bytesToHex(key), {
        key,
        track: null,
        parked: new Map(),
        tally: { audit: {}, replay: {} },
        evidence: [],
      });
  }

  // -------------------------------------------------------------------------------------------
  // Offering messages.

  /**
   * Checks, audits and records one decoded IT_RES (decoding is the caller's). Resolves with the
   * verdict for this message and the outcomes of the parked messages it released; never throws
   * for bad input. Offers are processed one at a time, in call order.
   */
  offer(msg: ItRes): Promise<OfferResult> {
    const run = this.pending.then(() => this.process(msg));
    this.pending = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async process(msg: ItRes): Promise<OfferResult> {
    const b = msg.body;
    const minerHex = bytesToHex(b.miner);
    const head = { minerHex, iteration: b.iteration };
    // Size first: everything after it hashes the message.
    if (b.map.length > this.limits.maxMapEntries || b.peerMsgIds.length > MAX_PEER_MSGS) {
      return this.unattributed(
        { ...head, idHex: '' },
        new WorkError(
          'VERIFY_MAP',
          `${b.map.length} map entries, at most ${this.limits.maxMapEntries}`,
          'REJECT',
          {
            reason: 'MAP_TOO_LARGE',
            entries: b.map.length,
            peers: b.peerMsgIds.length,
          },
        ),
      );
    }
    const id = itResId(this.chainId, b);
    const idHex = bytesToHex(id);
    const o = { ...head, idHex };
    if (!equalBytes(b.taskId, this.taskId))
      return this.unattributed(o, new WorkError('VERIFY_CANDIDATE', 'IT_RES of another task', 'IGNORE'));
    const st = this.minerStates.get(minerHex);
    if (st === undefined)
      return this.unattributed(
        o,
        new WorkError('VERIFY_MEMBERSHIP', 'the miner is not assigned to this task', 'REJECT', {
          miner: minerHex,
        }),
      );
    if (this.byId.has(idHex) || st.parked.get(b.iteration)?.idHex === idHex || this.refused.has(idHex))
      return this.unattributed(
        o,
        new HistoryError('HISTORY_DUPLICATE', 'seen before', 'IGNORE', { id: idHex }),
      );
    if (!(await this.ed.verify(b.miner, id, msg.signature)))
      return this.unattributed(
        o,
        new WorkError('VERIFY_SIGNATURE', 'signature does not verify for its miner'),
      );

    // Authenticated from here on: verdicts count against the miner.
    const held = this.byKey.get(`${minerHex}/${b.iteration}`)?.msg ?? st.parked.get(b.iteration)?.msg;
    if (held !== undefined) {
      if (st.evidence.length < this.limits.maxEvidencePerMiner)
        st.evidence.push({ first: held, second: msg });
      const same = sameWork(held, msg);
      return this.attributed(
        st,
        o,
        new WorkError(
          'VERIFY_DUPLICATE_ITERATION',
          `a second IT_RES for iteration ${b.iteration} (${same ? 'a re-signed copy of the same work' : 'different work'})`,
          'REJECT',
          { iteration: b.iteration, sameWork: same },
        ),
      );
    }
    st.track ??= trackMiner(st.key, this.task);
    if (b.iteration > st.track.nextIteration || !this.peersRecorded(msg)) {
      if (st.parked.size >= this.limits.maxParkedPerMiner) {
        return this.attributed(
          st,
          o,
          new HistoryError(
            'HISTORY_QUEUE_FULL',
            `${st.parked.size} messages of this miner already wait for their predecessors or peers`,
            'IGNORE',
            { parked: st.parked.size, expected: st.track.nextIteration },
          ),
        );
      }
      // A map that can never pass is refused now rather than held.
      try {
        assertMap(Uint32Array.from(b.map), this.parameterCount, this.limits.maxMapEntries);
      } catch (e) {
        if (!isPouwError(e)) throw e;
        return this.attributed(
          st,
          o,
          new WorkError('VERIFY_MAP', `malformed map (${e.message})`, 'REJECT', {
            reason: e.code,
            ...e.detail,
          }),
        );
      }
      st.parked.set(b.iteration, { msg, id, idHex });
      return { ...o, verdict: 'IGNORE', code: 'PARKED', released: [] };
    }
    const outcome = await this.audit(st, msg, id, idHex);
    return { ...outcome, released: outcome.verdict === 'ACCEPT' ? await this.release() : [] };
  }

  /** The audit proper, for a message whose predecessor and peers are recorded. */
  private async audit(st: MinerState, msg: ItRes, id: Uint8Array, idHex: string): Promise<Outcome> {
    const o = { idHex, minerHex: bytesToHex(st.key), iteration: msg.body.iteration };
    const bytes = encodedSize(msg);
    if (this.byId.size >= this.limits.maxMessages || this.bodyBytes + bytes > this.limits.maxBodyBytes) {
      return this.attributed(
        st,
        o,
        new HistoryError('HISTORY_FULL', 'the task history is at its limits', 'IGNORE', {
          messages: this.byId.size,
          bodyBytes: this.bodyBytes,
          bytes,
        }),
      );
    }
    const track = st.track!;
    const ctx: AuditContext = {
      chainId: this.chainId,
      task: this.task,
      taskId: this.taskId,
      miners: this.miners,
      history: this,
      // The signature was checked on arrival.
      ed25519: trusting(this.ed, msg.body.miner, id, msg.signature),
      maxMapEntries: this.limits.maxMapEntries,
      ...(this.digest === undefined ? {} : { digest: this.digest }),
    };
    try {
      await auditItRes(msg, ctx, track);
    } catch (e) {
      if (!isPouwError(e)) throw e;
      return this.attributed(st, o, e);
    }
    const rec: Recorded = { msg, id, idHex, minerHex: o.minerHex, bytes };
    this.byId.set(idHex, rec);
    this.byKey.set(`${o.minerHex}/${msg.body.iteration}`, rec);
    this.tail.push(idHex);
    this.bodyBytes += bytes;
    bump(st.tally.audit, 'ACCEPT');
    return { ...o, verdict: 'ACCEPT', code: 'ACCEPT' };
  }

  /** Audits parked messages whose predecessor and peers are now recorded, until none is ready. */
  private async release(): Promise<Outcome[]> {
    const out: Outcome[] = [];
    for (let progress = true; progress; ) {
      progress = false;
      for (const st of this.minerStates.values()) {
        if (st.parked.size === 0 || st.track === null) continue;
        const next = st.track.nextIteration;
        const p = st.parked.get(next);
        if (p === undefined || !this.peersRecorded(p.msg)) continue;
        st.parked.delete(next);
        const o = await this.audit(st, p.msg, p.id, p.idHex);
        out.push(o);
        if (o.verdict === 'ACCEPT') progress = true;
      }
    }
    return out;
  }

  private peersRecorded(msg: ItRes): boolean {
    return msg.body.peerMsgIds.every((p) => this.byId.has(bytesToHex(p)));
  }

  private attributed(st: MinerState, o: Omit<Outcome, 'verdict' | 'code'>, e: PouwError): OfferResult {
    bump(st.tally.audit, e.code);
    if (e.verdict === 'REJECT') this.rememberRefusal(o.idHex);
    return { ...o, verdict: e.verdict, code: e.code, error: e, released: [] };
  }

  private unattributed(o: Omit<Outcome, 'verdict' | 'code'>, e: PouwError): OfferResult {
    bump(this.unattributedCounts, e.code);
    return { ...o, verdict: e.verdict, code: e.code, error: e, released: [] };
  }

  private rememberRefusal(idHex: string): void {
    if (idHex === '') return;
    this.refused.add(idHex);
    if (this.refused.size > this.limits.maxRememberedRefusals) {
      const oldest = this.refused.values().next().value;
      if (oldest !== undefined) this.refused.delete(oldest);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The ordered id list and its root.

  /** Recorded messages (decided + local tail). */
  get count(): number {
    return this.decided.length + this.tail.length;
  }

  /** Ids in the decided history: the prefix every honest supervisor holds in the same order. */
  get decidedCount(): number {
    return this.decided.length;
  }

  /** All recorded ids, hex, in history order (decided prefix, then the local tail in recording order). */
  idsHex(): string[] {
    return this.decided.concat(this.tail);
  }

  /** Ids from position `count` on (at most `max`): the payload of a proposal when count = decidedCount. */
  idsSince(count: number, max = MAX_PROPOSAL_IDS): Uint8Array[] {
    const d = this.decided.length;
    const hexes =
      count >= d ? this.tail.slice(count - d, count - d + max) : this.idsHex().slice(count, count + max);
    return hexes.map((h) => this.byId.get(h)!.id);
  }

  /** What this supervisor proposes: its tail after the decided prefix, in recording order. */
  proposal(): HistoryIds {
    return { from: this.decided.length, ids: this.idsSince(this.decided.length) };
  }

  /** Merkle root (chain/ids.ts merkleRoot, 'pouw/merkle/v1') over every recorded id, in history order. */
  historyRoot(): Uint8Array {
    return this.rootAt(this.count);
  }

  /**
   * Root over the first `count` ids. Stable for count ≤ decidedCount; beyond it the local tail may
   * be reordered when a decision adopts another proposer's order. Costs `count` hashes (cached).
   */
  rootAt(count: number): Uint8Array {
    if (!Number.isInteger(count) || count < 0 || count > this.count)
      throw new HistoryError('HISTORY_MISSING', `root over ${count} ids, ${this.count} recorded`, 'IGNORE', {
        count,
        recorded: this.count,
      });
    const cached = this.rootCache.get(count);
    if (cached !== undefined) return cached;
    const root = merkleRoot(
      this.chainId,
      this.idsHex()
        .slice(0, count)
        .map((h) => this.byId.get(h)!.id),
    );
    if (this.rootCache.size >= ROOT_CACHE_ENTRIES) this.rootCache.delete(this.rootCache.keys().next().value!);
    this.rootCache.set(count, root);
    return root;
  }

  /** The ids (hex) of `ids` not recorded here, in order, without repeats. */
  missing(ids: readonly (Uint8Array | string)[]): string[] {
    const out = new Set<string>();
    for (const id of ids) {
      const h = typeof id === 'string' ? id : bytesToHex(id);
      if (!this.byId.has(h)) out.add(h);
    }
    return [...out];
  }

  /** Peer ids that parked messages list and the history lacks: worth fetching. */
  wanted(): string[] {
    const out = new Set<string>();
    for (const st of this.minerStates.values())
      for (const p of st.parked.values())
        for (const id of p.msg.body.peerMsgIds) {
          const h = bytesToHex(id);
          if (!this.byId.has(h)) out.add(h);
        }
    return [...out];
  }

  /**
   * Iterations missing below parked messages, per member: messages [fromIteration,
   * fromIteration + count) never arrived here while later ones did. Their ids are unknown, so they
   * are fetched by (miner, iteration) from a peer that recorded them.
   */
  gaps(): { miner: string; fromIteration: number; count: number }[] {
    const out: { miner: string; fromIteration: number; count: number }[] = [];
    for (const [miner, st] of this.minerStates) {
      if (st.parked.size === 0) continue;
      const next = st.track?.nextIteration ?? 0;
      const lowest = Math.min(...st.parked.keys());
      if (lowest > next) out.push({ miner, fromIteration: next, count: lowest - next });
    }
    return out;
  }

  /**
   * Checks a proposal's id list before prevoting: it must extend the decided prefix (`from`), name
   * each id once and none already decided or refused here, and be in an order some audit could
   * record it in (every message after its own predecessor and the peers it lists, or those
   * decided). Missing ids are returned for fetching; complete lists come with their root.
   */
  checkProposalIds(p: HistoryIds): ProposalCheck {
    const bad = (message: string, verdict: Verdict, detail: Record<string, unknown> = {}): ProposalCheck => ({
      status: 'invalid',
      error: new HistoryError('HISTORY_BAD_IDS', message, verdict, detail),
    });
    if (p.from !== this.decided.length)
      return bad(
        `the list extends ${p.from} decided ids, this history has ${this.decided.length}`,
        'IGNORE',
        {
          from: p.from,
          decided: this.decided.length,
        },
      );
    const hexes = p.ids.map((id) => bytesToHex(id));
    const seen = new Set<string>();
    const missing: string[] = [];
    for (const [i, h] of hexes.entries()) {
      if (seen.has(h)) return bad(`id ${i} is listed twice`, 'REJECT', { index: i, id: h });
      seen.add(h);
      if (this.decidedSet.has(h)) return bad(`id ${i} is already decided`, 'REJECT', { index: i, id: h });
      if (this.refused.has(h))
        return bad(`id ${i} names a message refused here`, 'REJECT', { index: i, id: h });
      if (!this.byId.has(h)) missing.push(h);
    }
    if (missing.length > 0) return { status: 'missing', missing };
    const before = new Set<string>();
    const known = (h: string) => this.decidedSet.has(h) || before.has(h);
    for (const [i, h] of hexes.entries()) {
      const rec = this.byId.get(h)!;
      const it = rec.msg.body.iteration;
      const prev = it > 0 ? this.byKey.get(`${rec.minerHex}/${it - 1}`) : undefined;
      if (prev !== undefined && !known(prev.idHex))
        return bad(`id ${i} comes before its miner's iteration ${it - 1}`, 'REJECT', { index: i, id: h });
      for (const peer of rec.msg.body.peerMsgIds) {
        if (!known(bytesToHex(peer)))
          return bad(`id ${i} comes before a peer message it lists`, 'REJECT', {
            index: i,
            id: h,
            peer: bytesToHex(peer),
          });
      }
      before.add(h);
    }
    const leaves = this.decided.map((d) => this.byId.get(d)!.id).concat(p.ids);
    return { status: 'complete', root: merkleRoot(this.chainId, leaves), count: leaves.length };
  }

  /**
   * Adopts a decided id list: its ids join the decided prefix in the list's order and leave the
   * local tail. Returns the new decided root. Throws HISTORY_MISSING (IGNORE: fetch, offer, retry)
   * or HISTORY_BAD_IDS; the latter on a decided list means this history disagrees with the
   * committee (a miner equivocated and the committee recorded the other copy): rebuild the task's
   * history by offering the decided lists' messages in order.
   */
  applyDecided(p: HistoryIds): Uint8Array {
    const check = this.checkProposalIds(p);
    if (check.status === 'invalid') throw check.error;
    if (check.status === 'missing')
      throw new HistoryError(
        'HISTORY_MISSING',
        `${check.missing.length} decided ids are not recorded here`,
        'IGNORE',
        {
          missing: check.missing,
        },
      );
    const stable = this.decided.length;
    const adopted = new Set<string>();
    for (const id of p.ids) {
      const h = bytesToHex(id);
      this.decided.push(h);
      this.decidedSet.add(h);
      adopted.add(h);
    }
    this.tail = this.tail.filter((h) => !adopted.has(h));
    // Roots beyond the old decided prefix covered the tail in its old order.
    for (const c of [...this.rootCache.keys()]) if (c > stable) this.rootCache.delete(c);
    this.rootCache.set(check.count, check.root);
    return check.root;
  }

  // -------------------------------------------------------------------------------------------
  // MessageHistory (what the verifier reads).

  get(idHex: string): ItRes | undefined {
    return this.byId.get(idHex)?.msg;
  }

  byMiner(minerHex: string, iteration: number): ItRes | undefined {
    return this.byKey.get(`${minerHex}/${iteration}`)?.msg;
  }

  alreadyRewarded(workIdHex: string): boolean {
    return this.rewarded.has(workIdHex);
  }

  /**
   * Called by the node when a block of this task is finalized, with its hashMsg (a work id, hex).
   * Bounded by the task's blocks: a work id earns one block (VERIFY_REPLAYED).
   */
  markRewarded(workIdHex: string): void {
    this.rewarded.add(workIdHex);
  }

  // -------------------------------------------------------------------------------------------
  // Sampled replays.

  /**
   * Replays a recorded IT_RES in full (`verifyIteration`: its residual segment's model hashes,
   * schedule, maps and losses) and tallies the verdict for its miner. A message is replayed and
   * tallied once; asking again returns the first outcome. Throws HISTORY_MISSING for an id not recorded.
   */
  async replay(idHex: string, ctx: ReplayContext): Promise<Outcome> {
    const done = this.replayed.get(idHex);
    if (done !== undefined) return done;
    const rec = this.byId.get(idHex);
    if (rec === undefined)
      throw new HistoryError('HISTORY_MISSING', 'no such IT_RES recorded', 'IGNORE', { id: idHex });
    const b = rec.msg.body;
    let outcome: Outcome = {
      idHex,
      minerHex: rec.minerHex,
      iteration: b.iteration,
      verdict: 'ACCEPT',
      code: 'ACCEPT',
    };
    try {
      await verifyIteration(b.miner, b.iteration, {
        ...ctx,
        chainId: this.chainId,
        task: this.task,
        taskId: this.taskId,
        miners: this.miners,
        history: this,
        ed25519: this.ed,
        ...(ctx.digest === undefined && this.digest !== undefined ? { digest: this.digest } : {}),
      });
    } catch (e) {
      if (!isPouwError(e)) throw e;
      outcome = { ...outcome, verdict: e.verdict, code: e.code, error: e };
    }
    const again = this.replayed.get(idHex);
    if (again !== undefined) return again;
    bump(this.minerStates.get(rec.minerHex)!.tally.replay, outcome.code);
    this.replayed.set(idHex, outcome);
    return outcome;
  }

  // -------------------------------------------------------------------------------------------
  // Reading the state.

  /** Verdict counts for one member (copies), or undefined for a non-member. */
  tally(minerHex: string): MinerTally | undefined {
    const st = this.minerStates.get(minerHex);
    return st === undefined ? undefined : copyTally(st.tally);
  }

  /** Verdict counts of messages no member can be held to (bad signature, non-member, other task, duplicates). */
  unattributedTally(): Record<string, number> {
    return { ...this.unattributedCounts };
  }

  /** Equivocation proofs, per miner in the order found. */
  evidence(minerHex?: string): ItResEquivocation[] {
    if (minerHex !== undefined) return [...(this.minerStates.get(minerHex)?.evidence ?? [])];
    return [...this.minerStates.values()].flatMap((s) => s.evidence);
  }

  /** The iteration the history expects next from a member (0 before its first message). */
  nextIteration(minerHex: string): number | undefined {
    const st = this.minerStates.get(minerHex);
    return st === undefined ? undefined : (st.track?.nextIteration ?? 0);
  }

  /** Messages of a member waiting for their predecessors or peers. */
  parkedCount(minerHex: string): number {
    return this.minerStates.get(minerHex)?.parked.size ?? 0;
  }

  usage(): HistoryUsage {
    let parked = 0;
    let evidence = 0;
    for (const st of this.minerStates.values()) {
      parked += st.parked.size;
      evidence += st.evidence.length;
    }
    return {
      messages: this.count,
      decided: this.decided.length,
      bodyBytes: this.bodyBytes,
      parked,
      evidence,
      rememberedRefusals: this.refused.size,
      rewarded: this.rewarded.size,
      limits: { ...this.limits },
    };
  }
}

/** Ed25519 that accepts, without recomputing, the one signature already verified on arrival. */
function trusting(ed: Ed25519, miner: Uint8Array, id: Uint8Array, signature: Uint8Array): Ed25519 {
  return {
    name: ed.name,
    getPublicKey: (sk) => ed.getPublicKey(sk),
    sign: (sk, m) => ed.sign(sk, m),
    verify: (pk, m, s) =>
      equalBytes(pk, miner) && equalBytes(m, id) && equalBytes(s, signature)
        ? Promise.resolve(true)
        : ed.verify(pk, m, s),
  };
}

/**
 * Verification of useful work (DESIGN §4.5, ADR 0009). `verifyCandidate` replays the iteration behind
 * a lucky block from the start of its residual segment (≤ R gradient steps) and accepts only if
 * every check holds; otherwise it throws a WorkError whose code names the failed check and whose
 * `detail` says where (iteration, map entry, deviation). `auditItRes` is the cheap per-message audit
 * supervisors run on every IT_RES as it arrives; `verifyIteration` is the full replay of any
 * recorded iteration (the supervisors' random sample).
 *
 * What is replayed exactly and what within a tolerance:
 * - the lattice state n is integers: the verifier rebuilds it from the message history (the miner's
 *   own maps and the peer maps it listed) and every model hash must match bit for bit;
 * - gradients are floats and differ between backends (WebGPU, WebGL, WASM, CPU), so the residual the
 *   verifier recomputes differs slightly from the miner's. A claimed map entry (or missing entry) that
 *   disagrees with the verifier's own thresholding is accepted only where the verifier's residual is
 *   within ε of the threshold (τ, or τ/2 in a flush iteration), at most `maxFlipsPerIteration` times
 *   per iteration, and each such in-band choice divides the nonce allowance (`effectiveAllowance`),
 *   so grinding the choices (each a different map, hence nonce range) gains at most ~1%. The
 *   residual is advanced with the miner's claimed map, so one accepted choice does not cascade.
 *
 * Check order: cheap checks that need no gradient first (structure, signatures, replay, PoW, ZNB,
 * history and model hashes, peer updates, batch schedule, nonce range), then the gradient replay
 * (batch data, map, loss), then the allowance left after in-band choices.
 */
import { bytesToHex, equalBytes } from '../bytes.ts';
import { blockHash, merkleRoot } from '../chain/ids.ts';
import { meetsTarget } from '../chain/pow.ts';
import type { Ed25519 } from '../crypto/ed25519.ts';
import { isPouwError, WorkError } from '../errors.ts';
import type { BlockCandidate, MessageHistory } from './candidate.ts';
import { assignedBatch, batchIndices, batchTensors, type Dataset, segmentHash } from './dataset.ts';
import type { Batch, GradientEngine } from './engine.ts';
import { type ItRes, itResId, sameWork, workId } from './itres.ts';
import { nonceAllowance, nonceBase, nonceOffset } from './lattice.ts';
import { type Digest, modelHashWith, nobleDigest } from './mining.ts';
import { applyMap, assertMap, INDEX_MASK, isFlushIteration, SIGN_BIT, segmentStart } from './residual.ts';
import {
  batchesPerEpoch,
  bitsToFloat32,
  type ModelLayout,
  type TaskDefinition,
  validateTask,
} from './task.ts';
import { znbHash } from './znb.ts';

// ---------------------------------------------------------------------------------------------
// Tolerances.

export interface VerifyTolerances {
  /** Half-width ε of the band around the threshold (absolute, in gradient units) where either decision is accepted. */
  epsilon: number;
  /** In-band entries whose claimed decision differs from the verifier's, at most this many per iteration. */
  maxFlipsPerIteration: number;
  /** λ: each accepted in-band choice divides the nonce allowance by λ·s·(1 + c_t) (`effectiveAllowance`). */
  flipPenalty: number;
  /** |claimed − recomputed| mean loss, at most this × max(1, |recomputed|). */
  lossTolerance: number;
  /** |claimed − recomputed| batch accuracy (a fraction), at most this. */
  accuracyTolerance: number;
}

/**
 * ε as a fraction of τ (ADR 0009). Measured on the MNIST MLP (B = 100) along honest trajectories,
 * the residuals of cpu, wasm, WebGPU and WebGL (SwiftShader) differ near the threshold by at most
 * 6.6e-7 at τ = 0.01 and 1.4e-5 at τ = 1 (and by 3.8e-6 / 2.0e-5 anywhere; DESIGN §4.5 reports up to
 * 2.3e-5 at τ = 0.01). ε = τ/100 holds the near-threshold ones with a 150× / 720× margin. A band too
 * narrow turns honest noise into a provable-fraud verdict; a wide one costs little, because every
 * in-band choice divides the nonce allowance (`effectiveAllowance`).
 */
export const EPSILON_OVER_TAU = 0.01;
/** In-band disagreements accepted per iteration (honest runs: none in 452 cross-backend iterations). */
export const MAX_FLIPS_PER_ITERATION = 4;
/** λ = 100: grinding over in-band choices gains at most e^{1/λ} − 1 ≈ 1% of the honest tickets. */
export const FLIP_PENALTY = 100;

export function defaultTolerances(task: Pick<TaskDefinition, 'tau' | 'batchSize'>): VerifyTolerances {
  return {
    epsilon: EPSILON_OVER_TAU * bitsToFloat32(task.tau),
    maxFlipsPerIteration: MAX_FLIPS_PER_ITERATION,
    flipPenalty: FLIP_PENALTY,
    // Measured cross-backend loss differences: ≤ 1.1e-6 on a loss near 2.3.
    lossTolerance: 1e-4,
    // One example classified differently (an arg-max near a tie), plus rounding of the fraction.
    accuracyTolerance: 1 / task.batchSize + 1e-6,
  };
}

// ---------------------------------------------------------------------------------------------
// The training data the verifier holds, checked against the client's commitment.

export interface DatasetCommitmentProof {
  /** All S segment hashes in order (test segments included): their Merkle root is the task's datasetCommitment. */
  segmentHashes: readonly Uint8Array[];
  /** The training set is these segments concatenated: examples [start, end) of it are segment `segment`. */
  trainRanges: readonly { segment: number; start: number; end: number }[];
}

/**
 * A training set bound to the task's dataset commitment. Each segment's hash is checked the first
 * time a batch touches it (then cached), so a verifier hashes each segment at most once.
 */
export class CommittedDataset {
  readonly dataset: Dataset;
  private readonly ranges: readonly { segment: number; start: number; end: number }[];
  private readonly hashes: readonly Uint8Array[];
  private readonly checked: boolean[];
  private readonly chainId: string;

  constructor(chainId: string, task: TaskDefinition, dataset: Dataset, proof: DatasetCommitmentProof) {
    const fail = (message: string, detail: Record<string, unknown> = {}): never => {
      throw new WorkError('VERIFY_BATCH', `training data: ${message}`, 'IGNORE', detail);
    };
    const layout = validateTask(task);
    if (dataset.featureBytes !== layout.inputSize)
      fail(`${dataset.featureBytes} feature bytes, the model takes ${layout.inputSize}`);
    if (dataset.count !== task.trainSize)
      fail(`${dataset.count} examples, the task trains on ${task.trainSize}`);
    if (dataset.examples.length !== dataset.count * (dataset.featureBytes + 1))
      fail('example bytes do not match count × (features + 1)');
    if (!equalBytes(merkleRoot(chainId, proof.segmentHashes), task.datasetCommitment))
      fail('segment hashes do not match the task commitment');
    let at = 0;
    const seen = new Set<number>();
    for (const r of [...proof.trainRanges].sort((a, b) => a.start - b.start)) {
      if (r.start !== at || r.end <= r.start)
        fail('training ranges must tile the training set', { range: r });
      if (r.segment < 0 || r.segment >= proof.segmentHashes.length || seen.has(r.segment))
        fail(`bad segment ${r.segment}`);
      seen.add(r.segment);
      at = r.end;
    }
    if (at !== dataset.count) fail('training ranges do not cover the training set');
    this.chainId = chainId;
    this.dataset = dataset;
    this.ranges = [...proof.trainRanges].sort((a, b) => a.start - b.start);
    this.hashes = proof.segmentHashes;
    this.checked = this.ranges.map(() => false);
  }

  /** Features and labels of the given examples; throws VERIFY_BATCH if a touched segment's data does not match its committed hash. */
  batch(indices: readonly number[]): Batch {
    for (const i of indices) {
      if (!Number.isInteger(i) || i < 0 || i >= this.dataset.count)
        throw new WorkError('VERIFY_BATCH', `example ${i} outside the training set`);
      let lo = 0;
      let hi = this.ranges.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (this.ranges[mid]!.start <= i) lo = mid;
        else hi = mid - 1;
      }
      if (!this.checked[lo]) {
        const r = this.ranges[lo]!;
        if (!equalBytes(segmentHash(this.chainId, this.dataset, r), this.hashes[r.segment]!)) {
          throw new WorkError(
            'VERIFY_BATCH',
            `training data of segment ${r.segment} does not match its committed hash`,
            'IGNORE',
            { segment: r.segment },
          );
        }
        this.checked[lo] = true;
      }
    }
    return batchTensors(this.dataset, indices);
  }
}

// ---------------------------------------------------------------------------------------------
// Contexts and reports.

export interface VerifyContext {
  chainId: string;
  task: TaskDefinition;
  taskId: Uint8Array;
  /** The task's miners (Ed25519 public keys), sorted ascending: a miner's index sets its batch schedule. */
  miners: readonly Uint8Array[];
  /** The training set the verifier holds, bound to the task's dataset commitment. */
  data: CommittedDataset;
  history: MessageHistory;
  /** A gradient engine for this task (Node: TF.js cpu or wasm). */
  engine: GradientEngine;
  ed25519: Ed25519;
  /** SHA-256 for the hashes over n (|M| int32s each; node:crypto or WebCrypto is ~30× noble). Default: noble. */
  digest?: Digest;
  tolerances?: Partial<VerifyTolerances>;
  /** A monotonic clock in ms, for the report's timings (shared/ reads no clock itself). */
  now?: () => number;
}

export interface IterationStats {
  iteration: number;
  flush: boolean;
  mapSize: number;
  /** Entries of the verifier's residual within ε of the threshold. */
  inBand: number;
  /** In-band entries where the claimed decision differs from the verifier's. */
  flips: number;
  /** Smallest | |v_j| − threshold | over all j: how close the nearest entry came to the decision boundary. */
  minMargin: number;
  /** Largest distance from the threshold of an accepted disagreement (≤ ε). */
  maxFlipDeviation: number;
  lossDeviation: number;
  accuracyDeviation: number;
}

export interface VerifyReport {
  luckyId: Uint8Array;
  /** The lucky IT_RES's work id (= header.hashMsg): the key to mark rewarded once the block is final. */
  workId: Uint8Array;
  miner: Uint8Array;
  iteration: number;
  segmentStart: number;
  /** Gradient steps replayed (L − segment start + 1 ≤ R). */
  stepsReplayed: number;
  /** Offset of the winning nonce in [nonce0, nonce0 + a), and a. */
  nonceOffset: number;
  nonceAllowance: number;
  /** The allowance after the in-band choices' penalty (= nonceAllowance when the miner made none). */
  effectiveAllowance: number;
  inBandEntries: number;
  inBandFlips: number;
  /** Largest distance from the threshold of any accepted disagreement (≤ ε), 0 if none. */
  maxDeviation: number;
  minMargin: number;
  maxLossDeviation: number;
  iterations: IterationStats[];
  tolerances: VerifyTolerances;
  backend: string;
  /** Wall time of the whole verification and of the gradient calls alone (ms; null without a clock). */
  elapsedMs: number | null;
  gradientMs: number | null;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const ZERO32 = new Uint8Array(32);

function fail(
  code: ConstructorParameters<typeof WorkError>[0],
  message: string,
  detail: Record<string, unknown> = {},
  verdict: 'REJECT' | 'IGNORE' = 'REJECT',
): never {
  throw new WorkError(code, message, verdict, detail);
}

function minerIndexOf(miners: readonly Uint8Array[], miner: Uint8Array): number {
  for (let i = 0; i < miners.length; i++) if (equalBytes(miners[i]!, miner)) return i;
  return -1;
}

/** Signature and map well-formedness of one IT_RES, with the verifier's codes. */
async function checkSigned(
  chainId: string,
  msg: ItRes,
  parameterCount: number,
  maxEntries: number,
  ed: Ed25519,
  where: string,
): Promise<{ id: Uint8Array; map: Uint32Array }> {
  const map = Uint32Array.from(msg.body.map);
  try {
    assertMap(map, parameterCount, maxEntries);
  } catch (e) {
    if (isPouwError(e))
      fail('VERIFY_MAP', `${where}: malformed map (${e.message})`, {
        message: where,
        iteration: msg.body.iteration,
        reason: e.code,
        ...e.detail,
      });
    throw e;
  }
  const id = itResId(chainId, msg.body);
  if (!(await ed.verify(msg.body.miner, id, msg.signature)))
    fail('VERIFY_SIGNATURE', `${where}: signature does not verify for its miner`, {
      message: where,
      iteration: msg.body.iteration,
    });
  return { id, map };
}

function duplicateMessage(iteration: number, same: boolean): string {
  return `iteration ${iteration}: the candidate's IT_RES is not the one the history recorded for it (${
    same ? 'a re-signed copy of the same work' : 'different work'
  }): one IT_RES per miner and iteration`;
}

function subtractMap(n: Int32Array, map: Uint32Array): void {
  for (let i = 0; i < map.length; i++) {
    const e = map[i]!;
    n[e & INDEX_MASK]! -= (e & SIGN_BIT) !== 0 ? 1 : -1;
  }
}

/**
 * The peer maps an IT_RES lists, checked against the rules every node applies: each id is recorded
 * in the history, is an IT_RES of the same task by another member, and was not listed before by
 * this miner (`listed`, updated by the caller once the message is accepted).
 */
function peerMaps(
  msg: ItRes,
  idHexes: string[],
  ctx: { taskId: Uint8Array; miners: readonly Uint8Array[]; history: Pick<MessageHistory, 'get'> },
  parameterCount: number,
  listed: ReadonlySet<string>,
): Uint32Array[] {
  const maps: Uint32Array[] = [];
  const here = new Set<string>();
  const it = msg.body.iteration;
  for (const [k, idHex] of idHexes.entries()) {
    if (listed.has(idHex) || here.has(idHex))
      fail('VERIFY_PEER_UPDATES', `iteration ${it}: peer update ${idHex.slice(0, 16)}… listed twice`, {
        iteration: it,
        peer: k,
        id: idHex,
      });
    here.add(idHex);
    const peer = ctx.history.get(idHex);
    if (peer === undefined)
      fail(
        'VERIFY_HISTORY',
        `iteration ${it}: peer update ${idHex.slice(0, 16)}… is not in the message history`,
        { iteration: it, peer: k, id: idHex },
        'IGNORE',
      );
    if (!equalBytes(peer.body.taskId, ctx.taskId))
      fail('VERIFY_PEER_UPDATES', `iteration ${it}: peer update ${k} belongs to another task`, {
        iteration: it,
        peer: k,
        id: idHex,
      });
    if (equalBytes(peer.body.miner, msg.body.miner))
      fail('VERIFY_PEER_UPDATES', `iteration ${it}: peer update ${k} is the miner's own message`, {
        iteration: it,
        peer: k,
        id: idHex,
      });
    if (minerIndexOf(ctx.miners, peer.body.miner) < 0)
      fail('VERIFY_PEER_UPDATES', `iteration ${it}: peer update ${k} comes from a non-member`, {
        iteration: it,
        peer: k,
        id: idHex,
      });
    const map = Uint32Array.from(peer.body.map);
    try {
      assertMap(map, parameterCount);
    } catch {
      fail('VERIFY_PEER_UPDATES', `iteration ${it}: peer update ${k} has a malformed map`, {
        iteration: it,
        peer: k,
        id: idHex,
      });
    }
    maps.push(map);
  }
  return maps;
}

function assertSchedule(
  msg: ItRes,
  minerIndex: number,
  minerCount: number,
  task: TaskDefinition,
): { epoch: number; batchId: number } {
  const it = msg.body.iteration;
  const want = assignedBatch(minerIndex, minerCount, it, batchesPerEpoch(task));
  if (msg.body.epoch !== want.epoch || msg.body.batchId !== want.batchId) {
    fail(
      'VERIFY_BATCH',
      `iteration ${it}: batch (epoch ${msg.body.epoch}, ${msg.body.batchId}) is not the assigned (epoch ${want.epoch}, ${want.batchId})`,
      { iteration: it, claimed: { epoch: msg.body.epoch, batchId: msg.body.batchId }, assigned: want },
    );
  }
  if (want.epoch >= task.epochs)
    fail('VERIFY_BATCH', `iteration ${it}: epoch ${want.epoch} is past the task's ${task.epochs} epochs`, {
      iteration: it,
      epoch: want.epoch,
    });
  return want;
}

/**
 * Checks the claimed model hash against n. On a mismatch, tells a miner that listed peer updates
 * without applying them (the claim matches n without the peer maps listed in the last few
 * iterations of `listedSince`) from any other wrong state.
 */
async function assertModelHash(
  digest: Digest,
  chainId: string,
  taskId: Uint8Array,
  n: Int32Array,
  msg: ItRes,
  listedSince: readonly { iteration: number; maps: Uint32Array[] }[],
): Promise<void> {
  const claimed = msg.body.modelHash;
  const expected = await modelHashWith(digest, chainId, taskId, n);
  if (equalBytes(expected, claimed)) return;
  const it = msg.body.iteration;
  const without = n.slice();
  for (let k = listedSince.length - 1; k >= 0; k--) {
    const step = listedSince[k]!;
    if (step.maps.length === 0) continue;
    for (const m of step.maps) subtractMap(without, m);
    if (equalBytes(await modelHashWith(digest, chainId, taskId, without), claimed)) {
      fail(
        'VERIFY_PEER_UPDATES',
        `iteration ${it}: modelHash is the state without the peer updates listed since iteration ${step.iteration}: listed but not applied`,
        { iteration: it, omittedSince: step.iteration },
      );
    }
  }
  fail('VERIFY_MODEL_HASH', `iteration ${it}: modelHash does not match the state the history implies`, {
    iteration: it,
    claimed: bytesToHex(claimed),
    expected: bytesToHex(expected),
  });
}

/** β: bytes of one batch (uint8 features + a label byte per example). */
export function batchBytes(task: TaskDefinition, layout: ModelLayout): number {
  return task.batchSize * (layout.inputSize + 1);
}

export function allowanceOf(task: TaskDefinition, layout: ModelLayout): number {
  return nonceAllowance(task.omegaBPpm, batchBytes(task, layout), task.omegaMPpm, layout.parameterCount);
}

/**
 * The nonce allowance left after in-band choices (ADR 0009). Every accepted disagreement in
 * iteration t of a replay of s steps divides the allowance by λ·s·(1 + c_t), c_t being the number
 * of in-band entries there and λ the tolerance's `flipPenalty`. A miner that tries every map it
 * could defend (all subsets of in-band entries in every iteration of the segment) then holds at most
 *   a · Π_t Σ_f C(c_t, f) / (λs(1 + c_t))^f = a · Π_t (1 + 1/(λs(1 + c_t)))^{c_t} ≤ a · e^{1/λ}
 * tickets in total (λ = 100: 1.01·a) instead of a · Π_t Σ_{f ≤ F} C(c_t, f); an honest miner loses
 * only blocks whose segment held an honest cross-backend disagreement (rare: ADR 0009).
 */
export function effectiveAllowance(
  allowance: number,
  iterations: readonly Pick<IterationStats, 'flips' | 'inBand'>[],
  flipPenalty = FLIP_PENALTY,
): number {
  let divisor = 1;
  for (const it of iterations) divisor *= (flipPenalty * iterations.length * (1 + it.inBand)) ** it.flips;
  return Math.floor(allowance / divisor);
}

// ---------------------------------------------------------------------------------------------
// The replay.

interface Segment {
  miner: Uint8Array;
  minerHex: string;
  minerIndex: number;
  start: number;
  last: number;
  /** The miner's IT_RES of iterations start..last, as recorded in the history, and their maps. */
  msgs: ItRes[];
  maps: Uint32Array[];
  /** n at `start` (after the peer maps listed at `start`), and the peer maps listed at each iteration. */
  nStart: Int32Array;
  peers: Uint32Array[][];
}

/**
 * Rebuilds the miner's lattice state from the history (its own maps and the peer maps it listed),
 * and checks, for every iteration of the segment, the model hash and the batch schedule.
 */
async function walkHistory(
  ctx: VerifyContext,
  layout: ModelLayout,
  miner: Uint8Array,
  minerIndex: number,
  last: number,
  supplied: readonly { id: Uint8Array; msg: ItRes }[] | null,
): Promise<Segment> {
  const minerHex = bytesToHex(miner);
  const start = segmentStart(last, ctx.task.segmentLength);
  const n = new Int32Array(layout.parameterCount);
  const listed = new Set<string>();
  const msgs: ItRes[] = [];
  const maps: Uint32Array[] = [];
  const peers: Uint32Array[][] = [];
  const window: { iteration: number; maps: Uint32Array[] }[] = [];
  let nStart: Int32Array | null = null;
  for (let t = 0; t <= last; t++) {
    const msg = ctx.history.byMiner(minerHex, t);
    if (msg === undefined)
      fail(
        'VERIFY_HISTORY',
        `the history has no IT_RES of this miner at iteration ${t}`,
        { iteration: t },
        'IGNORE',
      );
    if (
      msg.body.iteration !== t ||
      !equalBytes(msg.body.miner, miner) ||
      !equalBytes(msg.body.taskId, ctx.taskId)
    ) {
      fail(
        'VERIFY_HISTORY',
        `the history's record for iteration ${t} is inconsistent`,
        { iteration: t },
        'IGNORE',
      );
    }
    const ids = msg.body.peerMsgIds.map((id) => bytesToHex(id));
    const pm = peerMaps(msg, ids, ctx, layout.parameterCount, listed);
    for (const m of pm) applyMap(n, m);
    for (const id of ids) listed.add(id);
    const own = Uint32Array.from(msg.body.map);
    if (t >= start) {
      const s = supplied?.[t - start];
      if (s !== undefined && !equalBytes(itResId(ctx.chainId, msg.body), s.id)) {
        // The candidate's copy is signed (checked before): two IT_RES of one iteration.
        fail('VERIFY_DUPLICATE_ITERATION', duplicateMessage(t, sameWork(msg, s.msg)), {
          iteration: t,
          sameWork: sameWork(msg, s.msg),
        });
      }
      if (t === start) nStart = n.slice();
      window.push({ iteration: t, maps: pm });
      await assertModelHash(ctx.digest ?? nobleDigest, ctx.chainId, ctx.taskId, n, msg, window);
      assertSchedule(msg, minerIndex, ctx.miners.length, ctx.task);
      try {
        assertMap(own, layout.parameterCount);
      } catch (e) {
        fail('VERIFY_MAP', `iteration ${t}: malformed map`, {
          iteration: t,
          reason: isPouwError(e) ? e.code : String(e),
        });
      }
      msgs.push(msg);
      maps.push(own);
      peers.push(pm);
    }
    applyMap(n, own);
  }
  return { miner, minerHex, minerIndex, start, last, msgs, maps, nStart: nStart!, peers };
}

interface ReplayStats {
  iterations: IterationStats[];
  gradientMs: number;
}

/** Recomputes the residual over the segment and checks each claimed map, loss and accuracy. */
async function replaySegment(ctx: VerifyContext, seg: Segment, tol: VerifyTolerances): Promise<ReplayStats> {
  const tau = bitsToFloat32(ctx.task.tau);
  const n = seg.nStart.slice();
  const r = new Float32Array(n.length);
  const stats: IterationStats[] = [];
  let gradientMs = 0;
  for (let k = 0; k < seg.msgs.length; k++) {
    const msg = seg.msgs[k]!;
    const t = msg.body.iteration;
    if (k > 0) for (const m of seg.peers[k]!) applyMap(n, m);
    const indices = batchIndices(
      ctx.taskId,
      msg.body.epoch,
      msg.body.batchId,
      ctx.task.trainSize,
      ctx.task.batchSize,
    );
    const batch = ctx.data.batch(indices);
    const t0 = ctx.now?.() ?? 0;
    const res = await ctx.engine.gradient(n, batch);
    gradientMs += (ctx.now?.() ?? 0) - t0;
    if (res.gradient.length !== n.length)
      fail(
        'VERIFY_HISTORY',
        `engine returned ${res.gradient.length} gradient entries, expected ${n.length}`,
        {},
        'IGNORE',
      );
    const flush = isFlushIteration(t, ctx.task.segmentLength);
    const s = checkMap(r, res.gradient, seg.maps[k]!, tau, flush, tol, t);
    const claimedLoss = bitsToFloat32(msg.body.loss);
    const claimedAcc = bitsToFloat32(msg.body.accuracy);
    const lossDeviation = Math.abs(claimedLoss - res.loss);
    const accuracyDeviation = Math.abs(claimedAcc - res.accuracy);
    if (!(lossDeviation <= tol.lossTolerance * Math.max(1, Math.abs(res.loss)))) {
      fail('VERIFY_LOSS', `iteration ${t}: loss ${claimedLoss} differs from the recomputed ${res.loss}`, {
        iteration: t,
        claimed: claimedLoss,
        recomputed: res.loss,
        deviation: lossDeviation,
      });
    }
    if (!(accuracyDeviation <= tol.accuracyTolerance)) {
      fail(
        'VERIFY_LOSS',
        `iteration ${t}: accuracy ${claimedAcc} differs from the recomputed ${res.accuracy}`,
        { iteration: t, claimed: claimedAcc, recomputed: res.accuracy, deviation: accuracyDeviation },
      );
    }
    stats.push({ iteration: t, flush, mapSize: seg.maps[k]!.length, ...s, lossDeviation, accuracyDeviation });
    applyMap(n, seg.maps[k]!);
  }
  return { iterations: stats, gradientMs };
}

/**
 * One iteration's map against the verifier's residual v = r + g: outside the band
 * ||v_j| − θ| ≤ ε the claimed decision must equal the verifier's (θ = τ, or τ/2 when flushing);
 * inside it either is accepted, at most `maxFlipsPerIteration` times. r advances with the CLAIMED
 * map (r_j = v_j − s·τ), or resets to zero after a flush.
 */
function checkMap(
  r: Float32Array,
  g: Float32Array,
  claimed: Uint32Array,
  tau: number,
  flush: boolean,
  tol: VerifyTolerances,
  iteration: number,
): Pick<IterationStats, 'inBand' | 'flips' | 'minMargin' | 'maxFlipDeviation'> {
  const theta = flush ? tau / 2 : tau;
  const eps = tol.epsilon;
  let c = 0;
  let inBand = 0;
  let flips = 0;
  let minMargin = Number.POSITIVE_INFINITY;
  let maxFlipDeviation = 0;
  let mismatches = 0;
  let first: {
    weight: number;
    entry: number;
    claimed: number;
    expected: number;
    value: number;
    threshold: number;
    deviation: number;
  } | null = null;
  let worst = 0;
  for (let j = 0; j < r.length; j++) {
    const v = Math.fround(r[j]! + g[j]!);
    let s = 0;
    let entry = -1;
    if (c < claimed.length && (claimed[c]! & INDEX_MASK) === j) {
      s = (claimed[c]! & SIGN_BIT) !== 0 ? 1 : -1;
      entry = c++;
    }
    const d = v > theta ? 1 : v < -theta ? -1 : 0;
    const margin = Math.abs(Math.abs(v) - theta);
    if (margin < minMargin) minMargin = margin;
    if (margin <= eps) inBand++;
    if (s !== d) {
      // How far v would have to move for the claimed decision to be the reference one.
      const deviation = s === 0 ? Math.abs(v) - theta : d === 0 ? theta - s * v : theta + Math.abs(v);
      if (deviation <= eps) {
        flips++;
        if (deviation > maxFlipDeviation) maxFlipDeviation = deviation;
      } else {
        mismatches++;
        if (!(deviation <= worst)) worst = deviation;
        first ??= { weight: j, entry, claimed: s, expected: d, value: v, threshold: theta, deviation };
      }
    }
    r[j] = flush ? 0 : s === 0 ? v : Math.fround(v - s * tau);
  }
  if (first !== null) {
    fail(
      'VERIFY_MAP',
      `iteration ${iteration}: ${mismatches} map decisions disagree with the recomputed residual beyond ε = ${eps} (first at weight ${first.weight}, ${Number(first.deviation).toExponential(2)} from the threshold)`,
      { iteration, mismatches, maxDeviation: worst, epsilon: eps, ...first },
    );
  }
  if (flips > tol.maxFlipsPerIteration) {
    fail(
      'VERIFY_MAP',
      `iteration ${iteration}: ${flips} in-band choices differ from the recomputed residual, at most ${tol.maxFlipsPerIteration} allowed`,
      { iteration, flips, maxFlips: tol.maxFlipsPerIteration, maxDeviation: maxFlipDeviation },
    );
  }
  return { inBand, flips, minMargin, maxFlipDeviation };
}

function summarize(
  stats: IterationStats[],
): Pick<VerifyReport, 'inBandEntries' | 'inBandFlips' | 'maxDeviation' | 'minMargin' | 'maxLossDeviation'> {
  return {
    inBandEntries: stats.reduce((a, s) => a + s.inBand, 0),
    inBandFlips: stats.reduce((a, s) => a + s.flips, 0),
    maxDeviation: Math.max(0, ...stats.map((s) => s.maxFlipDeviation)),
    minMargin: Math.min(Number.POSITIVE_INFINITY, ...stats.map((s) => s.minMargin)),
    maxLossDeviation: Math.max(0, ...stats.map((s) => s.lossDeviation)),
  };
}

function contextChecks(ctx: VerifyContext): { layout: ModelLayout; tol: VerifyTolerances } {
  const layout = validateTask(ctx.task);
  if (ctx.engine.parameterCount !== layout.parameterCount) {
    throw new WorkError(
      'TASK_INVALID',
      `engine has ${ctx.engine.parameterCount} parameters, the task ${layout.parameterCount}`,
    );
  }
  for (let i = 1; i < ctx.miners.length; i++) {
    if (bytesToHex(ctx.miners[i - 1]!) >= bytesToHex(ctx.miners[i]!))
      throw new WorkError('TASK_INVALID', 'the miner list must be sorted and unique');
  }
  return { layout, tol: { ...defaultTolerances(ctx.task), ...ctx.tolerances } };
}

// ---------------------------------------------------------------------------------------------
// Entry points.

/**
 * Verifies a block candidate (DESIGN §4.5). Resolves with statistics when every check holds; throws
 * WorkError naming the failed check otherwise (VERIFY_* codes; verdict IGNORE where the verifier
 * lacks data rather than holding proof of a fault).
 */
export async function verifyCandidate(candidate: BlockCandidate, ctx: VerifyContext): Promise<VerifyReport> {
  const started = ctx.now?.() ?? 0;
  const { layout, tol } = contextChecks(ctx);
  const { lucky, znbSource, segment } = candidate;
  const header = candidate.block.header;
  const L = lucky.body.iteration;
  const k = ctx.task.znbLead;
  const miner = lucky.body.miner;

  // Structure of the bundle and membership.
  if (!equalBytes(lucky.body.taskId, ctx.taskId))
    fail('VERIFY_CANDIDATE', 'the lucky IT_RES belongs to another task');
  if (!equalBytes(header.taskId, ctx.taskId)) fail('VERIFY_CANDIDATE', 'the header names another task');
  const minerIndex = minerIndexOf(ctx.miners, miner);
  if (minerIndex < 0)
    fail('VERIFY_MEMBERSHIP', 'the miner is not assigned to this task', { miner: bytesToHex(miner) });
  const start = segmentStart(L, ctx.task.segmentLength);
  if (segment.length !== L - start + 1)
    fail('VERIFY_CANDIDATE', `the segment must hold iterations ${start}..${L}, it holds ${segment.length}`, {
      iteration: L,
    });
  segment.forEach((m, i) => {
    if (
      m.body.iteration !== start + i ||
      !equalBytes(m.body.miner, miner) ||
      !equalBytes(m.body.taskId, ctx.taskId)
    ) {
      fail('VERIFY_CANDIDATE', `segment entry ${i} is not this miner's IT_RES of iteration ${start + i}`, {
        entry: i,
      });
    }
  });

  // Signatures (and map well-formedness) of every IT_RES the candidate brings.
  const luckyChecked = await checkSigned(
    ctx.chainId,
    lucky,
    layout.parameterCount,
    layout.parameterCount,
    ctx.ed25519,
    'lucky IT_RES',
  );
  const supplied: { id: Uint8Array; msg: ItRes }[] = [];
  for (const [i, m] of segment.entries()) {
    const c =
      i === segment.length - 1 && m === lucky
        ? luckyChecked
        : await checkSigned(
            ctx.chainId,
            m,
            layout.parameterCount,
            layout.parameterCount,
            ctx.ed25519,
            `segment IT_RES ${i}`,
          );
    supplied.push({ id: c.id, msg: m });
  }
  if (!equalBytes(supplied[supplied.length - 1]!.id, luckyChecked.id))
    fail('VERIFY_CANDIDATE', "the segment's last IT_RES is not the lucky one");
  const luckyHex = bytesToHex(luckyChecked.id);
  const work = workId(ctx.chainId, lucky.body);
  const workHex = bytesToHex(work);

  // Replay: a piece of work earns one block at most, however often its IT_RES is re-signed.
  if (ctx.history.alreadyRewarded(workHex))
    fail('VERIFY_REPLAYED', "the lucky IT_RES's work already earned a block", {
      id: luckyHex,
      workId: workHex,
      iteration: L,
    });

  // The header: names the lucky iteration's work (not the message: see itres.ts workId), meets its target.
  if (!equalBytes(header.hashMsg, work))
    fail('VERIFY_CANDIDATE', 'header.hashMsg is not the work id of the lucky IT_RES', { iteration: L });
  let powOk = false;
  try {
    powOk = meetsTarget(blockHash(ctx.chainId, header), header.bits);
  } catch (e) {
    fail('VERIFY_POW', `bad compact target: ${e instanceof Error ? e.message : String(e)}`, {
      bits: header.bits,
    });
  }
  if (!powOk) fail('VERIFY_POW', 'the block hash does not meet its target', { bits: header.bits });

  // One IT_RES per (miner, iteration): a lucky IT_RES other than the one the history recorded is a
  // second message for the same iteration, signed by the miner (equivocation), same work or not.
  const recordedLucky = ctx.history.byMiner(bytesToHex(miner), L);
  if (recordedLucky !== undefined && !equalBytes(itResId(ctx.chainId, recordedLucky.body), luckyChecked.id))
    fail('VERIFY_DUPLICATE_ITERATION', duplicateMessage(L, sameWork(recordedLucky, lucky)), {
      iteration: L,
      sameWork: sameWork(recordedLucky, lucky),
    });

  // ZNB: the template was committed k iterations earlier, in a message the history recorded then.
  if (L < k)
    fail('VERIFY_ZNB', `iteration ${L} < k = ${k}: no template can have been committed`, { iteration: L });
  if (
    znbSource.body.iteration !== L - k ||
    !equalBytes(znbSource.body.miner, miner) ||
    !equalBytes(znbSource.body.taskId, ctx.taskId)
  ) {
    fail('VERIFY_ZNB', `the ZNB source must be this miner's IT_RES of iteration ${L - k}`, {
      iteration: L,
      sourceIteration: znbSource.body.iteration,
    });
  }
  const znbChecked = await checkSigned(
    ctx.chainId,
    znbSource,
    layout.parameterCount,
    layout.parameterCount,
    ctx.ed25519,
    'ZNB source IT_RES',
  );
  const recordedSource = ctx.history.byMiner(bytesToHex(miner), L - k);
  if (recordedSource === undefined)
    fail(
      'VERIFY_HISTORY',
      `the history has no IT_RES of this miner at iteration ${L - k}`,
      { iteration: L - k },
      'IGNORE',
    );
  if (!equalBytes(itResId(ctx.chainId, recordedSource.body), znbChecked.id))
    fail('VERIFY_ZNB', 'the ZNB source is not the IT_RES the history recorded', { iteration: L - k });
  if (equalBytes(znbSource.body.znbHash, ZERO32))
    fail('VERIFY_ZNB', `IT_RES ${L - k} committed to no template`, { iteration: L });
  if (!equalBytes(znbHash(ctx.chainId, header), znbSource.body.znbHash)) {
    fail('VERIFY_ZNB', `the header's template is not the one committed at iteration ${L - k}`, {
      iteration: L,
      committedAt: L - k,
    });
  }

  // History: n at every iteration of the segment, model hashes, peer updates, batch schedule.
  const seg = await walkHistory(ctx, layout, miner, minerIndex, L, supplied);

  // Nonce: within [nonce0, nonce0 + a) of THIS iteration's work (its modelHash was just checked
  // against the history, its map is the one the replay checks below).
  const nonce0 = nonceBase(ctx.chainId, work);
  const a = allowanceOf(ctx.task, layout);
  const offset = nonceOffset(nonce0, header.nonce, a);
  if (offset < 0)
    fail('VERIFY_NONCE_RANGE', `the nonce is outside [nonce0, nonce0 + ${a}) of iteration ${L}`, {
      iteration: L,
      allowance: a,
      nonce0: bytesToHex(nonce0),
      nonce: bytesToHex(header.nonce),
    });

  // The gradient replay.
  const replay = await replaySegment(ctx, seg, tol);

  // In-band choices buy alternative maps, hence nonce ranges: each one divides the allowance.
  const effective = effectiveAllowance(a, replay.iterations, tol.flipPenalty);
  if (offset >= effective) {
    const flips = replay.iterations.reduce((x, s) => x + s.flips, 0);
    fail(
      'VERIFY_NONCE_RANGE',
      `${flips} in-band choice(s) in the segment shrink the allowance to ${effective}; the nonce is at offset ${offset}`,
      { iteration: L, reason: 'in-band choices', flips, offset, allowance: a, effectiveAllowance: effective },
      'IGNORE',
    );
  }
  const ended = ctx.now?.();
  return {
    luckyId: luckyChecked.id,
    workId: work,
    miner,
    iteration: L,
    segmentStart: start,
    stepsReplayed: replay.iterations.length,
    nonceOffset: offset,
    nonceAllowance: a,
    effectiveAllowance: effective,
    ...summarize(replay.iterations),
    iterations: replay.iterations,
    tolerances: tol,
    backend: ctx.engine.backend,
    elapsedMs: ended === undefined ? null : ended - started,
    gradientMs: ctx.now === undefined ? null : replay.gradientMs,
  };
}

export interface IterationReport {
  miner: Uint8Array;
  iteration: number;
  segmentStart: number;
  stepsReplayed: number;
  iterations: IterationStats[];
  inBandEntries: number;
  inBandFlips: number;
  maxDeviation: number;
  minMargin: number;
  maxLossDeviation: number;
}

/**
 * Full replay of a recorded iteration without a block (the supervisors' random sample): the
 * history's record of `iteration` and its segment must pass the model-hash, schedule, map and loss
 * checks of `verifyCandidate`.
 */
export async function verifyIteration(
  miner: Uint8Array,
  iteration: number,
  ctx: VerifyContext,
): Promise<IterationReport> {
  const { layout, tol } = contextChecks(ctx);
  const minerIndex = minerIndexOf(ctx.miners, miner);
  if (minerIndex < 0)
    fail('VERIFY_MEMBERSHIP', 'the miner is not assigned to this task', { miner: bytesToHex(miner) });
  const seg = await walkHistory(ctx, layout, miner, minerIndex, iteration, null);
  for (const m of seg.msgs)
    await checkSigned(
      ctx.chainId,
      m,
      layout.parameterCount,
      layout.parameterCount,
      ctx.ed25519,
      `IT_RES ${m.body.iteration}`,
    );
  const replay = await replaySegment(ctx, seg, tol);
  return {
    miner,
    iteration,
    segmentStart: seg.start,
    stepsReplayed: replay.iterations.length,
    iterations: replay.iterations,
    ...summarize(replay.iterations),
  };
}

// ---------------------------------------------------------------------------------------------
// The supervisors' cheap audit of every IT_RES (DESIGN §4.5, last paragraph).

export interface AuditContext {
  chainId: string;
  task: TaskDefinition;
  taskId: Uint8Array;
  miners: readonly Uint8Array[];
  /** Recorded IT_RES by id (the peer maps a message lists). */
  history: Pick<MessageHistory, 'get'>;
  ed25519: Ed25519;
  digest?: Digest;
  /** Largest map accepted in one IT_RES (default: every weight once, |M|). */
  maxMapEntries?: number;
}

/** What a supervisor tracks per miner: the next iteration it expects and the miner's n before it. */
export interface TrackedMiner {
  miner: Uint8Array;
  nextIteration: number;
  n: Int32Array;
  /** Ids (hex) of peer updates the miner has listed so far. */
  listed: Set<string>;
}

export function trackMiner(miner: Uint8Array, task: TaskDefinition): TrackedMiner {
  return { miner, nextIteration: 0, n: new Int32Array(validateTask(task).parameterCount), listed: new Set() };
}

export interface AuditResult {
  id: Uint8Array;
  idHex: string;
  map: Uint32Array;
}

/**
 * Audits one IT_RES against the miner's tracked state: task, membership, the expected iteration
 * (an IT_RES for an iteration already audited is VERIFY_DUPLICATE_ITERATION: IGNORE for the
 * recorded message itself, REJECT for any other), signature, map well-formed and bounded, batch schedule, peer updates and the model hash. On
 * success the tracked state moves past the message (n += peer maps + own map); on failure it is
 * left unchanged and a WorkError names the failed check. One miner's messages are audited one at a
 * time, in iteration order (the caller queues them).
 */
export async function auditItRes(msg: ItRes, ctx: AuditContext, track: TrackedMiner): Promise<AuditResult> {
  const layout = validateTask(ctx.task);
  const b = msg.body;
  if (!equalBytes(b.taskId, ctx.taskId)) fail('VERIFY_CANDIDATE', 'IT_RES of another task', {}, 'IGNORE');
  if (!equalBytes(b.miner, track.miner))
    fail('VERIFY_CANDIDATE', 'IT_RES of another miner than the tracked one', {}, 'IGNORE');
  const minerIndex = minerIndexOf(ctx.miners, b.miner);
  if (minerIndex < 0)
    fail('VERIFY_MEMBERSHIP', 'the miner is not assigned to this task', { miner: bytesToHex(b.miner) });
  if (b.iteration > track.nextIteration) {
    fail(
      'VERIFY_HISTORY',
      `iteration ${b.iteration}, expected ${track.nextIteration}`,
      { iteration: b.iteration, expected: track.nextIteration },
      'IGNORE',
    );
  }
  const { id, map } = await checkSigned(
    ctx.chainId,
    msg,
    layout.parameterCount,
    Math.min(layout.parameterCount, ctx.maxMapEntries ?? layout.parameterCount),
    ctx.ed25519,
    'IT_RES',
  );
  if (b.iteration < track.nextIteration) {
    // An iteration already audited: the recorded message again is a duplicate delivery; any other
    // IT_RES the miner signed for it is a second one (equivocation), same work or not.
    const recorded = ctx.history.get(bytesToHex(id)) !== undefined;
    fail(
      'VERIFY_DUPLICATE_ITERATION',
      `iteration ${b.iteration} was already audited (next expected ${track.nextIteration})${
        recorded ? ': the same IT_RES again' : ': a second IT_RES for it'
      }`,
      { iteration: b.iteration, expected: track.nextIteration, recorded },
      recorded ? 'IGNORE' : 'REJECT',
    );
  }
  assertSchedule(msg, minerIndex, ctx.miners.length, ctx.task);
  const ids = b.peerMsgIds.map((x) => bytesToHex(x));
  const pm = peerMaps(msg, ids, ctx, layout.parameterCount, track.listed);
  const n = track.n.slice();
  for (const m of pm) applyMap(n, m);
  await assertModelHash(ctx.digest ?? nobleDigest, ctx.chainId, ctx.taskId, n, msg, [
    { iteration: b.iteration, maps: pm },
  ]);
  applyMap(n, map);
  track.n = n;
  for (const x of ids) track.listed.add(x);
  track.nextIteration++;
  return { id, idHex: bytesToHex(id), map };
}

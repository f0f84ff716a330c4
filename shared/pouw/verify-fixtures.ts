/**
 * Test harness for verification (ADR 0009): an honest miner loop that produces signed IT_RES, a
 * message history and block candidates, plus the tools to turn a piece of honest work into one
 * forgery at a time (re-signed and re-mined, so only the intended check can fail). Pure: the
 * engines, the dataset and Ed25519 come in as parameters, so the same harness runs in Node and in
 * Chromium (where the engine lives in a Web Worker).
 *
 * The miners follow DESIGN §4.4 literally: apply the peer maps not yet applied, hash n, take the
 * gradient at w0 − u·n on the assigned batch, `residualStep` (r += g, threshold at τ, or at τ/2 then
 * r = 0 in the last iteration of a segment), n += map, sign and record the IT_RES (committing to the
 * template for iteration + k), then mine with the template committed k iterations earlier.
 */
import { ContainerType, ListBasicType, ListCompositeType, UintNumberType } from '@chainsafe/ssz';
import { bytesToHex } from '../bytes.ts';
import { blockHash } from '../chain/ids.ts';
import { meetsTarget } from '../chain/pow.ts';
import { Block, type BlockHeader } from '../chain/types.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { taggedHash } from '../codec/domain.ts';
import { bytes32 } from '../codec/ssz.ts';
import type { Ed25519 } from '../crypto/ed25519.ts';
import { WorkError } from '../errors.ts';
import type { BlockCandidate, MessageHistory } from './candidate.ts';
import {
  assignedBatch,
  batchIndices,
  batchTensors,
  type Dataset,
  datasetCommitment,
  drawTestSegments,
  segmentHash,
  segmentRanges,
} from './dataset.ts';
import type { Batch, GradientEngine, TrainingEngine } from './engine.ts';
import { ItRes, type ItResBody, itResId, sameWork, signItRes, workId } from './itres.ts';
import { modelHash, nonceAt, nonceBase, residualHash } from './lattice.ts';
import { applyMap, isFlushIteration, residualStep, segmentStart } from './residual.ts';
import {
  batchesPerEpoch,
  bitsToFloat32,
  float32Bits,
  TaskDefinition,
  taskId as taskIdOf,
  validateTask,
} from './task.ts';
import { allowanceOf, type DatasetCommitmentProof } from './verify.ts';
import { znbHash } from './znb.ts';

// ---------------------------------------------------------------------------------------------
// Message history.

/**
 * The supervisors' record, in memory: every IT_RES by id and by (miner, iteration), one per
 * (miner, iteration), and the work ids already rewarded.
 */
export class MemoryHistory implements MessageHistory {
  private readonly byId = new Map<string, ItRes>();
  private readonly byKey = new Map<string, ItRes>();
  private readonly rewarded = new Set<string>();

  constructor(private readonly chainId: string) {}

  /**
   * Records `msg` and returns its id; the same message again is a no-op. A second, different IT_RES
   * for a recorded (miner, iteration) is refused with VERIFY_DUPLICATE_ITERATION (detail.sameWork
   * tells a re-signed copy of the same work from different work).
   */
  add(msg: ItRes): string {
    const idHex = bytesToHex(itResId(this.chainId, msg.body));
    const key = `${bytesToHex(msg.body.miner)}/${msg.body.iteration}`;
    const held = this.byKey.get(key);
    if (held !== undefined) {
      if (bytesToHex(itResId(this.chainId, held.body)) === idHex) return idHex;
      throw new WorkError(
        'VERIFY_DUPLICATE_ITERATION',
        `a second IT_RES for iteration ${msg.body.iteration} of this miner`,
        'REJECT',
        { iteration: msg.body.iteration, sameWork: sameWork(held, msg) },
      );
    }
    this.byId.set(idHex, msg);
    this.byKey.set(key, msg);
    return idHex;
  }
  get(idHex: string): ItRes | undefined {
    return this.byId.get(idHex);
  }
  byMiner(minerHex: string, iteration: number): ItRes | undefined {
    return this.byKey.get(`${minerHex}/${iteration}`);
  }
  alreadyRewarded(workIdHex: string): boolean {
    return this.rewarded.has(workIdHex);
  }
  /** Marks a block's hashMsg (a work id, hex) as rewarded. */
  markRewarded(workIdHex: string): void {
    this.rewarded.add(workIdHex);
  }
  messages(): ItRes[] {
    return [...this.byId.values()];
  }
  rewardedIds(): string[] {
    return [...this.rewarded];
  }
  /** A copy with `msg` recorded in place of whatever the history held for its (miner, iteration). */
  withReplaced(msg: ItRes): MemoryHistory {
    const h = new MemoryHistory(this.chainId);
    const key = `${bytesToHex(msg.body.miner)}/${msg.body.iteration}`;
    for (const m of this.byId.values())
      if (`${bytesToHex(m.body.miner)}/${m.body.iteration}` !== key) h.add(m);
    h.add(msg);
    for (const r of this.rewarded) h.markRewarded(r);
    return h;
  }
}

// ---------------------------------------------------------------------------------------------
// Datasets: the client's segment commitment and the training split.

export interface CommittedSplit {
  train: Dataset;
  proof: DatasetCommitmentProof;
  commitment: Uint8Array;
  testSegments: number[];
}

/** A Dataset (uint8 features + label byte) from decoded images with features in [0, 1] (pixel / 255). */
export function datasetFromImages(d: { count: number; x: Float32Array; labels: Uint8Array }): Dataset {
  const featureBytes = d.x.length / d.count;
  const stride = featureBytes + 1;
  const examples = new Uint8Array(d.count * stride);
  for (let i = 0; i < d.count; i++) {
    for (let j = 0; j < featureBytes; j++)
      examples[i * stride + j] = Math.round(d.x[i * featureBytes + j]! * 255);
    examples[i * stride + featureBytes] = d.labels[i]!;
  }
  return { examples, count: d.count, featureBytes };
}

/**
 * Cuts a dataset into S segments, commits to their hashes, draws the test segments from
 * `randomness` (DESIGN §3) and concatenates the remaining ones, in order, into the training set.
 */
export function splitCommitted(
  chainId: string,
  full: Dataset,
  segments: number,
  testFraction: number,
  randomness: Uint8Array,
): CommittedSplit {
  const ranges = segmentRanges(full.count, segments);
  const segmentHashes = ranges.map((r) => segmentHash(chainId, full, r));
  const testSegments = drawTestSegments(segments, testFraction, randomness);
  const stride = full.featureBytes + 1;
  const trainRanges: { segment: number; start: number; end: number }[] = [];
  let count = 0;
  for (let s = 0; s < segments; s++) {
    if (testSegments.includes(s)) continue;
    const r = ranges[s]!;
    trainRanges.push({ segment: s, start: count, end: count + r.end - r.start });
    count += r.end - r.start;
  }
  const examples = new Uint8Array(count * stride);
  for (const tr of trainRanges) {
    const r = ranges[tr.segment]!;
    examples.set(full.examples.subarray(r.start * stride, r.end * stride), tr.start * stride);
  }
  return {
    train: { examples, count, featureBytes: full.featureBytes },
    proof: { segmentHashes, trainRanges },
    commitment: datasetCommitment(chainId, segmentHashes),
    testSegments,
  };
}

// ---------------------------------------------------------------------------------------------
// The honest miner loop.

/** Engines a miner can train with: stateless gradients (+ residual.ts on the host), or a device-state TrainingEngine. */
export type MinerEngine =
  | { kind: 'gradient'; engine: GradientEngine }
  | {
      kind: 'step';
      engine: TrainingEngine;
      /** The engine's step() takes the flush flag; otherwise flush iterations run residual.ts on the host. */
      deviceFlush: boolean;
      /**
       * How peer maps reach the device: `applyMap` (default), or `setState` with the host's n and the
       * device's r (for a backend where applyMap is impractical, e.g. WebGL on SwiftShader, which
       * compiles a new scatter shader for every map length).
       */
      peerUpdates?: 'applyMap' | 'setState';
    };

export interface HonestRunOptions {
  chainId: string;
  task: TaskDefinition;
  /** The training set (trainSize examples). */
  train: Dataset;
  /** One engine and one Ed25519 secret key per miner. */
  miners: { engine: MinerEngine; secretKey: Uint8Array }[];
  iterations: number;
  ed25519: Ed25519;
  /** Block header fields shared by all templates. */
  tip?: Uint8Array;
  height?: bigint;
  /** Compact target of the templates (default DEFAULT_BITS: about half of all hashes win). */
  bits?: number;
}

/** What one miner did in one iteration, kept so tests can forge variants of it. */
export interface MinerStep {
  /** n after the peer maps, before the own map; r before the step. */
  nBefore: Int32Array;
  rBefore: Float32Array;
  /** n after the own map. */
  nAfter: Int32Array;
  peerIds: Uint8Array[];
  batchIndices: number[];
  msg: ItRes;
  id: Uint8Array;
  /** Its work id: what a block's hashMsg names. */
  work: Uint8Array;
  map: Uint32Array;
}

export interface HonestRun {
  chainId: string;
  task: TaskDefinition;
  taskId: Uint8Array;
  /** Public keys, sorted (the task's miner list); `secretKeys` in the same order. */
  miners: Uint8Array[];
  secretKeys: Uint8Array[];
  history: MemoryHistory;
  /** steps[m][t]: miner m (index in `miners`) at iteration t. */
  steps: MinerStep[][];
  /** Template each miner committed for each iteration (key: `${m}/${iteration}`). */
  templates: Map<string, BlockHeader>;
  /** Lucky iterations found by the honest miners, in order. */
  candidates: { miner: number; iteration: number; candidate: BlockCandidate; nonceOffset: number }[];
  ed25519: Ed25519;
}

/** The zero-nonce template miner m commits to for `iteration` (coinbase to its key: a per-miner stateRoot stand-in). */
export function templateFor(
  chainId: string,
  tid: Uint8Array,
  miner: Uint8Array,
  iteration: number,
  tip: Uint8Array,
  height: bigint,
  bits: number,
): BlockHeader {
  return {
    version: 1,
    height,
    prevHash: tip,
    merkleRoot: taggedHash('pouw/test/v1', chainId, miner),
    stateRoot: taggedHash('pouw/test/v1', chainId, new TextEncoder().encode(`state/${bytesToHex(miner)}`)),
    time: 1_700_000_000_000n + BigInt(iteration) * 1000n,
    bits,
    nonce: new Uint8Array(32),
    taskId: tid,
    hashMsg: new Uint8Array(32),
    hashMsgHist: new Uint8Array(32),
  };
}

/** An easy target: about half of all hashes meet it, so most iterations are lucky. */
export const DEFAULT_BITS = 0x207fffff;

export function batchOf(
  task: TaskDefinition,
  tid: Uint8Array,
  train: Dataset,
  minerIndex: number,
  minerCount: number,
  iteration: number,
): { epoch: number; batchId: number; indices: number[]; batch: Batch } {
  const { epoch, batchId } = assignedBatch(minerIndex, minerCount, iteration, batchesPerEpoch(task));
  const indices = batchIndices(tid, epoch, batchId, task.trainSize, task.batchSize);
  return { epoch, batchId, indices, batch: batchTensors(train, indices) };
}

/** Mines `header` (hashMsg set) over [nonce0 + from, nonce0 + to): the first nonce offset meeting the target, or −1. */
export function mine(
  chainId: string,
  header: BlockHeader,
  nonce0: Uint8Array,
  from: number,
  to: number,
): { offset: number; header: BlockHeader } {
  for (let off = from; off < to; off++) {
    const h = { ...header, nonce: nonceAt(nonce0, off) };
    if (meetsTarget(blockHash(chainId, h), h.bits)) return { offset: off, header: h };
  }
  return { offset: -1, header };
}

/** One miner's local step with the given engine: returns the map; n and r (host copies) are advanced. */
async function localStep(
  engine: MinerEngine,
  n: Int32Array,
  r: Float32Array,
  batch: Batch,
  tau: number,
  flush: boolean,
): Promise<{ map: Uint32Array; loss: number; accuracy: number }> {
  if (engine.kind === 'gradient') {
    const g = await engine.engine.gradient(n, batch);
    const map = residualStep(r, g.gradient, tau, flush);
    applyMap(n, map);
    return { map, loss: g.loss, accuracy: g.accuracy };
  }
  const e = engine.engine;
  if (flush && !engine.deviceFlush) {
    // Reference semantics on the host for the flush step: r from the device, then reset it.
    const st = await e.state();
    r.set(st.r);
    const g = await e.gradient(n, batch);
    const map = residualStep(r, g.gradient, tau, true);
    applyMap(n, map);
    await e.setState(n);
    return { map, loss: g.loss, accuracy: g.accuracy };
  }
  const res = await e.step(batch, flush);
  applyMap(n, res.map);
  if (flush) r.fill(0);
  return res;
}

/**
 * Runs the miners round-robin for `iterations` iterations each. Every miner applies all peer
 * messages recorded since its previous iteration and lists them. Lucky iterations (t ≥ k whose
 * nonce range holds a hash under the target) become candidates.
 */
export async function runHonestMiners(opts: HonestRunOptions): Promise<HonestRun> {
  const { chainId, task, ed25519 } = opts;
  validateTask(task);
  const tid = taskIdOf(chainId, task);
  const tau = bitsToFloat32(task.tau);
  const k = task.znbLead;
  const tip = opts.tip ?? new Uint8Array(32).fill(0xaa);
  const height = opts.height ?? 1n;
  const keyed = await Promise.all(
    opts.miners.map(async (m) => ({ ...m, pk: await ed25519.getPublicKey(m.secretKey) })),
  );
  keyed.sort((a, b) => (bytesToHex(a.pk) < bytesToHex(b.pk) ? -1 : 1));
  const miners = keyed.map((m) => m.pk);
  const layout = validateTask(task);
  const history = new MemoryHistory(chainId);
  const templates = new Map<string, BlockHeader>();
  const steps: MinerStep[][] = keyed.map(() => []);
  const state = keyed.map(() => ({
    n: new Int32Array(layout.parameterCount),
    r: new Float32Array(layout.parameterCount),
    applied: new Set<string>(),
  }));
  const log: { idHex: string; miner: number; map: Uint32Array }[] = [];
  const candidates: HonestRun['candidates'] = [];
  const allowance = allowanceOf(task, layout);
  for (const m of keyed)
    if (m.engine.kind === 'step') await m.engine.engine.setState(new Int32Array(layout.parameterCount));

  for (let t = 0; t < opts.iterations; t++) {
    for (let mi = 0; mi < keyed.length; mi++) {
      const m = keyed[mi]!;
      const st = state[mi]!;
      const peers = log.filter((e) => e.miner !== mi && !st.applied.has(e.idHex));
      for (const p of peers) {
        applyMap(st.n, p.map);
        st.applied.add(p.idHex);
        if (m.engine.kind === 'step' && m.engine.peerUpdates !== 'setState')
          await m.engine.engine.applyMap(p.map);
      }
      if (m.engine.kind === 'step' && m.engine.peerUpdates === 'setState' && peers.length > 0) {
        await m.engine.engine.setState(st.n, (await m.engine.engine.state()).r);
      }
      const nBefore = st.n.slice();
      const rBefore = st.r.slice();
      const { epoch, batchId, indices, batch } = batchOf(task, tid, opts.train, mi, keyed.length, t);
      const mh = modelHash(chainId, tid, st.n);
      const flush = isFlushIteration(t, task.segmentLength);
      const res = await localStep(m.engine, st.n, st.r, batch, tau, flush);
      const committed = templateFor(chainId, tid, m.pk, t + k, tip, height, opts.bits ?? DEFAULT_BITS);
      templates.set(`${mi}/${t + k}`, committed);
      const body: ItResBody = {
        taskId: tid,
        miner: m.pk,
        epoch,
        iteration: t,
        batchId,
        modelHash: mh,
        residualHash: residualHash(chainId, tid, st.r),
        peerMsgIds: peers.map((p) => hexBytes(p.idHex)),
        map: Array.from(res.map),
        loss: float32Bits(res.loss),
        accuracy: float32Bits(res.accuracy),
        znbHash: znbHash(chainId, committed),
        time: BigInt(t),
      };
      const msg = await signItRes(chainId, body, m.secretKey, ed25519);
      const idHex = history.add(msg);
      const id = hexBytes(idHex);
      log.push({ idHex, miner: mi, map: res.map });
      steps[mi]!.push({
        nBefore,
        rBefore,
        nAfter: st.n.slice(),
        peerIds: body.peerMsgIds,
        batchIndices: indices,
        msg,
        id,
        work: workId(chainId, body),
        map: res.map,
      });
      if (t >= k) {
        const template = templates.get(`${mi}/${t}`)!;
        const work = workId(chainId, body);
        const won = mine(chainId, { ...template, hashMsg: work }, nonceBase(chainId, work), 0, allowance);
        if (won.offset >= 0) {
          const start = segmentStart(t, task.segmentLength);
          candidates.push({
            miner: mi,
            iteration: t,
            nonceOffset: won.offset,
            candidate: {
              block: { header: won.header, transactions: [] },
              lucky: msg,
              znbSource: steps[mi]![t - k]!.msg,
              segment: steps[mi]!.slice(start, t + 1).map((s) => s.msg),
            },
          });
        }
      }
    }
  }
  return {
    chainId,
    task,
    taskId: tid,
    miners,
    secretKeys: keyed.map((m) => m.secretKey),
    history,
    steps,
    templates,
    candidates,
    ed25519,
  };
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Forgeries: one mutation of honest work, re-signed and re-mined.

export interface Forged {
  candidate: BlockCandidate;
  history: MemoryHistory;
}

export interface ForgeOptions {
  /** Builds the header to submit from the committed template (hashMsg set) and the forger's nonce0; default: mine in [0, a). */
  header?: (template: BlockHeader, nonce0: Uint8Array, allowance: number) => BlockHeader;
  /**
   * Record the forged IT_RES in the history in place of the honest one (default true: the miner
   * broadcast it instead). False: the history keeps the honest IT_RES (a forgery that differs from
   * it is then a second IT_RES for the same iteration).
   */
  record?: boolean;
}

/**
 * Miner m's IT_RES at iteration L with `mutate` applied to its body, re-signed, recorded in a copy
 * of the history in place of the honest one, and mined with the template committed at L − k.
 */
export async function forge(
  run: HonestRun,
  m: number,
  L: number,
  mutate: (body: ItResBody, step: MinerStep) => ItResBody | Promise<ItResBody>,
  opts: ForgeOptions = {},
): Promise<Forged> {
  const { chainId, task } = run;
  const layout = validateTask(task);
  const step = run.steps[m]![L]!;
  const body = await mutate(structuredCloneBody(step.msg.body), step);
  const msg = await signItRes(chainId, body, run.secretKeys[m]!, run.ed25519);
  const history = opts.record === false ? run.history : run.history.withReplaced(msg);
  // The forger's nonce range: the one its (forged) work earns.
  const work = workId(chainId, body);
  const nonce0 = nonceBase(chainId, work);
  const a = allowanceOf(task, layout);
  const template = { ...run.templates.get(`${m}/${L}`)!, hashMsg: work };
  let header: BlockHeader;
  if (opts.header !== undefined) header = opts.header(template, nonce0, a);
  else {
    const won = mine(chainId, template, nonce0, 0, a);
    if (won.offset < 0) throw new Error('forge: no nonce in range meets the target (use an easier target)');
    header = won.header;
  }
  const start = segmentStart(L, task.segmentLength);
  const segment = [...run.steps[m]!.slice(start, L).map((s) => s.msg), msg];
  return {
    candidate: {
      block: { header, transactions: [] },
      lucky: msg,
      znbSource: run.steps[m]![L - task.znbLead]!.msg,
      segment,
    },
    history,
  };
}

function structuredCloneBody(b: ItResBody): ItResBody {
  return {
    ...b,
    peerMsgIds: b.peerMsgIds.map((x) => x.slice()),
    map: [...b.map],
    modelHash: b.modelHash.slice(),
    residualHash: b.residualHash.slice(),
    znbHash: b.znbHash.slice(),
  };
}

/**
 * A re-signed copy of the same work: every field the miner chooses freely changed (time, residual
 * commitment, template commitment, loss and accuracy bits by one ulp — within any tolerance — and the
 * order of the peer ids), the work fields kept. `k` ≥ 1 picks one of many such copies.
 */
export function freeFieldVariant(body: ItResBody, k = 1): ItResBody {
  const residual = body.residualHash.slice();
  residual[0]! ^= k & 0xff;
  const znb = body.znbHash.slice();
  znb[31]! ^= (k >> 8) | 1;
  return {
    ...body,
    time: body.time + BigInt(k),
    residualHash: residual,
    znbHash: znb,
    // The lowest mantissa bit: one ulp either way.
    loss: (body.loss ^ 1) >>> 0,
    accuracy: (body.accuracy ^ 1) >>> 0,
    peerMsgIds: [...body.peerMsgIds].reverse(),
  };
}

/** The honest candidate of miner m at L, re-mined if the honest run found none there (the target is easy). */
export async function candidateAt(run: HonestRun, m: number, L: number): Promise<BlockCandidate> {
  const found = run.candidates.find((c) => c.miner === m && c.iteration === L);
  if (found !== undefined) return found.candidate;
  return (await forge(run, m, L, (b) => b, { record: false })).candidate;
}

/** Headers whose nonce lies outside this iteration's range but still meets the target. */
export function mineOutside(
  chainId: string,
  template: BlockHeader,
  nonce0: Uint8Array,
  allowance: number,
): BlockHeader {
  const won = mine(chainId, template, nonce0, allowance, allowance + 1000);
  if (won.offset < 0) throw new Error('mineOutside: no nonce found');
  return won.header;
}

// ---------------------------------------------------------------------------------------------
// Wire format for handing a candidate and its history to a verifier in another runtime (the
// browser test sends it to the Node verifier through a test-runner command).

export const VerifyBundle = defineCodec(
  'VerifyBundle',
  new ContainerType({
    task: TaskDefinition.ssz,
    miners: new ListCompositeType(bytes32, 256),
    block: Block.ssz,
    lucky: ItRes.ssz,
    znbSource: ItRes.ssz,
    segment: new ListCompositeType(ItRes.ssz, 1 << 16),
    history: new ListCompositeType(ItRes.ssz, 1 << 16),
    /** Work ids already rewarded. */
    rewarded: new ListCompositeType(bytes32, 1 << 16),
    /** How the training set was cut from the shared dataset: S, the test fraction (‰) and the draw's randomness. */
    segments: new UintNumberType(2),
    testPermille: new UintNumberType(2),
    randomness: bytes32,
    /** The backend the work was produced on (for reports). */
    backend: new ListBasicType(new UintNumberType(1), 32),
  }),
);
export type VerifyBundle = CodecValue<typeof VerifyBundle>;

export function bundleOf(
  run: HonestRun,
  candidate: BlockCandidate,
  history: MemoryHistory,
  split: { segments: number; testPermille: number; randomness: Uint8Array },
  backend: string,
): VerifyBundle {
  return {
    task: run.task,
    miners: run.miners,
    block: candidate.block,
    lucky: candidate.lucky,
    znbSource: candidate.znbSource,
    segment: candidate.segment,
    history: history.messages(),
    rewarded: history.rewardedIds().map(hexBytes),
    segments: split.segments,
    testPermille: split.testPermille,
    randomness: split.randomness,
    backend: Array.from(new TextEncoder().encode(backend)),
  };
}

export function unbundle(
  chainId: string,
  b: VerifyBundle,
): { candidate: BlockCandidate; history: MemoryHistory; backend: string } {
  const history = new MemoryHistory(chainId);
  for (const m of b.history) history.add(m);
  for (const r of b.rewarded) history.markRewarded(bytesToHex(r));
  return {
    candidate: { block: b.block, lucky: b.lucky, znbSource: b.znbSource, segment: b.segment },
    history,
    backend: new TextDecoder().decode(Uint8Array.from(b.backend)),
  };
}

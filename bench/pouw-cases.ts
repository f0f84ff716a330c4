/**
 * The PoUW iteration benchmark, portable: bench/pouw.ts runs it under Node (cpu, wasm) and
 * bench/pouw-browser.ts inside a Chromium Web Worker (wasm, webgl, webgpu). Everything that is a
 * claim is a ratio measured in one run, with the variants interleaved round by round so a machine
 * whose load drifts shifts both sides alike:
 *   overhead = ms per full PoUW iteration ÷ ms per plain TF.js SGD step (same backend, model, batches).
 * A PoUW iteration here is everything a miner does per step: receive and check two peer IT_RES
 * (they arrive during the step, as from the network, and are applied in the next one), apply their
 * maps, model hash, the lattice step (gradient, residual, map; a flush every R), IT_RES encoding,
 * id, work id and signature, nonce0 and grinding all of its a nonces (the target is unreachable, so
 * every nonce is hashed). Each round ends with the miner drained (every nonce hashed, every IT_RES
 * broadcast), so work left to a mining thread cannot hide.
 *
 * Three measures per variant (each a median over rounds of this block ÷ the plain block):
 *  - wall: the iteration rate this machine sustained, with whatever else it was running;
 *  - busy (Node): the training thread's CPU time, i.e. its critical path when a mining worker has
 *    a core of its own (steady under load from other processes, unlike wall-clock);
 *  - CPU (Node): the whole process's CPU time, all threads (mining workers included).
 */
import { targetToBits } from '../shared/chain/pow.ts';
import type { Block } from '../shared/chain/types.ts';
import type { Ed25519 } from '../shared/crypto/ed25519.ts';
import { batchIndices, batchTensors, type Dataset } from '../shared/pouw/dataset.ts';
import type { TrainingEngine } from '../shared/pouw/engine.ts';
import { SeededStream } from '../shared/pouw/init.ts';
import { checkItRes, ItRes, type ItResBody, itResId, signItRes, workId } from '../shared/pouw/itres.ts';
import { nonceAllowance, nonceBase } from '../shared/pouw/lattice.ts';
import { Miner } from '../shared/pouw/miner.ts';
import {
  type Digest,
  HeaderGrinder,
  LocalMiningService,
  type MiningService,
  modelHashWith,
  residualStepFast,
} from '../shared/pouw/mining.ts';
import {
  batchesPerEpoch,
  denseSoftmaxTask,
  float32Bits,
  mnistMlpTask,
  type TaskDefinition,
  taskId,
} from '../shared/pouw/task.ts';
import { createPlainSgd, createTfjsEngine, plainSgdStep } from '../web-worker-node/trainer/engine-tfjs.ts';

export const CHAIN = 'pouw-bench';

/** The benchmarked task: the tuned MNIST task of tests/pouw/training.node.test.ts. */
export function benchTask(overrides: Partial<TaskDefinition> = {}): TaskDefinition {
  return mnistMlpTask({
    learningRate: float32Bits(0.4),
    tau: float32Bits(1),
    batchSize: 100,
    epochs: 12,
    segmentLength: 10,
    znbLead: 5,
    ...overrides,
  });
}

/**
 * Whether this engine's step(batch, true) performs the flush (r reset to zero), probed on a 4→3
 * softmax layer with τ far above every gradient entry: after a flush step the residual must be zero.
 */
export async function probeFlushInStep(backend: string): Promise<boolean> {
  const def = denseSoftmaxTask(4, 3, { initSeed: new Uint8Array(32).fill(7), tau: float32Bits(100) });
  const engine = await createTfjsEngine(def, { backend });
  try {
    const batch = {
      x: Float32Array.from([0.5, -1, 2, 0.25, -1.5, 0.75, 0, 1]),
      labels: Uint8Array.from([2, 0]),
    };
    await (engine.step as (b: typeof batch, flush?: boolean) => Promise<unknown>)(batch, true);
    const { r } = await engine.state();
    return r.every((v) => v === 0);
  } finally {
    engine.dispose();
  }
}

export interface Identity {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface MiningVariant {
  name: string;
  /** Where the residual lives (Miner option `residual`; default 'device'). */
  residual?: 'device' | 'host';
  /** A fresh mining service for one miner, or undefined for the miner's default (local, this thread). */
  create?: (o: {
    chainId: string;
    taskId: Uint8Array;
    parameterCount: number;
    secretKey: Uint8Array;
  }) => MiningService;
  /** Called after the variant's last use. */
  close?: () => void;
}

export interface OverheadSetup {
  backend: string;
  def: TaskDefinition;
  train: Dataset;
  ed: Ed25519;
  /** Digest for the in-thread mining service (node:crypto in Node, WebCrypto in browsers). */
  digest: Digest;
  identities: [Identity, Identity, Identity];
  variants: MiningVariant[];
  /** Whether engine.step(batch, true) flushes (else the miner emulates the flush). */
  flushInStep: boolean;
  /** Steps per block and blocks per variant. */
  steps: number;
  rounds: number;
  /** Peer IT_RES per iteration and entries per peer map (real maps at τ = 1 hold ≈ 3,700). */
  peers: number;
  peerMapEntries: number;
  now: () => number;
  /** CPU time of the whole process so far, all threads (ms): Node's process.cpuUsage(). */
  cpu?: () => number;
  /** CPU time of this (the training) thread so far (ms): Node's process.threadCpuUsage(). */
  busy?: () => number;
  log: (line: string) => void;
}

export interface VariantResult {
  name: string;
  msPerStep: number;
  stepsPerSecond: number;
  /** ÷ the plain step of the same run. */
  ratio: number;
  /** Median over rounds of (this block ÷ the plain block of the same round), wall-clock. */
  medianRoundRatio: number;
  /** The same for the training thread's busy time and the process's CPU time (Node). */
  busyMsPerStep?: number;
  busyRatio?: number;
  cpuMsPerStep?: number;
  cpuRatio?: number;
  /** Encoded bytes of this miner's own IT_RES (mean) and map entries (mean). */
  itresBytes?: number;
  mapEntries?: number;
  /** Nonces hashed per iteration. */
  noncesPerIteration?: number;
  /** Per iteration (ms): receive, iterate, drain, and each engine method (call to settlement). */
  split?: Record<string, number>;
}

export interface OverheadResult {
  backend: string;
  model: string;
  batchSize: number;
  parameterCount: number;
  plainMsPerStep: number;
  variants: VariantResult[];
  components: Record<string, number>;
}

function randomMap(stream: SeededStream, parameterCount: number, entries: number): number[] {
  const picked = new Set<number>();
  while (picked.size < entries) picked.add(stream.nextUint32() % parameterCount);
  return [...picked]
    .sort((a, b) => a - b)
    .map((j) => ((stream.nextUint32() & 1) === 1 ? (j | 0x80000000) >>> 0 : j));
}

/** Signed peer messages for iterations [from, from + count) of one peer (random maps, real signatures). */
async function peerMessages(
  setup: OverheadSetup,
  tid: Uint8Array,
  peer: Identity,
  from: number,
  count: number,
  parameterCount: number,
): Promise<ItRes[]> {
  const stream = new SeededStream(new Uint8Array(32).fill(from % 251));
  const out: ItRes[] = [];
  for (let i = from; i < from + count; i++) {
    const body: ItResBody = {
      taskId: tid,
      miner: peer.publicKey,
      epoch: 0,
      iteration: i,
      batchId: 0,
      modelHash: new Uint8Array(32),
      residualHash: new Uint8Array(32),
      peerMsgIds: [],
      map: randomMap(stream, parameterCount, setup.peerMapEntries),
      loss: 0,
      accuracy: 0,
      znbHash: new Uint8Array(32),
      time: 0n,
    };
    // Through the wire codec, as a peer's message would arrive.
    out.push(ItRes.decode(ItRes.encode(await signItRes(CHAIN, body, peer.secretKey, setup.ed))));
  }
  return out;
}

/** A template no nonce can meet (target 1): every iteration hashes its whole allowance. */
function unreachableTemplate(tid: Uint8Array): Block {
  const z = new Uint8Array(32);
  return {
    header: {
      version: 1,
      height: 1n,
      prevHash: new Uint8Array(32).fill(7),
      merkleRoot: z,
      stateRoot: z,
      time: 1_800_000_000_000n,
      bits: targetToBits(1n),
      nonce: z,
      taskId: tid,
      hashMsg: z,
      hashMsgHist: z,
    },
    transactions: [],
  };
}

/** One measured block of steps: wall-clock, training-thread busy time and process CPU time (ms). */
interface Sample {
  wall: number;
  busy: number;
  cpu: number;
}

interface PouwRunner {
  variant: MiningVariant;
  miner: Miner;
  engine: TrainingEngine;
  nextPeerIteration: number;
  /** Own IT_RES broadcast during the current block (encoded after its timing, for the byte count). */
  sent: ItRes[];
  itresBytes: number;
  itres: number;
  mapEntries: number;
  steps: number;
  rounds: Sample[];
  /** Where the iteration time went (ms, summed): receive, iterate, drain; engine calls (start to settle). */
  split: Record<string, number>;
}

/** Wraps an engine so the time from each call to its settlement is summed per method. */
function timed(engine: TrainingEngine, split: Record<string, number>, now: () => number): TrainingEngine {
  const wrap =
    <A extends unknown[], R>(name: string, f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      const t0 = now();
      try {
        return await f(...a);
      } finally {
        split[`engine.${name}`] = (split[`engine.${name}`] ?? 0) + now() - t0;
      }
    };
  return {
    backend: engine.backend,
    parameterCount: engine.parameterCount,
    gradient: wrap('gradient', engine.gradient.bind(engine)),
    evaluate: engine.evaluate.bind(engine),
    setState: wrap('setState', engine.setState.bind(engine)),
    applyMap: wrap('applyMap', engine.applyMap.bind(engine)),
    step: wrap(
      'step',
      engine.step.bind(engine) as (
        b: Parameters<TrainingEngine['step']>[0],
        f?: boolean,
      ) => ReturnType<TrainingEngine['step']>,
    ),
    flush: wrap('flush', engine.flush.bind(engine)),
    state: wrap('state', engine.state.bind(engine)),
    dispose: () => engine.dispose(),
  };
}

export async function measureOverhead(setup: OverheadSetup): Promise<OverheadResult> {
  const { def, train, backend, now, log } = setup;
  const tid = taskId(CHAIN, def);
  const [self, ...peers] = setup.identities;
  const template = unreachableTemplate(tid);
  const batchOf = (k: number) => {
    const perEpoch = batchesPerEpoch(def);
    return batchTensors(
      train,
      batchIndices(tid, Math.floor(k / perEpoch) % def.epochs, k % perEpoch, def.trainSize, def.batchSize),
    );
  };
  const cpu = setup.cpu ?? (() => 0);
  const busy = setup.busy ?? (() => 0);
  const measure = async (block: () => Promise<void>): Promise<Sample> => {
    const [w0, b0, c0] = [now(), busy(), cpu()];
    await block();
    return { wall: now() - w0, busy: busy() - b0, cpu: cpu() - c0 };
  };

  // Plain TF.js SGD.
  const plain = await createPlainSgd(def, backend);
  let plainK = 0;
  const plainBlock = (steps: number) =>
    measure(async () => {
      for (let s = 0; s < steps; s++) await plainSgdStep(plain, batchOf(plainK++));
    });

  // The engine's lattice step alone (no peers, no flush, no protocol): the engine's share of the overhead.
  const lattice = await createTfjsEngine(def, { backend });
  let latticeK = 0;
  const latticeBlock = (steps: number) =>
    measure(async () => {
      for (let s = 0; s < steps; s++) await lattice.step(batchOf(latticeK++));
    });

  // One miner per variant, each with its own engine on this backend.
  const runners: PouwRunner[] = [];
  for (const variant of setup.variants) {
    const engine = await createTfjsEngine(def, { backend });
    const runner: PouwRunner = {
      variant,
      engine,
      nextPeerIteration: 0,
      sent: [],
      itresBytes: 0,
      itres: 0,
      mapEntries: 0,
      steps: 0,
      rounds: [],
      split: {},
      miner: undefined as unknown as Miner,
    };
    runner.miner = await Miner.create({
      chainId: CHAIN,
      task: def,
      engine: timed(engine, runner.split, now),
      dataset: train,
      identity: { ...self, ed: setup.ed },
      miners: setup.identities.map((i) => i.publicKey),
      clock: () => 1_800_000_000_000n,
      template: () => template,
      transport: { broadcast: (msg) => runner.sent.push(msg) },
      digest: setup.digest,
      flushInStep: setup.flushInStep,
      residual: variant.residual ?? 'device',
      ...(variant.create === undefined
        ? {}
        : {
            mining: variant.create({
              chainId: CHAIN,
              taskId: tid,
              parameterCount: engine.parameterCount,
              secretKey: self.secretKey,
            }),
          }),
    });
    runners.push(runner);
  }
  const pouwBlock = async (r: PouwRunner, steps: number): Promise<Sample> => {
    const inbox: ItRes[][] = [];
    for (const p of peers.slice(0, setup.peers))
      inbox.push(await peerMessages(setup, tid, p, r.nextPeerIteration, steps, r.engine.parameterCount));
    r.nextPeerIteration += steps;
    const add = (k: string, t: number) => {
      r.split[k] = (r.split[k] ?? 0) + now() - t;
    };
    const sample = await measure(async () => {
      for (let s = 0; s < steps; s++) {
        // The peers' messages of this step arrive while it runs (the network does not wait for the
        // trainer); they are checked meanwhile and applied at the next step.
        const tr = now();
        const arriving = Promise.all(inbox.map((msgs) => r.miner.receive(msgs[s]!)));
        add('receive', tr);
        const ti = now();
        const report = await r.miner.iterate();
        add('iterate', ti);
        if (report === undefined) throw new Error('bench: the task ran out of epochs; raise epochs');
        r.mapEntries += report.mapEntries;
        const tw = now();
        await arriving;
        add('receive', tw);
      }
      const td = now();
      await r.miner.drain();
      add('drain', td);
    });
    for (const m of r.sent.splice(0)) {
      r.itresBytes += ItRes.encode(m).length;
      r.itres++;
    }
    return sample;
  };

  // Warm-up (JIT, kernels, backend caches), then interleaved rounds.
  const warm = Math.min(3, setup.steps);
  await plainBlock(warm);
  await latticeBlock(warm);
  for (const r of runners) await pouwBlock(r, warm);
  for (const r of runners) {
    r.itresBytes = 0;
    r.itres = 0;
    r.mapEntries = 0;
    for (const k of Object.keys(r.split)) delete r.split[k];
  }
  const plainRounds: Sample[] = [];
  const latticeRounds: Sample[] = [];
  for (let round = 0; round < setup.rounds; round++) {
    plainRounds.push(await plainBlock(setup.steps));
    latticeRounds.push(await latticeBlock(setup.steps));
    for (const r of runners) {
      r.rounds.push(await pouwBlock(r, setup.steps));
      r.steps += setup.steps;
    }
    const perStep = (x: Sample) =>
      `${(x.wall / setup.steps).toFixed(2)}${setup.cpu === undefined ? '' : ` (CPU ${(x.cpu / setup.steps).toFixed(2)})`}`;
    log(
      `  ${backend} round ${round + 1}/${setup.rounds}, ms/step: plain ${perStep(plainRounds[round]!)}; lattice step ${perStep(latticeRounds[round]!)}; ${runners
        .map((r) => `${r.variant.name} ${perStep(r.rounds[round]!)}`)
        .join('; ')}`,
    );
  }
  const total = (xs: Sample[], k: keyof Sample) => xs.reduce((a, x) => a + x[k], 0);
  const medianRatio = (xs: Sample[], k: keyof Sample) => median(xs.map((x, i) => x[k] / plainRounds[i]![k]));
  const stepsTotal = setup.steps * setup.rounds;
  const plainMs = total(plainRounds, 'wall') / stepsTotal;
  const summarize = (name: string, xs: Sample[]): VariantResult => {
    const ms = total(xs, 'wall') / stepsTotal;
    return {
      name,
      msPerStep: ms,
      stepsPerSecond: 1000 / ms,
      ratio: ms / plainMs,
      medianRoundRatio: medianRatio(xs, 'wall'),
      ...(setup.busy === undefined
        ? {}
        : { busyMsPerStep: total(xs, 'busy') / stepsTotal, busyRatio: medianRatio(xs, 'busy') }),
      ...(setup.cpu === undefined
        ? {}
        : { cpuMsPerStep: total(xs, 'cpu') / stepsTotal, cpuRatio: medianRatio(xs, 'cpu') }),
    };
  };
  const variants: VariantResult[] = [
    summarize('plain TF.js SGD', plainRounds),
    summarize('engine lattice step only', latticeRounds),
  ];
  for (const r of runners) {
    const stats = await r.miner.stats();
    variants.push({
      ...summarize(r.variant.name, r.rounds),
      itresBytes: r.itresBytes / r.itres,
      mapEntries: r.mapEntries / r.steps,
      noncesPerIteration: stats.mining.tried / stats.iterations,
      split: Object.fromEntries(Object.entries(r.split).map(([k, v]) => [k, v / r.steps])),
    });
  }

  const components = await measureComponents(setup, runners[0]!, tid, batchOf);
  for (const r of runners) {
    r.miner.close();
    r.variant.close?.();
    r.engine.dispose();
  }
  plain.dispose();
  lattice.dispose();
  return {
    backend,
    model: '784-128-64-10 MLP (MNIST)',
    batchSize: def.batchSize,
    parameterCount: runners[0]!.engine.parameterCount,
    plainMsPerStep: plainMs,
    variants,
    components,
  };
}

export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** What each piece of an iteration costs on its own (ms), to explain the ratio. */
async function measureComponents(
  setup: OverheadSetup,
  runner: PouwRunner,
  tid: Uint8Array,
  batchOf: (k: number) => { x: Float32Array; labels: Uint8Array },
): Promise<Record<string, number>> {
  const { now, def } = setup;
  const time = async (reps: number, f: (i: number) => unknown): Promise<number> => {
    await f(0);
    const t0 = now();
    for (let i = 0; i < reps; i++) await f(i);
    return (now() - t0) / reps;
  };
  const engine = runner.engine;
  const n = runner.miner.model();
  const stream = new SeededStream(new Uint8Array(32).fill(1));
  const peerMap = Uint32Array.from(randomMap(stream, engine.parameterCount, setup.peerMapEntries));
  const ownMap = Uint32Array.from(randomMap(stream, engine.parameterCount, 3700));
  const peerMsgs = await peerMessages(setup, tid, setup.identities[1], 1_000_000, 1, engine.parameterCount);
  const [self] = setup.identities;
  const body: ItResBody = { ...peerMsgs[0]!.body, miner: self.publicKey, map: Array.from(ownMap) };
  const allowance = nonceAllowance(
    def.omegaBPpm,
    def.batchSize * (setup.train.featureBytes + 1),
    def.omegaMPpm,
    engine.parameterCount,
  );
  const grinder = new HeaderGrinder(
    CHAIN,
    unreachableTemplate(tid).header,
    new Uint8Array(32),
    new Uint8Array(32),
  );
  let grindFrom = 0;
  const local = new LocalMiningService({
    chainId: CHAIN,
    taskId: tid,
    parameterCount: engine.parameterCount,
    digest: setup.digest,
  });
  const c: Record<string, number> = {
    'engine.step (lattice step, no flush)': await time(10, (i) => engine.step(batchOf(i))),
    'engine.applyMap (one peer map)': await time(20, () => engine.applyMap(peerMap)),
    'engine.gradient at n (stateless, as a verifier)': await time(10, (i) => engine.gradient(n, batchOf(i))),
    'residual pass (r += g, threshold, |M| floats, JS)': await (async () => {
      const g = (await engine.gradient(n, batchOf(0))).gradient;
      const r = new Float32Array(engine.parameterCount);
      const scratch = new Uint32Array(engine.parameterCount);
      return time(50, (i) => residualStepFast(r, g, 1, i % 10 === 9, scratch));
    })(),
    'flush emulation: state + gradient + setState': setup.flushInStep
      ? 0
      : await time(5, async (i) => {
          const s = await engine.state();
          await engine.gradient(s.n, batchOf(i));
          await engine.setState(s.n);
        }),
    'modelHash (digest over n)': await time(20, () => modelHashWith(setup.digest, CHAIN, tid, n)),
    'work id + nonce0 (from the work id)': await time(50, () => nonceBase(CHAIN, workId(CHAIN, body))),
    [`grind ${allowance} nonces`]: await time(20, () => {
      grinder.grind(grindFrom, allowance);
      grindFrom += allowance;
    }),
    'IT_RES encode + id + work id + sign': await time(50, async () => {
      workId(CHAIN, body);
      return setup.ed.sign(self.secretKey, itResId(CHAIN, body));
    }),
    'receive: checkItRes (decode map, id, verify)': await time(50, () =>
      checkItRes(CHAIN, peerMsgs[0]!, engine.parameterCount, setup.ed),
    ),
    'mirror applyMap (CPU)': await time(200, () => local.apply(peerMap)),
  };
  const g0 = now();
  grinder.grind(grindFrom, 100_000);
  c['nonces per second (grinder)'] = 100_000 / ((now() - g0) / 1000);
  local.close();
  return c;
}

export function formatOverhead(r: OverheadResult, where: string): string {
  const width = Math.max(...r.variants.map((v) => v.name.length));
  const opt = (x: number | undefined, d: number) => (x === undefined ? '' : x.toFixed(d));
  const lines = [
    `${where}, backend ${r.backend}, model ${r.model}, ${r.parameterCount} weights, batch ${r.batchSize}`,
    `  ratios are medians over rounds of (block ÷ plain block); busy = training thread, CPU = all threads`,
    `  ${'variant'.padEnd(width)} ${'ms/step'.padStart(8)} ${'steps/s'.padStart(8)} ${'wall×'.padStart(6)} ${'busy ms'.padStart(8)} ${'busy×'.padStart(6)} ${'CPU ms'.padStart(7)} ${'CPU×'.padStart(6)}  IT_RES bytes / map entries / nonces`,
  ];
  for (const v of r.variants) {
    lines.push(
      `  ${v.name.padEnd(width)} ${v.msPerStep.toFixed(2).padStart(8)} ${v.stepsPerSecond.toFixed(1).padStart(8)} ${v.medianRoundRatio.toFixed(3).padStart(6)} ${opt(v.busyMsPerStep, 2).padStart(8)} ${opt(v.busyRatio, 3).padStart(6)} ${opt(v.cpuMsPerStep, 2).padStart(7)} ${opt(v.cpuRatio, 3).padStart(6)}  ${v.itresBytes === undefined ? '' : `${v.itresBytes.toFixed(0)} / ${v.mapEntries!.toFixed(0)} / ${v.noncesPerIteration!.toFixed(0)}`}`,
    );
  }
  for (const v of r.variants) {
    if (v.split !== undefined)
      lines.push(
        `  ${v.name} per iteration: ${Object.entries(v.split)
          .map(([k, ms]) => `${k} ${ms.toFixed(2)}`)
          .join(', ')}`,
      );
  }
  lines.push('  components (ms each):');
  for (const [k, v] of Object.entries(r.components))
    lines.push(`    ${k.padEnd(48)} ${k.startsWith('nonces per') ? v.toFixed(0) : v.toFixed(3)}`);
  return lines.join('\n');
}

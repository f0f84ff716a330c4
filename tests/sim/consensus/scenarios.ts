/**
 * Named simulator scenarios. A scenario name, n and a seed fix a run completely, so a failing run
 * is replayed with `replayCommand(...)`.
 */
import { maxFaulty } from '../../../shared/consensus/committee.ts';
import { Rng } from './rng.ts';
import {
  BYZANTINE_STRATEGIES,
  type ByzantineStrategy,
  type CrashSpec,
  type NetworkSpec,
  type PartitionSpec,
  type SimConfig,
  type SimResult,
  Simulation,
} from './sim.ts';

export const SCENARIOS = ['calm', 'lossy', 'partition', 'crash', 'chaos', 'split-f', 'split-brain'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
/** The scenarios where the fault assumption holds (f Byzantine): safety and liveness are asserted. */
export const MATRIX_SCENARIOS: readonly ScenarioName[] = [
  'calm',
  'lossy',
  'partition',
  'crash',
  'chaos',
  'split-f',
];

export const SIM_TIMEOUTS = {
  propose: { baseMs: 400, deltaMs: 200 },
  prevote: { baseMs: 200, deltaMs: 100 },
  precommit: { baseMs: 200, deltaMs: 100 },
};

const CALM: NetworkSpec = {
  minDelayMs: 5,
  maxDelayMs: 50,
  tailRate: 0,
  tailMaxMs: 50,
  lossRate: 0,
  dupRate: 0.02,
  gstMs: 0,
  afterGstMaxDelayMs: 50,
};

function pickByzantine(
  rng: Rng,
  n: number,
  count: number,
  strategy?: ByzantineStrategy,
): SimConfig['byzantine'] {
  const ordinary = BYZANTINE_STRATEGIES.filter((s) => s !== 'split');
  return rng
    .shuffle([...Array(n).keys()])
    .slice(0, count)
    .sort((a, b) => a - b)
    .map((index) => ({ index, strategy: strategy ?? rng.pick(ordinary) }));
}

function randomHalves(rng: Rng, nodes: number[]): number[][] {
  const s = rng.shuffle(nodes);
  const k = rng.int(1, s.length - 1);
  return [s.slice(0, k), s.slice(k)];
}

function randomCrashes(rng: Rng, honest: number[], count: number, beforeMs: number): CrashSpec[] {
  const out: CrashSpec[] = [];
  for (let i = 0; i < count; i++) {
    const atMs = rng.int(100, Math.max(200, beforeMs - 1500));
    out.push({ node: rng.pick(honest), atMs, effects: rng.int(0, 4), downMs: rng.int(100, 1000) });
  }
  return out;
}

export function heightsFor(n: number): number {
  return n <= 4 ? 3 : 2;
}

export function scenarioConfig(name: ScenarioName, n: number, seed: number): SimConfig {
  const rng = new Rng(`scenario/${name}/${n}/${seed}`);
  const f = maxFaulty(n);
  const base: SimConfig = {
    scenario: name,
    seed,
    n,
    byzantine: pickByzantine(rng, n, f),
    heights: heightsFor(n),
    network: { ...CALM },
    partitions: [],
    crashes: [],
    timeouts: SIM_TIMEOUTS,
    roundWindow: 64,
    gossipMs: 500,
    validationDelayMaxMs: 30,
    deadlineMs: 60_000,
    expectLiveness: true,
  };
  const honest = () => [...Array(n).keys()].filter((i) => !base.byzantine.some((b) => b.index === i));
  const gst = (ms: number) => {
    base.network.gstMs = ms;
    base.deadlineMs = ms + 40_000;
  };
  switch (name) {
    case 'calm':
      return base;
    case 'lossy':
      base.network = {
        ...CALM,
        maxDelayMs: 200,
        tailRate: 0.05,
        tailMaxMs: 1500,
        lossRate: rng.int(10, 30) / 100,
        dupRate: 0.1,
      };
      gst(rng.int(2000, 5000));
      return base;
    case 'partition': {
      base.network = { ...CALM, maxDelayMs: 100, lossRate: 0.05, dupRate: 0.05 };
      const from = rng.int(0, 1500);
      const to = from + rng.int(1000, 4000);
      const p: PartitionSpec = { fromMs: from, toMs: to, groups: randomHalves(rng, [...Array(n).keys()]) };
      base.partitions = [p];
      gst(to);
      return base;
    }
    case 'crash': {
      base.network = { ...CALM, maxDelayMs: 80, lossRate: 0.05, dupRate: 0.05 };
      gst(rng.int(3000, 6000));
      base.crashes = randomCrashes(rng, honest(), rng.int(1, 3), base.network.gstMs);
      return base;
    }
    case 'chaos': {
      base.network = {
        ...CALM,
        maxDelayMs: 250,
        tailRate: 0.05,
        tailMaxMs: 2000,
        lossRate: rng.int(5, 25) / 100,
        dupRate: 0.1,
      };
      gst(rng.int(4000, 8000));
      const from = rng.int(0, 2000);
      base.partitions = [
        { fromMs: from, toMs: from + rng.int(500, 3000), groups: randomHalves(rng, [...Array(n).keys()]) },
      ];
      base.crashes = randomCrashes(rng, honest(), rng.int(1, 3), base.network.gstMs);
      return base;
    }
    case 'split-f': {
      // The split-brain attack with only f Byzantine members: safety must hold.
      base.byzantine = pickByzantine(rng, n, f, 'split');
      base.network = { ...CALM, maxDelayMs: 60 };
      const groups = randomHalves(rng, honest());
      base.splitGroups = groups;
      gst(rng.int(2000, 5000));
      base.partitions = [{ fromMs: 0, toMs: base.network.gstMs, groups }];
      return base;
    }
    case 'split-brain': {
      // f+1 Byzantine members split the honest ones into two halves that never hear each other:
      // the fault assumption is broken, and the safety checker must report it.
      base.byzantine = pickByzantine(rng, n, f + 1, 'split');
      base.network = { ...CALM, maxDelayMs: 60, dupRate: 0 };
      const h = honest();
      const s = rng.shuffle(h);
      const groups = [s.slice(0, Math.ceil(s.length / 2)), s.slice(Math.ceil(s.length / 2))];
      base.splitGroups = groups;
      base.partitions = [{ fromMs: 0, toMs: Number.POSITIVE_INFINITY, groups }];
      base.network.gstMs = Number.POSITIVE_INFINITY;
      base.deadlineMs = 20_000;
      base.expectLiveness = false;
      return base;
    }
  }
}

export function runScenario(
  name: ScenarioName,
  n: number,
  seed: number,
  tweak?: (c: SimConfig) => void,
): SimResult {
  const config = scenarioConfig(name, n, seed);
  tweak?.(config);
  return new Simulation(config).run();
}

export function replayCommand(name: string, n: number, seed: number): string {
  return `npx tsx tests/sim/consensus/sweep.ts --scenario ${name} --n ${n} --seed ${seed} --verbose`;
}

/** Safety, double-sign, commit and (where expected) liveness failures of one run, one line each. */
export function failuresOf(r: SimResult): string[] {
  return [
    ...r.safety.map((x) => `SAFETY ${x}`),
    ...r.doubleSigns.map((x) => `DOUBLE-SIGN ${x}`),
    ...r.commitErrors.map((x) => `COMMIT ${x}`),
    ...r.liveness.map((x) => `LIVENESS ${x}`),
    ...(r.stats.refusedConflicts > 0
      ? [`GUARD the double-sign guard fired ${r.stats.refusedConflicts} times`]
      : []),
  ];
}

export function describeFailure(r: SimResult): string {
  const c = r.config;
  return [
    `scenario ${c.scenario}, n=${c.n}, seed ${c.seed}:`,
    ...failuresOf(r).map((x) => `  ${x}`),
    `  replay: ${replayCommand(c.scenario, c.n, c.seed)}`,
  ].join('\n');
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/**
 * The big consensus sweep, and the replay of one run.
 *
 *   npx tsx tests/sim/consensus/sweep.ts --seeds 500            # every scenario × n ∈ {4,7,10} × 500 seeds
 *   npx tsx tests/sim/consensus/sweep.ts --seeds 200 --n 10 --scenario chaos --first-seed 1000
 *   npx tsx tests/sim/consensus/sweep.ts --scenario chaos --n 7 --seed 42 --verbose   # replay one run
 *   ... --trace                                                 # and print every validator's round/step changes
 *   ... --json results.json                                      # machine-readable summary
 *
 * Exits 1 when a run breaks safety, double-signs, holds a bad commit or (where the fault assumption
 * holds) misses liveness; `split-brain` (f+1 Byzantine) is expected to break safety and is counted.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  describeFailure,
  failuresOf,
  MATRIX_SCENARIOS,
  percentile,
  runScenario,
  SCENARIOS,
  type ScenarioName,
  scenarioConfig,
} from './scenarios.ts';
import { HonestNode, type SimResult, Simulation } from './sim.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const verbose = process.argv.includes('--verbose');

function printRun(r: SimResult): void {
  const c = r.config;
  console.log(`scenario ${c.scenario}, n=${c.n}, seed ${c.seed}`);
  console.log(`  byzantine: ${c.byzantine.map((b) => `${b.index}:${b.strategy}`).join(', ') || 'none'}`);
  console.log(`  network: ${JSON.stringify(c.network)}`);
  if (c.partitions.length) console.log(`  partitions: ${JSON.stringify(c.partitions)}`);
  if (c.crashes.length) console.log(`  crashes: ${JSON.stringify(c.crashes)}`);
  for (const [node, d] of [...r.decisions].sort((a, b) => a[0] - b[0])) {
    const line = [...d].map(([h, x]) => `h${h}:r${x.round}@${x.atMs}ms ${x.id.slice(0, 8)}`).join('  ');
    console.log(`  validator ${node}: ${line}`);
  }
  console.log(
    `  rounds after GST: ${JSON.stringify(r.roundsAfterGst)}, decision rounds ${JSON.stringify(r.decisionRounds)}`,
  );
  console.log(`  stats: ${JSON.stringify(r.stats)}`);
  console.log(`  ended at t=${r.endMs} ms`);
  const f = failuresOf(r);
  console.log(f.length ? f.map((x) => `  ${x}`).join('\n') : '  no failures');
}

const scenarioArg = arg('scenario') as ScenarioName | undefined;
if (scenarioArg !== undefined && !SCENARIOS.includes(scenarioArg)) {
  console.error(`unknown scenario ${scenarioArg}; one of ${SCENARIOS.join(', ')}`);
  process.exit(2);
}
const nArg = arg('n');
const seedArg = arg('seed');

if (seedArg !== undefined) {
  const config = scenarioConfig(scenarioArg ?? 'chaos', Number(nArg ?? 4), Number(seedArg));
  const sim = new Simulation(config);
  if (process.argv.includes('--trace')) {
    // Every change of an honest validator's (height, round, step, lock, valid round), with time.
    const last = new Map<number, string>();
    sim.onEvent = () => {
      for (const a of sim.actors) {
        if (!(a instanceof HonestNode)) continue;
        const s = a.state;
        const k = s
          ? `h${s.height} r${s.round} ${s.step} locked ${s.lockedRound} valid ${s.validRound}`
          : 'down';
        if (last.get(a.index) !== k) console.log(`t=${sim.now} validator ${a.index}: ${k}`);
        last.set(a.index, k);
      }
    };
  }
  const r = sim.run();
  printRun(r);
  process.exit(failuresOf(r).length > 0 && r.config.scenario !== 'split-brain' ? 1 : 0);
}

const seeds = Number(arg('seeds') ?? 100);
const firstSeed = Number(arg('first-seed') ?? 1);
const ns = nArg ? [Number(nArg)] : [4, 7, 10];
const scenarios = scenarioArg ? [scenarioArg] : [...MATRIX_SCENARIOS, 'split-brain' as const];

interface Row {
  scenario: string;
  n: number;
  runs: number;
  failed: number;
  splitDetected: number;
  roundsAfterGstP50: number;
  roundsAfterGstP99: number;
  roundsAfterGstMax: number;
  decisionRoundP50: number;
  decisionRoundP99: number;
  ms: number;
}
const rows: Row[] = [];
let failed = 0;
const t0 = performance.now();
for (const scenario of scenarios) {
  for (const n of ns) {
    const t = performance.now();
    const after: number[] = [];
    const rounds: number[] = [];
    let bad = 0;
    let split = 0;
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const r = runScenario(scenario, n, seed);
      after.push(...r.roundsAfterGst);
      rounds.push(...r.decisionRounds);
      if (scenario === 'split-brain') {
        if (r.safety.length > 0) split++;
        if (r.doubleSigns.length > 0 || r.commitErrors.length > 0) bad++;
      } else if (failuresOf(r).length > 0) {
        bad++;
        console.log(describeFailure(r));
        if (verbose) printRun(r);
      }
    }
    failed += bad;
    const row: Row = {
      scenario,
      n,
      runs: seeds,
      failed: bad,
      splitDetected: split,
      roundsAfterGstP50: percentile(after, 50),
      roundsAfterGstP99: percentile(after, 99),
      roundsAfterGstMax: after.length ? Math.max(...after) : Number.NaN,
      decisionRoundP50: percentile(rounds, 50),
      decisionRoundP99: percentile(rounds, 99),
      ms: Math.round(performance.now() - t),
    };
    rows.push(row);
    console.log(
      `${scenario.padEnd(11)} n=${String(n).padEnd(2)} runs ${row.runs}  failed ${row.failed}` +
        (scenario === 'split-brain' ? `  split detected ${row.splitDetected}` : '') +
        `  rounds-after-GST p50 ${row.roundsAfterGstP50} p99 ${row.roundsAfterGstP99} max ${row.roundsAfterGstMax}` +
        `  decision round p50 ${row.decisionRoundP50} p99 ${row.decisionRoundP99}  ${row.ms} ms`,
    );
  }
}
const totalMs = Math.round(performance.now() - t0);
console.log(`${rows.reduce((a, r) => a + r.runs, 0)} runs, ${failed} failed, ${totalMs} ms`);
const json = arg('json');
if (json) writeFileSync(json, `${JSON.stringify({ seeds, firstSeed, rows, failed, totalMs }, null, 2)}\n`);
process.exit(failed > 0 ? 1 : 0);

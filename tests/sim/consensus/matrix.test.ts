/**
 * The simulator matrix: n ∈ {4, 7, 10} with f = ⌊(n−1)/3⌋ Byzantine members, every scenario whose
 * fault assumption holds, many seeds. Safety and the double-sign ledger must hold on every run,
 * liveness after GST on every run; a failure prints the seed and the command that replays it.
 * The bigger sweep: `npx tsx tests/sim/consensus/sweep.ts --seeds 500`.
 */
import { assert, describe, it } from '#test';
import { describeFailure, failuresOf, MATRIX_SCENARIOS, percentile, runScenario } from './scenarios.ts';
import type { SimStats } from './sim.ts';

/** Seeds per scenario for each n: 6 scenarios × (15 + 10 + 9) = 204 runs. */
const SEEDS: Record<number, number> = { 4: 15, 7: 10, 10: 9 };

const totals = {
  runs: 0,
  lost: 0,
  duplicated: 0,
  partitioned: 0,
  crashes: 0,
  restarts: 0,
  evidence: 0,
  catchups: 0,
};
const rejected: Record<string, number> = {};
const roundsAfterGst: number[] = [];

function add(stats: SimStats): void {
  totals.runs++;
  totals.lost += stats.lost;
  totals.duplicated += stats.duplicated;
  totals.partitioned += stats.partitioned;
  totals.crashes += stats.crashes;
  totals.restarts += stats.restarts;
  totals.evidence += stats.evidence;
  totals.catchups += stats.catchups;
  for (const [k, v] of Object.entries(stats.rejected)) rejected[k] = (rejected[k] ?? 0) + v;
}

describe('consensus simulator matrix (f Byzantine, safety always, liveness after GST)', () => {
  for (const n of [4, 7, 10]) {
    for (const scenario of MATRIX_SCENARIOS) {
      it(`n=${n} ${scenario}: ${SEEDS[n]} seeds`, () => {
        const failures: string[] = [];
        for (let seed = 1; seed <= SEEDS[n]!; seed++) {
          const r = runScenario(scenario, n, seed);
          add(r.stats);
          roundsAfterGst.push(...r.roundsAfterGst);
          if (failuresOf(r).length > 0) failures.push(describeFailure(r));
        }
        assert.equal(failures.length, 0, `\n${failures.join('\n')}`);
      });
    }
  }

  it('ran at least 200 seeds, and every injected fault fired', () => {
    assert.ok(totals.runs >= 200, `${totals.runs} runs`);
    assert.ok(totals.lost > 0 && totals.duplicated > 0 && totals.partitioned > 0, JSON.stringify(totals));
    assert.ok(totals.crashes > 0 && totals.restarts === totals.crashes, JSON.stringify(totals));
    assert.ok(totals.evidence > 0, 'equivocations were detected');
    assert.ok(totals.catchups > 0, 'lagging validators were caught up');
    // Byzantine garbage reached the boundary and was rejected with typed reasons.
    assert.ok((rejected['CONSENSUS_BAD_SIGNATURE'] ?? 0) > 0, JSON.stringify(rejected));
    assert.ok(
      Object.keys(rejected).some((k) => k.startsWith('DECODE_')),
      JSON.stringify(rejected),
    );
    assert.equal(rejected['UNTYPED'] ?? 0, 0, 'every rejection is a typed error');
    console.log(
      `consensus matrix: ${totals.runs} runs; rounds to decide after GST p50 ${percentile(roundsAfterGst, 50)}, ` +
        `p99 ${percentile(roundsAfterGst, 99)}, max ${Math.max(...roundsAfterGst)}; ${JSON.stringify(totals)}`,
    );
  });
});

/**
 * A crash at every write-ahead-log position: one validator is crashed before each effect it runs
 * during one height (so after every prefix of persists, broadcasts, timers and decisions) and
 * restarted from its log. It must never sign two different messages for one (height, round, kind),
 * everyone must stay safe and decide, and the double-sign guard must not even be needed. Without
 * the log (amnesia) the double-sign checker must catch it: the negative control.
 */
import { assert, describe, it } from '#test';
import { describeFailure, failuresOf, runScenario } from './scenarios.ts';
import type { SimConfig, SimResult } from './sim.ts';

function crashRun(
  base: (c: SimConfig) => void,
  node: number,
  effectIndex: number,
  amnesia = false,
): SimResult {
  return runScenario('calm', 4, 1, (c) => {
    base(c);
    c.heights = 3;
    c.walCrash = { node, height: 2n, effectIndex, downMs: 300, amnesia };
  });
}

const setups: { name: string; node: number; base: (c: SimConfig) => void }[] = [
  {
    name: 'four honest validators, the crashed one proposes at that height',
    node: 2,
    base: (c) => {
      c.byzantine = [];
    },
  },
  {
    name: 'an equivocating Byzantine validator and a lossy, duplicating network',
    node: 3,
    base: (c) => {
      c.byzantine = [{ index: 0, strategy: 'equivocate' }];
      c.network = { ...c.network, lossRate: 0.1, dupRate: 0.2, maxDelayMs: 120, gstMs: 1500 };
      c.deadlineMs = 30_000;
    },
  },
];

describe('consensus crash and restart at every write-ahead-log position', () => {
  for (const s of setups) {
    it(s.name, () => {
      const dry = crashRun(s.base, s.node, -1);
      assert.deepEqual(failuresOf(dry), []);
      const positions = dry.walCrashEffects;
      assert.ok(positions >= 6, `only ${positions} effects at height 2`);
      const failures: string[] = [];
      for (let k = 0; k < positions; k++) {
        const r = crashRun(s.base, s.node, k);
        assert.ok(r.walCrashFired, `position ${k}: the crash fired`);
        assert.equal(r.stats.restarts, 1);
        if (failuresOf(r).length > 0) failures.push(`position ${k}: ${describeFailure(r)}`);
      }
      assert.equal(failures.length, 0, `\n${failures.join('\n')}`);
      console.log(`crash-recovery (${s.name}): crashed and recovered at all ${positions} log positions`);
    });
  }

  it('negative control: restarting without the log double-signs at some position, and the checker says so', () => {
    const s = setups[0]!;
    const positions = crashRun(s.base, s.node, -1).walCrashEffects;
    let caught = 0;
    for (let k = 0; k < positions; k++) {
      const r = crashRun(s.base, s.node, k, true);
      if (r.doubleSigns.length > 0) caught++;
    }
    assert.ok(caught > 0, 'amnesia never double-signed: the checker or the scenario is too weak');
    console.log(
      `crash-recovery negative control: without the log, ${caught} of ${positions} positions double-signed`,
    );
  });
});

/**
 * The checkers can fail: with f+1 colluding Byzantine members (the fault assumption broken) the
 * split-brain scenario makes honest validators decide different values and the safety checker
 * reports it; with f+1 silent members nothing can be decided and the liveness checker reports it.
 */
import { assert, describe, it } from '#test';
import { maxFaulty } from '../../../shared/consensus/committee.ts';
import { replayCommand, runScenario } from './scenarios.ts';

describe('consensus checkers', () => {
  it('with f+1 Byzantine members the split-brain scenario breaks safety, and the checker reports it', () => {
    for (const n of [4, 7]) {
      let detected = 0;
      let example = '';
      for (let seed = 1; seed <= 5; seed++) {
        const r = runScenario('split-brain', n, seed);
        assert.equal(r.config.byzantine.length, maxFaulty(n) + 1);
        if (r.safety.length > 0) {
          detected++;
          example ||= `${r.safety[0]} (replay: ${replayCommand('split-brain', n, seed)})`;
        }
        assert.deepEqual(r.doubleSigns, [], 'honest validators still never double-sign');
      }
      assert.ok(detected >= 1, `n=${n}: no split detected in 5 seeds`);
      console.log(`split-brain n=${n}: violation reported on ${detected}/5 seeds, e.g. ${example}`);
    }
  });

  it('the same attack with only f Byzantine members fails', () => {
    for (const seed of [1, 2, 3]) {
      const r = runScenario('split-f', 4, seed);
      assert.deepEqual(r.safety, []);
      assert.deepEqual(r.liveness, []);
    }
  });

  it('with f+1 silent members the liveness checker reports that nothing is decided', () => {
    const r = runScenario('calm', 4, 1, (c) => {
      c.byzantine = [
        { index: 0, strategy: 'silent' },
        { index: 1, strategy: 'silent' },
      ];
      c.deadlineMs = 5000;
    });
    assert.ok(r.liveness.length > 0);
    assert.deepEqual(r.safety, []);
  });
});

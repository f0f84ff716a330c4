import { assert, describe, it } from '#test';
import { CandidateGate } from './candidate-gate.ts';

describe('candidate gate', () => {
  it('sends one candidate per height at a time, retries after a refusal or a hold, remembers recent heights', () => {
    let now = 0;
    const g = new CandidateGate(10_000, 3, () => now);
    assert.equal(g.admit(5n), true);
    assert.equal(g.admit(5n), false, 'a second lucky nonce at a pending height waits');
    g.settle(5n, false);
    assert.equal(g.admit(5n), true, 'a refusal frees the height for the next candidate');
    g.settle(5n, true);
    assert.equal(g.admit(5n), false, 'an accepted height takes no more candidates for a while');
    assert.equal(g.state(5n), 'accepted');
    now += 10_000;
    assert.equal(g.admit(5n), true, 'still open after the hold: the next candidate goes out');
    g.settle(5n, true);
    assert.equal(g.admit(6n), true);
    assert.equal(g.admit(7n), true);
    assert.equal(g.admit(8n), true);
    assert.equal(g.state(5n), undefined, 'the oldest height is forgotten');
    assert.equal(g.state(8n), 'pending');
  });
});

import { assert, describe, it } from '#test';
import { DecimatedSeries, ProgressTracker, type VolunteerEvent } from './progress.ts';

function iteration(i: number, t: number, nonces: number): VolunteerEvent {
  return {
    type: 'iteration',
    t,
    iteration: i,
    epoch: 0,
    loss: 1 / (i + 1),
    accuracy: 0.5,
    mapEntries: 10,
    peers: 1,
    itresSent: i + 1,
    itresReceived: i,
    itresDuplicates: 0,
    itresRejected: 0,
    noncesTried: nonces,
  };
}

describe('progress', () => {
  it('a decimated series stays bounded and keeps the same resolution over its whole span', () => {
    const s = new DecimatedSeries(100);
    for (let i = 0; i < 10_000; i++) s.push({ iteration: i, loss: i, accuracy: 0 });
    const v = s.values();
    assert.ok(v.length <= 100 && v.length > 50, `${v.length} points`);
    const gaps = new Set(v.slice(1).map((p, k) => p.iteration - v[k]!.iteration));
    assert.equal(gaps.size, 1, 'one stride everywhere');
    assert.equal(v[0]!.iteration, 0);
    assert.ok(v.at(-1)!.iteration > 9800, 'recent points kept');
  });

  it('folds events into a snapshot: rates over a window, counters, verdicts, errors', () => {
    const p = new ProgressTracker(50);
    p.apply({ type: 'phase', phase: 'training' });
    for (let i = 0; i < 200; i++) p.apply(iteration(i, i * 100, i * 1000));
    let s = p.snapshot();
    assert.equal(s.iterations, 200);
    assert.ok(s.series.length <= 50);
    // 10 iterations and 10,000 nonces per second.
    assert.ok(Math.abs(s.iterationsPerSecond - 10) < 1e-9, `${s.iterationsPerSecond}`);
    assert.ok(Math.abs(s.noncesPerSecond - 10_000) < 1e-6, `${s.noncesPerSecond}`);
    assert.deepEqual(s.itres, { sent: 200, received: 199, duplicates: 0, rejected: 0 });
    p.apply({
      type: 'counters',
      itresSent: 201,
      itresReceived: 201,
      itresDuplicates: 2,
      itresRejected: 1,
      noncesTried: 200_500,
    });
    p.apply({ type: 'candidate', iteration: 150, height: 3n });
    p.apply({ type: 'verdict', height: 3n, accepted: true });
    p.apply({ type: 'candidate', iteration: 160, height: 3n });
    p.apply({ type: 'verdict', height: 3n, accepted: false, code: 'BLOCK_BAD_PREV_HASH', reason: 'stale' });
    p.apply({ type: 'heldout', iteration: 199, loss: 0.3, accuracy: 0.9, examples: 500 });
    p.apply({ type: 'phase', phase: 'paused' });
    s = p.snapshot();
    assert.deepEqual(s.itres, { sent: 201, received: 201, duplicates: 2, rejected: 1 });
    assert.equal(s.blocksFound, 2);
    assert.equal(s.blocksAccepted, 1);
    assert.equal(s.blocksRejected, 1);
    assert.equal(s.lastVerdict?.code, 'BLOCK_BAD_PREV_HASH');
    assert.deepEqual(s.heldOut, [{ iteration: 199, loss: 0.3, accuracy: 0.9 }]);
    assert.equal(s.noncesPerSecond, 0, 'a pause is not work');
    p.apply({ type: 'error', error: { name: 'WorkError', code: 'BACKEND_UNAVAILABLE', message: 'x' } });
    assert.equal(p.snapshot().phase, 'error');
    assert.equal(p.snapshot().error?.code, 'BACKEND_UNAVAILABLE');
  });
});

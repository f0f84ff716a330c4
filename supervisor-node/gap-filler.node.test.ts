/**
 * The gap filler (gap-filler.ts) between two real message histories of three honest miners: one
 * member saw everything, the other lost a miner's first iterations and one peer message. The lagging
 * member fills both kinds of gap by asking (ids for peer messages, (miner, iteration) for its own
 * missing iterations), ends with the same ids and root, and members that fail or hold nothing are
 * skipped. The queries it sends are checked to be the right kind.
 */
import { assert, before, describe, it } from '#test';
import { bytesToHex } from '../shared/bytes.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { TaskHistory } from '../shared/pouw/history.ts';
import { type ItRes, itResId } from '../shared/pouw/itres.ts';
import type { HonestRun } from '../shared/pouw/verify-fixtures.ts';
import { CHAIN, historyRun, produced as producedOf } from '../tests/durability/history-writer.ts';
import { GapFiller, type GapQuery } from './gap-filler.ts';

const ITERATIONS = 6;
let run: HonestRun;
let produced: ItRes[];

const history = () =>
  new TaskHistory({ chainId: CHAIN, task: run.task, miners: run.miners, ed25519: nobleEd25519 });

/** Answers a query from a history the way the supervisor's history protocol does. */
function serve(h: TaskHistory, q: GapQuery): ItRes[] {
  if (q.kind === 'ids') return q.ids.map((id) => h.get(bytesToHex(id))).filter((m) => m !== undefined);
  const out: ItRes[] = [];
  for (let i = 0; i < q.count; i++) {
    const m = h.byMiner(bytesToHex(q.miner), q.fromIteration + i);
    if (m === undefined) break;
    out.push(m);
  }
  return out;
}

describe('gap filler', () => {
  before(async () => {
    run = await historyRun(3, ITERATIONS);
    produced = producedOf(run);
  });

  for (const answers of ['iterations', 'ids'] as const)
    it(`levels a member that lost messages, from a member answering only by ${answers}`, async () => {
      const full = history();
      for (const m of produced) await full.offer(m);
      assert.equal(full.count, produced.length);

      // The lagging member lost miner 0's iterations 0 and 1, and miner 1's iteration 0: each is
      // the predecessor of a parked message (a gap by iteration) and listed by another miner's
      // message (a wanted id), so either kind of answer is enough.
      const lost = new Set([run.steps[0]![0]!.msg, run.steps[0]![1]!.msg, run.steps[1]![0]!.msg]);
      const lagging = history();
      for (const m of produced) if (!lost.has(m)) await lagging.offer(m);
      assert.ok(lagging.usage().parked > 0, 'later messages wait for the lost ones');
      assert.ok(lagging.gaps().length > 0, 'a predecessor gap is named');

      const asked: { peer: string; query: GapQuery }[] = [];
      const filler = new GapFiller({
        chainId: CHAIN,
        history: () => lagging,
        // The first member is down, the second holds nothing, the third has it all.
        peers: () => ['down', 'empty', 'full'],
        ask: async (peer, query) => {
          asked.push({ peer, query });
          if (peer === 'down') throw new Error('unreachable');
          return peer === 'full' && query.kind === answers ? serve(full, query) : [];
        },
      });
      let rounds = 0;
      while (lagging.usage().parked > 0 && rounds < 5) {
        await filler.round();
        rounds++;
      }
      assert.equal(lagging.usage().parked, 0, `nothing parked after ${rounds} rounds`);
      assert.equal(lagging.count, full.count);
      assert.deepEqual(new Set(lagging.idsHex()), new Set(full.idsHex()));
      assert.deepEqual(lagging.historyRoot(), full.historyRoot());
      assert.deepEqual(lagging.gaps(), []);
      assert.deepEqual(lagging.wanted(), []);
      assert.ok(filler.fetched >= lost.size, `recorded by filling: ${filler.fetched}`);
      assert.ok(
        asked.some((a) => a.query.kind === answers && a.peer === 'full'),
        `asked by ${answers}`,
      );
      for (const a of asked)
        if (a.query.kind === 'iterations')
          assert.ok(a.query.count > 0 && a.query.count <= 64, 'bounded ranges');
    });

  it('a round with nothing missing asks nobody; a forged answer is refused and changes nothing', async () => {
    const h = history();
    for (const m of produced) await h.offer(m);
    let asks = 0;
    const idle = new GapFiller({
      chainId: CHAIN,
      history: () => h,
      peers: () => ['a'],
      ask: async () => {
        asks++;
        return [];
      },
    });
    assert.equal(await idle.round(), 0);
    assert.equal(asks, 0);

    // A member answering with a tampered message: the history refuses it, the gap stays.
    const lagging = history();
    const first = run.steps[0]![0]!.msg;
    for (const m of produced) if (m !== first) await lagging.offer(m);
    const before = lagging.idsHex();
    const tampered: ItRes = { ...first, body: { ...first.body, loss: first.body.loss ^ 1 } };
    const liar = new GapFiller({
      chainId: CHAIN,
      history: () => lagging,
      peers: () => ['liar'],
      ask: async () => [tampered],
    });
    assert.equal(await liar.round(), 0);
    assert.deepEqual(lagging.idsHex(), before);
    assert.ok(lagging.gaps().some((g) => g.fromIteration === 0));
    assert.notEqual(bytesToHex(itResId(CHAIN, tampered.body)), bytesToHex(itResId(CHAIN, first.body)));
  });
});

/**
 * A member whose message history lags the committee's decided lists (restarted after missing
 * messages, or partitioned) catches up: `catchUpWithChain` hands over the lists it could not
 * apply, and the task's history source (tasks.ts) fetches their missing ids from members and
 * applies them in height order, also lists decided meanwhile; its decided root ends equal to the
 * committee's. A list with an id nobody serves is retried, bounded, and never applied half.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, before, describe, it } from '#test';
import { nodeCryptoEd25519 } from '../node-common/ed25519-node.ts';
import { catchUpWithChain, DurableTaskHistory, HistoryStore } from '../node-common/history-store.ts';
import { bytesToHex } from '../shared/bytes.ts';
import { Block } from '../shared/chain/types.ts';
import { type HistoryIds, TaskHistory, type TaskHistoryOptions } from '../shared/pouw/history.ts';
import { type ItRes, itResId } from '../shared/pouw/itres.ts';
import type { HonestRun } from '../shared/pouw/verify-fixtures.ts';
import { CHAIN, historyRun, produced } from '../tests/durability/history-writer.ts';
import { type SupervisedTask, taskHistorySource } from './tasks.ts';

let run: HonestRun;
let msgs: ItRes[];
let opts: TaskHistoryOptions;
const dirs: string[] = [];

after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const idHex = (m: ItRes) => bytesToHex(itResId(CHAIN, m.body));

async function waitFor(probe: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a lagging history catches up with the decided lists', () => {
  before(async () => {
    run = await historyRun();
    msgs = produced(run);
    opts = { chainId: CHAIN, task: run.task, miners: run.miners, ed25519: nodeCryptoEd25519 };
  });

  it('fetches the missing ids of decided lists from members and applies them in order', async () => {
    // The committee: three heights decided lists L1, L2, L3 over every message.
    const ref = new TaskHistory(opts);
    for (const m of msgs) await ref.offer(m);
    const lists: HistoryIds[] = [];
    const roots: Uint8Array[] = [];
    for (const count of [10, 8, 6]) {
      const from = ref.decidedCount;
      const l = { from, ids: ref.idsSince(from, count) };
      lists.push(l);
      roots.push(ref.applyDecided(l));
    }

    // This member never received the 12th and 13th recorded messages (both decided in L2).
    const lostIds = new Set(ref.idsHex().slice(11, 13));
    const dir = mkdtempSync(join(tmpdir(), 'pouw-backlog-'));
    dirs.push(dir);
    const store = await HistoryStore.open(dir);
    const h = await DurableTaskHistory.open(store, opts);
    for (const m of msgs) if (!lostIds.has(idHex(m))) await h.offer(m);
    const report = await catchUpWithChain(h, {
      tip: 2n,
      historyRoot: async (height) => roots[Number(height) - 1],
      decidedIds: async (height) => lists[Number(height) - 1],
      headers: async () => [],
    });
    assert.equal(report.adopted, 1, 'L1 applies');
    assert.ok(report.behind?.includes('HISTORY_MISSING'), report.behind);
    assert.equal(report.pending.length, 1, 'L2 is handed over');

    // Members serve what they recorded; the first one fails, as a member may.
    let asked = 0;
    const fetch = async (idsHex: string[]) => {
      asked++;
      if (asked === 1) throw new Error('member unreachable');
      return idsHex.map((x) => ref.get(x)).filter((m): m is ItRes => m !== undefined);
    };
    const events: string[] = [];
    const task = { taskId: run.taskId, history: h } as unknown as SupervisedTask;
    const source = taskHistorySource(task, fetch, (event) => events.push(event), report.pending);
    // L3 is decided while L2 is still being fetched: it waits its turn.
    source.adopt(lists[2]!, Block.defaultValue());
    await waitFor(() => h.decidedCount === ref.decidedCount, 10_000, 'the history to reach L3');
    assert.equal(bytesToHex(h.rootAt(h.decidedCount)), bytesToHex(roots[2]!));
    assert.equal(bytesToHex(source.decidedRoot()), bytesToHex(roots[2]!));
    assert.ok(events.includes('history-level'), events.join(','));
    assert.ok(asked >= 2, 'a failed fetch is retried');
    await store.close();
  });

  it('a list whose ids nobody serves is never applied in part, and the attempts are bounded', async () => {
    const ref = new TaskHistory(opts);
    for (const m of msgs) await ref.offer(m);
    const l1 = { from: 0, ids: ref.idsSince(0, 10) };
    ref.applyDecided(l1);
    const lost = new Set(ref.idsHex().slice(3, 4));
    const h = new TaskHistory(opts);
    for (const m of msgs) if (!lost.has(idHex(m))) await h.offer(m);
    let asked = 0;
    const task = { taskId: run.taskId, history: h } as unknown as SupervisedTask;
    const source = taskHistorySource(
      task,
      async () => {
        asked++;
        return [];
      },
      () => {},
    );
    source.adopt(l1, Block.defaultValue());
    await waitFor(() => asked >= 2, 5000, 'a retry');
    assert.equal(h.decidedCount, 0, 'nothing of the list is applied');
    assert.ok(asked <= 3, `retries are paced (${asked} in the first seconds)`);
  });
});

/**
 * The supervisor's message history survives a SIGKILL (node-common/history-store.ts wired in by
 * supervisor.ts): four supervisor processes supervise the smallest task with the real verifier and
 * finalize blocks of an honest PoUW miner (tests/net/real-miner.ts); the miner stops, one member
 * is SIGKILLed holding recorded IT_RES the chain has not decided yet, and the restarted process
 * serves exactly the same history: every id in the same order, the same total and root.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { createNode, type PouwNode } from '../node-common/p2p.ts';
import { bytesToHex, equalBytes } from '../shared/bytes.ts';
import { HistoryRequest, HistoryResponse, MAX_HISTORY_ID_PAGE } from '../shared/net/messages.ts';
import {
  addrOf,
  type ClusterMember,
  makeCluster,
  maxOf,
  readChain,
  type SupervisorProcess,
  sleep,
  spawnSupervisor,
  stopSupervisor,
  waitFor,
} from '../tests/net/cluster.ts';
import { RealMiner, writeTinyTask } from '../tests/net/real-miner.ts';

const TIMEOUT = { baseMs: 1000, deltaMs: 500 };
const spawned: SupervisorProcess[] = [];
let miner: RealMiner | undefined;
let client: PouwNode | undefined;
let dir: string | undefined;

after(async () => {
  await miner?.stop().catch(() => {});
  await client?.stop().catch(() => {});
  for (const p of spawned)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(spawned.map((p) => p.exit));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function historyOf(m: ClusterMember): Promise<{ total: bigint; root: string; ids: string[] }> {
  const body = await client!.request(
    addrOf(m),
    'history',
    HistoryRequest.encode({
      ids: [],
      fromIndex: 0n,
      count: MAX_HISTORY_ID_PAGE,
      miner: new Uint8Array(0),
      fromIteration: 0,
    }),
    { timeoutMs: 10_000 },
  );
  const h = HistoryResponse.decode(body);
  return { total: h.total, root: bytesToHex(h.root), ids: h.ids.map((id) => bytesToHex(id)) };
}

describe('a supervisor’s message history across SIGKILL', () => {
  it('comes back with every recorded IT_RES, decided or not, in the same order', {
    timeout: 120_000,
  }, async () => {
    dir = mkdtempSync(join(tmpdir(), 'pouw-history-restart-'));
    const chainId = 'pouw-net-test';
    const task = writeTinyTask(dir, chainId);
    const cluster = await makeCluster(dir, 4, {
      timeouts: { propose: TIMEOUT, prevote: TIMEOUT, precommit: TIMEOUT },
      gossipMs: 500,
      verifier: 'real',
      tasks: [task.file],
    });
    const procs = await Promise.all(cluster.members.map((m) => spawnSupervisor(m)));
    spawned.push(...procs);
    const member = cluster.members[1]!;
    const first = procs[1]!;
    miner = await RealMiner.start(cluster, task);
    await waitFor(() => maxOf(first.decided()) >= 3n, 60_000, 'height 3 decided');
    await miner.stop();
    miner = undefined;
    client = await createNode({ nodeKeySeed: new Uint8Array(32).fill(8), listen: ['/ip4/127.0.0.1/tcp/0'] });
    // Let the last IT_RES and candidate settle, then take the history the process serves.
    let before = await historyOf(member);
    await waitFor(
      async () => {
        await sleep(1000);
        const now = await historyOf(member);
        const rested = now.root === before.root;
        before = now;
        return rested;
      },
      30_000,
      'the history to stop growing',
    );
    assert.ok(before.total > 0n && BigInt(before.ids.length) === before.total);

    first.child.kill('SIGKILL');
    const exit = await first.exit;
    assert.equal(exit.signal, 'SIGKILL', 'the supervisor was killed');
    const chain = await readChain(member, chainId);
    const decidedRoot = chain.certificates.at(-1)!.historyRoot;
    assert.ok(
      !equalBytes(decidedRoot, Buffer.from(before.root, 'hex')),
      'some recorded IT_RES were not decided yet when it died',
    );

    const second = await spawnSupervisor(member);
    spawned.push(second);
    const restored = second.logs.find((l) => l.event === 'history-restored')!;
    assert.ok(restored, 'the history was restored before the supervisor started');
    assert.equal(restored['messages'], Number(before.total));
    assert.equal(restored['behind'], undefined, 'level with the chain');
    const afterRestart = await historyOf(member);
    assert.deepEqual(afterRestart, before);
    for (const p of [second, ...procs.filter((p) => p !== first)])
      assert.equal((await stopSupervisor(p)).code, 0);
  });
});

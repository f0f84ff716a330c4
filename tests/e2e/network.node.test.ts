/**
 * The network end to end, every component real: inside a private network namespace this test
 * creates (WebRTC between Chromium tabs needs a non-loopback address; tests/harness/netns.ts), the
 * orchestrator tests/e2e/run-network.ts starts the relay, four supervisors (with their DKG), one
 * Node edge volunteer and the page server, opens two headless Chromium tabs (separate browser
 * contexts) on the served page, presses Contribute in both (three miner slots: two tabs and the
 * edge volunteer), and reports what it observes as JSON lines. Each `it` asserts one capability:
 *   - both tabs join and train;
 *   - the two tabs are connected to each other over a DIRECT WebRTC connection: Chromium's own
 *     stats show the same DTLS connection from both sides on a succeeded candidate pair with no
 *     TURN candidate (and no libp2p circuit relay: the path is browser to browser); and that
 *     connection carries traffic (its byte counters grow);
 *   - the task trains: the batch accuracy in the latest IT_RES the supervisors recorded (signed by
 *     their miners) is well above the first ones', and all three miners' IT_RES are recorded;
 *   - a block whose coinbase pays a tab is finalized, and that tab shows a verified balance > 0;
 *   - closing one tab mid-run: the other tab and the edge volunteer keep training, new blocks are
 *     finalized, and every supervisor still serves the earlier blocks unchanged;
 *   - SIGKILL and restart of one supervisor mid-run: after the miners stop and the tips settle,
 *     every supervisor's LevelDB chain, read after shutdown, is the same.
 * The whole run is bounded (the orchestrator's own budget, then SIGTERM, then SIGKILL); every PID
 * it reports is killed in `after` if still alive.
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, before, describe, it } from '#test';
import { netnsAvailable, spawnInNetns } from '../harness/netns.ts';

const root = join(import.meta.dirname, '..', '..');
const BUDGET_MS = 420_000;
const HARD_LIMIT_MS = BUDGET_MS + 45_000;

type Fact = { e2e: string; [k: string]: unknown };
const facts: Fact[] = [];
const pids = new Set<number>();
const dir = mkdtempSync(join(tmpdir(), 'pouw-e2e-'));
const ns = netnsAvailable();
let orchestratorExit: number | undefined;
let stderr = '';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const fact = (name: string): Fact => {
  const f = facts.find((x) => x.e2e === name);
  if (f === undefined)
    throw new Error(
      `the run reported no "${name}" (exit ${orchestratorExit}); last facts: ${JSON.stringify(facts.slice(-4))} ${stderr.slice(-1500)}`,
    );
  return f;
};

after(() => {
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  // The processes' logs of the latest run stay in .tmp/e2e-logs/ (a failed check may carry no
  // error field of its own, so they are kept every time; each run replaces them).
  const keep = join(import.meta.dirname, '..', '..', '.tmp', 'e2e-logs');
  rmSync(keep, { recursive: true, force: true });
  if (existsSync(join(dir, 'logs'))) cpSync(join(dir, 'logs'), keep, { recursive: true });
  console.log(JSON.stringify({ e2e: 'logs-kept', dir: keep }));
  rmSync(dir, { recursive: true, force: true });
});

describe('the network end to end (private network namespace)', {
  skip: ns.ok ? false : `no network namespace: ${ns.ok ? '' : ns.reason}`,
  timeout: HARD_LIMIT_MS + 30_000,
}, () => {
  before(
    async () => {
      const run = spawnInNetns(
        [
          process.execPath,
          '--import',
          'tsx',
          join(root, 'tests', 'e2e', 'run-network.ts'),
          '--data-dir',
          dir,
          '--budget-ms',
          String(BUDGET_MS),
        ],
        { cwd: root },
      );
      if (run.child.pid !== undefined) pids.add(run.child.pid);
      let buf = '';
      run.child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        buf += c;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines) {
          let f: Fact;
          try {
            f = JSON.parse(line) as Fact;
          } catch {
            continue;
          }
          if (f.e2e === 'pid') pids.add(Number(f['pid']));
          else if (f.e2e !== 'log') console.log(line);
          facts.push(f);
        }
      });
      run.child.stderr!.setEncoding('utf8').on('data', (c: string) => {
        stderr = (stderr + c).slice(-8000);
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<'late'>((r) => {
        timer = setTimeout(() => r('late'), HARD_LIMIT_MS);
      });
      const r = await Promise.race([run.exited, late]);
      if (r === 'late') {
        run.child.kill('SIGTERM');
        const grace = new Promise<'late'>((res) => setTimeout(() => res('late'), 20_000));
        if ((await Promise.race([run.exited, grace])) === 'late') run.child.kill('SIGKILL');
        orchestratorExit = -1;
      } else {
        orchestratorExit = r;
      }
      clearTimeout(timer);
    },
    { timeout: HARD_LIMIT_MS + 25_000 },
  );

  it('starts the network and both tabs join the task and train', () => {
    const net = fact('network');
    assert.ok(String(net['uiUrl']).includes('?relay='), 'the page URL carries the relay');
    const t = fact('training');
    assert.equal(t['error'], undefined, String(t['error']));
    for (const tab of t['tabs'] as { iterations: number }[]) assert.ok(tab.iterations >= 20);
  });

  it('connects the two tabs over a direct WebRTC connection', () => {
    const w = fact('webrtc');
    assert.equal(w['error'], undefined, `${String(w['error'])}: ${JSON.stringify(w)}`);
    assert.equal(w['direct'], true, JSON.stringify(w));
    type End = { state: string; pair: { state: string; local: { type: string }; remote: { type: string } } };
    for (const end of [w['a'], w['b']] as End[]) {
      assert.equal(end.state, 'connected');
      assert.equal(end.pair.state, 'succeeded');
      assert.ok(end.pair.local.type !== 'relay' && end.pair.remote.type !== 'relay', 'no TURN relay');
    }
  });

  it('carries the miners’ traffic over that direct connection', () => {
    const w = fact('webrtc');
    assert.equal(w['error'], undefined, String(w['error']));
    assert.equal(
      w['carriesTraffic'],
      true,
      `bytes on the direct connections: ${JSON.stringify(w['directConnections'])}`,
    );
  });

  it('trains the task: the recorded accuracy rises, and every miner contributes', () => {
    const a = fact('accuracy');
    assert.equal(a['error'], undefined, String(a['error']));
    const task = a['task'] as { firstRecorded: number; lastRecorded: number };
    // From the initial model (~10 % on ten classes) to a trained softmax layer (~90 %).
    assert.ok(task.lastRecorded > task.firstRecorded + 0.3, JSON.stringify(a));
    assert.equal(
      (a['miners'] as unknown[]).length,
      3,
      `IT_RES of all three miners recorded: ${JSON.stringify(a)}`,
    );
  });

  it('finalizes a block mined by a browser tab, and that tab’s verified balance rises', () => {
    const b = fact('tab-block');
    assert.equal(b['error'], undefined, `${String(b['error'])}: ${JSON.stringify(b)}`);
    assert.ok((b['paidAt'] as unknown[]).length >= 1);
    assert.ok((b['balance'] as { pouw: number }).pouw > 0);
  });

  it('keeps the other tab and the edge volunteer training after one tab closes', () => {
    const c = fact('tab-closed');
    assert.equal(c['error'], undefined, `${String(c['error'])}: ${JSON.stringify(c)}`);
    assert.equal(c['othersContinued'], true, JSON.stringify(c));
  });

  it('keeps finalizing after one tab closes, and loses no finalized block', () => {
    const c = fact('tab-closed');
    assert.equal(c['error'], undefined, `${String(c['error'])}: ${JSON.stringify(c)}`);
    assert.deepEqual(
      c['prefixKept'],
      [true, true, true, true],
      'every supervisor serves the same earlier blocks',
    );
    assert.equal(c['newBlockFinalized'], true, `a block finalized after the close: ${JSON.stringify(c)}`);
  });

  it('leaves every supervisor with the same finalized chain after one is SIGKILLed and restarted', () => {
    const r = fact('supervisor-restart');
    assert.equal(r['error'], undefined, `${String(r['error'])}: ${JSON.stringify(r)}`);
    assert.equal((r['killed'] as { signal: string }).signal, 'SIGKILL');
    assert.ok(
      r['settledTips'] !== undefined && r['settledTips'] !== null,
      `the tips settled: ${JSON.stringify(r)}`,
    );
    const chains = r['chains'] as { tip: number; certified: number; sameAsMember0: boolean }[];
    assert.equal(chains.length, 4);
    for (const c of chains) {
      assert.equal(c.sameAsMember0, true, JSON.stringify(chains));
      assert.equal(c.certified, c.tip, 'a certificate for every finalized block');
    }
    assert.ok(
      chains[0]!.tip > Number(r['tipAtKill']),
      `blocks were finalized after the kill: ${JSON.stringify(r)}`,
    );
    const stopped = fact('stopped')['exits'] as { name: string; code: number | null }[];
    assert.ok(
      stopped.every((e) => e.code === 0),
      `every process exited 0: ${JSON.stringify(stopped)}`,
    );
  });
});

/**
 * `npm start` smoke test, the real thing: scripts/start.ts as a child process with a fresh data
 * directory (free ports on 127.0.0.1). It must come up from scratch (the committee's DKG over
 * libp2p, relay, four supervisors, one edge volunteer, the page server) and print the page's URL;
 * the page loads in headless Chromium and Contribute starts training (the task has two miner slots:
 * the edge volunteer and this page, so the iteration count rising means the page joined the task
 * and the network runs); SIGINT then stops every child the launcher started and the launcher exits
 * 0 within a bound. A second start on the same directory reuses the devnet, the task and the
 * relay's identity. Only PIDs this test started or the launcher reported are ever signalled.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { after, assert, describe, it } from '#test';
import { openTab, pressContribute, tabStats } from '../tests/e2e/tabs.ts';
import { chromiumArgs, chromiumPath } from '../tests/harness/chromium.ts';

const script = join(import.meta.dirname, 'start.ts');
const dir = mkdtempSync(join(tmpdir(), 'pouw-start-'));
const reported = new Set<number>();
const launchers: ChildProcess[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

after(() => {
  // Whatever is left of this test's own processes, by PID.
  for (const l of launchers) if (l.exitCode === null && l.signalCode === null) l.kill('SIGKILL');
  for (const pid of reported) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Launcher {
  child: ChildProcess;
  out: string[];
  exit: Promise<number | null>;
  /** Resolves with the page URL once printed; rejects if the launcher exits first or after `ms`. */
  url(ms: number): Promise<string>;
  pids(): Map<string, number>;
}

function launch(): Launcher {
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--data-dir', dir, '--free-ports'], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launchers.push(child);
  const out: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      out.push(l);
      const m = /started (\S+) \(pid (\d+)\)/.exec(l);
      if (m) reported.add(Number(m[2]));
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => out.push(c));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exited = false;
  void exit.then(() => {
    exited = true;
  });
  return {
    child,
    out,
    exit,
    async url(ms) {
      const end = Date.now() + ms;
      for (;;) {
        const line = out.find((l) => l.startsWith('Open the Contribute page: '));
        if (line) return line.slice('Open the Contribute page: '.length).trim();
        if (exited || Date.now() > end)
          throw new Error(`no page URL (${exited ? 'launcher exited' : 'timed out'}):\n${out.join('\n')}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    pids() {
      const m = new Map<string, number>();
      for (const l of out) {
        const x = /started (\S+) \(pid (\d+)\)/.exec(l);
        if (x) m.set(x[1]!, Number(x[2]));
      }
      return m;
    },
  };
}

/** SIGINT, then the launcher's exit code within `ms` (SIGKILL and null past it). */
async function interrupt(l: Launcher, ms: number): Promise<number | null | 'timeout'> {
  l.child.kill('SIGINT');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    l.exit,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]);
  clearTimeout(timer);
  return r;
}

describe('npm start (real processes, fresh data directory)', { timeout: 240_000 }, () => {
  it('comes up, the page trains in Chromium, SIGINT stops every process and exits 0; a restart reuses the state', async () => {
    const first = launch();
    const url = await first.url(150_000);
    const pids = first.pids();
    assert.deepEqual(
      [...pids.keys()].sort(),
      ['relay', 'supervisor-1', 'supervisor-2', 'supervisor-3', 'supervisor-4', 'worker-1'],
      'one relay, four supervisors, one edge volunteer',
    );
    assert.ok(
      first.out.some((l) => l.includes('devnet created: network DKG')),
      'the committee ran its DKG over the network',
    );
    assert.ok(url.includes('?relay=') && url.endsWith('#/contribute'), url);

    const browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: chromiumArgs,
    });
    let iterations = 0;
    try {
      const tab = await openTab(browser, 'smoke', url);
      const pressedAt = await pressContribute(tab);
      const end = Date.now() + 90_000;
      for (;;) {
        const s = await tabStats(tab);
        iterations = s.iterations;
        if (iterations >= 5) break;
        if (Date.now() > end || s.alerts.length > 0)
          throw new Error(`the page did not train: ${JSON.stringify(s)} ${tab.errors.join('; ')}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      console.log(JSON.stringify({ smoke: 'training', msFromPress: Date.now() - pressedAt, iterations }));
      assert.deepEqual(tab.errors, [], 'no page errors');
    } finally {
      await browser.close();
    }

    const stopStarted = Date.now();
    const code = await interrupt(first, 45_000);
    assert.equal(code, 0, `the launcher exits 0 on SIGINT:\n${first.out.slice(-20).join('\n')}`);
    for (const [name, pid] of pids) assert.ok(!alive(pid), `${name} (pid ${pid}) has exited`);
    console.log(JSON.stringify({ smoke: 'stopped', ms: Date.now() - stopStarted }));

    // The same data directory again: nothing is created anew.
    const relayLine = (l: Launcher) => l.out.find((x) => x.startsWith('relay '))?.split('/p2p/')[1];
    const taskLine = (l: Launcher) => l.out.find((x) => x.startsWith('chain '));
    const second = launch();
    await second.url(120_000);
    assert.ok(
      second.out.some((l) => l.includes('devnet reused')),
      'the devnet is reused',
    );
    assert.ok(
      second.out.some((l) => /task \w+… \(reused\)/.test(l)),
      'the task is reused',
    );
    assert.equal(taskLine(second), taskLine(first), 'the same chain and task');
    assert.equal(relayLine(second), relayLine(first), 'the relay keeps its peer id');
    assert.equal(await interrupt(second, 45_000), 0);
    for (const [name, pid] of second.pids()) assert.ok(!alive(pid), `${name} (pid ${pid}) has exited`);
  });
});

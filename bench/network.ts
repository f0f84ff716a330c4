/**
 * `npm run bench:network`: the whole local network as `npm start` runs it (scripts/network.ts:
 * relay, four supervisors, one Node edge volunteer, the page server), with two headless Chromium
 * tabs on the Contribute page, inside a private network namespace (WebRTC between Chromium tabs
 * needs a non-loopback address; tests/harness/netns.ts). Measures:
 *   - page load → first IT_RES sent, per tab (and Contribute pressed → first IT_RES). The task waits
 *     for its three miner slots to fill, so this includes the slowest joiner;
 *   - WebRTC between the two tabs: RTCPeerConnection created → `connected` (ICE + DTLS), as Chromium
 *     reports it, and the first such connection's time after the press;
 *   - IT_RES propagation, miner → all four supervisors: for each message recorded while sampling,
 *     the time the LAST supervisor listed it in its history (history protocol polled every 50 ms,
 *     tests/e2e/probe.ts) minus the miner's send time in the message; p50/p99, by miner kind;
 * and prints the machine. Results: bench/results/network.json. No assertions: numbers only.
 * `--duty X` (0 < X ≤ 1) has the tabs and the edge volunteer train that share of the time (the
 * page's `?duty=`, the worker's --duty-cycle); results then go to network-duty-X.json. On a 2-core
 * box full-speed miners starve the four supervisors, and the latencies measure that.
 * Re-executes itself inside a fresh namespace unless POUW_NETNS_ADDRESS says it is in one.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { type RunningNetwork, startNetwork } from '../scripts/network.ts';
import { ItresArrivals, NetworkProbe, percentile } from '../tests/e2e/probe.ts';
import { linkBetween, openTab, pressContribute, rtcFacts, type Tab, tabStats } from '../tests/e2e/tabs.ts';
import { chromiumArgs, chromiumPath } from '../tests/harness/chromium.ts';
import { netnsAvailable, spawnInNetns } from '../tests/harness/netns.ts';
import { describeMachine, machineInfo } from './machine.ts';

const SAMPLE_MS = 30_000;
const dutyAt = process.argv.indexOf('--duty');
const DUTY = dutyAt >= 0 ? Number(process.argv[dutyAt + 1]) : 1;
if (!(DUTY > 0 && DUTY <= 1)) {
  console.error('--duty: a number in (0, 1]');
  process.exit(2);
}
const POLL_MS = 50;

async function waitUntil<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const stats = (xs: number[]) => ({
  count: xs.length,
  p50: percentile(xs, 50) ?? null,
  p99: percentile(xs, 99) ?? null,
  max: xs.at(-1) ?? null,
});

/** The network while it runs, so a signal can stop it (its processes are in their own groups). */
let running: RunningNetwork | undefined;

async function inside(): Promise<void> {
  const onSignal = () => {
    void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const machine = machineInfo();
  console.log(`network benchmark: ${describeMachine(machine)}`);
  const host = process.env['POUW_NETNS_ADDRESS']!;
  const dir = mkdtempSync(join(tmpdir(), 'pouw-bench-network-'));
  let net: RunningNetwork | undefined;
  let browser: Browser | undefined;
  let probe: NetworkProbe | undefined;
  try {
    const startedAt = Date.now();
    net = await startNetwork({
      dataDir: dir,
      host,
      uiHost: '127.0.0.1',
      ports: 'free',
      edgeMiners: 1,
      minerSlots: 3,
      epochs: 1000,
      ...(DUTY < 1 ? { workerArgs: ['--duty-cycle', String(DUTY)] } : {}),
      log: (line) => console.log(`  ${line}`),
    });
    running = net;
    const startupMs = Date.now() - startedAt;
    const n = net;
    probe = await NetworkProbe.start(host, n.supervisors, n.chainId);
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
    const b = browser;
    const url = DUTY < 1 ? n.uiUrl.replace('#', `&duty=${DUTY}#`) : n.uiUrl;
    const tabs: Tab[] = await Promise.all(['A', 'B'].map((name) => openTab(b, name, url)));
    const pressed = await Promise.all(tabs.map((t) => pressContribute(t)));
    const firstItres = await Promise.all(
      tabs.map(async (t, i) => {
        const at = await waitUntil(
          async () => ((await tabStats(t)).itresSent >= 1 ? Date.now() : undefined),
          120_000,
          `tab ${t.name}'s first IT_RES`,
        );
        return { tab: t.name, fromLoadMs: at - t.openedAt, fromPressMs: at - pressed[i]! };
      }),
    );
    const link = await waitUntil(
      async () => {
        const l = linkBetween(await rtcFacts(tabs[0]!), await rtcFacts(tabs[1]!));
        return l?.a.connectedAt !== undefined ? l : undefined;
      },
      60_000,
      'the tabs’ WebRTC connection',
    );
    const webrtc = {
      iceDtlsMs: link.a.connectedAt! - link.a.createdAt,
      createdAfterPressMs: link.a.createdAt - Math.max(...pressed),
      pair: link.a.pair,
    };

    const worker = n.processes.get('worker-1')!;
    const edgeKey = String(worker.lines.find((l) => l['event'] === 'started')?.['nodeKey']);
    const arrivals = new ItresArrivals(probe);
    await arrivals.start(POLL_MS);
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
    await arrivals.stop();
    const all = arrivals.toKth(4);
    const threshold = arrivals.toKth(3);
    const fromTabs = arrivals.toKth(4, (m) => m !== edgeKey);
    const fromEdge = arrivals.toKth(4, (m) => m === edgeKey);
    const perMember = n.supervisors.map((_, i) => stats(arrivals.toMember(i)));
    const sizes = [...arrivals.bodies.values()].map((x) => x.bytes).sort((a, c) => a - c);
    const perSupervisor = arrivals.seen.map((s) => s.size);
    const tabIterations = await Promise.all(tabs.map(async (t) => (await tabStats(t)).iterations));

    const result = {
      machine,
      duty: DUTY,
      startupMs,
      firstItres,
      webrtc,
      itresPropagation: {
        sampleMs: SAMPLE_MS,
        pollMs: POLL_MS,
        messages: arrivals.bodies.size,
        listedPerSupervisor: perSupervisor,
        pollErrors: arrivals.errors,
        toAllSupervisorsMs: stats(all),
        toThreeSupervisorsMs: stats(threshold),
        perSupervisorMs: perMember,
        fromTabsMs: stats(fromTabs),
        fromEdgeMs: stats(fromEdge),
        itresBytes: { p50: percentile(sizes, 50) ?? null, max: sizes.at(-1) ?? null },
      },
      tabIterations,
    };
    console.log(`startup (DKG, processes, UI): ${startupMs} ms`);
    for (const f of firstItres)
      console.log(
        `tab ${f.tab}: page load → first IT_RES ${f.fromLoadMs} ms (press → first ${f.fromPressMs} ms)`,
      );
    console.log(
      `WebRTC tab↔tab: ICE+DTLS ${webrtc.iceDtlsMs} ms; created ${webrtc.createdAfterPressMs} ms after the press`,
    );
    const fmt = (s: ReturnType<typeof stats>) =>
      `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms (n=${s.count})`;
    console.log(`IT_RES miner → all 4 supervisors: ${fmt(result.itresPropagation.toAllSupervisorsMs)}`);
    console.log(`IT_RES miner → 3 of 4 supervisors: ${fmt(result.itresPropagation.toThreeSupervisorsMs)}`);
    for (const [i, m] of perMember.entries()) console.log(`  → supervisor ${i + 1}: ${fmt(m)}`);
    console.log(`  from tabs (to all 4): ${fmt(result.itresPropagation.fromTabsMs)}`);
    console.log(`  from the edge volunteer (to all 4): ${fmt(result.itresPropagation.fromEdgeMs)}`);
    console.log(
      `  messages ${arrivals.bodies.size}, listed per supervisor ${perSupervisor.join('/')}, IT_RES size p50 ${result.itresPropagation.itresBytes.p50} B`,
    );
    const out = join(import.meta.dirname, 'results');
    mkdirSync(out, { recursive: true });
    const file = DUTY < 1 ? `network-duty-${DUTY}.json` : 'network.json';
    writeFileSync(join(out, file), `${JSON.stringify(result, null, 2)}\n`);
    console.log(`saved bench/results/${file}`);
  } finally {
    await probe?.stop().catch(() => {});
    await browser?.close().catch(() => {});
    await net?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env['POUW_NETNS_ADDRESS'] !== undefined) {
  await inside();
} else {
  const ns = netnsAvailable();
  if (!ns.ok) {
    console.error(`bench:network needs a private network namespace (unshare -n): ${ns.reason}`);
    process.exit(1);
  }
  const child = spawnInNetns(
    [process.execPath, '--import', 'tsx', import.meta.filename, ...process.argv.slice(2)],
    {
      cwd: join(import.meta.dirname, '..'),
      stdio: 'inherit',
    },
  );
  const stop = () => child.child.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.exit(await child.exited);
}

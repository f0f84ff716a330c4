/**
 * The end-to-end run, meant to execute INSIDE a private network namespace (tests/harness/netns.ts:
 * Chromium gathers no loopback ICE candidates, so tabs need NETNS_ADDRESS to meet over WebRTC):
 * `node --import tsx tests/e2e/run-network.ts --data-dir DIR [--budget-ms N]`.
 *
 * It starts the whole network bound to the namespace's address (scripts/network.ts: relay, four
 * supervisors with their DKG, one Node edge volunteer, the page server; a task with three miner
 * slots), opens two headless Chromium tabs in separate browser contexts on the served page and
 * presses Contribute in both, then goes through the phases below, each bounded in time, and prints
 * one JSON line per observed fact (`{"e2e": "<fact>", ...}`) for tests/e2e/network.node.test.ts to
 * assert. It measures and reports; it never decides pass or fail itself. A phase that fails prints
 * `{"e2e": "<fact>", "error": …}` and the run goes on where that makes sense.
 *
 *   training      both tabs joined and train (iterations rise)
 *   webrtc        Chromium's own stats for the tab-to-tab RTCPeerConnection (tests/e2e/tabs.ts)
 *   accuracy      per miner, batch accuracy of its first and latest IT_RES as the supervisors recorded them
 *   tab-block     a finalized block whose coinbase pays a tab's address, and that tab's verified balance
 *   tab-closed    one tab closed: the other and the edge volunteer keep training, blocks keep being
 *                 finalized, and every supervisor still serves the same blocks at the earlier heights
 *   supervisor-restart  one supervisor SIGKILLed and restarted mid-run; after the miners stop and the
 *                 tips settle, every supervisor's LevelDB chain (read after shutdown) is the same
 *   stopped       how every process exited
 *
 * Children are stopped in `finally` (and on SIGTERM/SIGINT), by PID; every child's PID is printed
 * as soon as it exists (`{"e2e": "pid"}`) so the test can kill leftovers if this process is killed.
 */
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { type RunningNetwork, startNetwork, stopProcess } from '../../scripts/network.ts';
import { bytesToHex } from '../../shared/bytes.ts';
import { decodeAddress } from '../../shared/crypto/address.ts';
import { bitsToFloat32 } from '../../shared/pouw/task.ts';
import { chromiumArgs, chromiumPath } from '../harness/chromium.ts';
import { NETNS_ADDRESS } from '../harness/netns.ts';
import { NetworkProbe, readStoredChain } from './probe.ts';
import { isDirect, linkBetween, openTab, pressContribute, rtcFacts, type Tab, tabStats } from './tabs.ts';

function emit(fact: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(
    `${JSON.stringify({ e2e: fact, t: Date.now(), ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
  );
}

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const dataDir = opt('data-dir');
if (dataDir === undefined) {
  process.stderr.write('usage: run-network.ts --data-dir DIR [--budget-ms N]\n');
  process.exit(2);
}
const host = process.env['POUW_NETNS_ADDRESS'] ?? NETNS_ADDRESS;
const started = Date.now();
const deadline = started + Number(opt('budget-ms') ?? 320_000);
const left = () => deadline - Date.now();

async function waitUntil<T>(
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
  intervalMs = 500,
): Promise<T> {
  const end = Math.min(Date.now() + timeoutMs, deadline);
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const maxOf = (xs: (bigint | undefined)[]) =>
  xs.reduce<bigint>((m, x) => (x !== undefined && x > m ? x : m), 0n);

let network: RunningNetwork | undefined;
let browser: Browser | undefined;
let probe: NetworkProbe | undefined;
let finishing = false;

async function finish(code: number): Promise<never> {
  if (finishing) process.exit(code);
  finishing = true;
  await probe?.stop().catch(() => {});
  await browser?.close().catch(() => {});
  if (network) {
    const exits = await network.stop();
    emit('stopped', { exits });
  }
  process.exit(code);
}
process.on('SIGTERM', () => void finish(1));
process.on('SIGINT', () => void finish(1));

try {
  network = await startNetwork({
    dataDir,
    host,
    // The page needs a secure context (WebCrypto): http on 127.0.0.1; everything else on `host`.
    uiHost: '127.0.0.1',
    ports: 'free',
    edgeMiners: 1,
    minerSlots: 3,
    // Enough iterations that nobody finishes the task during the run (~100 it/s per fast tab).
    epochs: 400,
    verifier: 'real',
    log: (line) => emit('log', { line }),
    onProcess: ({ name, pid }) => emit('pid', { name, pid }),
  });
  const net = network;
  emit('network', {
    startupMs: Date.now() - started,
    uiUrl: net.uiUrl,
    relay: net.relay.ws,
    lead: net.lead,
    task: bytesToHex(net.task.taskId),
    funding: net.funding,
  });
  probe = await NetworkProbe.start(host, net.supervisors, net.chainId);
  const p = probe;

  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  const tabs: Tab[] = await Promise.all(['A', 'B'].map((name) => openTab(browser!, name, net.uiUrl)));
  const pressed = await Promise.all(tabs.map((t) => pressContribute(t)));
  const [tabA, tabB] = tabs as [Tab, Tab];

  // -- training ---------------------------------------------------------------------------
  try {
    const stats = await waitUntil(
      async () => {
        const s = await Promise.all(tabs.map(tabStats));
        return s.every((x) => x.iterations >= 20) ? s : undefined;
      },
      120_000,
      'both tabs to train 20 iterations',
    );
    emit('training', {
      msFromPress: Date.now() - Math.max(...pressed),
      tabs: stats.map((s, i) => ({ tab: tabs[i]!.name, iterations: s.iterations, network: s.network })),
    });
  } catch (e) {
    const s = await Promise.all(tabs.map((t) => tabStats(t).catch(() => undefined)));
    emit('training', { error: String(e), tabs: s, pageErrors: tabs.map((t) => t.errors) });
  }

  // -- WebRTC between the tabs ----------------------------------------------------------------
  try {
    const link = await waitUntil(
      async () => {
        const l = linkBetween(await rtcFacts(tabA), await rtcFacts(tabB));
        return l !== undefined && isDirect(l) ? l : undefined;
      },
      45_000,
      'a direct WebRTC connection between the tabs',
    );
    // The link carries traffic: bytes on the selected pair grow.
    await new Promise((r) => setTimeout(r, 3000));
    const again = linkBetween(await rtcFacts(tabA), await rtcFacts(tabB));
    emit('webrtc', {
      direct: again !== undefined && isDirect(again),
      a: again?.a ?? link.a,
      b: again?.b ?? link.b,
      bytesGrew:
        again?.a.pair !== undefined &&
        link.a.pair !== undefined &&
        again.a.pair.bytesSent + again.a.pair.bytesReceived >
          link.a.pair.bytesSent + link.a.pair.bytesReceived,
      connectMs: link.a.connectedAt !== undefined ? link.a.connectedAt - link.a.createdAt : undefined,
    });
  } catch (e) {
    emit('webrtc', { error: String(e), a: await rtcFacts(tabA), b: await rtcFacts(tabB) });
  }

  // -- accuracy, from the supervisors' recorded IT_RES ----------------------------------------------
  try {
    const first = await p.historyIds(0, 0);
    const early = await p.historyMessages(0, first.ids.slice(0, 192));
    const lastPage = await p.historyIds(0, Math.max(0, first.total - 192));
    const late = await p.historyMessages(0, lastPage.ids.slice(-192));
    // Per miner: (iteration, batch accuracy) of its lowest and highest recorded iterations.
    const perMiner = new Map<string, { early: [number, number][]; late: [number, number][] }>();
    for (const [kind, messages] of [
      ['early', early],
      ['late', late],
    ] as const) {
      for (const m of messages) {
        const k = bytesToHex(m.body.miner);
        const e = perMiner.get(k) ?? { early: [], late: [] };
        perMiner.set(k, e);
        e[kind].push([m.body.iteration, bitsToFloat32(m.body.accuracy)]);
      }
    }
    const mean = (ps: [number, number][]) => ps.reduce((s, x) => s + x[1], 0) / Math.max(1, ps.length);
    const miners = [...perMiner.entries()].map(([miner, v]) => {
      const e = v.early.sort((a, b) => a[0] - b[0]).slice(0, 5);
      const l = v.late.sort((a, b) => b[0] - a[0]).slice(0, 5);
      return {
        miner: miner.slice(0, 16),
        earlyIterations: e.map((x) => x[0]),
        earlyAccuracy: mean(e),
        lateIterations: l.map((x) => x[0]),
        lateAccuracy: mean(l),
      };
    });
    const heldOut = (await Promise.all(tabs.map(tabStats))).map((s) => s.heldOutAccuracy);
    emit('accuracy', { recorded: first.total, miners, heldOut });
  } catch (e) {
    emit('accuracy', { error: String(e) });
  }

  // -- a block mined by a tab, finalized; the tab's verified balance --------------------------------
  try {
    const found = await waitUntil(
      async () => {
        const stats = await Promise.all(tabs.map(tabStats));
        const tip = (await p.status(0)).tipHeight;
        const blocks = await p.blocks(0, tip);
        for (const [i, s] of stats.entries()) {
          if (s.address === undefined || s.balance === undefined || s.balance.pouw <= 0) continue;
          const owner = bytesToHex(decodeAddress(s.address));
          const paid = blocks
            .filter((b) => b.transactions[0]?.body.outputs.some((o) => bytesToHex(o.owner) === owner))
            .map((b) => b.header.height);
          if (paid.length > 0)
            return { tab: tabs[i]!.name, address: s.address, paidAt: paid, balance: s.balance, tip };
        }
        return undefined;
      },
      150_000,
      'a tab’s block to be finalized and its verified balance to rise',
      2000,
    );
    emit('tab-block', found);
  } catch (e) {
    const stats = await Promise.all(tabs.map(tabStats));
    emit('tab-block', {
      error: String(e),
      tips: await p.tips(),
      tabs: stats.map((s) => ({
        found: s.blocksFound,
        finalized: s.blocksFinalized,
        balance: s.balanceText,
      })),
    });
  }

  // -- closing one tab -----------------------------------------------------------------------
  try {
    const before = await p.tips();
    const tipBefore = maxOf(before);
    const prefixHeight = before.reduce<bigint>((m, x) => (x !== undefined && x < m ? x : m), tipBefore);
    const hashesBefore = await p.hashes(0, prefixHeight);
    const aBefore = (await tabStats(tabA)).iterations;
    const worker = net.processes.get('worker-1')!;
    const edgeIterations = () =>
      Math.max(
        0,
        ...worker.lines.filter((l) => l['event'] === 'iteration').map((l) => Number(l['iteration'])),
      );
    const edgeBefore = edgeIterations();
    await tabB.context.close();
    const closedAt = Date.now();
    const after = await waitUntil(
      async () => {
        const a = (await tabStats(tabA)).iterations;
        const tip = maxOf(await p.tips());
        return a >= aBefore + 50 && edgeIterations() > edgeBefore && tip > tipBefore ? { a, tip } : undefined;
      },
      90_000,
      'the other tab and the edge volunteer to keep training and a new block to be finalized',
      1000,
    );
    const served = await Promise.all(net.supervisors.map((_, i) => p.hashes(i, prefixHeight)));
    emit('tab-closed', {
      closedTab: tabB.name,
      msToContinue: Date.now() - closedAt,
      tabIterations: { before: aBefore, after: after.a },
      edgeIterations: { before: edgeBefore, after: edgeIterations() },
      tip: { before: tipBefore, after: after.tip },
      prefixHeight,
      prefixKept: served.map((h) => JSON.stringify(h) === JSON.stringify(hashesBefore)),
    });
  } catch (e) {
    emit('tab-closed', { error: String(e), tips: await p.tips() });
  }

  // -- SIGKILL and restart of one supervisor -----------------------------------------------------------
  try {
    const victim = (net.lead + 1) % net.supervisors.length;
    const name = `supervisor-${victim + 1}`;
    const proc = net.processes.get(name)!;
    const tipAtKill = maxOf(await p.tips());
    proc.child.kill('SIGKILL');
    const killed = await proc.exit;
    // The other three (t = 3) keep finalizing meanwhile.
    const whileDown = await waitUntil(
      async () => {
        const tip = maxOf(await p.tips());
        return tip > tipAtKill ? tip : undefined;
      },
      60_000,
      'a block finalized while one supervisor is down',
      1000,
    ).catch(() => undefined);
    await net.restart(name);
    const othersAtRestart = maxOf(await p.tips());
    const caughtUp = await waitUntil(
      async () => {
        const tip = (await p.status(victim)).tipHeight;
        return tip >= othersAtRestart ? tip : undefined;
      },
      60_000,
      `${name} to catch up`,
      1000,
    ).catch(() => undefined);
    // Quiesce: stop every miner, let the tips settle, then compare the stores after shutdown.
    await tabA.context.close();
    await stopProcess(net.processes.get('worker-1')!);
    const settled = await waitUntil(
      async () => {
        const t1 = await p.tips();
        await new Promise((r) => setTimeout(r, 3000));
        const t2 = await p.tips();
        const same =
          t2.every((x) => x !== undefined && x === t2[0]) && JSON.stringify(t1) === JSON.stringify(t2);
        return same ? t2 : undefined;
      },
      45_000,
      'every supervisor to settle on the same tip',
      500,
    ).catch(() => undefined);
    await p.stop();
    probe = undefined;
    const exits = await net.stop();
    network = undefined;
    emit('stopped', { exits });
    const chains = await Promise.all(net.supervisors.map((s) => readStoredChain(s.dataDir, net.chainId)));
    emit('supervisor-restart', {
      victim: name,
      killed,
      tipAtKill,
      finalizedWhileDown: whileDown,
      caughtUpTo: caughtUp,
      settledTips: settled,
      chains: chains.map((c, i) => ({
        member: i,
        tip: c.hashes.length - 1,
        certified: c.certified,
        tipHash: c.hashes.at(-1),
        sameAsMember0: JSON.stringify(c.hashes) === JSON.stringify(chains[0]!.hashes),
      })),
    });
  } catch (e) {
    emit('supervisor-restart', { error: String(e) });
  }
  emit('done', { elapsedMs: Date.now() - started, logs: join(dataDir, 'logs') });
  await finish(0);
} catch (e) {
  emit('failed', { error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  await finish(1);
}

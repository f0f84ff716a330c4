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
 *   webrtc        Chromium's own stats for the tab-to-tab RTCPeerConnection (tests/e2e/tabs.ts),
 *                 watched from the press: the first direct connection seen carrying traffic
 *   training      both tabs joined and train (iterations rise)
 *   accuracy      batch accuracy of the first and latest IT_RES the supervisors recorded (and per miner)
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
import {
  type DirectLink,
  isDirect,
  linkBetween,
  openTab,
  pressContribute,
  rtcFacts,
  type Tab,
  tabStats,
} from './tabs.ts';

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

/** The relay's own account (limits hit, offenders, reservations, circuits), for the report. */
async function relayHealth(url: string): Promise<unknown> {
  try {
    const h = (await (await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) })).json()) as Record<
      string,
      unknown
    >;
    return {
      drops: h['drops'],
      topOffenders: h['topOffenders'],
      reservations: h['reservations'],
      circuits: h['circuits'],
      peers: h['peers'],
    };
  } catch (e) {
    return { error: String(e) };
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

const MINER_DUTY = 0.25;

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
    // Everything (four supervisors replaying work, the relay, two Chromium tabs, an edge volunteer)
    // shares two cores here: the miners lend a quarter of their time (the page's `?duty=`, the
    // worker's --duty-cycle), as a volunteer on a busy machine would, so the supervisors keep up.
    workerArgs: ['--duty-cycle', String(MINER_DUTY)],
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
  const pageUrl = net.uiUrl.replace('#', `&duty=${MINER_DUTY}#`);
  const tabs: Tab[] = await Promise.all(['A', 'B'].map((name) => openTab(browser!, name, pageUrl)));
  const pressed = await Promise.all(tabs.map((t) => pressContribute(t)));
  const [tabA, tabB] = tabs as [Tab, Tab];

  // -- WebRTC between the tabs ----------------------------------------------------------------
  // Watched from the press on (a connection may be replaced later: each one is kept by its
  // certificates, with its byte counts over time).
  const seen = new Map<string, { first: DirectLink; samples: { t: number; bytes: number }[] }>();
  let samples = 0;
  let sampleErrors = 0;
  let linkedNotDirect: DirectLink | undefined;
  try {
    const sample = async () => {
      samples++;
      const facts = await Promise.all([rtcFacts(tabA), rtcFacts(tabB)]).catch(() => {
        sampleErrors++;
        return undefined;
      });
      if (facts === undefined) return;
      const l = linkBetween(facts[0], facts[1]);
      if (l !== undefined && !isDirect(l)) linkedNotDirect = l;
      if (l === undefined || !isDirect(l)) return;
      const key = `${l.a.localFingerprint}|${l.a.remoteFingerprint}`;
      const entry = seen.get(key) ?? { first: l, samples: [] };
      seen.set(key, entry);
      entry.samples.push({ t: Date.now(), bytes: l.a.pair!.bytesSent + l.a.pair!.bytesReceived });
    };
    const firstSeen = await waitUntil(
      async () => {
        await sample();
        return seen.size > 0 ? [...seen.values()][0]! : undefined;
      },
      Math.max(5000, Math.max(...pressed) + 60_000 - Date.now()),
      'a direct WebRTC connection between the tabs',
      750,
    );
    const link = firstSeen.first;
    // Then: does a direct connection carry the miners' traffic (bytes growing between samples)?
    const carrying = () =>
      [...seen.values()].find((e) => e.samples.length >= 2 && e.samples.at(-1)!.bytes > e.samples[0]!.bytes);
    const carried = await waitUntil(
      async () => {
        await sample();
        return carrying();
      },
      20_000,
      'a direct connection between the tabs to carry traffic',
      1000,
    ).catch(() => undefined);
    emit('webrtc', {
      direct: true,
      a: link.a,
      b: link.b,
      connectMs: link.a.connectedAt !== undefined ? link.a.connectedAt - link.a.createdAt : undefined,
      connectedAfterPressMs:
        link.a.connectedAt !== undefined ? link.a.connectedAt - Math.max(...pressed) : undefined,
      carriesTraffic: carried !== undefined,
      directConnections: [...seen.values()].map((x) => ({
        createdAt: x.first.a.createdAt,
        bytes: x.samples.map((y) => y.bytes),
      })),
      relay: await relayHealth(net.relay.http),
    });
  } catch (e) {
    emit('webrtc', {
      error: String(e),
      samples,
      sampleErrors,
      directSeen: [...seen.values()].map((x) => ({ samples: x.samples, a: x.first.a, b: x.first.b })),
      linkedNotDirect,
      relay: await relayHealth(net.relay.http),
      a: await rtcFacts(tabA),
      b: await rtcFacts(tabB),
    });
  }

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

  // -- accuracy, from the supervisors' recorded IT_RES ----------------------------------------------
  try {
    // The first supervisor that answers in time (a busy one may not, within the probe's bound).
    const read = async (member: number) => {
      const first = await p.historyIds(member, 0);
      const early = await p.historyMessages(member, first.ids.slice(0, 192));
      const lastPage = await p.historyIds(member, Math.max(0, first.total - 192));
      const late = await p.historyMessages(member, lastPage.ids.slice(-192));
      return { member, first, early, late };
    };
    p.timeoutMs = 15_000;
    let got: Awaited<ReturnType<typeof read>> | undefined;
    const failures: string[] = [];
    for (let m = 0; m < net.supervisors.length && got === undefined; m++)
      got = await read(m).catch((e: unknown) => {
        failures.push(`supervisor ${m + 1}: ${String(e)}`);
        return undefined;
      });
    p.timeoutMs = 5000;
    if (got === undefined) throw new Error(failures.join('; '));
    const { first, early, late } = got;
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
    // The task as a whole: the first IT_RES recorded (the earliest iterations, from the initial
    // model) against the latest. Per miner it says less: a miner that starts late has applied
    // its peers' updates before its own iteration 0.
    const task = {
      firstRecorded: mean(early.slice(0, 5).map((m) => [m.body.iteration, bitsToFloat32(m.body.accuracy)])),
      lastRecorded: mean(late.slice(-5).map((m) => [m.body.iteration, bitsToFloat32(m.body.accuracy)])),
    };
    const heldOut = (await Promise.all(tabs.map(tabStats))).map((s) => s.heldOutAccuracy);
    emit('accuracy', {
      from: `supervisor-${got.member + 1}`,
      recorded: first.total,
      task,
      miners,
      heldOut,
      failures,
    });
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
    // Each consequence on its own bound, so a failure says which one.
    const continued = await waitUntil(
      async () => {
        const a = (await tabStats(tabA)).iterations;
        return a >= aBefore + 50 && edgeIterations() > edgeBefore ? a : undefined;
      },
      60_000,
      'the other tab and the edge volunteer to keep training',
      1000,
    ).catch(() => undefined);
    const msToContinue = Date.now() - closedAt;
    const newTip = await waitUntil(
      async () => {
        const tip = maxOf(await p.tips());
        return tip > tipBefore ? tip : undefined;
      },
      60_000,
      'a block finalized after the tab closed',
      1000,
    ).catch(() => undefined);
    const served = await Promise.all(net.supervisors.map((_, i) => p.hashes(i, prefixHeight)));
    emit('tab-closed', {
      closedTab: tabB.name,
      othersContinued: continued !== undefined,
      msToContinue,
      tabIterations: { before: aBefore, after: (await tabStats(tabA)).iterations },
      edgeIterations: { before: edgeBefore, after: edgeIterations() },
      newBlockFinalized: newTip !== undefined,
      tip: { before: tipBefore, after: maxOf(await p.tips()) },
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
      // Three of four is exactly a quorum: every round needs all three, and one in four rounds
      // waits out the dead member's proposal.
      90_000,
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
        const same = t2.every((x, i) => x !== undefined && x === t2[0] && x === t1[i]);
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

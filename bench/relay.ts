/**
 * Relay benchmark (`npm run bench:relay`): concurrent connections held by the relay with N Node
 * libp2p clients (WebSockets by default, the browsers' path), and the relay's memory per connection
 * (its RSS and heap growth over an idle baseline, read from its own /health, divided by N). Clients
 * are added in steps (default 50, 100, 200) within a time cap; each step waits until the relay
 * reports all N open, holds them a few seconds and samples memory. Prints a table and writes
 * bench/results/relay.json with machine details.
 *
 *   node --import tsx bench/relay.ts [--n 50,100,200] [--transport ws|tcp] [--max-seconds 240]
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { identify } from '@libp2p/identify';
import { noise } from '@libp2p/noise';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { RelayHealth } from '../relay/node.ts';
import { spawnRelay, tempDir, waitFor, within } from '../relay/test-support.ts';
import { describeMachine, machineInfo } from './machine.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const STEPS = arg('--n', '50,100,200')
  .split(',')
  .map(Number)
  .filter((n) => Number.isSafeInteger(n) && n > 0)
  .sort((a, b) => a - b);
const TRANSPORT = arg('--transport', 'ws') === 'tcp' ? 'tcp' : 'ws';
const MAX_SECONDS = Number(arg('--max-seconds', '240'));
const DIAL_CONCURRENCY = 16;
const HOLD_MS = 3_000;
const MiB = 1024 * 1024;

interface Step {
  clients: number;
  /** Clients added in this step (steps build on each other); connect and dial figures are theirs. */
  added: number;
  connectSeconds: number;
  dialMsP50: number;
  dialMsP99: number;
  openAtRelay: number;
  heldAfterMs: number;
  stillOpenAfterHold: number;
  rssBytes: number;
  heapUsedBytes: number;
  rssPerConnectionKiB: number;
  heapPerConnectionKiB: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function startBenchClient(): Promise<Libp2p> {
  return createLibp2p({
    transports: [webSockets(), tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { reconnectRetries: 0 },
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping() },
  });
}

/** Median of three samples 300 ms apart: one GC pause should not make the number. */
async function sampleMemory(health: () => Promise<RelayHealth>): Promise<{ rss: number; heap: number }> {
  const rss: number[] = [];
  const heap: number[] = [];
  for (let i = 0; i < 3; i++) {
    const h = await health();
    rss.push(h.memory.rssBytes);
    heap.push(h.memory.heapUsedBytes);
    await new Promise((r) => setTimeout(r, 300));
  }
  rss.sort((a, b) => a - b);
  heap.sort((a, b) => a - b);
  return { rss: rss[1]!, heap: heap[1]! };
}

const machine = machineInfo();
console.log(`relay benchmark: ${describeMachine(machine)}`);
console.log(`transport ${TRANSPORT}, steps ${STEPS.join(', ')}, cap ${MAX_SECONDS} s\n`);

const deadline = Date.now() + MAX_SECONDS * 1000;
const dir = tempDir('bench-relay');
const maxClients = STEPS.at(-1) ?? 0;
const relay = await spawnRelay(dir, {
  dataDir: `${dir}/data`,
  listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'],
  http: { host: '127.0.0.1', port: 0 },
  connections: {
    max: maxClients + 64,
    perIp: maxClients + 64,
    inboundPerSecondPerIp: 100_000,
    maxPendingUpgrades: 256,
  },
  logLevel: 'warn',
});
// Whatever happens below, the relay does not outlive the benchmark.
process.on('exit', () => relay.kill());
const target = multiaddr(TRANSPORT === 'ws' ? relay.wsAddr : relay.tcpAddr);
const clients: Libp2p[] = [];
const steps: Step[] = [];
let stoppedByCap = false;
let baseline = { rss: 0, heap: 0 };

try {
  // Warm-up: JIT, buffers and the first connection's one-off allocations stay out of the numbers.
  const warm = await Promise.all(Array.from({ length: 10 }, () => startBenchClient()));
  await Promise.all(warm.map((c) => c.dial(target)));
  await Promise.all(warm.map((c) => c.stop()));
  await waitFor(
    async () => (await relay.health()).connections.open === 0,
    10_000,
    'warm-up clients to leave',
  );
  await new Promise((r) => setTimeout(r, 2_000));
  baseline = await sampleMemory(relay.health);

  for (const n of STEPS) {
    if (Date.now() > deadline) {
      stoppedByCap = true;
      break;
    }
    const started = Date.now();
    const dialMs: number[] = [];
    const fresh = await Promise.all(Array.from({ length: n - clients.length }, () => startBenchClient()));
    clients.push(...fresh);
    let next = 0;
    await Promise.all(
      Array.from({ length: DIAL_CONCURRENCY }, async () => {
        while (next < fresh.length) {
          const c = fresh[next++]!;
          const t0 = performance.now();
          await c.dial(target, { signal: AbortSignal.timeout(20_000) });
          dialMs.push(performance.now() - t0);
        }
      }),
    );
    const openAtRelay = await waitFor(
      async () => {
        const open = (await relay.health()).connections.open;
        return open >= n ? open : undefined;
      },
      30_000,
      `${n} connections at the relay`,
      200,
    );
    const connectSeconds = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, HOLD_MS));
    const mem = await sampleMemory(relay.health);
    const stillOpen = (await relay.health()).connections.open;
    dialMs.sort((a, b) => a - b);
    const step: Step = {
      clients: n,
      added: fresh.length,
      connectSeconds,
      dialMsP50: quantile(dialMs, 0.5),
      dialMsP99: quantile(dialMs, 0.99),
      openAtRelay,
      heldAfterMs: HOLD_MS,
      stillOpenAfterHold: stillOpen,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heap,
      rssPerConnectionKiB: (mem.rss - baseline.rss) / n / 1024,
      heapPerConnectionKiB: (mem.heap - baseline.heap) / n / 1024,
    };
    steps.push(step);
    console.log(
      `N=${n}: open ${openAtRelay} (after ${HOLD_MS / 1000} s: ${stillOpen}), ${fresh.length} added in ${connectSeconds.toFixed(1)} s, ` +
        `dial p50 ${step.dialMsP50.toFixed(0)} ms p99 ${step.dialMsP99.toFixed(0)} ms, ` +
        `relay RSS ${(mem.rss / MiB).toFixed(1)} MiB (+${step.rssPerConnectionKiB.toFixed(1)} KiB/conn), ` +
        `heap +${step.heapPerConnectionKiB.toFixed(1)} KiB/conn`,
    );
  }
} finally {
  await Promise.allSettled(clients.map((c) => c.stop()));
}

const finalHealth = await relay.health();
relay.child.kill('SIGTERM');
const exit = await within(relay.exit, 15_000, 'the relay to exit').catch(() => undefined);
relay.kill();
rmSync(dir, { recursive: true, force: true });

console.log(
  '\nclients  added  open  held  connect s  dial p50 ms  dial p99 ms  RSS MiB  RSS KiB/conn  heap KiB/conn',
);
for (const s of steps) {
  console.log(
    [
      String(s.clients).padStart(7),
      String(s.added).padStart(6),
      String(s.openAtRelay).padStart(5),
      String(s.stillOpenAfterHold).padStart(5),
      s.connectSeconds.toFixed(1).padStart(10),
      s.dialMsP50.toFixed(0).padStart(12),
      s.dialMsP99.toFixed(0).padStart(12),
      (s.rssBytes / MiB).toFixed(1).padStart(8),
      s.rssPerConnectionKiB.toFixed(1).padStart(13),
      s.heapPerConnectionKiB.toFixed(1).padStart(14),
    ].join(' '),
  );
}
console.log(
  `baseline RSS ${(baseline.rss / MiB).toFixed(1)} MiB, heap ${(baseline.heap / MiB).toFixed(1)} MiB; ` +
    `drops during the run: ${JSON.stringify(finalHealth.drops)}; relay exit ${JSON.stringify(exit)}`,
);

const results = join(import.meta.dirname, 'results');
mkdirSync(results, { recursive: true });
writeFileSync(
  join(results, 'relay.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      machine,
      transport: TRANSPORT,
      note: 'Clients run in the benchmark process on the same machine; memory is the relay process (its /health).',
      baseline: { rssBytes: baseline.rss, heapUsedBytes: baseline.heap },
      steps,
      stoppedByTimeCap: stoppedByCap,
      dropsDuringRun: finalHealth.drops,
      relayExit: exit ?? null,
    },
    null,
    2,
  )}\n`,
);
console.log('\nwrote bench/results/relay.json');

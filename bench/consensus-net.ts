/**
 * Networked consensus benchmark (`npm run bench:consensus`, part of `npm run bench`): n supervisor
 * processes (supervisor-node/main.ts) over libp2p on 127.0.0.1, n ∈ {4, 7}, with the fast verifier
 * stand-in (header and ledger checks only: the cost of consensus, signatures, the network and the
 * LevelDB writes) and with the real verifier (the useful-work replay of every candidate, tiny task).
 * A miner loop feeds candidates and a transfer load keeps the mempool busy.
 *
 * Reported per case: commit latency p50/p99 (from the proposal being signed to each member's
 * decision, and from the candidate's submission to the first decision), finalized blocks/s and
 * transactions/s over the measured window, rounds > 0, and the timeouts used. Prints a table and
 * writes bench/results/consensus-net-<time>.json and consensus-net-latest.json with the machine.
 * Options: --seconds S (measured window per case, default 20), --cases fast4,fast7,real4,real7.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode } from '../node-common/p2p.ts';
import {
  type Cluster,
  HeaderMiner,
  makeCluster,
  readChain,
  type SupervisorProcess,
  sleep,
  spawnSupervisor,
  stopSupervisor,
  TxLoad,
  waitFor,
} from '../tests/net/cluster.ts';
import { RealMiner, writeTinyTask } from '../tests/net/real-miner.ts';
import { describeMachine, machineInfo } from './machine.ts';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(opt('seconds') ?? 20);
const CASES = (opt('cases') ?? 'fast4,fast7,real4,real7').split(',');

const TIMEOUTS = {
  propose: { baseMs: 1000, deltaMs: 500 },
  prevote: { baseMs: 500, deltaMs: 250 },
  precommit: { baseMs: 500, deltaMs: 250 },
};
const GOSSIP_MS = 300;

interface CaseResult {
  case: string;
  supervisors: number;
  verifier: 'fast' | 'real';
  seconds: number;
  heights: number;
  blocksPerSecond: number;
  transactions: number;
  transactionsPerSecond: number;
  /** Proposal signed → a member's decision, over (height, member), ms. */
  commitLatencyMs: { p50: number; p99: number; samples: number };
  /** Candidate accepted by the first supervisor → first decision of its height, ms. */
  candidateToFinalMs: { p50: number; p99: number; samples: number };
  roundsAboveZero: number;
  minerErrors: Record<string, number>;
  txRejections: Record<string, number>;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function decidedAt(p: SupervisorProcess): Map<bigint, { t: number; round: number }> {
  const m = new Map<bigint, { t: number; round: number }>();
  for (const l of p.logs)
    if (l.event === 'decided') m.set(BigInt(l['height'] as string), { t: l.t, round: l['round'] as number });
  return m;
}

async function runCase(name: string): Promise<CaseResult> {
  const verifier = name.startsWith('real') ? 'real' : 'fast';
  const n = Number(name.replace(/^\D+/, ''));
  const dir = mkdtempSync(join(tmpdir(), `pouw-bench-consensus-${name}-`));
  const procs: SupervisorProcess[] = [];
  const client = await createNode({
    nodeKeySeed: new Uint8Array(32).fill(42),
    listen: ['/ip4/127.0.0.1/tcp/0'],
  });
  let miner: HeaderMiner | RealMiner | undefined;
  let load: TxLoad | undefined;
  try {
    const task = verifier === 'real' ? writeTinyTask(dir, 'pouw-net-test') : undefined;
    // No retarget inside a run: blocks come far faster than the devnet's 3 s interval.
    const cluster: Cluster = await makeCluster(dir, n, {
      timeouts: TIMEOUTS,
      gossipMs: GOSSIP_MS,
      verifier,
      genesisParams: { retargetWindow: 100_000 },
      ...(task ? { tasks: [task.file] } : {}),
    });
    procs.push(...(await Promise.all(cluster.members.map((m) => spawnSupervisor(m, 60_000)))));
    miner = task ? await RealMiner.start(cluster, task) : await HeaderMiner.start(cluster);
    load = await TxLoad.start(cluster, client);
    const minDecided = () =>
      procs.reduce((a, p) => Math.min(a, p.decided().length), Number.POSITIVE_INFINITY);
    await waitFor(() => minDecided() >= 3, 120_000, `${name}: warm-up heights`);
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const t1 = Date.now();
    await load.stop();
    load = undefined;
    await miner.stop();
    const minerErrors = miner.errors;
    const submittedAt = miner.submittedAt;
    miner = undefined;
    for (const p of procs) await stopSupervisor(p, 'SIGTERM');

    const chainId = cluster.devnet.genesis.chainId;
    const chain = await readChain(cluster.members[0]!, chainId);
    const decided = procs.map(decidedAt);
    const inWindow = [...decided[0]!.entries()].filter(([, d]) => d.t >= t0 && d.t <= t1).map(([h]) => h);
    let transactions = 0;
    for (const h of inWindow) transactions += (chain.blocks[Number(h)]?.transactions.length ?? 1) - 1;
    // Proposal signing times per (height, round), from the proposer's log.
    const proposedAt = new Map<string, number>();
    for (const p of procs)
      for (const l of p.logs)
        if (l.event === 'signed' && l['kind'] === 'proposal') {
          const k = `${l['height']}/${l['round']}`;
          if (!proposedAt.has(k)) proposedAt.set(k, l.t);
        }
    const latency: number[] = [];
    const e2e: number[] = [];
    let roundsAboveZero = 0;
    for (const h of inWindow) {
      const round = decided[0]!.get(h)!.round;
      if (round > 0) roundsAboveZero++;
      const proposed = proposedAt.get(`${h}/${round}`);
      let first = Number.POSITIVE_INFINITY;
      for (const d of decided) {
        const x = d.get(h);
        if (!x) continue;
        first = Math.min(first, x.t);
        if (proposed !== undefined) latency.push(x.t - proposed);
      }
      const sub = submittedAt.get(h);
      if (sub !== undefined && Number.isFinite(first)) e2e.push(first - sub);
    }
    const seconds = (t1 - t0) / 1000;
    return {
      case: name,
      supervisors: n,
      verifier,
      seconds,
      heights: inWindow.length,
      blocksPerSecond: +(inWindow.length / seconds).toFixed(2),
      transactions,
      transactionsPerSecond: +(transactions / seconds).toFixed(1),
      commitLatencyMs: {
        p50: percentile(latency, 50),
        p99: percentile(latency, 99),
        samples: latency.length,
      },
      candidateToFinalMs: { p50: percentile(e2e, 50), p99: percentile(e2e, 99), samples: e2e.length },
      roundsAboveZero,
      minerErrors,
      txRejections: {},
    };
  } finally {
    await load?.stop().catch(() => {});
    await miner?.stop().catch(() => {});
    for (const p of procs)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exit));
    await client.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const machine = machineInfo();
console.log(`consensus over libp2p on loopback — ${describeMachine(machine)}`);
console.log(
  `timeouts (ms): propose ${TIMEOUTS.propose.baseMs}+${TIMEOUTS.propose.deltaMs}r, prevote ${TIMEOUTS.prevote.baseMs}+${TIMEOUTS.prevote.deltaMs}r, precommit ${TIMEOUTS.precommit.baseMs}+${TIMEOUTS.precommit.deltaMs}r; re-gossip after ${GOSSIP_MS} ms without progress; ${SECONDS} s measured per case`,
);
const results: CaseResult[] = [];
for (const c of CASES) {
  process.stdout.write(`running ${c}…\n`);
  try {
    results.push(await runCase(c));
  } catch (e) {
    console.log(`  ${c} failed: ${(e as Error).message}`);
  }
}
console.log('');
console.log('case    n  verifier  blocks/s  tx/s    commit p50/p99 ms  candidate→final p50/p99 ms  rounds>0');
for (const r of results) {
  console.log(
    `${r.case.padEnd(7)} ${String(r.supervisors).padStart(2)}  ${r.verifier.padEnd(8)}  ${String(r.blocksPerSecond).padStart(8)}  ${String(r.transactionsPerSecond).padStart(6)}  ${`${r.commitLatencyMs.p50}/${r.commitLatencyMs.p99}`.padStart(17)}  ${`${r.candidateToFinalMs.p50}/${r.candidateToFinalMs.p99}`.padStart(26)}  ${r.roundsAboveZero}/${r.heights}`,
  );
}
const out = {
  date: new Date().toISOString(),
  machine,
  timeouts: TIMEOUTS,
  gossipMs: GOSSIP_MS,
  seconds: SECONDS,
  results,
};
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const stamp = out.date.replace(/[:.]/g, '-');
writeFileSync(join(dir, `consensus-net-${stamp}.json`), `${JSON.stringify(out, null, 2)}\n`);
writeFileSync(join(dir, 'consensus-net-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
console.log(`\nwrote bench/results/consensus-net-${stamp}.json`);

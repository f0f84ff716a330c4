/**
 * State tree benchmark (Node):
 * `node --import tsx bench/state-tree.ts [--sizes 10000,1000000] [--min-ms 1500] [--rounds 3] [--no-build]`.
 * Measures block application cost per transaction (2 deletes + 2 inserts; 250 per block = 1,000
 * changes) at each size with noble's SHA-256 and node:crypto's (createHash, and the one-shot
 * crypto.hash); build and reload time at the largest size; proof sizes and verify time; the memory of
 * a tree of the largest size. Prints tables; writes bench/results/state-tree-latest.json (+ a dated
 * copy) with machine details and load averages.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sha256 } from '@noble/hashes/sha2.js';
import { StateProof, StateTree } from '../shared/state/state-tree.ts';
import {
  clearStateTreeFixtures,
  entriesOf,
  fixture,
  type NamedHasher,
  randomEntries,
  stateTreeCases,
} from './cases/state-tree.ts';
import { type BenchResult, formatTable, measure } from './harness.ts';
import { describeMachine, machineInfo } from './machine.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const collect = async () => {
  // Array buffers are released after a full GC and a turn of the event loop; settle first.
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
};

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const sizes = (opt('sizes') ?? '10000,1000000').split(',').map(Number);
const minMs = Number(opt('min-ms') ?? 1500);
const buildCases = !args.includes('--no-build');
const rounds = Number(opt('rounds') ?? 3);
const largest = Math.max(...sizes);

const noble: NamedHasher = { name: 'noble', hash: sha256 };
const nodeCrypto: NamedHasher = {
  name: 'node:crypto',
  hash: (data: Uint8Array) => createHash('sha256').update(data).digest(),
};
/** One-shot `crypto.hash` (Node ≥ 21.7): no Hash object per call. */
const nodeOneShot: NamedHasher = {
  name: 'node:crypto.hash',
  hash: (data: Uint8Array) => oneShotHash('sha256', data, 'buffer'),
};
const hashers = [noble, nodeCrypto, nodeOneShot];

const machine = { ...machineInfo(), loadAverageAfter: 0 };
console.log(`machine: ${describeMachine(machine)}`);
console.log(`${machine.runtime}; sizes ${sizes.join(', ')}; ${minMs} ms per case\n`);

// 1. Memory of a tree at the largest size (measured first, with nothing else cached).
const mib = (b: number) => +(b / 2 ** 20).toFixed(1);
await collect();
const m0 = process.memoryUsage();
let memTree: StateTree | null = StateTree.fromEntries(entriesOf(randomEntries(largest)), {
  hash: nodeCrypto.hash,
});
await collect();
const m1 = process.memoryUsage();
const stats = memTree.stats();
const memory = {
  entries: largest,
  internalNodes: stats.internalNodes,
  arenaMiB: mib(stats.arenaBytes),
  heapUsedDeltaMiB: mib(m1.heapUsed - m0.heapUsed),
  arrayBuffersDeltaMiB: mib(m1.arrayBuffers - m0.arrayBuffers),
  totalDeltaMiB: mib(m1.heapUsed - m0.heapUsed + (m1.arrayBuffers - m0.arrayBuffers)),
  rssDeltaMiB: mib(m1.rss - m0.rss),
  bytesPerEntry: Math.round((m1.heapUsed - m0.heapUsed + (m1.arrayBuffers - m0.arrayBuffers)) / largest),
};
console.log('memory at', largest, 'entries:', memory);
memTree = null;
await collect();

// 2. Proof sizes (inclusion for present keys, absence for random keys).
const proofStats: Record<string, unknown>[] = [];
for (const size of sizes) {
  const f = fixture(size, nodeCrypto);
  const sample = Math.min(size, 10_000);
  for (const present of [true, false]) {
    let total = 0;
    let max = 0;
    let depth = 0;
    for (let i = 0; i < sample; i++) {
      const j = (i * 7919) % f.count;
      const key = present ? f.live.slice(j * 32, j * 32 + 32) : f.rng.bytes32();
      const p = f.tree.prove(key);
      const n = StateProof.encode(p).length;
      total += n;
      max = Math.max(max, n);
      depth += p.emptySiblings.bitLen;
    }
    proofStats.push({
      entries: size,
      proof: present ? 'inclusion' : 'absence',
      sampled: sample,
      meanBytes: +(total / sample).toFixed(1),
      maxBytes: max,
      meanDepth: +(depth / sample).toFixed(2),
    });
  }
}
console.table(proofStats);

// 3. Timed cases.
const results: BenchResult[] = [];
for (const c of stateTreeCases({ sizes, hashers, buildCases })) {
  // Other processes make single timings noisy: the fastest of `rounds` rounds is kept. One-shot
  // builds are timed once (after one warm-up build).
  let r: BenchResult | undefined;
  for (let i = 0; i < (c.group === 'state-tree build' ? 1 : rounds); i++) {
    const round = await measure(c, c.group === 'state-tree build' ? 1 : minMs / rounds);
    if (r === undefined || round.msPerOp < r.msPerOp) r = round;
  }
  if (r === undefined) continue;
  results.push(r);
  console.log(`  ${r.group}/${r.name} [${r.impl}]: ${r.msPerOp.toFixed(4)} ms/op`);
}
clearStateTreeFixtures();
console.log(`\n${formatTable(results)}`);

const perKey = results
  .filter((r) => r.name.endsWith('per tx'))
  .map((r) => ({
    case: r.name,
    impl: r.impl,
    msPerTx: +r.msPerOp.toFixed(4),
    usPerChangedKey: +((r.msPerOp * 1000) / 4).toFixed(1),
    msPerBlockOf1000Changes: +(r.msPerOp * 250).toFixed(2),
  }));
console.table(perKey);

machine.loadAverageAfter = +loadavg()[0]!.toFixed(2);
const report = {
  kind: 'state-tree',
  date: new Date().toISOString(),
  machine,
  minMsPerCase: minMs,
  method: `fastest of ${rounds} rounds of ${minMs / rounds} ms per case (builds: one timed run after a warm-up)`,
  block: { transactions: 250, changes: 1000, perTransaction: '2 deletes + 2 inserts' },
  memory,
  proofs: proofStats,
  perChangedKey: perKey,
  results,
};
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `state-tree-${report.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(dir, 'state-tree-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nwrote ${file}`);

/**
 * Portable micro-benchmark harness: the same cases run under Node and inside Chromium (the bench
 * page bundles them). A case is warmed up, then run until `minMs` of wall time has passed.
 */
export interface BenchCase {
  /** Table group, e.g. 'ed25519'. */
  group: string;
  /** Operation, e.g. 'verify'. */
  name: string;
  /** Implementation or parameters, e.g. 'noble', 'node:crypto', 't=3'. */
  impl: string;
  /** Logical operations performed by one call of `run` (e.g. 100 for a batch of 100). */
  opsPerRun?: number;
  setup?: () => Promise<void> | void;
  run: () => Promise<unknown> | unknown;
}

export interface BenchResult {
  group: string;
  name: string;
  impl: string;
  runs: number;
  opsPerSec: number;
  msPerOp: number;
}

export async function measure(c: BenchCase, minMs = 800, maxRuns = 100_000): Promise<BenchResult> {
  await c.setup?.();
  await c.run(); // warm-up: JIT, caches, lazy precomputation
  let runs = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs && runs < maxRuns) {
    await c.run();
    runs++;
    elapsed = performance.now() - start;
  }
  const ops = runs * (c.opsPerRun ?? 1);
  return {
    group: c.group,
    name: c.name,
    impl: c.impl,
    runs,
    opsPerSec: (ops * 1000) / elapsed,
    msPerOp: elapsed / ops,
  };
}

export function formatTable(results: BenchResult[]): string {
  const header = ['group', 'operation', 'impl', 'ops/s', 'ms/op', 'runs'];
  const rows = results.map((r) => [
    r.group,
    r.name,
    r.impl,
    r.opsPerSec >= 100 ? r.opsPerSec.toFixed(0) : r.opsPerSec.toFixed(2),
    r.msPerOp.toFixed(r.msPerOp < 1 ? 4 : 2),
    String(r.runs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

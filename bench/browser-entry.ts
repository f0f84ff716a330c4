/** Bundled into the Chromium bench page by bench/run.ts: runs the portable cases, reports JSON. */
import { type BenchResult, measure } from './harness.ts';
import { portableCases } from './portable-cases.ts';

declare global {
  interface Window {
    runBench(filter: string[], minMs: number): Promise<BenchResult[]>;
  }
}

window.runBench = async (filter, minMs) => {
  const results: BenchResult[] = [];
  for (const c of await portableCases()) {
    if (filter.length > 0 && !filter.includes(c.group)) continue;
    results.push(await measure(c, minMs));
  }
  return results;
};

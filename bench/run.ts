/**
 * `npm run bench`: runs the benchmark cases in Node and in headless Chromium, prints one table per
 * runtime and writes the numbers with machine and runtime details to bench/results/<name>.json.
 * Options: `--only node|browser`, `--group ed25519,bls,...`, `--min-ms N` (time per case).
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { nodeCryptoEd25519 } from '../node-common/ed25519-node.ts';
import { chromiumArgs, chromiumPath } from '../tests/harness/chromium.ts';
import { type BenchResult, formatTable, measure } from './harness.ts';
import { describeMachine, machineInfo } from './machine.ts';
import { portableCases } from './portable-cases.ts';

const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = opt('only');
const groups = (opt('group') ?? '').split(',').filter(Boolean);
const minMs = Number(opt('min-ms') ?? 1000);

async function runNode(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const c of await portableCases([nodeCryptoEd25519])) {
    if (groups.length > 0 && !groups.includes(c.group)) continue;
    const r = await measure(c, minMs);
    results.push(r);
    console.log(`  node     ${r.group}/${r.name} [${r.impl}]: ${r.opsPerSec.toFixed(1)} ops/s`);
  }
  return results;
}

async function runBrowser(): Promise<{ results: BenchResult[]; version: string }> {
  const bundle = await esbuild.build({
    entryPoints: [join(root, 'bench/browser-entry.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['browser'],
    write: false,
    logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.text;
  const html =
    '<!doctype html><meta charset="utf-8"><title>bench</title><script type="module" src="/bench.js"></script>';
  // Served on loopback: WebCrypto needs a secure context, and http://127.0.0.1 is one.
  const server = createServer((req, res) => {
    if (req.url === '/bench.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`  [chromium] ${m.text()}`));
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => typeof window.runBench === 'function');
    const results = await page.evaluate(([f, ms]) => window.runBench(f, ms), [groups, minMs] as const);
    for (const r of results)
      console.log(`  chromium ${r.group}/${r.name} [${r.impl}]: ${r.opsPerSec.toFixed(1)} ops/s`);
    return { results, version: browser.version() };
  } finally {
    await browser.close();
    server.close();
  }
}

const machine = machineInfo();
console.log(`machine: ${describeMachine(machine)}`);
const report: Record<string, unknown> = {
  kind: 'crypto',
  date: new Date().toISOString(),
  machine,
  minMsPerCase: minMs,
};

if (only === undefined || only === 'node') {
  console.log(`\nNode ${process.version} (${process.arch})`);
  const results = await runNode();
  console.log(`\n${formatTable(results)}`);
  report['node'] = { runtime: `node ${process.version}`, results };
}
if (only === undefined || only === 'browser') {
  console.log('\nChromium (headless, no GPU)');
  const { results, version } = await runBrowser();
  console.log(`\nChromium ${version}\n${formatTable(results)}`);
  report['chromium'] = { runtime: `chromium ${version}`, results };
}

const dir = join(root, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `crypto-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(dir, 'crypto-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nwrote ${file}`);

/**
 * `node --import tsx bench/pouw.ts`: the PoUW benchmarks, each a ratio measured in one run.
 *   1. Overhead: a full PoUW iteration ÷ a plain TF.js SGD step, same backend, model and batches,
 *      in Node (cpu, wasm) and in headless Chromium inside a Web Worker (wasm, webgl, webgpu; the
 *      GPU backends run on SwiftShader, a CPU emulation, so their absolute speed means nothing).
 *      Variants: everything on the training thread, or the protocol work (checks, hashes, signing,
 *      grinding) on a mining worker thread, and the old miner-side residual (engine.gradient + one
 *      JS pass in the miner); plus the engine's lattice step alone. Wall-clock, and under Node
 *      also the training thread's CPU time (process.threadCpuUsage: its critical path when the
 *      mining worker has a core of its own) and the whole process's CPU time. `--runs N` repeats the Node measurement N times and reports medians.
 *   2. Communication: bytes per IT_RES ÷ bytes of a dense fp32 gradient, beside the held-out
 *      accuracy of a PoUW run (3 miners) and of plain SGD trained for the same epochs.
 *   3. Steps per second per backend.
 *   4. Verification: one block's replay (verifyCandidate) ÷ one training step.
 * Prints a table per part and writes bench/results/pouw-latest.json (and a dated copy).
 * Options: --only node|browser|train, --steps N, --rounds N, --runs N, --train-epochs N (0 skips training),
 *          --backends cpu,wasm (Node) and --browser-backends wasm,webgl,webgpu.
 *
 * (Mining on a worker thread: tests/sim/mining-worker.ts.)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { nodeCryptoEd25519 } from '../node-common/ed25519-node.ts';
import { testAccount } from '../shared/chain/testkit.ts';
import { verifyCandidate } from '../shared/pouw/verify.ts';
import { chromiumArgs, chromiumPath } from '../tests/harness/chromium.ts';
import { type NodeMiningService, nodeDigest, nodeMiningService } from '../tests/sim/mining-worker.ts';
import { mnistSplit, runPouwTraining, tunedMnistTask } from '../tests/sim/pouw-training.ts';
import { selectBackend } from '../web-worker-node/trainer/backends-node.ts';
import { describeMachine, machineInfo } from './machine.ts';
import {
  benchTask,
  CHAIN,
  formatOverhead,
  type MiningVariant,
  measureOverhead,
  median,
  type OverheadResult,
  probeFlushInStep,
} from './pouw-cases.ts';

await main();

function nodeWorkerVariant(residual: 'device' | 'host'): MiningVariant {
  const services: NodeMiningService[] = [];
  return {
    name: `PoUW, ${residual === 'host' ? 'miner-side residual, ' : ''}mining worker`,
    residual,
    create(o) {
      const service = nodeMiningService(o);
      services.push(service);
      return service;
    },
    close() {
      for (const s of services.splice(0)) void s.terminate();
    },
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const only = opt('only');
  const steps = Number(opt('steps') ?? 20);
  const rounds = Number(opt('rounds') ?? 5);
  const runs = Number(opt('runs') ?? 1);
  const trainEpochs = Number(opt('train-epochs') ?? tunedMnistTask(new Uint8Array(32)).epochs);
  const nodeBackends = (opt('backends') ?? 'wasm,cpu').split(',').filter(Boolean);
  const browserBackends = (opt('browser-backends') ?? 'wasm,webgl,webgpu').split(',').filter(Boolean);
  const machine = machineInfo();
  console.log(`machine: ${describeMachine(machine)}`);
  await selectBackend({ force: 'wasm' });
  const flushInStep = await probeFlushInStep('wasm');
  console.log(
    `engine.step(batch, flush) flushes on the device: ${flushInStep} (else the miner emulates the flush)`,
  );
  const report: Record<string, unknown> = {
    kind: 'pouw',
    date: new Date().toISOString(),
    machine,
    flushInStep,
  };

  const split = mnistSplit(CHAIN);
  const def = benchTask({ datasetCommitment: split.commitment, trainSize: split.train.count });
  const identities = (await Promise.all([0, 1, 2].map((i) => testAccount(i, nodeCryptoEd25519)))).map(
    (a) => ({ secretKey: a.secretKey, publicKey: a.publicKey }),
  ) as [
    { secretKey: Uint8Array; publicKey: Uint8Array },
    { secretKey: Uint8Array; publicKey: Uint8Array },
    { secretKey: Uint8Array; publicKey: Uint8Array },
  ];

  // 1 + 3. Overhead and steps per second, Node.
  const overhead: OverheadResult[] = [];
  if (only === undefined || only === 'node') {
    for (const backend of nodeBackends) {
      await selectBackend({ force: backend as 'wasm' | 'cpu' });
      const slow = backend === 'cpu';
      for (let run = 0; run < runs; run++) {
        const workers = [nodeWorkerVariant('device'), nodeWorkerVariant('host')];
        console.log(
          `\nNode ${process.version}, ${backend}, run ${run + 1}/${runs}: ${rounds} rounds of ${slow ? Math.ceil(steps / 4) : steps} steps per variant, interleaved`,
        );
        const r = await measureOverhead({
          backend,
          def,
          train: split.train,
          ed: nodeCryptoEd25519,
          digest: nodeDigest,
          identities,
          variants: [
            { name: 'PoUW, all on the training thread', residual: 'device' },
            workers[0]!,
            workers[1]!,
          ],
          flushInStep,
          steps: slow ? Math.ceil(steps / 4) : steps,
          rounds,
          peers: 2,
          peerMapEntries: 3700,
          now: () => performance.now(),
          cpu: () => {
            const u = process.cpuUsage();
            return (u.user + u.system) / 1000;
          },
          busy: () => {
            const u = process.threadCpuUsage();
            return (u.user + u.system) / 1000;
          },
          log: (l) => console.log(l),
        });
        console.log(`\n${formatOverhead(r, `Node ${process.version}`)}`);
        overhead.push(r);
      }
    }
    report['node'] = { runtime: `node ${process.version}`, overhead };
  }

  // 1 + 3 in Chromium, inside a Web Worker.
  if (only === undefined || only === 'browser') {
    const browser = await runBrowser(browserBackends, { steps, rounds });
    report['chromium'] = browser;
  }

  // 2 + 4. Communication beside accuracy, and verification cost, from a short real training run.
  if ((only === undefined || only === 'train') && trainEpochs > 0) {
    await selectBackend({ force: 'wasm' });
    const tdef = tunedMnistTask(split.commitment, { epochs: trainEpochs });
    console.log(
      `\nTraining run: 3 miners, wasm, ${trainEpochs} epochs (communication, accuracy, verification)`,
    );
    const run = await runPouwTraining({ chainId: CHAIN, def: tdef, split, backend: 'wasm', flushInStep });
    const ctx = await run.verifyContext();
    const plainStepMs =
      (run.plainSeconds! * 1000) / (trainEpochs * Math.floor(tdef.trainSize / tdef.batchSize));
    const verifications = [];
    for (const c of run.candidates.slice(0, 3)) {
      const v = await verifyCandidate(c, ctx);
      verifications.push({
        iteration: v.iteration,
        stepsReplayed: v.stepsReplayed,
        ms: v.elapsedMs!,
        gradientMs: v.gradientMs!,
      });
    }
    ctx.engine.dispose();
    const meanVerifyMs = verifications.reduce((s, v) => s + v.ms, 0) / Math.max(1, verifications.length);
    const meanSteps =
      verifications.reduce((s, v) => s + v.stepsReplayed, 0) / Math.max(1, verifications.length);
    const train = {
      backend: 'wasm',
      epochs: trainEpochs,
      batchSize: tdef.batchSize,
      pouwAccuracies: run.accuracies,
      plainAccuracy: run.plainAccuracy,
      bytesPerItRes: run.bytesPerItRes,
      denseGradientBytes: run.denseGradientBytes,
      communicationRatio: run.bytesPerItRes / run.denseGradientBytes,
      mapEntriesPerIteration: run.mapEntriesPerIteration,
      candidates: run.candidates.length,
      plainStepMs,
      verifications,
      verifyOverStep: meanVerifyMs / plainStepMs,
      verifyOverStepPerReplayedStep: meanVerifyMs / meanSteps / plainStepMs,
    };
    console.log(
      `\nCommunication (wasm, ${trainEpochs} epochs, B=${tdef.batchSize}): ${train.bytesPerItRes.toFixed(0)} bytes per IT_RES (${train.mapEntriesPerIteration.toFixed(0)} map entries) ÷ ${train.denseGradientBytes} bytes dense fp32 = ${train.communicationRatio.toFixed(4)}\n` +
        `  held-out accuracy: PoUW ${run.accuracies.map((a) => a.toFixed(4)).join(' / ')}, plain SGD ${run.plainAccuracy!.toFixed(4)}\n` +
        `Verification (wasm): ${verifications.map((v) => `${v.ms.toFixed(0)} ms for ${v.stepsReplayed} steps`).join(', ')}; ` +
        `replay ÷ one plain step (${plainStepMs.toFixed(1)} ms) = ${train.verifyOverStep.toFixed(2)} (${train.verifyOverStepPerReplayedStep.toFixed(2)} per replayed step)`,
    );
    report['training'] = train;
  }

  printSummary(report);
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const text = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(join(dir, `pouw-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), text);
  writeFileSync(join(dir, 'pouw-latest.json'), text);
  console.log('\nwrote bench/results/pouw-latest.json');
  process.exit(0);
}

function printSummary(report: Record<string, unknown>): void {
  const rows: string[][] = [
    [
      'runtime',
      'backend',
      'model',
      'batch',
      'runs',
      'plain ms/step',
      'plain steps/s',
      'measured',
      'ms/iter',
      'wall×',
      'busy×',
      'CPU×',
    ],
  ];
  const fmt = (x: number | undefined) => (x === undefined ? '' : x.toFixed(3));
  const med = (xs: (number | undefined)[]) => {
    const ok = xs.filter((x): x is number => x !== undefined);
    return ok.length === 0 ? undefined : median(ok);
  };
  const add = (runtime: string, list: OverheadResult[] | undefined, note: (b: string) => string) => {
    // Medians over the runs of one backend (each run's ratios are medians over its rounds).
    const byBackend = new Map<string, OverheadResult[]>();
    for (const r of list ?? []) byBackend.set(r.backend, [...(byBackend.get(r.backend) ?? []), r]);
    for (const [backend, rs] of byBackend) {
      for (const [i, v] of rs[0]!.variants.entries()) {
        if (i === 0) continue;
        const vs = rs.map((r) => r.variants[i]!);
        const plainMs = median(rs.map((r) => r.plainMsPerStep));
        rows.push([
          runtime,
          `${backend}${note(backend)}`,
          'MLP 784-128-64-10',
          String(rs[0]!.batchSize),
          String(rs.length),
          plainMs.toFixed(2),
          (1000 / plainMs).toFixed(1),
          v.name,
          median(vs.map((x) => x.msPerStep)).toFixed(2),
          fmt(med(vs.map((x) => x.medianRoundRatio))),
          fmt(med(vs.map((x) => x.busyRatio))),
          fmt(med(vs.map((x) => x.cpuRatio))),
        ]);
      }
    }
  };
  add('node', (report['node'] as { overhead: OverheadResult[] } | undefined)?.overhead, () => '');
  const ch = report['chromium'] as { overhead: OverheadResult[] } | undefined;
  add('chromium', ch?.overhead, (b) => (b === 'webgl' || b === 'webgpu' ? ' (SwiftShader)' : ''));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(
    '\nPoUW overhead = PoUW iteration ÷ plain TF.js SGD step (same backend, model, batches; target ≤ 1.10), medians:' +
      "\n  wall× = wall-clock (the training thread's critical path); busy× = training thread busy time;" +
      '\n  CPU× = process CPU time, all threads (Node only)',
  );
  for (const r of rows) console.log(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`);
  const t = report['training'] as Record<string, number> | undefined;
  if (t !== undefined) {
    console.log(
      `  communication: ${t['bytesPerItRes']!.toFixed(0)} B per IT_RES ÷ ${t['denseGradientBytes']} B dense fp32 gradient = ${t['communicationRatio']!.toFixed(4)}` +
        `; verification: one block's replay ÷ one plain wasm step = ${t['verifyOverStep']!.toFixed(2)}`,
    );
  }
}

async function runBrowser(backends: string[], o: { steps: number; rounds: number }): Promise<unknown> {
  const root = join(import.meta.dirname, '..');
  const build = (entry: string) =>
    esbuild.build({
      entryPoints: [join(root, entry)],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      conditions: ['browser'],
      write: false,
      logLevel: 'silent',
    });
  const worker = (await build('bench/pouw-browser.ts')).outputFiles[0]!.text;
  const page = `<!doctype html><meta charset="utf-8"><title>pouw bench</title><script type="module">
    const w = new Worker('/worker.js', { type: 'module', name: 'pouw-bench' });
    window.runPouwBench = (opts) => new Promise((resolve, reject) => {
      w.onmessage = (e) => { if (e.data.log) console.log(e.data.log); else if (e.data.error) reject(new Error(e.data.error)); else resolve(e.data.result); };
      w.onerror = (e) => reject(new Error(e.message));
      w.postMessage(opts);
    });
  </script>`;
  const wasmDir = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/worker.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(worker);
    else if (url === '/data/mnist-10k.u8.gz')
      res
        .writeHead(200, { 'content-type': 'application/octet-stream' })
        .end(readFileSync(join(root, 'public/data/mnist-10k.u8.gz')));
    else if (url.startsWith('/wasm/') && url.endsWith('.wasm'))
      res
        .writeHead(200, { 'content-type': 'application/wasm' })
        .end(readFileSync(join(wasmDir, url.slice('/wasm/'.length).replace(/[^a-z0-9.-]/gi, ''))));
    else res.writeHead(200, { 'content-type': 'text/html' }).end(page);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  try {
    const p = await browser.newPage();
    p.on('console', (m) => console.log(`  [chromium] ${m.text()}`));
    await p.goto(`http://127.0.0.1:${port}/`);
    await p.waitForFunction(
      () => typeof (window as unknown as { runPouwBench?: unknown }).runPouwBench === 'function',
    );
    const overhead: OverheadResult[] = [];
    let gpu: unknown;
    for (const backend of backends) {
      console.log(`\nChromium ${browser.version()}, Web Worker, ${backend}`);
      const slow = backend !== 'wasm';
      const result = (await p.evaluate(
        (opts) => (window as unknown as { runPouwBench(o: unknown): Promise<unknown> }).runPouwBench(opts),
        {
          backend,
          steps: slow ? Math.max(2, Math.ceil(o.steps / 10)) : o.steps,
          rounds: slow ? Math.min(o.rounds, 2) : o.rounds,
        },
      )) as { overhead: OverheadResult; gpu: unknown };
      gpu = result.gpu;
      console.log(
        `\n${formatOverhead(result.overhead, `Chromium ${browser.version()} Web Worker${slow ? ' (SwiftShader: CPU-emulated GPU)' : ''}`)}`,
      );
      overhead.push(result.overhead);
    }
    return { runtime: `chromium ${browser.version()}`, gpu, overhead };
  } finally {
    await browser.close();
    server.close();
  }
}

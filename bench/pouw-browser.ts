/**
 * Web Worker entry of the Chromium PoUW benchmark (bundled by bench/pouw.ts). Named 'pouw-bench' it
 * runs `measureOverhead` on the requested TF.js backend with MNIST fetched from the bench server;
 * named 'pouw-mining' (spawned by the former) it serves the mining service, the browser twin of the
 * Node worker thread.
 */
import { testAccount } from '../shared/chain/testkit.ts';
import { defaultEd25519 } from '../shared/crypto/ed25519.ts';
import {
  connectMiningPort,
  type MiningService,
  type PortLike,
  serveMiningPort,
  webCryptoDigest,
} from '../shared/pouw/mining.ts';
import { datasetFromImages } from '../shared/pouw/verify-fixtures.ts';
import { MNIST_TRAIN_SIZE } from '../web-worker-node/data/mnist.ts';
import { loadMnistBrowser } from '../web-worker-node/data/mnist-browser.ts';
import { describeGpu, selectBackend } from '../web-worker-node/trainer/backends-browser.ts';
import type { BackendName } from '../web-worker-node/trainer/engine-tfjs.ts';
import { benchTask, type MiningVariant, measureOverhead, probeFlushInStep } from './pouw-cases.ts';

const scope = globalThis as unknown as PortLike & { name: string };
const digest = webCryptoDigest(crypto.subtle);

/** A macrotask yield (setTimeout clamps to 4 ms once nested; a MessageChannel does not). */
function macrotaskYield(): () => Promise<void> {
  const channel = new MessageChannel();
  const waiting: (() => void)[] = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      channel.port2.postMessage(0);
    });
}

if (scope.name === 'pouw-mining') {
  serveMiningPort(scope, { digest, ed: defaultEd25519(), yieldToEvents: macrotaskYield() });
} else {
  const log = (line: string) => scope.postMessage({ log: line });
  scope.onmessage = (ev) => {
    const o = ev.data as { backend: BackendName; steps: number; rounds: number };
    run(o).then(
      (result) => scope.postMessage({ result }),
      (e: unknown) =>
        scope.postMessage({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }),
    );
  };

  async function run(o: { backend: BackendName; steps: number; rounds: number }) {
    const choice = await selectBackend({ force: o.backend, wasmPaths: `${location.origin}/wasm/` });
    log(
      `backend ${choice.backend} (self-test error ${choice.selfTestError.toExponential(2)}); skipped: ${JSON.stringify(choice.skipped)}`,
    );
    const flushInStep = await probeFlushInStep(o.backend);
    const mnist = await loadMnistBrowser(`${location.origin}/data/mnist-10k.u8.gz`);
    const full = datasetFromImages(mnist);
    const train = {
      examples: full.examples.slice(0, MNIST_TRAIN_SIZE * (full.featureBytes + 1)),
      count: MNIST_TRAIN_SIZE,
      featureBytes: full.featureBytes,
    };
    const ed = await defaultEd25519();
    const identities = (await Promise.all([0, 1, 2].map((i) => testAccount(i, ed)))).map((a) => ({
      secretKey: a.secretKey,
      publicKey: a.publicKey,
    }));
    const workers: Worker[] = [];
    const nested = (residual: 'device' | 'host'): MiningVariant => ({
      name: `PoUW, ${residual === 'host' ? 'miner-side residual, ' : ''}mining worker`,
      residual,
      create(opts): MiningService {
        const w = new Worker(new URL(import.meta.url), { type: 'module', name: 'pouw-mining' });
        workers.push(w);
        return connectMiningPort(w as unknown as PortLike, opts);
      },
      close() {
        for (const w of workers.splice(0)) w.terminate();
      },
    });
    const overhead = await measureOverhead({
      backend: o.backend,
      def: benchTask({ trainSize: train.count }),
      train,
      ed,
      digest,
      identities: identities as [(typeof identities)[0], (typeof identities)[0], (typeof identities)[0]],
      variants: [
        { name: 'PoUW, all on the training thread', residual: 'device' },
        nested('device'),
        nested('host'),
      ],
      flushInStep,
      steps: o.steps,
      rounds: o.rounds,
      peers: 2,
      peerMapEntries: 3700,
      now: () => performance.now(),
      log,
    });
    return { overhead, gpu: await describeGpu(), ed25519: ed.name, flushInStep };
  }
}

/**
 * Cross-runtime verification (DESIGN §4.5, ADR 0009): honest work produced in Chromium, inside the
 * trainer Web Worker on WebGPU, WebGL and WASM (the device keeps n and r; `step()` thresholds on the
 * device), must verify on the NODE verifier with TF.js cpu and wasm. The browser sends each
 * candidate and its message history to the test runner's `pouw-verify-*` commands
 * (web-test-runner.config.mjs → tests/harness/verify-command.ts) and checks the verdicts; a forged
 * candidate from the same run must be rejected there by name.
 */
import { base64 } from '@scure/base';
import { after, assert, before, describe, it } from '#test';
import { loadMnistBrowser } from '../../web-worker-node/data/mnist-browser.ts';
import { spawnTrainerWorker } from '../../web-worker-node/trainer/worker-client.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { mnistMlpTask, type TaskDefinition } from './task.ts';
import {
  bundleOf,
  type CommittedSplit,
  candidateAt,
  datasetFromImages,
  forge,
  runHonestMiners,
  splitCommitted,
  VerifyBundle,
} from './verify-fixtures.ts';

const CHAIN = 'pouw-test';
const SPLIT = { segments: 10, testPermille: 300, randomness: new Uint8Array(32).fill(3) };
const ITERATIONS = 8;

type Verdict =
  | {
      backend: string;
      ok: true;
      stepsReplayed: number;
      inBandFlips: number;
      maxDeviation: number;
      minMargin: number;
      maxLossDeviation: number;
    }
  | { backend: string; ok: false; code: string; message: string; detail: Record<string, unknown> };

/** executeServerCommand of @web/test-runner-commands, without its literal dynamic import (the bundler would try to resolve it). */
async function serverCommand<T>(command: string, payload: unknown): Promise<T> {
  const socketModule = '/__web-dev-server__web-socket.js';
  const { sendMessageWaitForResponse } = (await import(/* @vite-ignore */ socketModule)) as {
    sendMessageWaitForResponse(m: unknown): Promise<{ executed: boolean; result: T }>;
  };
  const sessionId = new URL(globalThis.location.href).searchParams.get('wtr-session-id');
  const res = await sendMessageWaitForResponse({ type: 'wtr-command', sessionId, command, payload });
  if (!res.executed) throw new Error(`server command ${command} is not installed`);
  return res.result;
}

/** Runs the Node verifier on a bundle: start a job, then long-poll (each poll answers within 10 s). */
async function verifyOnNode(payload: {
  bundle: string;
  backends: string[];
  record?: string;
}): Promise<Verdict[]> {
  const id = await serverCommand<number>('pouw-verify-start', { chainId: CHAIN, ...payload });
  for (;;) {
    const r = await serverCommand<{ done: boolean; result?: Verdict[]; error?: string }>('pouw-verify-poll', {
      id,
    });
    if (!r.done) continue;
    if (r.error !== undefined) throw new Error(`Node verifier failed: ${r.error}`);
    return r.result!;
  }
}

let split: CommittedSplit;
let task: TaskDefinition;

describe('browser work verifies on the Node verifier', () => {
  before(async () => {
    const full = datasetFromImages(await loadMnistBrowser('/public/data/mnist-10k.u8.gz'));
    split = splitCommitted(CHAIN, full, SPLIT.segments, SPLIT.testPermille / 1000, SPLIT.randomness);
    task = mnistMlpTask({
      trainSize: split.train.count,
      datasetCommitment: split.commitment,
      znbLead: 2,
      segmentLength: 4,
    });
  });

  after(() => undefined);

  for (const backend of ['webgpu', 'webgl', 'wasm'] as const) {
    it(`honest work on ${backend} (trainer worker) verifies on Node cpu and wasm; a forgery from it does not`, async () => {
      const worker = spawnTrainerWorker(
        new URL('/web-worker-node/trainer/trainer.worker.ts', globalThis.location.origin),
      );
      try {
        const choice = await worker.selectBackend({ force: backend });
        assert.equal(choice.backend, backend);
        const engines = [
          await worker.createEngine(task, { backend }),
          await worker.createEngine(task, { backend }),
        ];
        const run = await runHonestMiners({
          chainId: CHAIN,
          task,
          train: split.train,
          iterations: ITERATIONS,
          ed25519: nobleEd25519,
          // WebGL on SwiftShader compiles a scatter shader per map length in applyMap (~90 s each):
          // peer maps go in through setState there.
          miners: engines.map((engine, i) => ({
            engine: {
              kind: 'step',
              engine,
              deviceFlush: false,
              peerUpdates: backend === 'webgl' ? 'setState' : 'applyMap',
            },
            secretKey: new Uint8Array(32).fill(i + 1),
          })),
        });
        for (const e of engines) e.dispose();
        // A mid-segment iteration and the segment's flush iteration, for each miner.
        for (const m of [0, 1]) {
          for (const L of [6, 7]) {
            const c = await candidateAt(run, m, L);
            const bundle = base64.encode(VerifyBundle.encode(bundleOf(run, c, run.history, SPLIT, backend)));
            const verdicts = await verifyOnNode({
              bundle,
              backends: ['cpu', 'wasm'],
              record: `${backend}/miner${m}/L${L}`,
            });
            assert.equal(verdicts.length, 2);
            for (const v of verdicts) {
              assert.ok(
                v.ok,
                `${backend} work, miner ${m}, iteration ${L}, Node ${v.backend} verifier: ${v.ok ? '' : `${v.code} ${v.message}`}`,
              );
              assert.equal(v.stepsReplayed, (L % 4) + 1);
            }
          }
        }
        // The same work with the previous iteration's map in place of the lucky one's.
        const forged = await forge(run, 0, 6, (b) => ({ ...b, map: Array.from(run.steps[0]![5]!.map) }));
        const bundle = base64.encode(
          VerifyBundle.encode(bundleOf(run, forged.candidate, forged.history, SPLIT, backend)),
        );
        const verdicts = await verifyOnNode({ bundle, backends: ['wasm'] });
        const v = verdicts[0]!;
        assert.ok(
          !v.ok && v.code === 'VERIFY_MAP' && v.detail['iteration'] === 6,
          `forgery verdict: ${JSON.stringify(v)}`,
        );
      } finally {
        worker.terminate();
      }
    });
  }
});

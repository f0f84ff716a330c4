/**
 * Server side of the `pouw-verify` test-runner command (web-test-runner.config.mjs): a browser test
 * sends a block candidate and its message history (a VerifyBundle, base64) produced in Chromium on
 * WebGPU, WebGL or WASM, and this runs the NODE verifier on it with TF.js cpu and/or wasm, on the
 * same MNIST file and training split, and returns each verdict. This is how the tests prove that
 * honest work from a browser backend verifies where verifiers actually run.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { base64 } from '@scure/base';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { isPouwError } from '../../shared/errors.ts';
import { type TaskDefinition, taskId } from '../../shared/pouw/task.ts';
import { CommittedDataset, type VerifyTolerances, verifyCandidate } from '../../shared/pouw/verify.ts';
import {
  type CommittedSplit,
  datasetFromImages,
  splitCommitted,
  unbundle,
  VerifyBundle,
} from '../../shared/pouw/verify-fixtures.ts';
import { loadMnistNode } from '../../web-worker-node/data/mnist-node.ts';
import { selectBackend } from '../../web-worker-node/trainer/backends-node.ts';
import { createTfjsEngine, type TfjsTrainingEngine } from '../../web-worker-node/trainer/engine-tfjs.ts';

export interface VerifyCommandPayload {
  chainId: string;
  /** VerifyBundle, SSZ-encoded, base64. */
  bundle: string;
  /** Node verifiers to run: 'cpu', 'wasm'. */
  backends: string[];
  tolerances?: Partial<VerifyTolerances>;
  /**
   * Measurement label: also replays with a wide band (ε = 1e-4 = τ/100, unbounded choices) on cpu
   * and appends the cross-backend statistics to .tmp/verify-cross-backend.jsonl (ADR 0009 numbers).
   */
  record?: string;
}

export type VerifyVerdict =
  | {
      backend: string;
      ok: true;
      stepsReplayed: number;
      inBandEntries: number;
      inBandFlips: number;
      maxDeviation: number;
      minMargin: number;
      maxLossDeviation: number;
      nonceOffset: number;
      effectiveAllowance: number;
      nonceAllowance: number;
      elapsedMs: number | null;
    }
  | { backend: string; ok: false; code: string; message: string; detail: Record<string, unknown> };

const nodeSha256 = (parts: readonly Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

const root = join(import.meta.dirname, '..', '..');
let full: ReturnType<typeof datasetFromImages> | undefined;
const splits = new Map<string, CommittedSplit>();
const engines = new Map<string, TfjsTrainingEngine>();

async function engineFor(
  chainId: string,
  task: TaskDefinition,
  backend: string,
): Promise<TfjsTrainingEngine> {
  const key = `${Buffer.from(taskId(chainId, task)).toString('hex')}/${backend}`;
  let e = engines.get(key);
  if (e === undefined) {
    await selectBackend({ force: 'wasm' }); // configures and initializes wasm; cpu needs nothing
    e = await createTfjsEngine(task, { backend });
    engines.set(key, e);
  }
  return e;
}

export async function handleVerifyCommand(payload: VerifyCommandPayload): Promise<VerifyVerdict[]> {
  const b = VerifyBundle.decode(base64.decode(payload.bundle));
  full ??= datasetFromImages(loadMnistNode());
  const splitKey = `${payload.chainId}/${b.segments}/${b.testPermille}/${Buffer.from(b.randomness).toString('hex')}`;
  let split = splits.get(splitKey);
  if (split === undefined) {
    split = splitCommitted(payload.chainId, full, b.segments, b.testPermille / 1000, b.randomness);
    splits.set(splitKey, split);
  }
  const data = new CommittedDataset(payload.chainId, b.task, split.train, split.proof);
  const { candidate, history } = unbundle(payload.chainId, b);
  const out: VerifyVerdict[] = [];
  for (const backend of payload.backends) {
    const engine = await engineFor(payload.chainId, b.task, backend);
    try {
      const r = await verifyCandidate(candidate, {
        chainId: payload.chainId,
        task: b.task,
        taskId: taskId(payload.chainId, b.task),
        miners: b.miners,
        data,
        history,
        engine,
        ed25519: nodeCryptoEd25519,
        digest: nodeSha256,
        tolerances: payload.tolerances ?? {},
        now: () => performance.now(),
      });
      out.push({
        backend,
        ok: true,
        stepsReplayed: r.stepsReplayed,
        inBandEntries: r.inBandEntries,
        inBandFlips: r.inBandFlips,
        maxDeviation: r.maxDeviation,
        minMargin: r.minMargin,
        maxLossDeviation: r.maxLossDeviation,
        nonceOffset: r.nonceOffset,
        effectiveAllowance: r.effectiveAllowance,
        nonceAllowance: r.nonceAllowance,
        elapsedMs: r.elapsedMs,
      });
    } catch (e) {
      if (!isPouwError(e)) throw e;
      out.push({
        backend,
        ok: false,
        code: e.code,
        message: e.message,
        detail: JSON.parse(JSON.stringify(e.detail)) as Record<string, unknown>,
      });
    }
  }
  if (payload.record !== undefined) {
    try {
      const wide = await verifyCandidate(candidate, {
        chainId: payload.chainId,
        task: b.task,
        taskId: taskId(payload.chainId, b.task),
        miners: b.miners,
        data,
        history,
        engine: await engineFor(payload.chainId, b.task, 'cpu'),
        ed25519: nodeCryptoEd25519,
        digest: nodeSha256,
        tolerances: { epsilon: 1e-4, maxFlipsPerIteration: 1_000_000 },
      });
      const line = {
        label: payload.record,
        producedOn: backend(b),
        steps: wide.stepsReplayed,
        flips: wide.inBandFlips,
        maxFlipDeviation: wide.maxDeviation,
        minMargin: wide.minMargin,
        inBandAt1e4: wide.inBandEntries,
        maxLossDeviation: wide.maxLossDeviation,
        perIteration: wide.iterations.map((i) => ({
          it: i.iteration,
          flips: i.flips,
          dev: i.maxFlipDeviation,
          accDev: i.accuracyDeviation,
        })),
        verdicts: out,
      };
      mkdirSync(join(root, '.tmp'), { recursive: true });
      appendFileSync(join(root, '.tmp', 'verify-cross-backend.jsonl'), `${JSON.stringify(line)}\n`);
    } catch (e) {
      out.push({
        backend: 'cpu (wide band)',
        ok: false,
        code: isPouwError(e) ? e.code : 'ERROR',
        message: String(e),
        detail: {},
      });
    }
  }
  return out;
}

function backend(b: VerifyBundle): string {
  return new TextDecoder().decode(Uint8Array.from(b.backend));
}

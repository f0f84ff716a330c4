/**
 * The supervisor's replay engine (replay-engine.ts) on the paper's FC-DNN (784-128-64-10, real
 * MNIST batches): two honest miners train on TF.js wasm; the supervisor records their IT_RES in its
 * message history and replays with `replayEngineFor(task)`, as tasks.ts `superviseTask` wires it. The honest candidate verifies through
 * the supervisor's real verifier and its sampled replay, also with the engine pinned to cpu (the
 * tolerance band absorbs the backend difference); a candidate whose lucky map was forged is
 * refused with VERIFY_MAP. One-layer softmax tasks get the pure-JS engine, anything else TF.js.
 */
import { after, assert, before, describe, it } from '#test';
import { bytesToHex } from '../shared/bytes.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { isPouwError } from '../shared/errors.ts';
import type { GradientEngine } from '../shared/pouw/engine.ts';
import { TaskHistory } from '../shared/pouw/history.ts';
import { SeededStream } from '../shared/pouw/init.ts';
import { itResId } from '../shared/pouw/itres.ts';
import { JsSoftmaxEngine } from '../shared/pouw/js-engine.ts';
import { makeEntry } from '../shared/pouw/residual.ts';
import { denseSoftmaxTask, Loss, mnistMlpTask, type TaskDefinition } from '../shared/pouw/task.ts';
import { CommittedDataset, type VerifyContext } from '../shared/pouw/verify.ts';
import {
  type CommittedSplit,
  datasetFromImages,
  forge,
  type HonestRun,
  runHonestMiners,
  splitCommitted,
} from '../shared/pouw/verify-fixtures.ts';
import { loadMnistNode } from '../web-worker-node/data/mnist-node.ts';
import { selectBackend } from '../web-worker-node/trainer/backends-node.ts';
import { createTfjsEngine, type TfjsTrainingEngine } from '../web-worker-node/trainer/engine-tfjs.ts';
import { isDenseSoftmaxTask, replayEngineFor } from './replay-engine.ts';
import { superviseTask } from './tasks.ts';
import { realVerifier } from './verifier.ts';

const CHAIN = 'pouw-replay-test';
/** R = 4, k = 2: iterations 4..7 form a segment, so a lucky iteration there replays up to 4 steps. */
const ITERATIONS = 8;

let split: CommittedSplit;
let task: TaskDefinition;
let data: CommittedDataset;
let run: HonestRun;
let history: TaskHistory;
const engines: GradientEngine[] = [];
const minerEngines: TfjsTrainingEngine[] = [];

/** The supervisor's verification context (as supervisor-node/tasks.ts builds it). */
function contextWith(engine: GradientEngine, h: TaskHistory = history): VerifyContext {
  return {
    chainId: CHAIN,
    task,
    taskId: run.taskId,
    miners: run.miners,
    data,
    history: h,
    engine,
    ed25519: nobleEd25519,
  };
}

describe('supervisor replay engine (784-128-64-10 MLP, miners on TF.js wasm)', () => {
  before(async () => {
    split = splitCommitted(CHAIN, datasetFromImages(loadMnistNode()), 10, 0.3, new Uint8Array(32).fill(3));
    task = mnistMlpTask({
      trainSize: split.train.count,
      datasetCommitment: split.commitment,
      znbLead: 2,
      segmentLength: 4,
    });
    data = new CommittedDataset(CHAIN, task, split.train, split.proof);
    await selectBackend({ force: 'wasm' });
    minerEngines.push(
      await createTfjsEngine(task, { backend: 'wasm' }),
      await createTfjsEngine(task, { backend: 'wasm' }),
    );
    run = await runHonestMiners({
      chainId: CHAIN,
      task,
      train: split.train,
      iterations: ITERATIONS,
      ed25519: nobleEd25519,
      miners: minerEngines.map((engine, i) => ({
        engine: { kind: 'step', engine, deviceFlush: false },
        secretKey: new Uint8Array(32).fill(i + 1),
      })),
    });
    // The supervisor records the miners' IT_RES as they arrive (production order).
    history = new TaskHistory({ chainId: CHAIN, task, miners: run.miners, ed25519: nobleEd25519 });
    for (let t = 0; t < ITERATIONS; t++)
      for (const steps of run.steps) {
        const r = await history.offer(steps[t]!.msg);
        assert.equal(r.code, 'ACCEPT', `audit of iteration ${t}: ${r.error?.message ?? ''}`);
      }
  });

  after(() => {
    for (const e of [...engines, ...minerEngines]) e.dispose();
  });

  it('picks the pure-JS engine for one-layer softmax tasks and TF.js for everything else', () => {
    const softmax = denseSoftmaxTask(4, 3);
    assert.ok(isDenseSoftmaxTask(softmax));
    assert.ok(replayEngineFor(softmax) instanceof JsSoftmaxEngine);
    for (const other of [task, denseSoftmaxTask(4, 3, { loss: Loss.MSE })]) {
      assert.ok(!isDenseSoftmaxTask(other));
      const e = replayEngineFor(other);
      assert.ok(!(e instanceof JsSoftmaxEngine));
      assert.equal(e.backend, 'tfjs', 'TF.js is not started before the first replay');
      assert.equal(e.parameterCount, other === task ? 109_386 : 15);
    }
  });

  it('honest wasm work verifies through the supervisor’s verifier and its sampled replay', async () => {
    const lucky = run.candidates.filter((c) => c.iteration >= task.segmentLength);
    assert.ok(lucky.length > 0, 'the miners found a lucky iteration in the second segment');
    const c = lucky.reduce((a, b) => (b.iteration % 4 > a.iteration % 4 ? b : a));
    // The supervisor's own wiring: tasks.ts superviseTask picks the engine (replayEngineFor).
    const supervised = superviseTask(
      CHAIN,
      {
        taskId: run.taskId,
        definition: task,
        dataset: split.train,
        data,
        miners: run.miners,
        joinable: undefined,
      },
      run.miners,
      nobleEd25519,
      history,
    );
    const engine = supervised.verifyContext().engine;
    engines.push(engine);
    assert.ok(!(engine instanceof JsSoftmaxEngine), 'an MLP task is replayed on TF.js');
    const verifier = realVerifier(() => supervised.verifyContext());
    const report = (await verifier.verify(CHAIN, c.candidate.block, c.candidate))!;
    assert.equal(engine.backend, 'wasm', 'the Node ladder starts with wasm');
    assert.equal(report.backend, 'wasm');
    assert.equal(report.iteration, c.iteration);
    assert.equal(report.stepsReplayed, (c.iteration % task.segmentLength) + 1);
    const replayed = await history.replay(bytesToHex(itResId(CHAIN, c.candidate.lucky.body)), {
      data,
      engine,
    });
    assert.equal(replayed.code, 'ACCEPT', replayed.error?.message);
  });

  it('on cpu too: the tolerance band absorbs the difference from the miners’ wasm', async () => {
    const c = run.candidates.find((x) => x.iteration >= task.segmentLength)!;
    const cpu = replayEngineFor(task, { force: 'cpu' });
    engines.push(cpu);
    const report = (await realVerifier(() => contextWith(cpu)).verify(
      CHAIN,
      c.candidate.block,
      c.candidate,
    ))!;
    assert.equal(cpu.backend, 'cpu');
    assert.equal(report.inBandFlips, 0);
  });

  it('a forged map is refused with VERIFY_MAP', async () => {
    const c = run.candidates.find((x) => x.iteration >= task.segmentLength + 1)!;
    const parameters = history.limits.maxMapEntries;
    // The lucky IT_RES with a random map of the honest size, re-signed and re-mined (forge).
    const f = await forge(run, c.miner, c.iteration, (b) => {
      const s = new SeededStream(new Uint8Array(32).fill(9));
      const picked = new Set<number>();
      while (picked.size < b.map.length) picked.add(s.nextUint32() % parameters);
      b.map = [...picked].sort((x, y) => x - y).map((j) => makeEntry(j, s.nextUint32() & 1 ? 1 : -1));
      return b;
    });
    // A supervisor that received the forged IT_RES instead of the honest one: its audit on arrival
    // cannot tell (the map is well formed, the model hash is right); the replay can.
    const h = new TaskHistory({ chainId: CHAIN, task, miners: run.miners, ed25519: nobleEd25519 });
    const honestId = bytesToHex(run.steps[c.miner]![c.iteration]!.id);
    for (let t = 0; t <= c.iteration; t++)
      for (const steps of run.steps) {
        const msg = steps[t]!.msg;
        await h.offer(bytesToHex(itResId(CHAIN, msg.body)) === honestId ? f.candidate.lucky : msg);
      }
    assert.ok(h.get(bytesToHex(itResId(CHAIN, f.candidate.lucky.body))), 'the forged IT_RES was recorded');
    const engine = replayEngineFor(task);
    engines.push(engine);
    const e = await assert.rejects(
      () => realVerifier(() => contextWith(engine, h)).verify(CHAIN, f.candidate.block, f.candidate),
      { name: 'WorkError', code: 'VERIFY_MAP' },
    );
    assert.ok(isPouwError(e) && e.detail['iteration'] === c.iteration, 'names the forged iteration');
    assert.ok(Number(e.detail['mismatches']) > 1000, `mismatches: ${String(e.detail['mismatches'])}`);
  });
});

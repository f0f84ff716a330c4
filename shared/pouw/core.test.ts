import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { assert, describe, it } from '#test';
import { bytesToHex } from '../bytes.ts';
import { taggedHash } from '../codec/domain.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { isPouwError } from '../errors.ts';
import { assignedBatch, batchIndices, drawTestSegments, permutation } from './dataset.ts';
import { initialWeights } from './init.ts';
import { checkItRes, ItRes, type ItResBody, itResId, sameWork, signItRes, workId } from './itres.ts';
import { modelHash, nonceAllowance, nonceAt, nonceBase, nonceOffset } from './lattice.ts';
import {
  accumulateAndThreshold,
  applyMap,
  assertMap,
  flushResidual,
  makeEntry,
  weightsOf,
} from './residual.ts';
import {
  Activation,
  float32Bits,
  LayerKind,
  Loss,
  mnistMlpTask,
  modelLayout,
  TaskDefinition,
  taskId,
  validateTask,
  weightUnit,
} from './task.ts';

const CHAIN = 'pouw-test';

describe('task definitions', () => {
  it('the MNIST MLP is valid: 784-128-64-10 has 109,386 weights', () => {
    const layout = validateTask(mnistMlpTask());
    assert.equal(layout.parameterCount, 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    assert.deepEqual(layout.shapes, [[128], [64], [10]]);
  });

  it('a conv net lays out kernels as [kh, kw, inC, outC]', () => {
    const conv = mnistMlpTask({
      inputShape: [28, 28, 1],
      layers: [
        {
          kind: LayerKind.CONV2D,
          units: 8,
          kernelSize: 3,
          stride: 1,
          padding: 0,
          activation: Activation.RELU,
        },
        { kind: LayerKind.MAX_POOL2D, units: 0, kernelSize: 2, stride: 2, padding: 0, activation: 0 },
        { kind: LayerKind.FLATTEN, units: 0, kernelSize: 0, stride: 0, padding: 0, activation: 0 },
        {
          kind: LayerKind.DENSE,
          units: 10,
          kernelSize: 0,
          stride: 0,
          padding: 0,
          activation: Activation.SOFTMAX,
        },
      ],
    });
    const layout = validateTask(conv);
    assert.deepEqual(layout.shapes, [[26, 26, 8], [13, 13, 8], [1352], [10]]);
    assert.deepEqual(layout.blocks[0]!.shape, [3, 3, 1, 8]);
    assert.equal(layout.parameterCount, 3 * 3 * 8 + 8 + 1352 * 10 + 10);
  });

  it('rejects bad shapes and values with TASK_INVALID before anything runs', () => {
    const dense = (units: number, activation = 1) => ({
      kind: LayerKind.DENSE,
      units,
      kernelSize: 0,
      stride: 0,
      padding: 0,
      activation,
    });
    const bad: [string, Partial<TaskDefinition>][] = [
      ['dense on an image', { inputShape: [28, 28, 1] }],
      [
        'conv on a vector',
        {
          layers: [
            { kind: LayerKind.CONV2D, units: 4, kernelSize: 3, stride: 1, padding: 0, activation: 1 },
            dense(10, 3),
          ],
        },
      ],
      [
        'kernel bigger than input',
        {
          inputShape: [2, 2, 1],
          layers: [{ kind: LayerKind.CONV2D, units: 4, kernelSize: 3, stride: 1, padding: 0, activation: 1 }],
        },
      ],
      ['wrong output size', { layers: [dense(128), dense(9, Activation.SOFTMAX)] }],
      ['softmax in the middle', { layers: [dense(128, Activation.SOFTMAX), dense(10, Activation.SOFTMAX)] }],
      [
        'unknown layer kind',
        { layers: [{ kind: 9, units: 10, kernelSize: 0, stride: 0, padding: 0, activation: 3 }] },
      ],
      ['unknown activation', { layers: [dense(10, 7)] }],
      ['cross-entropy without softmax', { layers: [dense(10, Activation.LINEAR)] }],
      ['unknown loss', { loss: 5 }],
      ['zero learning rate', { learningRate: float32Bits(0) }],
      ['NaN τ', { tau: float32Bits(Number.NaN) }],
      ['negative τ', { tau: float32Bits(-1) }],
      ['zero batch', { batchSize: 0 }],
      ['zero ZNB lead', { znbLead: 0 }],
      ['zero segment', { segmentLength: 0 }],
      ['zero epochs', { epochs: 0 }],
      ['fewer examples than a batch', { trainSize: 10 }],
      ['no layers', { layers: [] }],
      ['empty input', { inputShape: [] }],
      ['version', { version: 2 }],
    ];
    for (const [what, o] of bad) {
      assert.throws(() => validateTask(mnistMlpTask(o)), { name: 'WorkError', code: 'TASK_INVALID' }, what);
    }
    // MSE with a linear head is fine.
    validateTask(mnistMlpTask({ loss: Loss.MSE, layers: [dense(10, Activation.LINEAR)] }));
  });

  it('the task id is the tagged hash of the canonical definition', () => {
    const a = taskId(CHAIN, mnistMlpTask());
    assert.equal(
      bytesToHex(a),
      bytesToHex(taskId(CHAIN, TaskDefinition.decode(TaskDefinition.encode(mnistMlpTask())))),
    );
    assert.notEqual(bytesToHex(a), bytesToHex(taskId(CHAIN, mnistMlpTask({ epochs: 6 }))));
  });
});

describe('initial weights', () => {
  it('are pinned: identical bytes on every platform (known prefix and checksum)', () => {
    const layout = modelLayout(mnistMlpTask());
    const w = initialWeights(layout, new Uint8Array(32).fill(0x42));
    const bytes = new Uint8Array(w.buffer);
    // Pinned when the generator was written; a change here forks every task.
    assert.equal(bytesToHex(bytes.subarray(0, 16)), PINNED_PREFIX);
    let sum = 0;
    for (let i = 0; i < w.length; i++) sum = Math.fround(sum + w[i]! * ((i % 7) + 1));
    assert.equal(sum, PINNED_SUM);
    // Biases start at zero; kernels are within the Glorot limit.
    const bias = layout.blocks[1]!;
    assert.ok(w.subarray(bias.offset, bias.offset + bias.size).every((x) => x === 0));
    const limit = Math.sqrt(6 / (784 + 128));
    assert.ok(w.subarray(0, 784 * 128).every((x) => Math.abs(x) <= limit));
  });
});

describe('lattice state and residual thresholding', () => {
  it('moves n by ±1 per entry above τ, keeps the excess in r, and flushes at τ/2', () => {
    const r = new Float32Array([0, 0.5, -0.5, 0]);
    const g = new Float32Array([1.5, 0.6, -0.6, 0.2]);
    const map = accumulateAndThreshold(r, g, 1);
    assert.deepEqual([...map], [makeEntry(0, 1), makeEntry(1, 1), makeEntry(2, -1)]);
    const f = Math.fround;
    assert.deepEqual([...r], [0.5, f(f(0.5 + f(0.6)) - 1), f(f(-0.5 + f(-0.6)) + 1), f(0.2)]);
    const n = new Int32Array(4);
    applyMap(n, map);
    assert.deepEqual([...n], [1, 1, -1, 0]);
    const r2 = new Float32Array([0.6, -0.4, -0.51, 0]);
    const flushed = flushResidual(r2, 1);
    assert.deepEqual([...flushed], [makeEntry(0, 1), makeEntry(2, -1)]);
    assert.deepEqual([...r2], [0, 0, 0, 0]);
  });

  it('peer updates commute: only which maps were applied matters', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 20 }), {
          minLength: 2,
          maxLength: 5,
        }),
        (maps) => {
          const encoded = maps.map((m) =>
            Uint32Array.from(m.sort((a, b) => a - b).map((j) => makeEntry(j, j % 2 ? 1 : -1))),
          );
          const a = new Int32Array(64);
          const b = new Int32Array(64);
          for (const m of encoded) applyMap(a, m);
          for (const m of [...encoded].reverse()) applyMap(b, m);
          assert.equal(
            bytesToHex(modelHash(CHAIN, new Uint8Array(32), a)),
            bytesToHex(modelHash(CHAIN, new Uint8Array(32), b)),
          );
        },
      ),
    );
  });

  it('weights are w0 − u·n in float32', () => {
    const w0 = new Float32Array([1, 2, 3]);
    const n = new Int32Array([1, -2, 0]);
    const u = weightUnit(mnistMlpTask());
    assert.deepEqual([...weightsOf(w0, n, u)], [Math.fround(1 - u), Math.fround(2 + Math.fround(2 * u)), 3]);
  });

  it('maps: unsorted, duplicate, out-of-range and oversized maps are rejected', () => {
    assertMap(Uint32Array.from([makeEntry(1, 1), makeEntry(5, -1)]), 10);
    assert.throws(() => assertMap(Uint32Array.from([makeEntry(5, 1), makeEntry(1, 1)]), 10), {
      code: 'MAP_NOT_SORTED',
    });
    assert.throws(() => assertMap(Uint32Array.from([makeEntry(5, 1), makeEntry(5, -1)]), 10), {
      code: 'MAP_NOT_SORTED',
    });
    assert.throws(() => assertMap(Uint32Array.from([makeEntry(10, 1)]), 10), { code: 'MAP_OUT_OF_RANGE' });
    assert.throws(() => assertMap(new Uint32Array(11), 10), { code: 'MAP_TOO_LARGE' });
  });
});

describe('nonces', () => {
  it('nonce0 is the double tagged hash of the work id, bound to the chain', () => {
    const work = new Uint8Array(32).fill(3);
    const inner = taggedHash('pouw/nonce/v1', CHAIN, work);
    assert.equal(bytesToHex(nonceBase(CHAIN, work)), bytesToHex(sha256(inner)));
    assert.notEqual(bytesToHex(nonceBase('pouw-other', work)), bytesToHex(nonceBase(CHAIN, work)));
    assert.notEqual(bytesToHex(nonceBase(CHAIN, new Uint8Array(32))), bytesToHex(nonceBase(CHAIN, work)));
  });

  it('allowance follows a = ω_B·β + ω_M·|M| (ppm)', () => {
    assert.equal(nonceAllowance(10_000, 78_500, 10_000, 109_386), 785 + 1093);
  });

  it('ranges are [nonce0, nonce0 + a) with carries across bytes', () => {
    const base = nonceBase(CHAIN, new Uint8Array(32).fill(3));
    assert.equal(nonceOffset(base, nonceAt(base, 0), 10), 0);
    assert.equal(nonceOffset(base, nonceAt(base, 9), 10), 9);
    assert.equal(nonceOffset(base, nonceAt(base, 10), 10), -1);
    const high = new Uint8Array(32).fill(0xff);
    assert.equal(nonceOffset(high, nonceAt(high, 300), 1000), 300);
    assert.equal(nonceOffset(nonceAt(base, 1), base, 1000), -1, 'below nonce0 is outside');
  });
});

describe('IT_RES', () => {
  const body = (): ItResBody => ({
    taskId: new Uint8Array(32).fill(1),
    miner: new Uint8Array(32),
    epoch: 0,
    iteration: 3,
    batchId: 7,
    modelHash: new Uint8Array(32).fill(2),
    residualHash: new Uint8Array(32).fill(3),
    peerMsgIds: [new Uint8Array(32).fill(4)],
    map: [makeEntry(2, 1), makeEntry(9, -1)],
    loss: float32Bits(0.5),
    accuracy: float32Bits(0.8),
    znbHash: new Uint8Array(32),
    time: 5n,
  });

  it('signs and checks; a tampered field or map breaks it with a typed error', async () => {
    const sk = new Uint8Array(32).fill(9);
    const b = { ...body(), miner: await nobleEd25519.getPublicKey(sk) };
    const msg = await signItRes(CHAIN, b, sk, nobleEd25519);
    const checked = await checkItRes(CHAIN, ItRes.decode(ItRes.encode(msg)), 100, nobleEd25519);
    assert.equal(checked.idHex, bytesToHex(itResId(CHAIN, b)));
    await assert.rejects(
      () => checkItRes(CHAIN, { ...msg, body: { ...msg.body, batchId: 8 } }, 100, nobleEd25519),
      { code: 'ITRES_BAD_SIGNATURE' },
    );
    await assert.rejects(() => checkItRes(CHAIN, msg, 5, nobleEd25519), { code: 'MAP_OUT_OF_RANGE' });
    await assert.rejects(
      () =>
        checkItRes(
          CHAIN,
          { ...msg, body: { ...msg.body, map: [makeEntry(9, 1), makeEntry(2, 1)] } },
          100,
          nobleEd25519,
        ),
      { code: 'MAP_NOT_SORTED' },
    );
  });

  it('the work id covers exactly the work fields: free fields change the IT_RES id, never the work id', async () => {
    const b = body();
    const work = bytesToHex(workId(CHAIN, b));
    const id = bytesToHex(itResId(CHAIN, b));
    const free: Partial<ItResBody>[] = [
      { time: 6n },
      { residualHash: new Uint8Array(32).fill(8) },
      { znbHash: new Uint8Array(32).fill(8) },
      { loss: b.loss ^ 1, accuracy: b.accuracy ^ 1 },
      // Peers count through modelHash (their effect on n), not through which signed copies were listed.
      { peerMsgIds: [new Uint8Array(32).fill(5), new Uint8Array(32).fill(4)] },
      { peerMsgIds: [] },
    ];
    for (const f of free) {
      const v = { ...b, ...f };
      assert.notEqual(bytesToHex(itResId(CHAIN, v)), id, `${Object.keys(f)} changes the IT_RES id`);
      assert.equal(bytesToHex(workId(CHAIN, v)), work, `${Object.keys(f)} leaves the work id`);
      assert.ok(sameWork(b, v));
    }
    const fixed: Partial<ItResBody>[] = [
      { taskId: new Uint8Array(32).fill(9) },
      { miner: new Uint8Array(32).fill(9) },
      { epoch: 1 },
      { iteration: 4 },
      { batchId: 8 },
      { modelHash: new Uint8Array(32).fill(9) },
      { map: [makeEntry(2, 1)] },
      { map: [makeEntry(2, -1), makeEntry(9, -1)] },
    ];
    const seen = new Set([work]);
    for (const f of fixed) {
      const v = { ...b, ...f };
      const w = bytesToHex(workId(CHAIN, v));
      assert.ok(!seen.has(w), `${Object.keys(f)} changes the work id`);
      seen.add(w);
      assert.ok(!sameWork(b, v));
    }
    // Domain-separated from the IT_RES id and bound to the chain.
    assert.notEqual(work, id);
    assert.notEqual(bytesToHex(workId('pouw-other', b)), work);
    // sameWork takes signed messages too.
    const sk = new Uint8Array(32).fill(9);
    const m1 = await signItRes(CHAIN, b, sk, nobleEd25519);
    const m2 = await signItRes(CHAIN, { ...b, time: 99n }, sk, nobleEd25519);
    assert.ok(sameWork(m1, m2) && sameWork(m1, b) && !sameWork(m1, { ...b, batchId: 1 }));
  });

  it('fuzz: random and mutated bytes decode canonically or fail with DecodeError', () => {
    const good = ItRes.encode({ body: body(), signature: new Uint8Array(64) });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat({ max: good.length }),
        (edits, cut) => {
          const m = good.slice(0, Math.max(cut, good.length - 8));
          for (const [pos, byte] of edits) m[pos % m.length] = byte;
          for (const bytes of [m, m.subarray(0, cut)]) {
            try {
              assert.deepEqual(ItRes.encode(ItRes.decode(bytes)), bytes);
            } catch (e) {
              assert.ok(isPouwError(e) && e.name === 'DecodeError', String(e));
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('dataset schedule', () => {
  it('permutations are deterministic, complete and seed-dependent', () => {
    const p = permutation(1000, new Uint8Array(32).fill(1));
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.deepEqual(p, permutation(1000, new Uint8Array(32).fill(1)));
    assert.notEqual(p.join(), permutation(1000, new Uint8Array(32).fill(2)).join());
  });

  it('every epoch covers every batch once across miners', () => {
    const seen = new Map<string, number>();
    for (let it = 0; it < 10; it++) {
      for (let m = 0; m < 3; m++) {
        const { epoch, batchId } = assignedBatch(m, 3, it, 10);
        seen.set(`${epoch}/${batchId}`, (seen.get(`${epoch}/${batchId}`) ?? 0) + 1);
      }
    }
    assert.equal(seen.size, 30);
    assert.ok([...seen.values()].every((c) => c === 1));
    const batch = batchIndices(new Uint8Array(32), 0, 3, 1000, 100);
    assert.equal(new Set(batch).size, 100);
  });

  it('draws 30% of segments for the test set from the randomness', () => {
    const t = drawTestSegments(10, 0.3, new Uint8Array(32).fill(5));
    assert.equal(t.length, 3);
    assert.deepEqual(t, drawTestSegments(10, 0.3, new Uint8Array(32).fill(5)));
  });
});

const PINNED_PREFIX = '0dbb1cbcf123883c544c48bca58e94bd'; // recomputed independently in Python (hashlib, struct)
const PINNED_SUM = 47.14266586303711;

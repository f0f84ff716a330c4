/**
 * Verification of useful work (DESIGN §4.5, ADR 0009) with the real TF.js engines (cpu and wasm
 * under Node) on real MNIST batches and the paper's FC-DNN (784-128-64-10): honest work from each
 * backend verifies on the other, and every forgery class is rejected by the check that names it.
 * Each forgery is one mutation of honest work, re-signed and re-mined, so only the intended check
 * can fail.
 */
import { after, assert, before, describe, it } from '#test';
import { loadMnistNode } from '../../web-worker-node/data/mnist-node.ts';
import { selectBackend } from '../../web-worker-node/trainer/backends-node.ts';
import { createTfjsEngine, type TfjsTrainingEngine } from '../../web-worker-node/trainer/engine-tfjs.ts';
import { bytesToHex } from '../bytes.ts';
import { blockHash } from '../chain/ids.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { isPouwError } from '../errors.ts';
import type { MessageHistory } from './candidate.ts';
import { batchIndices, type Dataset } from './dataset.ts';
import { SeededStream } from './init.ts';
import { itResId, signItRes } from './itres.ts';
import { modelHash, nonceBase } from './lattice.ts';
import { applyMap, INDEX_MASK, makeEntry, residualStep, SIGN_BIT } from './residual.ts';
import { bitsToFloat32, float32Bits, mnistMlpTask, type TaskDefinition } from './task.ts';
import {
  auditItRes,
  CommittedDataset,
  effectiveAllowance,
  trackMiner,
  type VerifyContext,
  type VerifyReport,
  type VerifyTolerances,
  verifyCandidate,
  verifyIteration,
} from './verify.ts';
import {
  batchOf,
  type CommittedSplit,
  candidateAt,
  datasetFromImages,
  forge,
  freeFieldVariant,
  type HonestRun,
  MemoryHistory,
  mine,
  mineOutside,
  runHonestMiners,
  splitCommitted,
} from './verify-fixtures.ts';

const CHAIN = 'pouw-test';
/** Segment [4, 8) with R = 4: L = 6 replays 3 steps, mid-segment (not a flush). */
const L = 6;
const ITERATIONS = 8;

let split: CommittedSplit;
let task: TaskDefinition;
let data: CommittedDataset;
let cpu: TfjsTrainingEngine;
let wasm: TfjsTrainingEngine;
let cpuRun: HonestRun;
let wasmRun: HonestRun;
let tau: number;

/** shared/ reads no clock: a counter stands in (the report's timings are checked for presence, not value). */
let ticks = 0;
const tick = () => ticks++;

function ctxFor(
  run: HonestRun,
  engine: TfjsTrainingEngine,
  history: MessageHistory = run.history,
  tolerances: Partial<VerifyTolerances> = {},
): VerifyContext {
  return {
    chainId: CHAIN,
    task,
    taskId: run.taskId,
    miners: run.miners,
    data,
    history,
    engine,
    ed25519: nobleEd25519,
    tolerances,
    now: tick,
  };
}

/** Asserts verification fails with `code`, at `iteration` when given; returns the error's detail. */
async function rejectsWith(
  p: Promise<unknown>,
  code: string,
  iteration?: number,
): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    assert.ok(isPouwError(e), `not a typed error: ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (iteration !== undefined)
      assert.equal(e.detail['iteration'], iteration, `${code} names the iteration`);
    return e.detail as Record<string, unknown>;
  }
  throw new Error(`expected ${code}, but verification passed`);
}

function honestStep(run: HonestRun, m = 0, t = L) {
  return run.steps[m]![t]!;
}

function batchAt(run: HonestRun, m: number, t: number): { x: Float32Array; labels: Uint8Array } {
  return batchOf(task, run.taskId, split.train, m, run.miners.length, t).batch;
}

describe('verification (MNIST MLP on TF.js cpu and wasm)', () => {
  before(async () => {
    const full: Dataset = datasetFromImages(loadMnistNode());
    split = splitCommitted(CHAIN, full, 10, 0.3, new Uint8Array(32).fill(3));
    task = mnistMlpTask({
      trainSize: split.train.count,
      datasetCommitment: split.commitment,
      znbLead: 2,
      segmentLength: 4,
    });
    tau = bitsToFloat32(task.tau);
    data = new CommittedDataset(CHAIN, task, split.train, split.proof);
    await selectBackend({ force: 'wasm' });
    cpu = await createTfjsEngine(task, { backend: 'cpu' });
    wasm = await createTfjsEngine(task, { backend: 'wasm' });
    const keys = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
    cpuRun = await runHonestMiners({
      chainId: CHAIN,
      task,
      train: split.train,
      iterations: ITERATIONS,
      ed25519: nobleEd25519,
      miners: keys.map((secretKey) => ({ engine: { kind: 'gradient', engine: cpu }, secretKey })),
    });
    const wasmMiners = [
      await createTfjsEngine(task, { backend: 'wasm' }),
      await createTfjsEngine(task, { backend: 'wasm' }),
    ];
    wasmRun = await runHonestMiners({
      chainId: CHAIN,
      task,
      train: split.train,
      iterations: ITERATIONS,
      ed25519: nobleEd25519,
      miners: keys.map((secretKey, i) => ({
        engine: { kind: 'step', engine: wasmMiners[i]!, deviceFlush: false },
        secretKey,
      })),
    });
    for (const e of wasmMiners) e.dispose();
  });

  after(() => {
    cpu?.dispose();
    wasm?.dispose();
  });

  describe('honest work verifies', () => {
    it('every lucky iteration of cpu work verifies on a cpu verifier and on a wasm verifier', async () => {
      assert.ok(cpuRun.candidates.length >= 8, `only ${cpuRun.candidates.length} lucky iterations`);
      const seen = new Set<number>();
      for (const c of cpuRun.candidates) {
        for (const engine of [cpu, wasm]) {
          const rep = await verifyCandidate(c.candidate, ctxFor(cpuRun, engine));
          assert.equal(rep.iteration, c.iteration);
          assert.equal(
            rep.stepsReplayed,
            (c.iteration % task.segmentLength) + 1,
            'replays from the segment start',
          );
          assert.ok(rep.stepsReplayed <= task.segmentLength);
          assert.equal(rep.nonceOffset, c.nonceOffset);
          assert.equal(
            rep.effectiveAllowance,
            rep.nonceAllowance,
            'honest cpu/wasm work makes no in-band choice',
          );
          assert.equal(rep.backend, engine.backend);
          seen.add(c.iteration % task.segmentLength);
        }
      }
      assert.ok(
        seen.has(0) && seen.has(task.segmentLength - 1),
        'covers a segment start and a flush iteration',
      );
    });

    it('wasm work (device-state engine) verifies on a cpu verifier', async () => {
      assert.ok(wasmRun.candidates.length >= 8);
      for (const c of wasmRun.candidates) {
        const rep = await verifyCandidate(c.candidate, ctxFor(wasmRun, cpu));
        assert.equal(rep.inBandFlips, 0);
        assert.ok(rep.maxLossDeviation < 1e-5, `loss deviation ${rep.maxLossDeviation}`);
      }
    });

    it('the report carries the replay statistics', async () => {
      const rep: VerifyReport = await verifyCandidate(await candidateAt(cpuRun, 0, L), ctxFor(cpuRun, wasm));
      assert.equal(rep.segmentStart, 4);
      assert.equal(rep.stepsReplayed, 3);
      assert.deepEqual(
        rep.iterations.map((s) => s.iteration),
        [4, 5, 6],
      );
      assert.ok(rep.iterations.every((s) => s.mapSize > 1000 && s.minMargin >= 0 && s.inBand >= 0));
      assert.ok(rep.elapsedMs !== null && rep.gradientMs !== null && rep.gradientMs <= rep.elapsedMs);
      assert.ok(rep.tolerances.epsilon > 0 && rep.tolerances.epsilon < tau);
    });

    it('the model hash is identical across backends after the same updates', async () => {
      const engines = [
        await createTfjsEngine(task, { backend: 'cpu' }),
        await createTfjsEngine(task, { backend: 'wasm' }),
      ];
      try {
        const hashes: string[] = [];
        for (const e of engines) {
          await e.setState(new Int32Array(e.parameterCount));
          for (const s of [...cpuRun.steps[0]!, ...cpuRun.steps[1]!]) await e.applyMap(s.map);
          hashes.push(bytesToHex(modelHash(CHAIN, cpuRun.taskId, (await e.state()).n)));
        }
        const n = new Int32Array(cpu.parameterCount);
        for (const s of [...cpuRun.steps[0]!, ...cpuRun.steps[1]!]) applyMap(n, s.map);
        assert.equal(hashes[0], hashes[1]);
        assert.equal(hashes[0], bytesToHex(modelHash(CHAIN, cpuRun.taskId, n)));
        // The two honest runs (host residual on cpu, device residual on wasm) reach the same n.
        assert.equal(
          bytesToHex(cpuRun.steps[0]![ITERATIONS - 1]!.msg.body.modelHash),
          bytesToHex(wasmRun.steps[0]![ITERATIONS - 1]!.msg.body.modelHash),
        );
      } finally {
        for (const e of engines) e.dispose();
      }
    });
  });

  describe('forgeries are rejected by the check that names them', () => {
    it('random map → VERIFY_MAP', async () => {
      const f = await forge(cpuRun, 0, L, (b) => {
        const s = new SeededStream(new Uint8Array(32).fill(9));
        const picked = new Set<number>();
        while (picked.size < b.map.length) picked.add(s.nextUint32() % cpu.parameterCount);
        b.map = [...picked].sort((x, y) => x - y).map((j) => makeEntry(j, s.nextUint32() & 1 ? 1 : -1));
        return b;
      });
      const d = await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_MAP',
        L,
      );
      assert.ok(Number(d['mismatches']) > 1000 && Number(d['deviation']) > 1e-3);
    });

    it('empty map → VERIFY_MAP', async () => {
      const f = await forge(cpuRun, 0, L, (b) => ({ ...b, map: [] }));
      const d = await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_MAP',
        L,
      );
      assert.equal(d['claimed'], 0);
      assert.ok(Number(d['mismatches']) > honestStep(cpuRun).map.length / 2);
    });

    it('map from another batch → VERIFY_MAP', async () => {
      const st = honestStep(cpuRun);
      const other = batchAt(cpuRun, 1, L + 1); // a batch assigned to someone else, later
      const g = await cpu.gradient(st.nBefore, other);
      const map = residualStep(st.rBefore.slice(), g.gradient, tau, false);
      const f = await forge(cpuRun, 0, L, (b) => ({
        ...b,
        map: Array.from(map),
        loss: float32Bits(g.loss),
        accuracy: float32Bits(g.accuracy),
      }));
      await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_MAP', L);
    });

    it('stale model (old n, hashed as such) → VERIFY_MODEL_HASH', async () => {
      const st = honestStep(cpuRun);
      const stale = st.nBefore.slice();
      for (const e of honestStep(cpuRun, 0, L - 1).map)
        stale[e & INDEX_MASK]! -= (e & SIGN_BIT) !== 0 ? 1 : -1; // own last update not applied
      const g = await cpu.gradient(stale, batchAt(cpuRun, 0, L));
      const map = residualStep(st.rBefore.slice(), g.gradient, tau, false);
      const f = await forge(cpuRun, 0, L, (b) => ({
        ...b,
        modelHash: modelHash(CHAIN, cpuRun.taskId, stale),
        map: Array.from(map),
      }));
      await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_MODEL_HASH',
        L,
      );
    });

    it('stale model (gradient at an old n, current hash claimed) → VERIFY_MAP', async () => {
      const st = honestStep(cpuRun);
      const old = honestStep(cpuRun, 0, 2).nBefore; // four iterations old
      const g = await cpu.gradient(old, batchAt(cpuRun, 0, L));
      const map = residualStep(st.rBefore.slice(), g.gradient, tau, false);
      const f = await forge(cpuRun, 0, L, (b) => ({
        ...b,
        map: Array.from(map),
        loss: float32Bits(g.loss),
        accuracy: float32Bits(g.accuracy),
      }));
      await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_MAP', L);
    });

    it('skipped backprop (the previous iteration’s map again) → VERIFY_MAP', async () => {
      const f = await forge(cpuRun, 0, L, (b) => ({
        ...b,
        map: Array.from(honestStep(cpuRun, 0, L - 1).map),
      }));
      await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_MAP', L);
    });

    it('crafted residual (entries chosen from a fake residual) → VERIFY_MAP', async () => {
      const st = honestStep(cpuRun);
      const g = await cpu.gradient(st.nBefore, batchAt(cpuRun, 0, L));
      // The honest gradient, but thresholded against a residual the miner made up (a fresh zero one).
      const map = residualStep(new Float32Array(st.rBefore.length), g.gradient, tau, false);
      const f = await forge(cpuRun, 0, L, (b) => ({ ...b, map: Array.from(map) }));
      const d = await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_MAP',
        L,
      );
      assert.ok(Number(d['mismatches']) > 0);
    });

    it('a claimed loss off the recomputed one → VERIFY_LOSS', async () => {
      const f = await forge(cpuRun, 0, L, (b) => ({ ...b, loss: float32Bits(bitsToFloat32(b.loss) * 0.9) }));
      await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_LOSS', L);
      const g = await forge(cpuRun, 0, L, (b) => ({
        ...b,
        accuracy: float32Bits(bitsToFloat32(b.accuracy) + 0.05),
      }));
      await rejectsWith(verifyCandidate(g.candidate, ctxFor(cpuRun, wasm, g.history)), 'VERIFY_LOSS', L);
    });

    it('nonce outside the range → VERIFY_NONCE_RANGE', async () => {
      const f = await forge(cpuRun, 0, L, (b) => b, {
        record: false,
        header: (t, nonce0, a) => mineOutside(CHAIN, t, nonce0, a),
      });
      const d = await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_NONCE_RANGE',
        L,
      );
      assert.ok(Number(d['allowance']) > 0);
    });

    it('nonce from a different IT_RES → VERIFY_NONCE_RANGE', async () => {
      const prev = honestStep(cpuRun, 0, L - 1);
      const f = await forge(cpuRun, 0, L, (b) => b, {
        record: false,
        header: (t, _nonce0, a) => {
          const won = mine(CHAIN, t, nonceBase(CHAIN, prev.work), 0, a);
          assert.ok(won.offset >= 0);
          return won.header;
        },
      });
      await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_NONCE_RANGE',
        L,
      );
    });

    it('ZNB violation (a template other than the one committed k earlier) → VERIFY_ZNB', async () => {
      // The template committed for the previous iteration, and a fresh one (different time).
      for (const other of [
        cpuRun.templates.get(`0/${L - 1}`)!,
        { ...cpuRun.templates.get(`0/${L}`)!, time: 1n },
      ]) {
        const f = await forge(cpuRun, 0, L, (b) => b, {
          record: false,
          header: (t, nonce0, a) => {
            const won = mine(CHAIN, { ...other, hashMsg: t.hashMsg }, nonce0, 0, a);
            assert.ok(won.offset >= 0);
            return won.header;
          },
        });
        await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_ZNB', L);
      }
    });

    it('replayed IT_RES (already rewarded) → VERIFY_REPLAYED', async () => {
      const c = await candidateAt(cpuRun, 0, L);
      const history = cpuRun.history.withReplaced(c.lucky);
      const rep = await verifyCandidate(c, ctxFor(cpuRun, wasm, history));
      assert.equal(bytesToHex(rep.workId), bytesToHex(c.block.header.hashMsg));
      history.markRewarded(bytesToHex(rep.workId));
      await rejectsWith(verifyCandidate(c, ctxFor(cpuRun, wasm, history)), 'VERIFY_REPLAYED', L);
    });

    it('re-signed variant of a rewarded iteration → VERIFY_REPLAYED (and re-signing buys no new header)', async () => {
      const honest = await candidateAt(cpuRun, 0, L);
      const st = honestStep(cpuRun);
      // Variants of the same work, each re-signed: before the fix each named a new header.
      const variants = await Promise.all(
        [1, 2, 3].map((k) => forge(cpuRun, 0, L, (b) => freeFieldVariant(b, k))),
      );
      for (const v of variants) {
        assert.notEqual(bytesToHex(itResId(CHAIN, v.candidate.lucky.body)), bytesToHex(st.id));
        assert.equal(bytesToHex(v.candidate.block.header.hashMsg), bytesToHex(st.work));
        assert.equal(
          bytesToHex(blockHash(CHAIN, v.candidate.block.header)),
          bytesToHex(blockHash(CHAIN, honest.block.header)),
          'the same header, nonce and block hash as the honest candidate',
        );
      }
      // The history recorded a variant (the first the miner broadcast): it verifies once...
      const v = variants[0]!;
      await verifyCandidate(v.candidate, ctxFor(cpuRun, wasm, v.history));
      // ...and once the honest copy's block is final, no copy of that work earns another.
      v.history.markRewarded(bytesToHex(st.work));
      const d = await rejectsWith(
        verifyCandidate(v.candidate, ctxFor(cpuRun, wasm, v.history)),
        'VERIFY_REPLAYED',
        L,
      );
      assert.equal(d['workId'], bytesToHex(st.work));
      // Against the honest record, rewarded: the replay check names it before anything else.
      const rewarded = cpuRun.history.withReplaced(st.msg);
      rewarded.markRewarded(bytesToHex(st.work));
      const w = await forge(cpuRun, 0, L, (b) => freeFieldVariant(b, 4), { record: false });
      await rejectsWith(verifyCandidate(w.candidate, ctxFor(cpuRun, wasm, rewarded)), 'VERIFY_REPLAYED', L);
    });

    it('second IT_RES for the same iteration → VERIFY_DUPLICATE_ITERATION', async () => {
      // The history holds the honest IT_RES of L; the candidate brings another one the miner signed.
      const same = await forge(cpuRun, 0, L, (b) => freeFieldVariant(b), { record: false });
      const d1 = await rejectsWith(
        verifyCandidate(same.candidate, ctxFor(cpuRun, wasm, same.history)),
        'VERIFY_DUPLICATE_ITERATION',
        L,
      );
      assert.equal(d1['sameWork'], true);
      // Different work for the same iteration (here: the previous map again).
      const other = await forge(
        cpuRun,
        0,
        L,
        (b) => ({ ...b, map: Array.from(honestStep(cpuRun, 0, L - 1).map) }),
        { record: false },
      );
      const d2 = await rejectsWith(
        verifyCandidate(other.candidate, ctxFor(cpuRun, wasm, other.history)),
        'VERIFY_DUPLICATE_ITERATION',
        L,
      );
      assert.equal(d2['sameWork'], false);
      // A segment entry other than the recorded one (iteration L − 1 of the honest candidate).
      const c = await candidateAt(cpuRun, 0, L);
      const prev = honestStep(cpuRun, 0, L - 1).msg;
      const resigned = await signItRes(
        CHAIN,
        freeFieldVariant(prev.body),
        cpuRun.secretKeys[0]!,
        nobleEd25519,
      );
      const segment = [...c.segment];
      segment[segment.length - 2] = resigned;
      await rejectsWith(
        verifyCandidate({ ...c, segment }, ctxFor(cpuRun, wasm)),
        'VERIFY_DUPLICATE_ITERATION',
        L - 1,
      );
      // The history itself refuses the second message and says whether the work is the same.
      const h = new MemoryHistory(CHAIN);
      h.add(honestStep(cpuRun).msg);
      h.add(honestStep(cpuRun).msg); // the same message again: a no-op
      for (const [msg, sameWorkExpected] of [
        [same.candidate.lucky, true],
        [other.candidate.lucky, false],
      ] as const) {
        try {
          h.add(msg);
          assert.ok(false, 'a second IT_RES was recorded');
        } catch (e) {
          assert.ok(isPouwError(e) && e.code === 'VERIFY_DUPLICATE_ITERATION', String(e));
          assert.equal(e.detail['sameWork'], sameWorkExpected);
        }
      }
      assert.equal(h.messages().length, 1);
    });

    it('a header naming the IT_RES id instead of its work id → VERIFY_CANDIDATE', async () => {
      const st = honestStep(cpuRun);
      const f = await forge(cpuRun, 0, L, (b) => b, {
        record: false,
        header: (t, nonce0, a) => {
          const won = mine(CHAIN, { ...t, hashMsg: st.id }, nonce0, 0, a);
          assert.ok(won.offset >= 0);
          return won.header;
        },
      });
      await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_CANDIDATE', L);
    });

    it('peer ids listed but not applied → VERIFY_PEER_UPDATES', async () => {
      const st = honestStep(cpuRun);
      assert.ok(st.peerIds.length > 0, 'the honest step listed peers');
      const without = st.nBefore.slice();
      for (const id of st.peerIds) {
        for (const e of cpuRun.history.get(bytesToHex(id))!.body.map)
          without[e & INDEX_MASK]! -= (e & SIGN_BIT) !== 0 ? 1 : -1;
      }
      const g = await cpu.gradient(without, batchAt(cpuRun, 0, L));
      const map = residualStep(st.rBefore.slice(), g.gradient, tau, false);
      const f = await forge(cpuRun, 0, L, (b) => ({
        ...b,
        modelHash: modelHash(CHAIN, cpuRun.taskId, without),
        map: Array.from(map),
        loss: float32Bits(g.loss),
        accuracy: float32Bits(g.accuracy),
      }));
      await rejectsWith(
        verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_PEER_UPDATES',
        L,
      );
    });

    it('a batch other than the assigned one → VERIFY_BATCH', async () => {
      const f = await forge(cpuRun, 0, L, (b) => ({ ...b, batchId: b.batchId + 1 }));
      await rejectsWith(verifyCandidate(f.candidate, ctxFor(cpuRun, wasm, f.history)), 'VERIFY_BATCH', L);
    });

    it('training data that does not match the commitment → VERIFY_BATCH', async () => {
      const examples = split.train.examples.slice();
      const idx = batchIndices(
        cpuRun.taskId,
        0,
        honestStep(cpuRun).msg.body.batchId,
        task.trainSize,
        task.batchSize,
      )[0]!;
      examples[idx * (split.train.featureBytes + 1) + 300]! ^= 0xff;
      const tampered = new CommittedDataset(CHAIN, task, { ...split.train, examples }, split.proof);
      const c = await candidateAt(cpuRun, 0, L);
      await rejectsWith(verifyCandidate(c, { ...ctxFor(cpuRun, wasm), data: tampered }), 'VERIFY_BATCH');
    });

    it('a bad signature, a foreign miner and a malformed bundle are rejected by name', async () => {
      const c = await candidateAt(cpuRun, 0, L);
      const sig = c.lucky.signature.slice();
      sig[5]! ^= 1;
      const badSig = { ...c.lucky, signature: sig };
      await rejectsWith(
        verifyCandidate(
          { ...c, lucky: badSig, segment: [...c.segment.slice(0, -1), badSig] },
          ctxFor(cpuRun, wasm),
        ),
        'VERIFY_SIGNATURE',
      );
      await rejectsWith(
        verifyCandidate(c, { ...ctxFor(cpuRun, wasm), miners: [cpuRun.miners[1]!] }),
        'VERIFY_MEMBERSHIP',
      );
      await rejectsWith(
        verifyCandidate({ ...c, segment: c.segment.slice(1) }, ctxFor(cpuRun, wasm)),
        'VERIFY_CANDIDATE',
      );
      const header = { ...c.block.header, bits: 0x1d00ffff };
      await rejectsWith(
        verifyCandidate({ ...c, block: { ...c.block, header } }, ctxFor(cpuRun, wasm)),
        'VERIFY_POW',
      );
      const missing = new MemoryHistory(CHAIN);
      for (const m of cpuRun.history.messages()) if (m.body.iteration !== 1) missing.add(m);
      const d = await rejectsWith(verifyCandidate(c, ctxFor(cpuRun, wasm, missing)), 'VERIFY_HISTORY');
      assert.equal(d['iteration'], 1);
    });
  });

  describe('the tolerance band', () => {
    /** The honest residual of miner 0 at L on the cpu engine: v = r + g, and the entries nearest the threshold. */
    async function nearest(count: number): Promise<{ j: number; v: number }[]> {
      const st = honestStep(cpuRun);
      const g = await cpu.gradient(st.nBefore, batchAt(cpuRun, 0, L));
      const v = Array.from(st.rBefore, (r, j) => ({ j, v: Math.fround(r + g.gradient[j]!) }));
      // Entries exactly at ±τ are skipped: either decision is at distance 0 there.
      return v
        .filter((e) => Math.abs(e.v) !== tau)
        .sort((a, b) => Math.abs(Math.abs(a.v) - tau) - Math.abs(Math.abs(b.v) - tau))
        .slice(0, count);
    }
    function flip(map: number[], picks: { j: number; v: number }[]): number[] {
      const set = new Map(map.map((e) => [e & INDEX_MASK, e]));
      for (const { j, v } of picks) {
        if (set.has(j)) set.delete(j);
        else set.set(j, makeEntry(j, v > 0 ? 1 : -1));
      }
      return [...set.keys()].sort((a, b) => a - b).map((j) => set.get(j)!);
    }

    it('an in-band choice is accepted and divides the allowance; too many are rejected', async () => {
      const picks = await nearest(8);
      // The verifier runs on cpu here, the engine the picks were computed with: its residual is exactly v.
      const eps = Math.abs(Math.abs(picks[7]!.v) - tau) * 1.01;
      // λ = 1 here so that one choice leaves some nonces (the default λ = 100 leaves none: below).
      const tolerances = { epsilon: eps, maxFlipsPerIteration: 3, flipPenalty: 1 };
      // One flipped in-band entry, mined at offset 0: accepted, with the penalty reported.
      const one = await forge(cpuRun, 0, L, (b) => ({ ...b, map: flip(b.map, picks.slice(0, 1)) }), {
        header: (t, nonce0) => {
          const won = mine(CHAIN, t, nonce0, 0, 1000);
          assert.ok(won.offset >= 0);
          return won.header;
        },
      });
      const rep = await verifyCandidate(one.candidate, ctxFor(cpuRun, cpu, one.history, tolerances));
      assert.equal(rep.inBandFlips, 1);
      assert.ok(rep.maxDeviation <= eps);
      assert.ok(rep.effectiveAllowance < rep.nonceAllowance);
      assert.equal(rep.effectiveAllowance, effectiveAllowance(rep.nonceAllowance, rep.iterations, 1));
      // With the default λ the choice costs the whole allowance: no block, but no fraud either.
      const verdict = await verifyCandidate(
        one.candidate,
        ctxFor(cpuRun, cpu, one.history, { epsilon: eps, maxFlipsPerIteration: 3 }),
      ).catch((e: unknown) => e);
      assert.ok(isPouwError(verdict) && verdict.code === 'VERIFY_NONCE_RANGE', String(verdict));
      assert.equal(verdict.verdict, 'IGNORE');
      // The same flip with a nonce beyond the reduced allowance: not provably a fraud, not a block.
      const far = await forge(cpuRun, 0, L, (b) => ({ ...b, map: flip(b.map, picks.slice(0, 1)) }), {
        header: (t, nonce0, a) => {
          const won = mine(CHAIN, t, nonce0, rep.effectiveAllowance, a);
          assert.ok(won.offset >= 0);
          return won.header;
        },
      });
      const err = await rejectsWith(
        verifyCandidate(far.candidate, ctxFor(cpuRun, cpu, far.history, tolerances)),
        'VERIFY_NONCE_RANGE',
        L,
      );
      assert.equal(err['reason'], 'in-band choices');
      // Four in-band flips in one iteration: more choices than the bound allows.
      const four = await forge(cpuRun, 0, L, (b) => ({ ...b, map: flip(b.map, picks.slice(0, 4)) }));
      const d = await rejectsWith(
        verifyCandidate(four.candidate, ctxFor(cpuRun, cpu, four.history, tolerances)),
        'VERIFY_MAP',
        L,
      );
      assert.equal(d['flips'], 4);
      // Outside the band, one flip is a forgery.
      await rejectsWith(
        verifyCandidate(
          one.candidate,
          ctxFor(cpuRun, cpu, one.history, { epsilon: Math.abs(Math.abs(picks[0]!.v) - tau) / 2 }),
        ),
        'VERIFY_MAP',
        L,
      );
    });
  });

  describe('supervisor audit and sampled replay', () => {
    it('auditItRes accepts the honest stream and tracks n', async () => {
      const tracks = cpuRun.miners.map((m) => trackMiner(m, task));
      for (let t = 0; t < ITERATIONS; t++) {
        for (let m = 0; m < 2; m++)
          await auditItRes(
            cpuRun.steps[m]![t]!.msg,
            {
              chainId: CHAIN,
              task,
              taskId: cpuRun.taskId,
              miners: cpuRun.miners,
              history: cpuRun.history,
              ed25519: nobleEd25519,
            },
            tracks[m]!,
          );
      }
      for (let m = 0; m < 2; m++) {
        assert.equal(tracks[m]!.nextIteration, ITERATIONS);
        assert.deepEqual(tracks[m]!.n, cpuRun.steps[m]![ITERATIONS - 1]!.nAfter);
      }
    });

    it('auditItRes rejects each cheap fault by name and leaves the tracked state unchanged', async () => {
      const actx = {
        chainId: CHAIN,
        task,
        taskId: cpuRun.taskId,
        miners: cpuRun.miners,
        history: cpuRun.history,
        ed25519: nobleEd25519,
      };
      const track = trackMiner(cpuRun.miners[0]!, task);
      for (let t = 0; t < L; t++) await auditItRes(cpuRun.steps[0]![t]!.msg, actx, track);
      const before = track.n.slice();
      const honest = honestStep(cpuRun).msg;
      const sk = cpuRun.secretKeys[0]!;
      const resign = (body: typeof honest.body) => signItRes(CHAIN, body, sk, nobleEd25519);
      const cases: [string, () => Promise<unknown>][] = [
        ['VERIFY_SIGNATURE', () => auditItRes({ ...honest, signature: new Uint8Array(64) }, actx, track)],
        [
          'VERIFY_BATCH',
          () =>
            resign({ ...honest.body, batchId: honest.body.batchId + 2 }).then((m) =>
              auditItRes(m, actx, track),
            ),
        ],
        [
          'VERIFY_MODEL_HASH',
          () =>
            resign({ ...honest.body, modelHash: new Uint8Array(32) }).then((m) => auditItRes(m, actx, track)),
        ],
        [
          'VERIFY_PEER_UPDATES',
          () =>
            resign({ ...honest.body, modelHash: modelHash(CHAIN, cpuRun.taskId, before) }).then((m) =>
              auditItRes(m, actx, track),
            ),
        ],
        [
          'VERIFY_PEER_UPDATES',
          () =>
            resign({
              ...honest.body,
              peerMsgIds: [...honest.body.peerMsgIds, honest.body.peerMsgIds[0]!],
            }).then((m) => auditItRes(m, actx, track)),
        ],
        ['VERIFY_MAP', () => resign({ ...honest.body, map: [5, 3] }).then((m) => auditItRes(m, actx, track))],
        [
          'VERIFY_MAP',
          () => resign(honest.body).then((m) => auditItRes(m, { ...actx, maxMapEntries: 10 }, track)),
        ],
        [
          'VERIFY_HISTORY',
          () => resign({ ...honest.body, iteration: L + 1 }).then((m) => auditItRes(m, actx, track)),
        ],
      ];
      for (const [code, p] of cases) {
        await rejectsWith(p(), code);
        assert.deepEqual(track.n, before, `${code} left n unchanged`);
        assert.equal(track.nextIteration, L);
      }
      await auditItRes(honest, actx, track);
      assert.equal(track.nextIteration, L + 1);
      // An audited iteration again: the recorded message is a duplicate delivery (IGNORE); another
      // IT_RES the miner signed for it, even of the same work, is equivocation (REJECT).
      const again = await auditItRes(honest, actx, track).catch((e: unknown) => e);
      assert.ok(isPouwError(again) && again.code === 'VERIFY_DUPLICATE_ITERATION', String(again));
      assert.equal(again.verdict, 'IGNORE');
      const second = await auditItRes(await resign(freeFieldVariant(honest.body)), actx, track).catch(
        (e: unknown) => e,
      );
      assert.ok(isPouwError(second) && second.code === 'VERIFY_DUPLICATE_ITERATION', String(second));
      assert.equal(second.verdict, 'REJECT');
      assert.equal(track.nextIteration, L + 1);
    });

    it('verifyIteration replays any recorded iteration (the random sample)', async () => {
      const rep = await verifyIteration(cpuRun.miners[1]!, 7, ctxFor(cpuRun, wasm));
      assert.equal(rep.stepsReplayed, 4);
      assert.ok(rep.iterations[3]!.flush);
      const f = await forge(cpuRun, 1, 5, (b) => ({ ...b, map: Array.from(honestStep(cpuRun, 1, 4).map) }));
      await rejectsWith(
        verifyIteration(cpuRun.miners[1]!, 5, ctxFor(cpuRun, wasm, f.history)),
        'VERIFY_MAP',
        5,
      );
    });
  });
});

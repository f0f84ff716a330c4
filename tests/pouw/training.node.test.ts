/**
 * Training that works: three PoUW miners, each with its own TF.js engine on wasm, exchange IT_RES
 * through a seeded in-memory bus (delays, duplicates) and train the paper's FC-DNN (784-128-64-10)
 * on 8,000 real MNIST digits; every miner's final model must classify the 2,000 held-out digits
 * with ≥ 95% accuracy. The same model trained by plain dense TF.js SGD for the same epochs is printed
 * beside it. Mining runs on real chain templates; candidates go through the verifier (full replay).
 */
import { assert, describe, it } from '#test';
import { bytesToHex } from '../../shared/bytes.ts';
import { itResId } from '../../shared/pouw/itres.ts';
import { verifyCandidate } from '../../shared/pouw/verify.ts';
import { selectBackend } from '../../web-worker-node/trainer/backends-node.ts';
import { mnistSplit, runPouwTraining, tunedMnistTask } from '../sim/pouw-training.ts';

const CHAIN = 'pouw-test';

describe('PoUW training on MNIST', () => {
  it('three miners over a lossy bus reach ≥ 95% held-out accuracy, like dense SGD; candidates verify', async () => {
    await selectBackend({ force: 'wasm' });
    const split = mnistSplit(CHAIN);
    const def = tunedMnistTask(split.commitment);
    const run = await runPouwTraining({ chainId: CHAIN, def, split, backend: 'wasm', flushInStep: true });

    const fmt = (a: number) => a.toFixed(4);
    console.log(
      `MNIST 784-128-64-10, B=${def.batchSize}, η=0.4, τ=1, R=10, ${def.epochs} epochs, 8,000 train / 2,000 held out, wasm:\n` +
        `  PoUW, 3 miners:  held-out accuracy ${run.accuracies.map(fmt).join(' / ')} (${run.iterations} iterations, ${run.pouwSeconds.toFixed(1)} s)\n` +
        `  plain TF.js SGD: held-out accuracy ${fmt(run.plainAccuracy!)} (${run.plainSeconds!.toFixed(1)} s)\n` +
        `  IT_RES: ${run.mapEntriesPerIteration.toFixed(0)} map entries, ${run.bytesPerItRes.toFixed(0)} bytes; dense fp32 gradient ${run.denseGradientBytes} bytes (ratio ${(run.bytesPerItRes / run.denseGradientBytes).toFixed(4)})\n` +
        `  bus: ${run.bus.published} published, ${run.bus.delivered} delivered, ${run.bus.duplicated} duplicated, ${run.bus.dropped} dropped\n` +
        `  mining: ${run.mining.tried} nonces hashed in ${run.mining.jobs} iterations, ${run.mining.dropped} jobs dropped; ${run.candidates.length} block candidates`,
    );
    for (const a of run.accuracies) assert.ok(a >= 0.95, `PoUW held-out accuracy ${a} < 0.95`);
    assert.equal(run.bus.dropped, 0);
    assert.equal(run.mining.dropped, 0, 'every earned nonce was hashed');
    assert.deepEqual(run.bus.rejected, {}, 'no honest message was rejected');

    // Candidates exist and the verifier accepts them (the first and the last: replays of up to R steps).
    assert.ok(run.candidates.length >= 2, `${run.candidates.length} block candidates`);
    const ctx = await run.verifyContext();
    for (const c of [run.candidates[0]!, run.candidates[run.candidates.length - 1]!]) {
      const report = await verifyCandidate(c, ctx);
      assert.equal(report.iteration, c.lucky.body.iteration);
      console.log(
        `  verified the candidate of iteration ${report.iteration}: ${report.stepsReplayed} steps replayed in ${report.elapsedMs!.toFixed(0)} ms; nonce offset ${report.nonceOffset} of ${report.nonceAllowance}; ${report.inBandEntries} in-band entries, ${report.inBandFlips} flips`,
      );
    }
    ctx.engine.dispose();
  });

  it('device residual (engine flush or emulated flush) and host residual send byte-identical IT_RES on wasm', async () => {
    await selectBackend({ force: 'wasm' });
    const split = mnistSplit(CHAIN);
    const def = tunedMnistTask(split.commitment, { epochs: 1 });
    const ids: string[][] = [];
    const modes = [
      { residual: 'device', flushInStep: true },
      { residual: 'device', flushInStep: false },
      { residual: 'host', flushInStep: true },
    ] as const;
    for (const mode of modes) {
      const run = await runPouwTraining({
        chainId: CHAIN,
        def,
        split,
        backend: 'wasm',
        plain: false,
        ...mode,
      });
      ids.push(
        run.history
          .messages()
          .map((m) => bytesToHex(itResId(CHAIN, m.body)))
          .sort(),
      );
    }
    assert.equal(ids[0]!.length, 80); // 1 epoch × 80 batches, 3 miners
    assert.deepEqual(ids[1], ids[0], 'emulated flush = engine flush');
    assert.deepEqual(ids[2], ids[0], 'host residual = device residual');
  });
});

/**
 * The miner's protocol bookkeeping, with a small pure-JS engine (softmax regression, residual.ts
 * semantics) so the test runs in Node and Chromium and replays exactly: three miners on a seeded
 * bus with delays and duplicates; every IT_RES checked against the history it implies; every
 * candidate checked as a verifier would (PoW, ZNB, nonce range, model hashes, residual replay).
 */
import { assert, describe, it } from '#test';
import { ItResBus } from '../../tests/sim/bus.ts';
import { bytesToHex, equalBytes } from '../bytes.ts';
import { blockHash } from '../chain/ids.ts';
import { meetsTarget, targetToBits } from '../chain/pow.ts';
import { testAccount } from '../chain/testkit.ts';
import type { Block, BlockHeader } from '../chain/types.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { isPouwError } from '../errors.ts';
import type { BlockCandidate } from './candidate.ts';
import { assignedBatch, batchIndices, batchTensors, type Dataset } from './dataset.ts';
import { type ItRes, itResId, signItRes, workId } from './itres.ts';
import { JsSoftmaxEngine, tinySeparableDataset } from './js-engine.ts';
import { modelHash, nonceAllowance, nonceBase, nonceOffset, residualHash } from './lattice.ts';
import { Miner, type MinerOptions } from './miner.ts';
import { applyMap, isFlushIteration, residualStep, segmentStart } from './residual.ts';
import {
  bitsToFloat32,
  denseSoftmaxTask,
  float32Bits,
  modelLayout,
  type TaskDefinition,
  taskId,
} from './task.ts';
import { znbHash } from './znb.ts';

const CHAIN = 'pouw-test';

function tinyTask(overrides: Partial<TaskDefinition> = {}): TaskDefinition {
  return denseSoftmaxTask(4, 3, {
    initSeed: new Uint8Array(32).fill(9),
    tau: float32Bits(0.05),
    batchSize: 4,
    znbLead: 2,
    segmentLength: 4,
    // a = 3.2 × β (20 bytes) = 64 nonces per iteration.
    omegaBPpm: 3_200_000,
    epochs: 3,
    trainSize: 48,
    ...overrides,
  });
}

function tinyDataset(count = 48): Dataset {
  return tinySeparableDataset(count);
}

function templateOn(tip: Uint8Array, bits: number, payout: number): Block {
  const header: BlockHeader = {
    version: 1,
    height: 1n,
    prevHash: tip,
    merkleRoot: new Uint8Array(32).fill(payout),
    stateRoot: new Uint8Array(32).fill(2),
    time: 1_800_000_000_000n,
    bits,
    nonce: new Uint8Array(32),
    taskId: new Uint8Array(32),
    hashMsg: new Uint8Array(32),
    hashMsgHist: new Uint8Array(32),
  };
  return { header, transactions: [] };
}

interface Sim {
  miners: Miner[];
  bus: ItResBus;
  published: Map<string, ItRes>;
  byMiner: Map<string, ItRes[]>;
  candidates: BlockCandidate[];
  def: TaskDefinition;
  dataset: Dataset;
}

async function simulate(opts: {
  def?: TaskDefinition;
  bits?: number;
  tipAt?: (round: number) => Uint8Array;
  extra?: Partial<MinerOptions>;
  bus?: ConstructorParameters<typeof ItResBus>[0];
  rounds?: number;
}): Promise<Sim> {
  const def = opts.def ?? tinyTask();
  const dataset = tinyDataset(def.trainSize);
  const accounts = await Promise.all([0, 1, 2].map((i) => testAccount(i)));
  const bus = new ItResBus(opts.bus ?? { seed: 'miner-test', minDelay: 0, maxDelay: 2, duplicateRate: 0.2 });
  const published = new Map<string, ItRes>();
  const byMiner = new Map<string, ItRes[]>();
  const candidates: BlockCandidate[] = [];
  let round = 0;
  const miners: Miner[] = [];
  for (const a of accounts) {
    let transport: ReturnType<ItResBus['join']> | undefined;
    const m = await Miner.create({
      chainId: CHAIN,
      task: def,
      engine: new JsSoftmaxEngine(def),
      dataset,
      identity: { secretKey: a.secretKey, publicKey: a.publicKey, ed: nobleEd25519 },
      miners: accounts.map((x) => x.publicKey),
      clock: () => 1_800_000_000_000n + BigInt(round),
      template: () =>
        templateOn(
          opts.tipAt?.(round) ?? new Uint8Array(32).fill(0xaa),
          opts.bits ?? targetToBits(1n << 249n),
          a.index,
        ),
      transport: {
        broadcast(msg) {
          published.set(bytesToHex(itResId(CHAIN, msg.body)), msg);
          const list = byMiner.get(bytesToHex(msg.body.miner)) ?? [];
          list.push(msg);
          byMiner.set(bytesToHex(msg.body.miner), list);
          transport!.broadcast(msg);
        },
      },
      onCandidate: (c) => candidates.push(c),
      ...opts.extra,
    });
    transport = bus.join(`m${a.index}`, (msg) => m.receive(msg));
    miners.push(m);
  }
  for (; round < (opts.rounds ?? Number.POSITIVE_INFINITY); round++) {
    let any = false;
    for (const m of miners) any = (await m.iterate()) !== undefined || any;
    await Promise.all(miners.map((m) => m.drain()));
    await bus.tick();
    if (!any) break;
  }
  await Promise.all(miners.map((m) => m.drain()));
  return { miners, bus, published, byMiner, candidates, def, dataset };
}

/** n before each own map, as the history implies it (own maps + listed peer maps). */
function impliedStates(sim: Sim, minerHex: string): Int32Array[] {
  const msgs = sim.byMiner.get(minerHex)!;
  const n = new Int32Array(modelLayout(sim.def).parameterCount);
  const states: Int32Array[] = [];
  for (const m of msgs) {
    for (const id of m.body.peerMsgIds)
      applyMap(n, Uint32Array.from(sim.published.get(bytesToHex(id))!.body.map));
    states.push(n.slice());
    applyMap(n, Uint32Array.from(m.body.map));
  }
  return states;
}

describe('Miner', () => {
  it('three miners on a lossy bus: every IT_RES matches the history it implies', async () => {
    const sim = await simulate({});
    const def = sim.def;
    const tid = taskId(CHAIN, def);
    const zeroR = residualHash(CHAIN, tid, new Float32Array(modelLayout(def).parameterCount));
    assert.ok(sim.bus.stats.duplicated > 0, 'the bus duplicated some deliveries');
    for (const [minerHex, msgs] of sim.byMiner) {
      const miner = sim.miners.find((m) => bytesToHex(m.publicKey) === minerHex)!;
      const states = impliedStates(sim, minerHex);
      const listed = new Set<string>();
      msgs.forEach((m, i) => {
        const b = m.body;
        assert.equal(b.iteration, i);
        assert.deepEqual({ epoch: b.epoch, batchId: b.batchId }, assignedBatch(miner.minerIndex, 3, i, 12));
        assert.equal(
          bytesToHex(b.modelHash),
          bytesToHex(modelHash(CHAIN, tid, states[i]!)),
          `model hash of ${minerHex.slice(0, 6)} at ${i}`,
        );
        assert.equal(
          bytesToHex(b.residualHash),
          bytesToHex(isFlushIteration(i, 4) ? zeroR : new Uint8Array(32)),
        );
        for (const id of b.peerMsgIds) {
          const hex = bytesToHex(id);
          assert.ok(!listed.has(hex), 'a peer message is applied once');
          listed.add(hex);
          assert.notEqual(bytesToHex(sim.published.get(hex)!.body.miner), minerHex);
        }
      });
      // Final mirror = history.
      const last = msgs[msgs.length - 1]!;
      const final = states[states.length - 1]!.slice();
      applyMap(final, Uint32Array.from(last.body.map));
      assert.deepEqual(Array.from(miner.model()), Array.from(final));
      // Every peer message but those still in flight at the end was applied.
      assert.ok(listed.size >= (sim.published.size - msgs.length) * 0.8);
    }
    const stats = await sim.miners[0]!.stats();
    assert.ok(stats.duplicates > 0, 'duplicates were ignored');
    assert.equal(stats.iterations, 12); // 3 epochs × 12 batches ÷ 3 miners
  });

  it('candidates carry a proof bundle a verifier accepts (PoW, ZNB, nonce range, residual replay)', async () => {
    const sim = await simulate({});
    const def = sim.def;
    assert.ok(sim.candidates.length >= 3, `${sim.candidates.length} candidates`);
    const engine = new JsSoftmaxEngine(def);
    const tau = bitsToFloat32(def.tau);
    const a = nonceAllowance(def.omegaBPpm, def.batchSize * 5, def.omegaMPpm, 15);
    for (const c of sim.candidates) {
      const { header } = c.block;
      const lucky = c.lucky.body;
      const minerHex = bytesToHex(lucky.miner);
      assert.ok(await nobleEd25519.verify(lucky.miner, itResId(CHAIN, lucky), c.lucky.signature));
      assert.ok(equalBytes(header.hashMsg, workId(CHAIN, lucky)), "hashMsg names the lucky IT_RES's work");
      assert.ok(meetsTarget(blockHash(CHAIN, header), header.bits), 'PoW');
      assert.equal(c.znbSource.body.iteration, lucky.iteration - def.znbLead);
      assert.ok(equalBytes(znbHash(CHAIN, header), c.znbSource.body.znbHash), 'ZNB');
      const states = impliedStates(sim, minerHex);
      const offset = nonceOffset(nonceBase(CHAIN, workId(CHAIN, lucky)), header.nonce, a);
      assert.ok(offset >= 0 && offset < a, 'nonce within [nonce0, nonce0 + a)');
      // The segment from its start, and an exact residual replay (same JS engine).
      const start = segmentStart(lucky.iteration, def.segmentLength);
      assert.deepEqual(
        c.segment.map((m) => m.body.iteration),
        Array.from({ length: lucky.iteration - start + 1 }, (_, k) => start + k),
      );
      const r = new Float32Array(15);
      for (const m of c.segment) {
        const batch = batchTensors(
          sim.dataset,
          batchIndices(taskId(CHAIN, def), m.body.epoch, m.body.batchId, def.trainSize, def.batchSize),
        );
        const g = await engine.gradient(states[m.body.iteration]!, batch);
        const map = residualStep(r, g.gradient, tau, isFlushIteration(m.body.iteration, def.segmentLength));
        assert.deepEqual(Array.from(map), m.body.map, `replayed map of iteration ${m.body.iteration}`);
      }
    }
  });

  it('a tip change voids the commitments: no mining for k iterations, then mining resumes', async () => {
    const def = tinyTask();
    // Round r runs iteration r of every miner; the tip changes at round 6.
    const sim = await simulate({
      def,
      tipAt: (round) => new Uint8Array(32).fill(round < 6 ? 0xaa : 0xbb),
      bus: { seed: 'tip' },
    });
    const minable = (i: number) => i >= def.znbLead && !(i >= 6 && i < 6 + def.znbLead);
    for (const c of sim.candidates) {
      const i = c.lucky.body.iteration;
      assert.ok(minable(i), `candidate at iteration ${i}`);
      assert.equal(c.block.header.prevHash[0], i < 6 ? 0xaa : 0xbb);
    }
    assert.ok(sim.candidates.some((c) => c.lucky.body.iteration < 6));
    assert.ok(sim.candidates.some((c) => c.lucky.body.iteration >= 6 + def.znbLead));
    const stats = await sim.miners[0]!.stats();
    assert.equal(stats.mining.jobs, 12, 'every iteration hands its map to the mining service');
  });

  it('rejects IT_RES of another task, from non-members and with bad signatures; ignores duplicates; bounds its queue', async () => {
    const def = tinyTask();
    const accounts = await Promise.all([0, 1, 2, 3].map((i) => testAccount(i)));
    const miner = await Miner.create({
      chainId: CHAIN,
      task: def,
      engine: new JsSoftmaxEngine(def),
      dataset: tinyDataset(),
      identity: { secretKey: accounts[0]!.secretKey, publicKey: accounts[0]!.publicKey, ed: nobleEd25519 },
      miners: accounts.slice(0, 3).map((a) => a.publicKey),
      clock: () => 0n,
      template: () => undefined,
      transport: { broadcast() {} },
      maxQueuedPeerMessages: 2,
    });
    const body = (from: number, iteration: number, over: Partial<ItRes['body']> = {}): ItRes['body'] => ({
      taskId: taskId(CHAIN, def),
      miner: accounts[from]!.publicKey,
      epoch: 0,
      iteration,
      batchId: 0,
      modelHash: new Uint8Array(32),
      residualHash: new Uint8Array(32),
      peerMsgIds: [],
      map: [1, 0x80000003],
      loss: 0,
      accuracy: 0,
      znbHash: new Uint8Array(32),
      time: 0n,
      ...over,
    });
    const signed = (from: number, iteration: number, over: Partial<ItRes['body']> = {}) =>
      signItRes(CHAIN, body(from, iteration, over), accounts[from]!.secretKey, nobleEd25519);
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
        return 'accepted';
      } catch (e) {
        return isPouwError(e) ? e.code : String(e);
      }
    };
    assert.equal(
      await code(miner.receive(await signed(1, 0, { taskId: new Uint8Array(32) }))),
      'ITRES_MALFORMED',
    );
    assert.equal(await code(miner.receive(await signed(3, 0))), 'ITRES_MALFORMED');
    const forged = await signed(1, 0);
    forged.signature = (await signed(2, 0)).signature;
    assert.equal(await code(miner.receive(forged)), 'ITRES_BAD_SIGNATURE');
    assert.equal(await code(miner.receive(await signed(1, 0, { map: [5, 2] }))), 'MAP_NOT_SORTED');
    assert.equal(await code(miner.receive(await signed(1, 0, { map: [15] }))), 'MAP_OUT_OF_RANGE');
    assert.equal(await miner.receive(await signed(1, 0)), 'queued');
    assert.equal(await miner.receive(await signed(1, 0)), 'duplicate');
    assert.equal(await miner.receive(await signed(0, 0)), 'duplicate', 'own messages echoed back');
    assert.equal(await miner.receive(await signed(2, 0)), 'queued');
    assert.equal(await miner.receive(await signed(2, 1)), 'dropped');
    const report = await miner.iterate();
    assert.equal(report?.peers, 2);
    // Both peer maps are in the mirror: weight 1 −2, weight 3 +2, plus this iteration's own map.
    const stats = await miner.stats();
    assert.equal(stats.peerMessagesApplied, 2);
    assert.equal(stats.peerMessagesDropped, 1);
    // A dropped message can be delivered again later and is then applied.
    assert.equal(await miner.receive(await signed(2, 1)), 'queued');
  });

  it('host residual (gradient only on the engine) sends exactly the IT_RES of the device residual', async () => {
    const a = await simulate({ bus: { seed: 'host', maxDelay: 1 }, rounds: 9 });
    const b = await simulate({
      bus: { seed: 'host', maxDelay: 1 },
      rounds: 9,
      extra: { residual: 'host', residualCommitment: 'segment' },
    });
    for (const [hex, msgs] of a.byMiner) {
      assert.deepEqual(
        b.byMiner.get(hex)!.map((m) => bytesToHex(itResId(CHAIN, m.body))),
        msgs.map((m) => bytesToHex(itResId(CHAIN, m.body))),
      );
    }
    assert.ok(a.candidates.length > 0 && a.candidates.length === b.candidates.length);
  });

  it('drives flush iterations through gradient() + residualStep() + setState() when the engine cannot', async () => {
    const a = await simulate({ bus: { seed: 'flush' }, rounds: 6 });
    const b = await simulate({ bus: { seed: 'flush' }, rounds: 6, extra: { flushInStep: false } });
    for (const [hex, msgs] of a.byMiner) {
      assert.deepEqual(
        b.byMiner.get(hex)!.map((m) => m.body.map),
        msgs.map((m) => m.body.map),
      );
    }
  });
});

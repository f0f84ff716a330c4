import { assert, describe, it } from '#test';
import { bytesToHex } from '../bytes.ts';
import { blockHash } from '../chain/ids.ts';
import { meetsTarget, targetToBits } from '../chain/pow.ts';
import type { BlockHeader } from '../chain/types.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { SeededStream } from './init.ts';
import { itResId, signItRes, workId } from './itres.ts';
import { modelHash, nonceAt, nonceBase, nonceOffset, residualHash } from './lattice.ts';
import {
  connectMiningPort,
  HeaderGrinder,
  headerLayout,
  type ItResFields,
  itResIdWith,
  LocalMiningService,
  type MiningService,
  modelHashWith,
  nobleDigest,
  type PortLike,
  residualHashWith,
  residualStepFast,
  serveMiningPort,
  webCryptoDigest,
  workIdWith,
} from './mining.ts';
import { residualStep } from './residual.ts';

const CHAIN = 'pouw-test';
const fill = (v: number) => new Uint8Array(32).fill(v);

function header(bits: number): BlockHeader {
  return {
    version: 1,
    height: 7n,
    prevHash: fill(1),
    merkleRoot: fill(2),
    stateRoot: fill(3),
    time: 1_800_000_000_123n,
    bits,
    nonce: new Uint8Array(32),
    taskId: fill(4),
    hashMsg: new Uint8Array(32),
    hashMsgHist: fill(6),
  };
}

function randomInt32(n: number, seed: number): Int32Array {
  const s = new SeededStream(fill(seed));
  return Int32Array.from({ length: n }, () => (s.nextUint32() % 21) - 10);
}

describe('header grinding', () => {
  it('the header layout is derived from the codec: nonce at 120, hashMsg at 184 of 248 bytes', () => {
    assert.deepEqual(headerLayout, { nonce: 120, hashMsg: 184, length: 248 });
  });

  it('hashes exactly as blockHash for every chain-id length (nonce straddling blocks included)', () => {
    const bits = targetToBits(1n << 251n); // ~1 in 32 meets it
    const nonce0 = new Uint8Array(32).fill(0xff, 24); // carries through the low bytes at once
    nonce0[0] = 0x80;
    const hashMsg = fill(9);
    for (const chainId of ['a', CHAIN, 'pouw-devnet-1', 'abcdefghijklmnopqrstu', 'x'.repeat(32)]) {
      const h = header(bits);
      const g = new HeaderGrinder(chainId, h, hashMsg, nonce0);
      let hits = 0;
      for (let i = 0; i < 600; i++) {
        const hit = g.grind(i, 1);
        const ref = blockHash(chainId, { ...h, hashMsg, nonce: nonceAt(nonce0, i) });
        assert.equal(hit !== undefined, meetsTarget(ref, bits), `${chainId} nonce ${i}`);
        if (hit !== undefined) {
          hits++;
          assert.equal(bytesToHex(hit.hash), bytesToHex(ref));
          assert.equal(bytesToHex(hit.nonce), bytesToHex(nonceAt(nonce0, i)));
          assert.equal(hit.offset, i);
        }
      }
      assert.ok(hits > 0, `${chainId}: some hits`);
      assert.equal(g.tried, 600);
    }
  });

  it('returns the first hit in a range, within [nonce0, nonce0 + count), and seeks back and forth', () => {
    const h = header(targetToBits(1n << 252n));
    const nonce0 = fill(0x33);
    const g = new HeaderGrinder(CHAIN, h, fill(8), nonce0);
    const hit = g.grind(0, 10_000)!;
    assert.ok(hit !== undefined);
    for (let i = 0; i < hit.offset; i++) {
      assert.ok(
        !meetsTarget(blockHash(CHAIN, { ...h, hashMsg: fill(8), nonce: nonceAt(nonce0, i) }), h.bits),
      );
    }
    assert.equal(nonceOffset(nonce0, hit.nonce, hit.offset + 1), hit.offset);
    // Rewind and replay the same range: same hit.
    const again = g.grind(0, hit.offset + 1)!;
    assert.equal(again.offset, hit.offset);
    assert.equal(bytesToHex(g.nonceBytes(12345)), bytesToHex(nonceAt(nonce0, 12345)));
  });

  it('wraps the 256-bit counter like nonceAt', () => {
    const nonce0 = fill(0xff);
    const g = new HeaderGrinder(CHAIN, header(targetToBits(1n << 255n)), fill(1), nonce0);
    assert.equal(bytesToHex(g.nonceBytes(1)), bytesToHex(new Uint8Array(32)));
    assert.equal(bytesToHex(g.nonceBytes(300)), bytesToHex(nonceAt(nonce0, 300)));
  });
});

describe('hashes over n through a pluggable digest', () => {
  it('modelHashWith, itResIdWith and workIdWith equal lattice.ts and itres.ts (noble and WebCrypto)', async () => {
    const n = randomInt32(5000, 1);
    const map = Uint32Array.from([3, 0x80000009, 77]);
    const taskId = fill(5);
    assert.equal(
      bytesToHex(await modelHashWith(nobleDigest, CHAIN, taskId, n)),
      bytesToHex(modelHash(CHAIN, taskId, n)),
    );
    const body = {
      taskId,
      miner: fill(1),
      epoch: 2,
      iteration: 9,
      batchId: 3,
      modelHash: fill(2),
      residualHash: fill(3),
      peerMsgIds: [fill(4)],
      map: Array.from(map),
      loss: 7,
      accuracy: 8,
      znbHash: fill(5),
      time: 99n,
    };
    assert.equal(bytesToHex(await itResIdWith(nobleDigest, CHAIN, body)), bytesToHex(itResId(CHAIN, body)));
    assert.equal(bytesToHex(await workIdWith(nobleDigest, CHAIN, body)), bytesToHex(workId(CHAIN, body)));
    const subtle = globalThis.crypto?.subtle;
    if (subtle !== undefined) {
      const wc = webCryptoDigest(subtle);
      assert.equal(bytesToHex(await itResIdWith(wc, CHAIN, body)), bytesToHex(itResId(CHAIN, body)));
      assert.equal(bytesToHex(await workIdWith(wc, CHAIN, body)), bytesToHex(workId(CHAIN, body)));
      assert.equal(
        bytesToHex(await modelHashWith(wc, CHAIN, taskId, n)),
        bytesToHex(modelHash(CHAIN, taskId, n)),
      );
    }
  });
});

const SECRET = new Uint8Array(32).fill(21);

function fields(iteration: number, miner: Uint8Array): ItResFields {
  return {
    taskId: fill(5),
    miner,
    epoch: 0,
    iteration,
    batchId: 3,
    residualHash: fill(8),
    peerMsgIds: [fill(9)],
    loss: 1,
    accuracy: 2,
    znbHash: fill(10),
    time: 123n,
  };
}

/** Calls in order, checked against the reference functions; `signs`: the service holds the key. */
async function exerciseService(service: MiningService, parameterCount: number, signs: boolean) {
  const taskId = fill(5);
  const miner = await nobleEd25519.getPublicKey(SECRET);
  const n = randomInt32(parameterCount, 2);
  service.reset(n);
  const peer = Uint32Array.from([1, 0x80000002]);
  service.apply(peer);
  const expected = n.slice();
  expected[1]! -= 1;
  expected[2]! += 1;
  const h1 = service.modelHash();
  const own = Uint32Array.from([0x80000000, 5]);
  const bits = targetToBits(1n << 250n);
  const tpl = header(bits);
  const job = service.seal({ fields: fields(0, miner), map: own, count: 400, template: tpl });
  // A peer map arriving after seal must not change that iteration's modelHash or nonce0.
  service.apply(Uint32Array.from([3]));
  const h2 = service.modelHash();
  const before = expected.slice();
  assert.equal(bytesToHex(await h1), bytesToHex(modelHash(CHAIN, taskId, expected)));
  expected[0]! += 1;
  expected[5]! -= 1;
  // Sealed: the body carries the hash of n before the own map; ids and signature as the references.
  const sealed = await job.sealed;
  assert.equal(bytesToHex(sealed.body.modelHash), bytesToHex(modelHash(CHAIN, taskId, before)));
  assert.deepEqual(sealed.body.map, Array.from(own));
  assert.equal(sealed.body.time, 123n);
  assert.equal(bytesToHex(sealed.id), bytesToHex(itResId(CHAIN, sealed.body)));
  assert.equal(bytesToHex(sealed.work), bytesToHex(workId(CHAIN, sealed.body)));
  if (signs) assert.ok(await nobleEd25519.verify(miner, sealed.id, sealed.signature!));
  else assert.equal(sealed.signature, undefined);
  const outcome = await job.mined;
  assert.equal(bytesToHex(outcome.nonce0!), bytesToHex(nonceBase(CHAIN, sealed.work)));
  expected[3]! -= 1;
  assert.equal(bytesToHex(await h2), bytesToHex(modelHash(CHAIN, taskId, expected)));
  // The outcome agrees with the reference, the header naming the work id: the first nonce in range
  // that meets the target.
  let first = -1;
  for (let i = 0; i < 400 && first < 0; i++) {
    const h = { ...tpl, hashMsg: sealed.work, nonce: nonceAt(outcome.nonce0!, i) };
    if (meetsTarget(blockHash(CHAIN, h), bits)) first = i;
  }
  assert.equal(outcome.hit?.offset ?? -1, first);
  assert.equal(outcome.tried, first < 0 ? 400 : first + 1);
  // Without a template: sealed, nothing mined.
  const quiet = service.seal({ fields: fields(1, miner), map: new Uint32Array(0), count: 400 });
  assert.equal((await quiet.mined).tried, 0);
  assert.equal((await quiet.sealed).body.iteration, 1);
  const stats = await service.stats();
  assert.equal(stats.jobs, 2);
  assert.equal(stats.hits, first < 0 ? 0 : 1);
  // Checks of received IT_RES: the id back for a good one, typed errors for bad ones.
  const msg = await signItRes(CHAIN, { ...sealed.body, map: [1, 7] }, SECRET, nobleEd25519);
  const checked = await service.check(msg);
  assert.equal(checked.idHex, bytesToHex(itResId(CHAIN, msg.body)));
  assert.deepEqual(Array.from(checked.map), [1, 7]);
  await assert.rejects(() => service.check({ ...msg, signature: new Uint8Array(64) }), {
    name: 'WorkError',
    code: 'ITRES_BAD_SIGNATURE',
  });
  await assert.rejects(() => service.check({ ...msg, body: { ...msg.body, map: [7, 1] } }), {
    name: 'WorkError',
    code: 'MAP_NOT_SORTED',
  });
}

describe('host residual', () => {
  it('residualStepFast is residualStep bit for bit (thresholds hit exactly, flushes, ±0)', () => {
    const m = 4000;
    const s = new SeededStream(fill(11));
    const tau = Math.fround(0.37);
    const scratch = new Uint32Array(m);
    const r1 = new Float32Array(m);
    const r2 = new Float32Array(m);
    for (let step = 0; step < 30; step++) {
      const g = new Float32Array(m);
      for (let j = 0; j < m; j++) {
        const u = s.nextUint32();
        // Mostly small gradients; some land exactly on ±τ, ±τ/2 or ±0 after the sum.
        g[j] =
          u % 17 === 0
            ? tau - r1[j]!
            : u % 19 === 0
              ? -tau / 2 - r1[j]!
              : u % 23 === 0
                ? -0
                : ((u / 2 ** 32) * 2 - 1) * tau * 1.3;
      }
      const flush = step % 7 === 6;
      const a = residualStep(r1, g, tau, flush);
      const b = residualStepFast(r2, g, tau, flush, scratch);
      assert.deepEqual(Array.from(b), Array.from(a), `map of step ${step}`);
      assert.equal(
        bytesToHex(new Uint8Array(r2.buffer)),
        bytesToHex(new Uint8Array(r1.buffer)),
        `residual after step ${step}`,
      );
    }
    assert.equal(
      bytesToHex(residualHashWith(nobleDigest, CHAIN, fill(5), r2) as Uint8Array),
      bytesToHex(residualHash(CHAIN, fill(5), r2)),
    );
  });
});

describe('mining service', () => {
  it('local: model hash, sealing and nonce0 follow the order of calls; grinding matches the reference', async () => {
    for (const secretKey of [SECRET, undefined]) {
      const service = new LocalMiningService({
        chainId: CHAIN,
        taskId: fill(5),
        parameterCount: 1000,
        chunk: 37,
        ed: nobleEd25519,
        ...(secretKey === undefined ? {} : { secretKey }),
      });
      await exerciseService(service, 1000, secretKey !== undefined);
    }
  });

  it('behind a MessagePort (a worker in production): the same results, typed errors included', async () => {
    const channel = new MessageChannel();
    serveMiningPort(channel.port2 as unknown as PortLike, { chunk: 50, ed: nobleEd25519 });
    const service = connectMiningPort(channel.port1 as unknown as PortLike, {
      chainId: CHAIN,
      taskId: fill(5),
      parameterCount: 1000,
      secretKey: SECRET,
    });
    try {
      await exerciseService(service, 1000, true);
    } finally {
      service.close();
      channel.port1.close();
      channel.port2.close();
    }
  });

  it('bounds its backlog: the oldest waiting jobs are dropped, the grinding one finishes', async () => {
    const service = new LocalMiningService({
      chainId: CHAIN,
      taskId: fill(5),
      parameterCount: 10,
      chunk: 10,
      maxBacklog: 2,
    });
    const tpl = header(targetToBits(1n));
    const jobs = [0, 1, 2, 3, 4].map(
      (iteration) =>
        service.seal({
          fields: fields(iteration, fill(6)),
          map: new Uint32Array(0),
          count: 50,
          template: tpl,
        }).mined,
    );
    const outcomes = await Promise.all(jobs);
    assert.deepEqual(
      outcomes.map((o) => o.dropped === true),
      [false, true, true, false, false],
    );
    assert.deepEqual(
      outcomes.map((o) => o.tried),
      [50, 0, 0, 50, 50],
    );
    const stats = await service.stats();
    assert.equal(stats.dropped, 2);
    assert.equal(stats.tried, 150);
  });

  it('drops queued jobs on another tip', async () => {
    const service = new LocalMiningService({
      chainId: CHAIN,
      taskId: fill(5),
      parameterCount: 10,
      chunk: 10,
    });
    const old = header(targetToBits(1n));
    const job = (iteration: number) =>
      service.seal({ fields: fields(iteration, fill(6)), map: new Uint32Array(0), count: 30, template: old })
        .mined;
    const a = job(0);
    const b = job(1);
    service.dropStale(fill(0xee));
    assert.equal((await a).tried, 30, 'the job already grinding finishes');
    assert.equal((await b).dropped, true);
  });
});

/**
 * Edge volunteers: the volunteer worker code on real Node worker threads (comlink's node adapter),
 * on a LoopbackNetwork. Two volunteers train a tiny MNIST task, exchange IT_RES over the bus, find
 * block candidates against an easy target; the loopback committee replays each candidate with the
 * real verifier (shared/pouw/verify.ts, TF.js cpu on this thread) before finalizing it, and the
 * winner's balance is read back through the light client from certificates and state proofs.
 */
import { readFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { after, assert, before, describe, it } from '#test';
import { bytesToHex, utf8 } from '../shared/bytes.ts';
import { blockHash } from '../shared/chain/ids.ts';
import { MemoryLightClientStore } from '../shared/chain/light-client.ts';
import { blockSubsidy, meetsTarget } from '../shared/chain/pow.ts';
import { TEST_PARAMS } from '../shared/chain/testkit.ts';
import type { Block, BlockHeader } from '../shared/chain/types.ts';
import { addressBytesOf } from '../shared/chain/validate-tx.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { segmentHash, segmentRanges } from '../shared/pouw/dataset.ts';
import { ItRes } from '../shared/pouw/itres.ts';
import { type TaskDefinition, taskId } from '../shared/pouw/task.ts';
import { CommittedDataset, verifyCandidate } from '../shared/pouw/verify.ts';
import { MemoryHistory } from '../shared/pouw/verify-fixtures.ts';
import { WalletBalance } from './balance.ts';
import { commitDataset, gunzipIfNeeded } from './data/committed.ts';
import { mnistExamples } from './data/mnist.ts';
import { MNIST_FILE } from './data/mnist-node.ts';
import { MNIST_SPLIT, tinyMnistTask } from './demo.ts';
import { LOOPBACK_CHAIN_ID, LoopbackNetwork } from './loopback.ts';
import { bridgeNetwork, type NetworkPort, PortNetwork } from './port-protocol.ts';
import type { VolunteerEvent } from './progress.ts';
import { selectBackend } from './trainer/backends-node.ts';
import { createTfjsEngine } from './trainer/engine-tfjs.ts';
import type { Volunteer } from './volunteer-client.ts';
import { VolunteerCore } from './volunteer-core.ts';
import { startEdgeVolunteer } from './volunteer-edge.ts';

const CHAIN = LOOPBACK_CHAIN_ID;

async function identity(name: string) {
  const secretKey = sha256(utf8(`edge-volunteer-${name}`));
  const publicKey = await nobleEd25519.getPublicKey(secretKey);
  return { secretKey, publicKey, payout: addressBytesOf(publicKey) };
}

/** Resolves when `pred` holds for an event, or rejects after `ms`. */
function waitFor(v: Volunteer, pred: (e: VolunteerEvent) => boolean, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching event within ${ms} ms (phase ${v.snapshot().phase})`));
    }, ms);
    const off = v.onEvent((e) => {
      if (e.type === 'error') {
        clearTimeout(timer);
        off();
        reject(new Error(`volunteer error: ${e.error.code ?? e.error.name}: ${e.error.message}`));
      } else if (pred(e)) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}

let full: ReturnType<typeof mnistExamples>;
let task: TaskDefinition;

before(async () => {
  full = mnistExamples(await gunzipIfNeeded(new Uint8Array(readFileSync(MNIST_FILE))));
  task = tinyMnistTask(commitDataset(CHAIN, full, MNIST_SPLIT).commitment);
});

describe('edge volunteers on a LoopbackNetwork (Node worker threads)', () => {
  const volunteers: Volunteer[] = [];
  after(async () => {
    for (const v of volunteers) await v.close();
  });

  it('two volunteers train, exchange IT_RES, mine blocks that verify by replay; the balance is finality-verified', async () => {
    await selectBackend({ force: 'cpu' });
    const data = commitDataset(CHAIN, full, MNIST_SPLIT);
    const ranges = segmentRanges(full.count, MNIST_SPLIT.segments);
    const verifierEngine = await createTfjsEngine(task, { backend: 'cpu' });
    const committed = new CommittedDataset(CHAIN, task, data.train, {
      segmentHashes: ranges.map((r) => segmentHash(CHAIN, full, r)),
      trainRanges: ranges.slice(0, 8).map((r, segment) => ({ segment, start: r.start, end: r.end })),
    });
    // Warm the verifier up (TF.js kernels, every segment hashed once) so the first replay does not
    // hold this thread, which relays the volunteers' messages, for a second.
    await verifierEngine.gradient(
      new Int32Array(verifierEngine.parameterCount),
      committed.batch(Array.from({ length: 8 }, (_, s) => s * 1000)),
    );
    const history = new MemoryHistory(CHAIN);
    const replayed: number[] = [];
    let net: LoopbackNetwork | undefined;
    net = await LoopbackNetwork.create({
      task,
      dataset: { url: 'https://example.invalid/data/mnist-10k.u8.gz', ...MNIST_SPLIT },
      minerSlots: 2,
      // Easy target (about every other hash wins): candidates within the first few mining iterations.
      initialBits: 0x207fffff,
      verify: async (candidate) => {
        const report = await verifyCandidate(candidate, {
          chainId: CHAIN,
          task,
          taskId: taskId(CHAIN, task),
          miners: net!.miners,
          data: committed,
          history,
          engine: verifierEngine,
          ed25519: nobleEd25519,
        });
        replayed.push(report.stepsReplayed);
        history.markRewarded(bytesToHex(candidate.block.header.hashMsg));
      },
    });
    net.observe((msg) => history.add(msg));

    const ids = await Promise.all(['a', 'b'].map(identity));
    const verdicts: { name: string; height: bigint; accepted: boolean }[] = [];
    const peersApplied = [0, 0];
    const started = await Promise.all(
      ids.map((id, i) =>
        startEdgeVolunteer({
          network: net!.connect(`edge-${i}`),
          identity: id,
          payout: id.payout,
          backend: { force: 'wasm' },
          heldOut: { every: 20, examples: 200 },
          // A quarter of the time working: iterations at a pace where this thread (which relays
          // the messages and runs the committee, BLS included) keeps up, as a real network would.
          dutyCycle: 0.25,
          onEvent: (e) => {
            if (e.type === 'iteration') peersApplied[i]! += e.peers;
            if (e.type === 'verdict')
              verdicts.push({ name: `edge-${i}`, height: e.height, accepted: e.accepted });
          },
          autoStart: false,
        }),
      ),
    );
    volunteers.push(...started);
    const done = started.map((v) => waitFor(v, (e) => e.type === 'phase' && e.phase === 'done', 90_000));
    for (const v of started) await v.start();
    await Promise.all(done);
    // Let the last verdicts come back.
    for (let i = 0; i < 50 && net.stats.candidates > net.stats.accepted + sum(net.stats.rejected); i++)
      await new Promise((r) => setTimeout(r, 100));

    for (const v of started) {
      const s = v.snapshot();
      // The task's one epoch: 160 batches dealt to two miners.
      assert.equal(s.iterations, 80, 'iterations');
      assert.equal(s.phaseDetail, 'the task’s epochs are done');
      assert.equal(s.backend?.name, 'wasm');
      assert.equal(s.dataset?.train, 8000);
      assert.equal(s.itres.sent, 80, 'one IT_RES per iteration');
      assert.equal(s.itres.rejected, 0, 'no honest IT_RES rejected');
      assert.equal(s.heldOut.length, 4, 'held-out evaluations every 20 iterations');
      assert.ok(s.noncesTried > 0, 'nonces hashed');
      assert.ok(s.series.length === 80 && s.series.every((p) => Number.isFinite(p.loss)));
      // Every peer IT_RES arrived and passed the miner's checks (signature, membership, map); the
      // peer may have sent its last ones after this volunteer finished.
      const end = Date.now() + 10_000;
      while ((await v.status()).itres.received < 80 && Date.now() < end)
        await new Promise((r) => setTimeout(r, 20));
      const st = await v.status();
      assert.equal(st.iteration, 80);
      assert.equal(st.itres.received, 80, 'peer IT_RES received and queued');
      assert.equal(st.itres.rejected + st.itres.dropped, 0);
    }
    for (const n of peersApplied) assert.ok(n > 0, `peer maps applied in training: ${peersApplied}`);
    // Training works: the held-out accuracy of the last evaluation is well above chance.
    const lastHeld = started[0]!.snapshot().heldOut.at(-1)!;
    assert.ok(lastHeld.accuracy > 0.5, `held-out accuracy ${lastHeld.accuracy}`);
    console.log(
      `  2 edge volunteers, tiny MNIST task (7,850 weights, 80 iterations each): held-out accuracy ${lastHeld.accuracy.toFixed(3)}; ` +
        `${net.stats.candidates} candidates, ${net.stats.accepted} finalized after replay (${replayed.join('/')} steps), ` +
        `${peersApplied.join('+')} peer maps applied`,
    );

    assert.equal(net.stats.published, 160);
    const found = started.reduce((n, v) => n + v.snapshot().blocksFound, 0);
    assert.ok(found >= 1, 'block candidates found');
    assert.ok(
      net.stats.accepted >= 1,
      `accepted ${net.stats.accepted}, rejected ${JSON.stringify(net.stats.rejected)}`,
    );
    assert.equal(replayed.length, net.stats.accepted, 'every accepted candidate was replayed');
    // Losing candidates lost a race for the tip; none failed a rule.
    for (const code of Object.keys(net.stats.rejected))
      assert.ok(['BLOCK_BAD_PREV_HASH', 'BLOCK_BAD_HEIGHT'].includes(code), `rejected: ${code}`);
    assert.equal(net.tip.height, BigInt(net.stats.accepted));

    // The winners' balances, from certificates and state proofs only.
    for (const [i, id] of ids.entries()) {
      const won = verdicts.filter((v) => v.name === `edge-${i}` && v.accepted);
      const view = await new WalletBalance(
        net.connect(`wallet-${i}`),
        net.anchor,
        new MemoryLightClientStore(),
        id.payout,
      ).sync();
      assert.equal(view.status, 'verified');
      if (view.status !== 'verified') continue;
      assert.equal(view.height, net.tip.height);
      const expected = won.reduce((s, w) => s + blockSubsidy(TEST_PARAMS, w.height), 0n);
      assert.equal(view.spendable, expected, `balance of edge-${i}`);
    }
    verifierEngine.dispose();
  });
});

function sum(r: Record<string, number>): number {
  return Object.values(r).reduce((a, b) => a + b, 0);
}

describe('LoopbackNetwork and the port bridge', () => {
  it('the worker refuses a bad duty cycle and a start before init', async () => {
    const core = new VolunteerCore({
      name: 'node',
      selectBackend: () => Promise.reject(new Error('unused')),
      fetchBytes: () => Promise.reject(new Error('unused')),
      yieldToEvents: () => Promise.resolve(),
      digest: () => new Uint8Array(32),
      now: () => 0,
    });
    assert.throws(() => core.start(), { name: 'VolunteerError', code: 'VOLUNTEER_MISUSE' });
    const { port1 } = new MessageChannel();
    for (const dutyCycle of [0, 1.5, Number.NaN])
      await assert.rejects(
        () =>
          core.init(
            {
              chainId: CHAIN,
              task: new Uint8Array(0),
              miners: [],
              dataset: { url: '', ...MNIST_SPLIT },
              secretKey: new Uint8Array(32),
              dutyCycle,
            },
            port1 as unknown as NetworkPort,
            () => undefined,
          ),
        { name: 'VolunteerError', code: 'VOLUNTEER_MISUSE' },
      );
    port1.close();
  });

  it('rejects candidates with a typed reason and changes nothing; a forged header stays unverified', async () => {
    const net = await LoopbackNetwork.create({
      task,
      dataset: { url: MNIST_FILE.href, ...MNIST_SPLIT },
      minerSlots: 1,
      initialBits: 0x207fffff,
    });
    const a = await identity('solo');
    const conn = net.connect();
    const assignment = await conn.joinTask({ minerKey: a.publicKey, payout: a.payout });
    assert.equal(assignment.miners.length, 1);
    await assert.rejects(
      () => net.connect().joinTask({ minerKey: new Uint8Array(32).fill(5), payout: a.payout }),
      {
        name: 'NetError',
        code: 'NET_BAD_REQUEST',
      },
    );
    const template = (await conn.fetchTemplate({ payout: a.payout, taskId: net.taskId }))!;
    assert.ok(template !== undefined);
    assert.equal(await conn.fetchTemplate({ payout: a.payout, taskId: new Uint8Array(32) }), undefined);
    const lucky: ItRes = ItRes.decode(ItRes.encode(fakeItRes(net.taskId, a.publicKey)));
    const base = { lucky, znbSource: lucky, segment: [lucky] };
    // Wrong task, stale tip, and a nonce that misses the target (bits made impossible to meet).
    const wrongTask = await conn.submitCandidate({
      ...base,
      block: { ...template, header: { ...template.header, taskId: new Uint8Array(32) } },
    });
    assert.deepEqual(wrongTask.accepted ? '' : wrongTask.code, 'NET_BAD_REQUEST');
    const stale = await conn.submitCandidate({
      ...base,
      block: { ...template, header: { ...template.header, prevHash: new Uint8Array(32).fill(1) } },
    });
    assert.equal(stale.accepted ? '' : stale.code, 'BLOCK_BAD_PREV_HASH');
    const hard: BlockHeader = { ...template.header, bits: 0x03000001 };
    const badBits = await conn.submitCandidate({ ...base, block: { ...template, header: hard } });
    assert.equal(badBits.accepted ? '' : badBits.code, 'BLOCK_BAD_BITS');
    assert.equal(net.tip.height, 0n);
    assert.equal(net.stats.accepted, 0);

    // Before anything is finalized the balance cannot be verified.
    const none = await new WalletBalance(conn, net.anchor, new MemoryLightClientStore(), a.payout).sync();
    assert.equal(none.status, 'unverified');

    // A network that forges certificates: headers never verify, the balance stays unverified.
    const good = await conn.submitCandidate({ ...base, block: mineEasy(net, template) });
    assert.ok(good.accepted, good.accepted ? '' : good.reason);
    const forging = {
      ...conn,
      fetchFinalized: async (from: bigint, max: number) =>
        (await conn.fetchFinalized(from, max)).map((f) => ({
          header: f.header,
          certificate: {
            ...f.certificate,
            groupSignature: f.certificate.groupSignature.slice().fill(0xaa, 0, 1),
          },
        })),
    };
    const forged = await new WalletBalance(
      forging,
      net.anchor,
      new MemoryLightClientStore(),
      a.payout,
    ).sync();
    assert.equal(forged.status, 'unverified');
    const honest = await new WalletBalance(conn, net.anchor, new MemoryLightClientStore(), a.payout).sync();
    assert.equal(honest.status === 'verified' ? honest.spendable : -1n, blockSubsidy(TEST_PARAMS, 1n));
  });

  it('the bridge forwards peer IT_RES and templates; the worker side counts malformed input', async () => {
    const net = await LoopbackNetwork.create({
      task,
      dataset: { url: MNIST_FILE.href, ...MNIST_SPLIT },
      minerSlots: 2,
    });
    const [a, b] = await Promise.all(['p', 'q'].map(identity));
    const [ca, cb] = [net.connect('a'), net.connect('b')];
    await Promise.all([
      ca.joinTask({ minerKey: a!.publicKey, payout: a!.payout }),
      cb.joinTask({ minerKey: b!.publicKey, payout: b!.payout }),
    ]);
    const { port1, port2 } = new MessageChannel();
    const events: VolunteerEvent[] = [];
    const bridge = bridgeNetwork(ca, port1 as unknown as NetworkPort, {
      payout: a!.payout,
      taskId: net.taskId,
      onEvent: (e) => events.push(e),
    });
    const worker = new PortNetwork(port2 as unknown as NetworkPort);
    const got: ItRes[] = [];
    worker.setReceiver(async (m) => {
      got.push(m);
      return 'queued';
    });
    try {
      await until(() => worker.template() !== undefined);
      assert.equal(bytesToHex(worker.template()!.header.prevHash), bytesToHex(net.tip.hash));
      await cb.publishItRes(fakeItRes(net.taskId, b!.publicKey));
      await until(() => got.length === 1);
      assert.equal(bytesToHex(got[0]!.body.miner), bytesToHex(b!.publicKey));
      // Garbage on the port is counted as rejected, not thrown.
      port1.postMessage({ t: 'itres', bytes: new Uint8Array([1, 2, 3]) });
      await until(() => worker.counters.rejected === 1);
      assert.equal(worker.counters.received, 1);
      // The worker's own IT_RES reach the other member.
      const seen: ItRes[] = [];
      cb.onItRes((m) => seen.push(m));
      worker.transport.broadcast(fakeItRes(net.taskId, a!.publicKey));
      await until(() => seen.length === 1);
      assert.equal(worker.counters.sent, 1);
      assert.equal(events.length, 0, 'no errors');
    } finally {
      bridge.close();
      worker.close();
    }
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function fakeItRes(task: Uint8Array, miner: Uint8Array): ItRes {
  return {
    body: {
      taskId: task,
      miner,
      epoch: 0,
      iteration: 0,
      batchId: 0,
      modelHash: new Uint8Array(32),
      residualHash: new Uint8Array(32),
      peerMsgIds: [],
      map: [1, 2],
      loss: 0,
      accuracy: 0,
      znbHash: new Uint8Array(32),
      time: 0n,
    },
    signature: new Uint8Array(64),
  };
}

/** Grinds the template's nonce until it meets its (easy) target. */
function mineEasy(net: LoopbackNetwork, template: Block): Block {
  for (let i = 0; i < 10_000; i++) {
    const nonce = new Uint8Array(32);
    new DataView(nonce.buffer).setUint32(28, i);
    const header = { ...template.header, nonce };
    if (meetsTarget(blockHash(net.chainId, header), header.bits)) return { ...template, header };
  }
  throw new Error('no nonce');
}

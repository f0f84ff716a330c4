/**
 * The supervisors' message history (history.ts, ADR 0011), in Node and Chromium: three honest
 * miners on the smallest task (pure-JS engine, so the sampled replays are exact), their IT_RES
 * offered out of order and duplicated; every bad IT_RES class gets its verdict and its tally; the
 * bounded queues and limits overflow with a typed IGNORE and change nothing; proposals list ids,
 * others fetch what they miss and reproduce the root.
 */
import { ContainerType, ListCompositeType, UintNumberType } from '@chainsafe/ssz';
import { assert, before, describe, it } from '#test';
import { bytesToHex } from '../bytes.ts';
import { merkleRoot } from '../chain/ids.ts';
import { bytes32 } from '../codec/ssz.ts';
import { MAX_VALUE_PAYLOAD } from '../consensus/types.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { isPouwError } from '../errors.ts';
import type { Dataset } from './dataset.ts';
import {
  encodedSize,
  HistoryIds,
  type HistoryLimits,
  ItResEquivocation,
  MAX_PROPOSAL_IDS,
  type Outcome,
  shouldReplay,
  TaskHistory,
  verifyEquivocation,
} from './history.ts';
import { SeededStream } from './init.ts';
import { ItRes, type ItResBody, itResId, signItRes, workId } from './itres.ts';
import { JsSoftmaxEngine, tinySeparableDataset } from './js-engine.ts';
import { modelHash } from './lattice.ts';
import { INDEX_MASK, makeEntry, residualStep, SIGN_BIT } from './residual.ts';
import { bitsToFloat32, denseSoftmaxTask, float32Bits, type TaskDefinition } from './task.ts';
import { CommittedDataset, type VerifyContext, verifyCandidate } from './verify.ts';
import {
  batchOf,
  type CommittedSplit,
  candidateAt,
  forge,
  freeFieldVariant,
  type HonestRun,
  runHonestMiners,
  splitCommitted,
} from './verify-fixtures.ts';

const CHAIN = 'pouw-test';
const ITERATIONS = 6;
/** The forged iteration: mid-segment (R = 4), after peers were listed, residual not zero. */
const L = 2;

let task: TaskDefinition;
let split: CommittedSplit;
let run: HonestRun;
let engine: JsSoftmaxEngine;
let data: CommittedDataset;
/** Every honest IT_RES in the order the miners produced them (a valid audit order). */
let produced: ItRes[];
let idOf: Map<ItRes, string>;

function tinyDataset(count = 48): Dataset {
  return tinySeparableDataset(count);
}

function history(limits: Partial<HistoryLimits> = {}): TaskHistory {
  return new TaskHistory({ chainId: CHAIN, task, miners: run.miners, ed25519: nobleEd25519, limits });
}

/** Asserts two plain values (numbers, strings, arrays of them) differ. */
function differ(a: unknown, b: unknown, message = 'expected different values'): void {
  assert.ok(JSON.stringify(a) !== JSON.stringify(b), message);
}

const tauOf = () => bitsToFloat32(task.tau);
const minerHex = (m: number) => bytesToHex(run.miners[m]!);
const step = (m: number, t: number) => run.steps[m]![t]!;

/** Offers each message in turn; returns every outcome (offered and released), flat. */
async function feed(h: TaskHistory, msgs: readonly ItRes[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const m of msgs) {
    const r = await h.offer(m);
    out.push(r, ...r.released);
  }
  return out;
}

/** A history holding every honest message produced before miner m's iteration t. */
async function historyBefore(
  m: number,
  t: number,
  limits: Partial<HistoryLimits> = {},
): Promise<TaskHistory> {
  const h = history(limits);
  const stop = produced.indexOf(step(m, t).msg);
  const out = await feed(h, produced.slice(0, stop));
  assert.ok(
    out.every((o) => o.code === 'ACCEPT'),
    'the honest prefix is recorded',
  );
  return h;
}

function verifyContext(h: TaskHistory): VerifyContext {
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

function replayContext(): Omit<
  VerifyContext,
  'chainId' | 'task' | 'taskId' | 'miners' | 'history' | 'ed25519'
> {
  return { data, engine };
}

/** Everything a REJECT or IGNORE must leave alone. */
function snapshot(h: TaskHistory) {
  return {
    root: bytesToHex(h.historyRoot()),
    ids: h.idsHex(),
    next: run.miners.map((_, m) => h.nextIteration(minerHex(m))),
    parked: run.miners.map((_, m) => h.parkedCount(minerHex(m))),
    bytes: h.usage().bodyBytes,
  };
}

describe('message history (supervisors)', () => {
  before(async () => {
    const full = tinyDataset();
    split = splitCommitted(CHAIN, full, 4, 0, new Uint8Array(32).fill(5));
    task = denseSoftmaxTask(4, 3, {
      initSeed: new Uint8Array(32).fill(9),
      tau: float32Bits(0.05),
      batchSize: 4,
      znbLead: 2,
      segmentLength: 4,
      // a = 3.2 × β (20 bytes) = 64 nonces per iteration.
      omegaBPpm: 3_200_000,
      epochs: 3,
      trainSize: split.train.count,
      datasetCommitment: split.commitment,
    });
    engine = new JsSoftmaxEngine(task);
    data = new CommittedDataset(CHAIN, task, split.train, split.proof);
    run = await runHonestMiners({
      chainId: CHAIN,
      task,
      train: split.train,
      iterations: ITERATIONS,
      ed25519: nobleEd25519,
      miners: [1, 2, 3].map((i) => ({
        engine: { kind: 'gradient' as const, engine },
        secretKey: new Uint8Array(32).fill(i),
      })),
    });
    produced = [];
    for (let t = 0; t < ITERATIONS; t++) for (let m = 0; m < 3; m++) produced.push(step(m, t).msg);
    idOf = new Map(produced.map((m) => [m, bytesToHex(itResId(CHAIN, m.body))]));
  });

  describe('honest messages', () => {
    it('out of order and duplicated: all recorded once, duplicates ignored, two recorders agree', async () => {
      const rng = new SeededStream(new Uint8Array(32).fill(11));
      const shuffled = [...produced];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = rng.nextUint32() % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      // Every third message arrives a second time, later.
      const seq: ItRes[] = [];
      shuffled.forEach((m, i) => {
        seq.push(m);
        if (i % 3 === 0) seq.splice(Math.min(seq.length, i + 4), 0, m);
      });
      const duplicates = seq.length - produced.length;
      assert.ok(seq[0] !== produced[0], 'the arrival order is not the production order');

      const a = history();
      const outA = await feed(a, seq);
      // The second recorder gets the same sequence without awaiting: offers still run in call order.
      const b = history();
      const results = await Promise.all(seq.map((m) => b.offer(m)));
      const outB = results.flatMap((r) => [r, ...r.released]);

      for (const out of [outA, outB]) {
        assert.equal(out.filter((o) => o.verdict === 'REJECT').length, 0);
        assert.equal(out.filter((o) => o.code === 'ACCEPT').length, produced.length);
        assert.equal(out.filter((o) => o.code === 'HISTORY_DUPLICATE').length, duplicates);
        assert.ok(
          out.filter((o) => o.code === 'PARKED').length > 0,
          'some messages arrived early and waited',
        );
      }
      assert.equal(a.count, produced.length);
      assert.deepEqual(a.idsHex(), b.idsHex());
      assert.deepEqual(a.historyRoot(), b.historyRoot());
      assert.deepEqual(
        a.historyRoot(),
        merkleRoot(
          CHAIN,
          a.idsHex().map((h) => itResId(CHAIN, a.get(h)!.body)),
        ),
      );
      assert.deepEqual(new Set(a.idsHex()), new Set(idOf.values()));
      for (let m = 0; m < 3; m++) {
        assert.deepEqual(a.tally(minerHex(m)), { audit: { ACCEPT: ITERATIONS }, replay: {} });
        assert.equal(a.nextIteration(minerHex(m)), ITERATIONS);
        assert.equal(a.parkedCount(minerHex(m)), 0);
      }
      assert.deepEqual(a.unattributedTally(), { HISTORY_DUPLICATE: duplicates });
      assert.deepEqual(a.wanted(), []);

      // In this run every message lists the one produced before it, so the audit constraints leave
      // one recording order: any arrival order gives the same ids and root.
      const c = history();
      await feed(c, produced);
      assert.deepEqual(c.idsHex(), a.idsHex());
      assert.deepEqual(c.historyRoot(), a.historyRoot());
      const p = a.proposal();
      assert.equal(p.from, 0);
      assert.equal(p.ids.length, produced.length);
      const check = c.checkProposalIds(HistoryIds.decode(HistoryIds.encode(p)));
      assert.equal(check.status, 'complete');
      if (check.status !== 'complete') return;
      assert.deepEqual(check.root, a.historyRoot());
      assert.equal(check.count, produced.length);
      assert.deepEqual(c.applyDecided(p), a.historyRoot());
      assert.deepEqual(a.applyDecided(p), a.historyRoot());
      assert.deepEqual(c.historyRoot(), a.historyRoot());
      assert.deepEqual(c.idsHex(), a.idsHex());
      assert.equal(c.decidedCount, produced.length);
      assert.deepEqual(c.proposal(), { from: produced.length, ids: [] });
      assert.deepEqual(c.rootAt(5), a.rootAt(5));
    });

    it('independent messages: arrival order sets the local order, the decided list makes roots agree', async () => {
      // Miner 1's iteration 0 done without applying miner 0's message: valid, and independent of it.
      const g = await engine.gradient(
        new Int32Array(engine.parameterCount),
        batchOf(task, run.taskId, split.train, 1, 3, 0).batch,
      );
      const map = Array.from(
        residualStep(new Float32Array(engine.parameterCount), g.gradient, tauOf(), false),
      );
      const alone = await signItRes(
        CHAIN,
        {
          ...step(1, 0).msg.body,
          peerMsgIds: [],
          modelHash: modelHash(CHAIN, run.taskId, new Int32Array(engine.parameterCount)),
          map,
          loss: float32Bits(g.loss),
          accuracy: float32Bits(g.accuracy),
        },
        run.secretKeys[1]!,
        nobleEd25519,
      );
      const x = step(0, 0).msg;
      const p = history();
      const q = history();
      await feed(p, [x, alone]);
      await feed(q, [alone, x]);
      assert.equal(p.count, 2);
      assert.equal(q.count, 2);
      differ(p.idsHex(), q.idsHex());
      differ(bytesToHex(p.historyRoot()), bytesToHex(q.historyRoot()));
      // Fed the same sequence, two recorders agree.
      const p2 = history();
      await feed(p2, [x, alone]);
      assert.deepEqual(p2.historyRoot(), p.historyRoot());
      // q checks p's proposal, gets p's root, and adopts p's order once it is decided.
      const check = q.checkProposalIds(p.proposal());
      assert.equal(check.status, 'complete');
      if (check.status !== 'complete') return;
      assert.deepEqual(check.root, p.historyRoot());
      assert.deepEqual(q.applyDecided(p.proposal()), p.historyRoot());
      assert.deepEqual(p.applyDecided(p.proposal()), p.historyRoot());
      assert.deepEqual(q.idsHex(), p.idsHex());
      assert.deepEqual(q.historyRoot(), p.historyRoot());
      assert.equal(q.decidedCount, 2);
      // Both orders were valid proposals: each is consistent with the audit.
      const r = history();
      await feed(r, [x, alone]);
      const reversed = { from: 0, ids: [itResId(CHAIN, alone.body), itResId(CHAIN, x.body)] };
      assert.equal(r.checkProposalIds(reversed).status, 'complete');
    });

    it('a message listing a peer not yet recorded waits for it, and the peer releases it', async () => {
      const h = history();
      const first = step(1, 0).msg.body.peerMsgIds.length > 0 ? 1 : 2;
      const waiting = step(first, 0).msg;
      const r = await h.offer(waiting);
      assert.equal(r.code, 'PARKED');
      assert.equal(r.verdict, 'IGNORE');
      assert.deepEqual(h.wanted().sort(), waiting.body.peerMsgIds.map((x) => bytesToHex(x)).sort());
      assert.equal(h.count, 0);
      const released = (await feed(h, [step(0, 0).msg, step(1, 0).msg, step(2, 0).msg])).filter(
        (o) => o.code === 'ACCEPT',
      );
      assert.equal(released.length, 3);
      assert.equal(h.count, 3);
      assert.deepEqual(h.wanted(), []);
    });

    it('names the iterations missing below parked messages, and forgets them once they arrive', async () => {
      const h = history();
      const later = [step(0, 2).msg, step(0, 3).msg];
      for (const m of later) assert.equal((await h.offer(m)).code, 'PARKED');
      assert.deepEqual(h.gaps(), [{ miner: minerHex(0), fromIteration: 0, count: 2 }]);
      // What the gap names is what a peer's history answers by (miner, iteration).
      const full = await historyBefore(0, 4);
      assert.deepEqual(
        [0, 1].map((t) => full.byMiner(minerHex(0), t)),
        [step(0, 0).msg, step(0, 1).msg],
      );
      await feed(h, produced.slice(0, produced.indexOf(step(0, 4).msg)));
      assert.deepEqual(h.gaps(), []);
      assert.equal(h.nextIteration(minerHex(0)), 4);
    });

    it('is the MessageHistory the verifier reads: every body kept while the task runs', async () => {
      const h = history();
      await feed(h, produced);
      // The latest lucky iteration: its replay rebuilds n from iteration 0, so nothing may be gone.
      const last = run.candidates[run.candidates.length - 1]!;
      assert.ok(last.iteration >= 4, `a late candidate (iteration ${last.iteration})`);
      const report = await verifyCandidate(last.candidate, verifyContext(h));
      assert.equal(report.iteration, last.iteration);
      assert.equal(h.byMiner(minerHex(last.miner), 0), step(last.miner, 0).msg);
      assert.equal(h.get(idOf.get(step(0, 0).msg)!), step(0, 0).msg);
      assert.equal(h.get('00'.repeat(32)), undefined);
      // The accounting is the exact SSZ size of what is held.
      const bytes = produced.reduce((s, m) => s + ItRes.encode(m).length, 0);
      assert.equal(h.usage().bodyBytes, bytes);
      assert.ok(produced.every((m) => encodedSize(m) === ItRes.encode(m).length));
    });
  });

  describe('each bad IT_RES class gets its verdict and its tally', () => {
    /** Offers a forged IT_RES of miner 0 at L to a history holding everything before it. */
    async function offerForged(mutate: (b: ItResBody) => ItResBody | Promise<ItResBody>) {
      const h = await historyBefore(0, L);
      const f = await forge(run, 0, L, mutate, { record: false });
      const before = snapshot(h);
      const r = await h.offer(f.candidate.lucky);
      return { h, r, msg: f.candidate.lucky, before };
    }

    /** Recorded by the cheap audit, caught by the sampled replay. */
    async function caughtByReplay(mutate: (b: ItResBody) => ItResBody | Promise<ItResBody>, code: string) {
      const { h, r } = await offerForged(mutate);
      assert.equal(r.code, 'ACCEPT', 'the audit cannot see it');
      assert.ok(shouldReplay(r.idHex, new Uint8Array(32), 1));
      const o = await h.replay(r.idHex, replayContext());
      assert.equal(o.code, code, o.error?.message);
      assert.equal(o.verdict, 'REJECT');
      assert.deepEqual(h.tally(minerHex(0))!.replay, { [code]: 1 });
      // Asked again: the first verdict, tallied once.
      assert.equal((await h.replay(r.idHex, replayContext())).code, code);
      assert.deepEqual(h.tally(minerHex(0))!.replay, { [code]: 1 });
    }

    /** Refused by the audit on arrival: state unchanged, the miner's tally names the check. */
    async function refusedByAudit(mutate: (b: ItResBody) => ItResBody | Promise<ItResBody>, code: string) {
      const { h, r, before } = await offerForged(mutate);
      assert.equal(r.code, code, r.error?.message);
      assert.equal(r.verdict, 'REJECT');
      assert.ok(isPouwError(r.error) && r.error.code === code);
      assert.deepEqual(snapshot(h), before);
      assert.equal(h.tally(minerHex(0))!.audit[code], 1);
      // The honest message still gets in afterwards.
      assert.equal((await h.offer(step(0, L).msg)).code, 'ACCEPT');
      return r;
    }

    it('random map → recorded, replay VERIFY_MAP', async () => {
      await caughtByReplay((b) => {
        const s = new SeededStream(new Uint8Array(32).fill(9));
        const picked = new Set<number>();
        while (picked.size < Math.max(3, b.map.length)) picked.add(s.nextUint32() % engine.parameterCount);
        const map = [...picked].sort((x, y) => x - y).map((j) => makeEntry(j, s.nextUint32() & 1 ? 1 : -1));
        differ(map, b.map);
        return { ...b, map };
      }, 'VERIFY_MAP');
    });

    it('empty map → recorded, replay VERIFY_MAP', async () => {
      assert.ok(step(0, L).map.length > 0);
      await caughtByReplay((b) => ({ ...b, map: [] }), 'VERIFY_MAP');
    });

    it('map from another batch → recorded, replay VERIFY_MAP', async () => {
      const st = step(0, L);
      const other = batchOf(task, run.taskId, split.train, 1, 3, L + 1).batch;
      const g = await engine.gradient(st.nBefore, other);
      const map = Array.from(residualStep(st.rBefore.slice(), g.gradient, tauOf(), false));
      differ(map, Array.from(st.map));
      await caughtByReplay(
        (b) => ({ ...b, map, loss: float32Bits(g.loss), accuracy: float32Bits(g.accuracy) }),
        'VERIFY_MAP',
      );
    });

    it('crafted residual → recorded, replay VERIFY_MAP', async () => {
      const st = step(0, L);
      const g = await engine.gradient(st.nBefore, batchOf(task, run.taskId, split.train, 0, 3, L).batch);
      // The honest gradient thresholded against a residual the miner made up (one that outweighs g).
      const fake = st.rBefore.map((v, j) => v - 2 * g.gradient[j]!);
      const map = Array.from(residualStep(fake, g.gradient, tauOf(), false));
      differ(map, Array.from(st.map));
      await caughtByReplay((b) => ({ ...b, map }), 'VERIFY_MAP');
    });

    it('stale model (old n, hashed as such) → VERIFY_MODEL_HASH', async () => {
      const stale = step(0, L).nBefore.slice();
      for (const e of step(0, L - 1).map) stale[e & INDEX_MASK]! -= (e & SIGN_BIT) !== 0 ? 1 : -1;
      await refusedByAudit(
        (b) => ({ ...b, modelHash: modelHash(CHAIN, run.taskId, stale) }),
        'VERIFY_MODEL_HASH',
      );
    });

    it('peer ids listed but not applied → VERIFY_PEER_UPDATES', async () => {
      const st = step(0, L);
      assert.ok(st.peerIds.length > 0, 'the honest step listed peers');
      const without = st.nBefore.slice();
      for (const id of st.peerIds)
        for (const e of run.history.get(bytesToHex(id))!.body.map)
          without[e & INDEX_MASK]! -= (e & SIGN_BIT) !== 0 ? 1 : -1;
      await refusedByAudit(
        (b) => ({ ...b, modelHash: modelHash(CHAIN, run.taskId, without) }),
        'VERIFY_PEER_UPDATES',
      );
    });

    it('a batch other than the assigned one → VERIFY_BATCH; a malformed map → VERIFY_MAP', async () => {
      await refusedByAudit((b) => ({ ...b, batchId: (b.batchId + 1) % 12 }), 'VERIFY_BATCH');
      await refusedByAudit((b) => ({ ...b, map: [makeEntry(5, 1), makeEntry(3, 1)] }), 'VERIFY_MAP');
    });

    it('bad signature, wrong task, non-member: refused and not held against the miner', async () => {
      const h = await historyBefore(0, L);
      const before = snapshot(h);
      const honest = step(0, L).msg;
      const sk = run.secretKeys[0]!;
      const forged = new Uint8Array(64);
      forged.set(honest.signature);
      forged[3]! ^= 1;
      const outsiderKey = new Uint8Array(32).fill(0x77);
      const outsider = await nobleEd25519.getPublicKey(outsiderKey);
      const cases: [ItRes, string, string][] = [
        [{ ...honest, signature: forged }, 'VERIFY_SIGNATURE', 'REJECT'],
        [
          await signItRes(CHAIN, { ...honest.body, taskId: new Uint8Array(32).fill(1) }, sk, nobleEd25519),
          'VERIFY_CANDIDATE',
          'IGNORE',
        ],
        [
          await signItRes(CHAIN, { ...honest.body, miner: outsider }, outsiderKey, nobleEd25519),
          'VERIFY_MEMBERSHIP',
          'REJECT',
        ],
        [
          { ...honest, body: { ...honest.body, map: Array.from({ length: 16 }, (_, i) => i) } },
          'VERIFY_MAP',
          'REJECT',
        ],
      ];
      for (const [msg, code, verdict] of cases) {
        const r = await h.offer(msg);
        assert.equal(r.code, code, r.error?.message);
        assert.equal(r.verdict, verdict);
        assert.deepEqual(snapshot(h), before);
      }
      assert.deepEqual(h.unattributedTally(), {
        VERIFY_SIGNATURE: 1,
        VERIFY_CANDIDATE: 1,
        VERIFY_MEMBERSHIP: 1,
        VERIFY_MAP: 1,
      });
      assert.deepEqual(h.tally(minerHex(0))!.audit, { ACCEPT: L });
      assert.equal(h.tally(bytesToHex(outsider)), undefined);
      // The same body with its real signature is not blocked by the forged copy.
      assert.equal((await h.offer(honest)).code, 'ACCEPT');
    });

    it('second IT_RES for the same iteration → VERIFY_DUPLICATE_ITERATION, kept as evidence', async () => {
      const h = await historyBefore(0, L);
      const honest = step(0, L).msg;
      assert.equal((await h.offer(honest)).code, 'ACCEPT');
      const before = snapshot(h);
      const sk = run.secretKeys[0]!;
      const sameWork = await signItRes(CHAIN, freeFieldVariant(honest.body), sk, nobleEd25519);
      const otherWork = await signItRes(
        CHAIN,
        { ...honest.body, map: Array.from(step(0, L - 1).map) },
        sk,
        nobleEd25519,
      );
      for (const [msg, same] of [
        [sameWork, true],
        [otherWork, false],
      ] as const) {
        const r = await h.offer(msg);
        assert.equal(r.code, 'VERIFY_DUPLICATE_ITERATION');
        assert.equal(r.verdict, 'REJECT');
        assert.equal(r.error!.detail['sameWork'], same);
        assert.deepEqual(snapshot(h), before);
      }
      assert.equal(h.tally(minerHex(0))!.audit['VERIFY_DUPLICATE_ITERATION'], 2);
      const evidence = h.evidence(minerHex(0));
      assert.equal(evidence.length, 2);
      for (const ev of evidence) {
        const decoded = ItResEquivocation.decode(ItResEquivocation.encode(ev));
        assert.ok(await verifyEquivocation(CHAIN, decoded, nobleEd25519));
        assert.equal(decoded.first.body.iteration, L);
      }
      assert.equal(
        await verifyEquivocation(CHAIN, { first: honest, second: honest }, nobleEd25519),
        false,
        'one message is no equivocation',
      );
      assert.equal(
        await verifyEquivocation(
          CHAIN,
          { first: honest, second: { ...otherWork, signature: honest.signature } },
          nobleEd25519,
        ),
        false,
        'an unsigned second message proves nothing',
      );
      // Sent again, the refused copy is dropped unchecked and counted nowhere against the miner.
      assert.equal((await h.offer(otherWork)).code, 'HISTORY_DUPLICATE');
      assert.equal(h.tally(minerHex(0))!.audit['VERIFY_DUPLICATE_ITERATION'], 2);

      // A second message for an iteration still waiting in the queue is refused the same way.
      const q = history();
      assert.equal((await q.offer(step(0, 3).msg)).code, 'PARKED');
      const variant = await signItRes(CHAIN, freeFieldVariant(step(0, 3).msg.body), sk, nobleEd25519);
      assert.equal((await q.offer(variant)).code, 'VERIFY_DUPLICATE_ITERATION');
      assert.equal(q.parkedCount(minerHex(0)), 1);
    });

    it('replayed IT_RES (the same message again) → HISTORY_DUPLICATE, no penalty, nothing changes', async () => {
      const h = await historyBefore(0, L);
      assert.equal((await h.offer(step(0, L).msg)).code, 'ACCEPT');
      const before = snapshot(h);
      const r = await h.offer(step(0, L).msg);
      assert.equal(r.code, 'HISTORY_DUPLICATE');
      assert.equal(r.verdict, 'IGNORE');
      assert.deepEqual(snapshot(h), before);
      assert.deepEqual(h.tally(minerHex(0))!.audit, { ACCEPT: L + 1 });
      assert.deepEqual(h.unattributedTally(), { HISTORY_DUPLICATE: 1 });
      // A block naming work already rewarded: the verifier reading this history refuses it.
      await feed(h, produced.slice(produced.indexOf(step(0, L).msg) + 1));
      const c = await candidateAt(run, 0, 4);
      const ctx = verifyContext(h);
      const report = await verifyCandidate(c, ctx);
      assert.deepEqual(report.workId, workId(CHAIN, c.lucky.body));
      const workHex = bytesToHex(report.workId);
      assert.equal(h.alreadyRewarded(workHex), false);
      h.markRewarded(workHex);
      assert.equal(h.alreadyRewarded(workHex), true);
      await assert.rejects(() => verifyCandidate(c, ctx), { code: 'VERIFY_REPLAYED' });
    });
  });

  describe('bounds', () => {
    it('a full per-miner queue refuses with a typed IGNORE and changes nothing', async () => {
      const h = history({ maxParkedPerMiner: 2 });
      assert.equal((await h.offer(step(0, 1).msg)).code, 'PARKED');
      assert.equal((await h.offer(step(0, 2).msg)).code, 'PARKED');
      const before = snapshot(h);
      const r = await h.offer(step(0, 3).msg);
      assert.equal(r.code, 'HISTORY_QUEUE_FULL');
      assert.equal(r.verdict, 'IGNORE');
      assert.ok(isPouwError(r.error) && r.error.name === 'HistoryError');
      assert.deepEqual(snapshot(h), before);
      assert.equal(h.usage().parked, 2);
      // Other miners are not affected, and the dropped message is welcome once there is room.
      const out = await feed(h, produced);
      assert.equal(out.filter((o) => o.code === 'ACCEPT').length, produced.length);
      assert.equal(h.count, produced.length);
      assert.equal(h.usage().parked, 0);
    });

    it('a full history (messages or bytes) refuses with a typed IGNORE and changes nothing', async () => {
      const byCount = history({ maxMessages: 5 });
      await feed(byCount, produced.slice(0, 5));
      const before = snapshot(byCount);
      const r = await byCount.offer(produced[5]!);
      assert.equal(r.code, 'HISTORY_FULL');
      assert.equal(r.verdict, 'IGNORE');
      assert.deepEqual(snapshot(byCount), before);

      const budget = produced.slice(0, 3).reduce((s, m) => s + encodedSize(m), 0);
      const byBytes = history({ maxBodyBytes: budget });
      await feed(byBytes, produced.slice(0, 3));
      const r2 = await byBytes.offer(produced[3]!);
      assert.equal(r2.code, 'HISTORY_FULL');
      assert.equal(byBytes.count, 3);
      assert.equal(byBytes.usage().bodyBytes, budget);
    });

    it('equivocation evidence and remembered refusals are bounded', async () => {
      const h = history({ maxEvidencePerMiner: 1, maxRememberedRefusals: 1 });
      await feed(h, [step(0, 0).msg]);
      const sk = run.secretKeys[0]!;
      const variants = await Promise.all(
        [1, 2].map((k) => signItRes(CHAIN, freeFieldVariant(step(0, 0).msg.body, k), sk, nobleEd25519)),
      );
      for (const v of variants) assert.equal((await h.offer(v)).code, 'VERIFY_DUPLICATE_ITERATION');
      assert.equal(h.evidence().length, 1);
      assert.equal(h.usage().rememberedRefusals, 1);
      // The first refusal was forgotten: re-sent, it is checked and refused again.
      assert.equal((await h.offer(variants[0]!)).code, 'VERIFY_DUPLICATE_ITERATION');
      assert.equal((await h.offer(variants[0]!)).code, 'HISTORY_DUPLICATE');
    });

    it('default limits derive from the task: every (epoch, batch) slot once', () => {
      const h = history();
      assert.equal(h.limits.maxMessages, task.epochs * Math.floor(task.trainSize / task.batchSize));
      assert.equal(h.limits.maxMapEntries, engine.parameterCount);
    });
  });

  describe('proposals: list ids, fetch what is missing, reproduce the root', () => {
    it('a supervisor that missed messages fetches them and gets the proposer’s root', async () => {
      const proposer = history();
      await feed(proposer, produced);
      const p = proposer.proposal();
      for (const order of ['proposal order', 'reverse order'] as const) {
        const late = history();
        await feed(late, produced.slice(0, 7));
        const check = late.checkProposalIds(p);
        assert.equal(check.status, 'missing');
        if (check.status !== 'missing') return;
        assert.deepEqual(check.missing, late.missing(p.ids));
        assert.deepEqual(check.missing, proposer.idsHex().slice(7));
        assert.throws(() => late.applyDecided(p), { code: 'HISTORY_MISSING', verdict: 'IGNORE' });
        // "Fetch" the missing messages from the proposer, then offer them.
        const fetched = check.missing.map((id) => proposer.get(id)!);
        if (order === 'reverse order') fetched.reverse();
        const out = await feed(late, fetched);
        assert.equal(out.filter((o) => o.code === 'ACCEPT').length, fetched.length, order);
        const again = late.checkProposalIds(p);
        assert.equal(again.status, 'complete');
        if (again.status !== 'complete') return;
        assert.deepEqual(again.root, proposer.historyRoot());
        assert.deepEqual(late.applyDecided(p), proposer.historyRoot());
        assert.deepEqual(late.rootAt(late.decidedCount), proposer.historyRoot());
      }
    });

    it('lists no honest history produces are invalid; a lagging `from` is not judged', async () => {
      const h = history();
      await feed(h, produced);
      const ids = h.proposal().ids;
      const invalid = (p: HistoryIds, verdict: string) => {
        const c = h.checkProposalIds(p);
        assert.equal(c.status, 'invalid');
        if (c.status === 'invalid') {
          assert.equal(c.error.code, 'HISTORY_BAD_IDS');
          assert.equal(c.error.verdict, verdict, c.error.message);
        }
      };
      invalid({ from: 0, ids: [...ids, ids[0]!] }, 'REJECT');
      invalid({ from: 0, ids: [...ids].reverse() }, 'REJECT');
      invalid({ from: 3, ids }, 'IGNORE');
      // A prefix of the recording order is a valid proposal; a message without its predecessor is not.
      assert.equal(h.checkProposalIds({ from: 0, ids: ids.slice(0, 4) }).status, 'complete');
      const own = ids.findIndex((id) => h.get(bytesToHex(id))!.body.iteration === 1);
      invalid({ from: 0, ids: [ids[own]!] }, 'REJECT');
      // Decided ids cannot be proposed again.
      h.applyDecided({ from: 0, ids: ids.slice(0, 4) });
      assert.equal(h.decidedCount, 4);
      invalid({ from: 4, ids: [ids[0]!] }, 'REJECT');
      assert.deepEqual(h.proposal().ids, ids.slice(4));
      assert.deepEqual(h.rootAt(4), merkleRoot(CHAIN, ids.slice(0, 4)));
      assert.throws(() => h.rootAt(h.count + 1), { code: 'HISTORY_MISSING' });
    });

    it('HistoryIds is bounded and fits a consensus payload', () => {
      assert.ok(HistoryIds.maxSize <= MAX_VALUE_PAYLOAD);
      const wider = new ContainerType({
        from: new UintNumberType(4),
        ids: new ListCompositeType(bytes32, MAX_PROPOSAL_IDS + 1),
      });
      const ids = Array.from({ length: MAX_PROPOSAL_IDS + 1 }, () => new Uint8Array(32));
      assert.throws(() => HistoryIds.decode(wider.serialize({ from: 0, ids })), { name: 'DecodeError' });
      const ok = { from: 7, ids: ids.slice(0, MAX_PROPOSAL_IDS) };
      assert.deepEqual(HistoryIds.decode(HistoryIds.encode(ok)), ok);
    });
  });

  describe('sampled replays', () => {
    it('shouldReplay is a deterministic sample at the given rate', () => {
      const ids = Array.from({ length: 4000 }, (_, i) => {
        const id = new Uint8Array(32);
        new DataView(id.buffer).setUint32(0, i);
        return id;
      });
      const seed = new Uint8Array(32).fill(1);
      const picked = ids.filter((id) => shouldReplay(id, seed, 0.25));
      assert.ok(picked.length > 900 && picked.length < 1100, `${picked.length} of 4000 at rate 0.25`);
      assert.deepEqual(
        ids.filter((id) => shouldReplay(bytesToHex(id), seed, 0.25)),
        picked,
        'hex and bytes agree',
      );
      const other = ids.filter((id) => shouldReplay(id, new Uint8Array(32).fill(2), 0.25));
      differ(other, picked, 'another seed, another sample');
      assert.equal(ids.filter((id) => shouldReplay(id, seed, 0)).length, 0);
      assert.equal(ids.filter((id) => shouldReplay(id, seed, 1)).length, ids.length);
    });

    it('honest samples replay clean and are tallied per miner', async () => {
      const h = history();
      await feed(h, produced);
      const seed = new Uint8Array(32).fill(4);
      const sample = h.idsHex().filter((id) => shouldReplay(id, seed, 0.5));
      assert.ok(sample.length > 0);
      const perMiner = new Map<string, number>();
      for (const id of sample) {
        const o = await h.replay(id, replayContext());
        assert.equal(o.code, 'ACCEPT', o.error?.message);
        perMiner.set(o.minerHex, (perMiner.get(o.minerHex) ?? 0) + 1);
      }
      for (let m = 0; m < 3; m++)
        assert.equal(h.tally(minerHex(m))!.replay['ACCEPT'] ?? 0, perMiner.get(minerHex(m)) ?? 0);
      await assert.rejects(() => h.replay('11'.repeat(32), replayContext()), { code: 'HISTORY_MISSING' });
    });
  });
});

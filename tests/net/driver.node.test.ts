/**
 * The consensus driver (supervisor-node/driver.ts) over its LevelDB write-ahead log
 * (node-common/wal-store.ts), four members in one process on an in-memory bus, real timers, real
 * Ed25519 and BLS keys (shared/consensus/testkit.ts realCommittee):
 * - every own proposal and vote is durable in the log before it leaves the member;
 * - the proposer of height 2 crashes right after each of its log appends at that height in turn
 *   (the crash is exact: the log refuses later writes and the bus drops later sends); restarted
 *   from the log it never sends two different messages for one (height, round, kind), and every
 *   member decides the same values. Restarted with its log deleted (the negative control), the
 *   same crash makes it propose twice, and the check reports it;
 * - the log keeps records in order across reopen, prunes a finished height in the same synced
 *   batch that keeps its commit, and reports a damaged record as CONSENSUS_BAD_WAL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { ClassicLevel } from 'classic-level';
import { after, assert, describe, it } from '#test';
import { WalStore } from '../../node-common/wal-store.ts';
import { bytesToHex, utf8 } from '../../shared/bytes.ts';
import {
  Commit,
  type ConsensusMessage,
  type ConsensusValue,
  decodeMessage,
  SignedProposal,
  SignedVote,
  type SigningKeys,
  type TendermintParams,
  validateMessage,
  valueId,
  type WalRecord,
} from '../../shared/consensus/index.ts';
import { realCommittee, TEST_CHAIN } from '../../shared/consensus/testkit.ts';
import { ConsensusDriver, type Decision, type DriverApp } from '../../supervisor-node/driver.ts';

const N = 4;
const committee = realCommittee(N, 'driver-test');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pouw-driver-'));
  dirs.push(d);
  return d;
}

// Generous enough that a CPU-starved CI box (four members with real BLS in one process, beside
// other test files) does not churn through rounds, which only adds signing work and slows it more.
const TIMEOUTS = {
  propose: { baseMs: 1000, deltaMs: 500 },
  prevote: { baseMs: 500, deltaMs: 250 },
  precommit: { baseMs: 500, deltaMs: 250 },
};

function params(self: number): TendermintParams {
  return { chainId: TEST_CHAIN, n: N, self, timeouts: TIMEOUTS, roundWindow: 8 };
}

function asyncKeys(i: number): SigningKeys {
  const k = committee.keys[i]!;
  return { sign: async (m) => k.sign(m), partialSign: (m) => k.partialSign(m) };
}

/** The durable part of a member: decided values by height (its "chain store"). */
class MemoryApp implements DriverApp {
  readonly stored = new Map<bigint, string>();
  incarnation = 0;
  /** Heights above this get no value (a quiet chain: no candidates). */
  lastValueHeight = Number.POSITIVE_INFINITY;
  constructor(readonly member: number) {}
  storedHeight(): bigint {
    return BigInt(this.stored.size);
  }
  async proposeValue(height: bigint, round: number): Promise<ConsensusValue | undefined> {
    if (height > this.lastValueHeight) return undefined;
    // A value that changes with the incarnation: an amnesiac restart proposes something new.
    const tag = utf8(`${this.member}/${this.incarnation}/${height}/${round}`);
    return { blockHash: sha256(tag), historyRoot: new Uint8Array(32), payload: tag };
  }
  async validateValue(): Promise<boolean> {
    return true;
  }
  async applyDecision(d: Decision): Promise<void> {
    if (d.height !== this.storedHeight() + 1n) return;
    this.stored.set(d.height, bytesToHex(valueId(TEST_CHAIN, d.height, d.value)));
  }
}

const acceptAll = { ed25519: () => true, blsPartial: () => true };

interface Member {
  index: number;
  dir: string;
  app: MemoryApp;
  wal: WalStore;
  driver: ConsensusDriver;
  /** Durable records, in append order, and what was sent, in send order (with the records durable then). */
  durable: WalRecord[];
  crashed: boolean;
}

interface Sent {
  from: number;
  message: ConsensusMessage;
  durableAt: number;
}

class Bus {
  readonly members: Member[] = [];
  readonly sent: Sent[] = [];
  /** Every own message a member sent: `${member}/${height}/${round}/${kind}` → value. */
  readonly signed = new Map<string, string>();
  readonly doubleSigns: string[] = [];
  /** Messages this drops are lost for good (a partition). */
  drop: ((to: number, message: ConsensusMessage) => boolean) | undefined;

  record(from: number, m: ConsensusMessage): void {
    if (m.kind === 'commit') return;
    const sender = m.kind === 'proposal' ? m.signed.proposal.proposer : m.signed.vote.validator;
    if (sender !== from) return; // a relayed message (polka), not this member's own
    const x = m.kind === 'proposal' ? m.signed.proposal : m.signed.vote;
    const kind = m.kind === 'proposal' ? 'proposal' : m.signed.vote.type === 1 ? 'prevote' : 'precommit';
    const value =
      m.kind === 'proposal'
        ? bytesToHex(valueId(TEST_CHAIN, x.height, m.signed.proposal.value))
        : bytesToHex(m.signed.vote.valueId) || 'nil';
    const key = `${from}/${x.height}/${x.round}/${kind}`;
    const prev = this.signed.get(key);
    if (prev !== undefined && prev !== value)
      this.doubleSigns.push(`member ${from} sent two ${kind}s at ${x.height}/${x.round}`);
    this.signed.set(key, value);
  }

  publish(from: number, bytes: Uint8Array): void {
    const sender = this.members[from]!;
    if (sender.crashed) return;
    const message = decodeMessage(bytes);
    this.sent.push({ from, message, durableAt: sender.durable.length });
    this.record(from, message);
    for (const m of this.members) {
      if (m.index === from) continue;
      if (this.drop?.(m.index, message)) continue;
      setImmediate(() => {
        if (m.crashed) return;
        const checked = validateMessage(
          bytes,
          { chainId: TEST_CHAIN, committee: committee.committee },
          acceptAll,
        );
        m.driver.receive(checked, String(from));
      });
    }
  }
}

/** A member whose log refuses writes once `crashAfter(height, k)` fired (exact crash point). */
async function startMember(
  bus: Bus,
  index: number,
  dir: string,
  app: MemoryApp,
  crash?: { height: bigint; afterAppends: number; onCrash: () => void },
): Promise<Member> {
  const wal = await WalStore.open(dir);
  const member: Member = {
    index,
    dir,
    app,
    wal,
    driver: undefined as unknown as ConsensusDriver,
    durable: [],
    crashed: false,
  };
  let appendsAtHeight = 0;
  const realAppend = wal.append.bind(wal);
  wal.append = async (records) => {
    if (member.crashed) throw new Error('crashed');
    await realAppend(records);
    member.durable.push(...records);
    if (crash && records[0]!.height === crash.height && ++appendsAtHeight === crash.afterAppends) {
      member.crashed = true;
      crash.onCrash();
    }
  };
  member.driver = new ConsensusDriver({
    params: params(index),
    keys: asyncKeys(index),
    wal,
    app,
    gossipMs: 150,
    network: {
      publish: (bytes) => bus.publish(index, bytes),
      fetchCommits: async (peer, from) => {
        const other = bus.members[Number(peer)]!;
        if (other.crashed || other.wal.closed) return [];
        return (await other.wal.commits(from, 16)).map((b) => Commit.decode(b));
      },
      verifyCommit: async () => {},
    },
  });
  bus.members[index] = member;
  await member.driver.start();
  return member;
}

async function waitFor(probe: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stopAll(bus: Bus): Promise<void> {
  for (const m of bus.members) {
    m.crashed = true;
    await m.driver.stop();
    await m.wal.close();
  }
}

interface CrashRun {
  appendsAtHeight2: number;
  fired: boolean;
  doubleSigns: string[];
  decided: string[][];
}

/** Four members decide heights 1..3; the proposer of height 2 crashes after its k-th append there. */
async function crashRun(k: number | null, amnesia = false): Promise<CrashRun> {
  const bus = new Bus();
  const apps = Array.from({ length: N }, (_, i) => new MemoryApp(i));
  const proposer = 2; // (height 2 + round 0) mod 4
  let fired = false;
  let restart: Promise<void> | null = null;
  const members = [];
  for (let i = 0; i < N; i++) {
    const crash =
      i === proposer && k !== null
        ? {
            height: 2n,
            afterAppends: k,
            onCrash: () => {
              fired = true;
              restart = (async () => {
                const old = bus.members[proposer]!;
                await old.driver.stop();
                await old.wal.close();
                if (amnesia) rmSync(old.dir, { recursive: true, force: true });
                await new Promise((r) => setTimeout(r, 100));
                apps[proposer]!.incarnation++;
                await startMember(bus, proposer, old.dir, apps[proposer]!);
              })();
            },
          }
        : undefined;
    members.push(startMember(bus, i, tempDir(), apps[i]!, crash));
  }
  await Promise.all(members);
  try {
    await waitFor(
      () => apps.every((a) => a.stored.size >= 3) || bus.doubleSigns.length > 0,
      60_000,
      'three heights',
    );
    if (restart) await restart;
  } finally {
    await stopAll(bus);
  }
  const appends = bus.members[proposer]!.durable.filter((r) => r.height === 2n).length;
  return {
    appendsAtHeight2: appends,
    fired,
    doubleSigns: bus.doubleSigns,
    decided: apps.map((a) => [1n, 2n, 3n].map((h) => a.stored.get(h) ?? '')),
  };
}

describe('consensus driver with a LevelDB write-ahead log', () => {
  it('makes every own proposal and vote durable before sending it', { timeout: 30_000 }, async () => {
    const bus = new Bus();
    const apps = Array.from({ length: N }, (_, i) => new MemoryApp(i));
    for (let i = 0; i < N; i++) await startMember(bus, i, tempDir(), apps[i]!);
    try {
      await waitFor(() => apps.every((a) => a.stored.size >= 2), 15_000, 'two heights');
    } finally {
      await stopAll(bus);
    }
    let own = 0;
    for (const s of bus.sent) {
      if (s.message.kind === 'commit') continue;
      const x = s.message.kind === 'proposal' ? s.message.signed.proposal : s.message.signed.vote;
      const sender =
        s.message.kind === 'proposal' ? s.message.signed.proposal.proposer : s.message.signed.vote.validator;
      if (sender !== s.from) continue;
      own++;
      const durable = bus.members[s.from]!.durable.slice(0, s.durableAt);
      const logged = durable.some((r) => {
        if (r.height !== x.height || r.round !== x.round) return false;
        if (s.message.kind === 'proposal') return r.kind === 'proposal';
        const v = s.message.kind === 'vote' ? s.message.signed.vote : undefined;
        return r.kind === 'vote' && r.type === v!.type && bytesToHex(r.valueId) === bytesToHex(v!.valueId);
      });
      assert.ok(
        logged,
        `member ${s.from}'s ${s.message.kind} at ${x.height}/${x.round} was durable before it was sent`,
      );
    }
    assert.ok(own >= 2 * N * 2, `own messages checked: ${own}`);
    for (let h = 1n; h <= 2n; h++)
      assert.equal(new Set(apps.map((a) => a.stored.get(h))).size, 1, `one value at ${h}`);
  });

  it('a failed log write stops the driver, and stop() still returns (no wait on its own loop)', {
    timeout: 30_000,
  }, async () => {
    const bus = new Bus();
    const apps = Array.from({ length: N }, (_, i) => new MemoryApp(i));
    for (let i = 0; i < N; i++) await startMember(bus, i, tempDir(), apps[i]!);
    const victim = bus.members[1]!;
    try {
      await waitFor(() => apps.every((a) => a.stored.size >= 1), 15_000, 'one height');
      // From now on member 1's log refuses writes, as a full disk would.
      victim.wal.append = async () => {
        throw new Error('disk full');
      };
      await waitFor(() => Boolean(victim.driver.failure), 15_000, 'member 1 failing a log write');
      assert.ok(/disk full/.test(String(victim.driver.failure)), String(victim.driver.failure));
      const stopped = await Promise.race([
        victim.driver.stop().then(() => 'stopped'),
        new Promise((r) => setTimeout(() => r('hung'), 5000)),
      ]);
      assert.equal(stopped, 'stopped', 'stop() of a failed driver returns');
      // The other three are a quorum and go on.
      const others = apps.filter((_, i) => i !== 1);
      const target = others[0]!.stored.size + 2;
      await waitFor(() => others.every((a) => a.stored.size >= target), 20_000, 'the others deciding on');
    } finally {
      await stopAll(bus);
    }
  });

  it('a member that missed a decision of a now quiet chain catches up; peers re-publish that height’s commit', {
    timeout: 30_000,
  }, async () => {
    const bus = new Bus();
    const apps = Array.from({ length: N }, (_, i) => new MemoryApp(i));
    // Values for heights 1 and 2 only; member 3 hears nothing of height 2 until the others decided it.
    for (const a of apps) a.lastValueHeight = 2;
    const heightOf = (m: ConsensusMessage) =>
      m.kind === 'commit'
        ? m.commit.proposal.proposal.height
        : m.kind === 'proposal'
          ? m.signed.proposal.height
          : m.signed.vote.height;
    bus.drop = (to, m) => to === 3 && heightOf(m) === 2n;
    for (let i = 0; i < N; i++) await startMember(bus, i, tempDir(), apps[i]!);
    try {
      await waitFor(
        () => apps.slice(0, 3).every((a) => a.stored.size >= 2),
        15_000,
        'members 0-2 deciding 2',
      );
      assert.equal(apps[3]!.stored.size, 1, 'member 3 missed height 2');
      bus.drop = undefined;
      // No value is ever proposed at height 3: member 3 moves by the height-2 commit, re-published for
      // it or fetched after the others' nil votes of height 3.
      await waitFor(() => apps[3]!.stored.size >= 2, 10_000, 'member 3 deciding height 2');
      assert.equal(apps[3]!.stored.get(2n), apps[0]!.stored.get(2n));
      assert.ok(bus.members.some((m) => m.driver.stats.commitsForLaggards > 0));
    } finally {
      await stopAll(bus);
    }
  });

  it('never double-signs after a crash at any log position of a height (and the check can fail)', {
    timeout: 480_000,
  }, async () => {
    const clean = await crashRun(null);
    assert.deepEqual(clean.doubleSigns, []);
    const positions = clean.appendsAtHeight2;
    assert.ok(positions >= 3, `the proposer appends ${positions} times at height 2`);
    for (let k = 1; k <= positions; k++) {
      const r = await crashRun(k);
      assert.ok(r.fired, `crash after append ${k} fired`);
      assert.deepEqual(r.doubleSigns, [], `crash after append ${k}: no double signature`);
      for (let h = 0; h < 3; h++)
        assert.equal(
          new Set(r.decided.map((d) => d[h])).size,
          1,
          `crash after append ${k}: one value at height ${h + 1}`,
        );
    }
    // Negative control: a crash once the proposal is out (after the next append), restarted
    // without the log: it proposes a new value at the same height and round.
    const amnesiac = await crashRun(2, true);
    assert.ok(amnesiac.fired, 'the amnesia crash fired');
    assert.ok(
      amnesiac.doubleSigns.length > 0,
      'without its log the restarted proposer proposes twice, and it is caught',
    );
  });

  it('keeps records in order across reopen, prunes finished heights with their commit, reports damage', async () => {
    const dir = tempDir();
    const rec = (height: bigint, round: number): WalRecord => ({
      kind: 'vote',
      height,
      round,
      type: 1,
      valueId: new Uint8Array(32).fill(round),
      polka: null,
    });
    let wal = await WalStore.open(dir);
    await wal.append([rec(5n, 0), rec(5n, 1)]);
    await wal.close();
    wal = await WalStore.open(dir);
    await wal.append([rec(5n, 2), rec(6n, 0)]);
    assert.deepEqual(
      (await wal.records()).map((r) => `${r.height}/${r.round}`),
      ['5/0', '5/1', '5/2', '6/0'],
    );
    // Byte fields that SSZ decoding returns as Buffers survive the log (JSON.stringify would turn
    // them into {type: 'Buffer', data: [...]} before any replacer sees them).
    const vote = SignedVote.decode(
      SignedVote.encode({
        vote: { type: 2, height: 6n, round: 1, validator: 2, valueId: new Uint8Array(32).fill(7) },
        signature: new Uint8Array(64).fill(3),
        blsPartial: new Uint8Array(96).fill(5),
      }),
    );
    const decision: WalRecord = {
      kind: 'decision',
      height: 6n,
      round: 1,
      value: {
        blockHash: new Uint8Array(32).fill(1),
        historyRoot: new Uint8Array(32).fill(2),
        payload: new Uint8Array([9]),
      },
      proposal: SignedProposal.defaultValue(),
      commit: [vote],
    };
    await wal.append([decision]);
    const back = (await wal.records()).at(-1) as Extract<WalRecord, { kind: 'decision' }>;
    assert.deepEqual([...back.commit[0]!.blsPartial], [...vote.blsPartial]);
    assert.deepEqual([...back.commit[0]!.signature], [...vote.signature]);
    assert.equal(back.commit[0]!.vote.height, 6n);
    const commit = Commit.encode(Commit.defaultValue());
    await wal.finishHeight(5n, commit);
    assert.deepEqual(
      (await wal.records()).map((r) => `${r.height}/${r.round}`),
      ['6/0', '6/1'],
    );
    assert.deepEqual(await wal.commits(5n, 4), [commit]);
    assert.deepEqual(await wal.commits(6n, 4), []);
    await wal.close();
    // A damaged record is a typed error, never a silently different log.
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    for await (const k of db.keys({ gte: Uint8Array.of(0x77), lt: Uint8Array.of(0x78) }))
      await db.put(k, utf8('{"kind":'));
    await db.close();
    wal = await WalStore.open(dir);
    try {
      await assert.rejects(() => wal.records(), { name: 'ConsensusError', code: 'CONSENSUS_BAD_WAL' });
    } finally {
      await wal.close();
    }
  });
});

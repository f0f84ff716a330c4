import { assert, describe, it } from '#test';
import { bytesToHex, equalBytes } from '../bytes.ts';
import { maxFaulty, proposerIndex, quorum, weakQuorum } from './committee.ts';
import { valueId } from './messages.ts';
import {
  checkAgainstState,
  type Effect,
  fromJson,
  type Input,
  initialState,
  messagesAt,
  recover,
  type StepResult,
  step,
  stepAll,
  type TendermintState,
  timeoutMs,
  toJson,
  type WalRecord,
} from './tendermint.ts';
import {
  fakeSign,
  fakeVote,
  runMiniNet,
  TEST_CHAIN,
  TEST_TIMEOUTS,
  testParams,
  testValue,
} from './testkit.ts';
import { type ConsensusValue, NIL_ROUND, VoteType } from './types.ts';

const PV = VoteType.prevote;
const PC = VoteType.precommit;
const A = testValue(1);
const B = testValue(2);
const NIL = new Uint8Array(0);
const idOf = (v: ConsensusValue, h = 1n) => valueId(TEST_CHAIN, h, v);

function proposal(h: bigint, r: number, v: ConsensusValue, polRound = -1, n = 4): Input {
  const m = fakeSign({
    kind: 'proposal',
    proposal: {
      height: h,
      round: r,
      polRound: polRound < 0 ? NIL_ROUND : polRound,
      proposer: proposerIndex(n, h, r),
      value: v,
    },
  });
  return { type: 'proposal', signed: (m as Extract<typeof m, { kind: 'proposal' }>).signed };
}

function vote(type: VoteType, h: bigint, r: number, validator: number, id: Uint8Array): Input {
  return { type: 'vote', signed: fakeVote({ type, height: h, round: r, validator, valueId: id }) };
}

function valid(v: ConsensusValue, h = 1n): Input {
  return { type: 'validity', height: h, valueId: idOf(v, h), valid: true };
}

/** A short name per effect: `persist:vote`, `broadcast:prevote`, `broadcast:precommit-nil`, `decide`… */
function kinds(effects: Effect[]): string[] {
  return effects.map((e) => {
    if (e.type === 'persist') return `persist:${e.record.kind}`;
    if (e.type !== 'broadcast') return e.type;
    if (e.message.kind === 'proposal') return 'broadcast:proposal';
    const v = e.message.vote;
    return `broadcast:${v.type === PV ? 'prevote' : 'precommit'}${v.valueId.length === 0 ? '-nil' : ''}`;
  });
}

function started(self: number): StepResult {
  return step(initialState(testParams(self), 1n), { type: 'start' });
}

/** Validator `self` (not the proposer of 1/0) has precommitted A in round 0 and is locked on it. */
function lockedOnA(self: number): StepResult {
  let r = started(self);
  r = stepAll(r.state, [proposal(1n, 0, A), valid(A)]);
  const others = [0, 1, 2, 3].filter((i) => i !== self).slice(0, 2);
  return stepAll(r.state, [
    vote(PV, 1n, 0, self, idOf(A)),
    ...others.map((i) => vote(PV, 1n, 0, i, idOf(A))),
  ]);
}

describe('consensus committee arithmetic', () => {
  it('has f = ⌊(n−1)/3⌋, quorum 2f+1 for n = 3f+1, and a round-robin proposer that moves per round and height', () => {
    assert.deepEqual([4, 7, 10].map(maxFaulty), [1, 2, 3]);
    assert.deepEqual([4, 7, 10].map(quorum), [3, 5, 7]);
    assert.deepEqual([4, 7, 10].map(weakQuorum), [2, 3, 4]);
    assert.equal(quorum(6), 5); // any n: more than two thirds
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((r) => proposerIndex(4, 1n, r)),
      [1, 2, 3, 0, 1],
    );
    assert.deepEqual(
      [1n, 2n, 3n].map((h) => proposerIndex(4, h, 0)),
      [1, 2, 3],
    );
  });
});

describe('tendermint state machine', () => {
  it('runs one height: proposal → validity → prevote → polka → lock and precommit → commit → decide → next height', () => {
    let r = started(2);
    assert.deepEqual(kinds(r.effects), ['schedule-timeout']);
    assert.deepEqual(r.effects[0], {
      type: 'schedule-timeout',
      height: 1n,
      round: 0,
      step: 'propose',
      delayMs: 3000,
    });
    r = step(r.state, proposal(1n, 0, A));
    assert.deepEqual(kinds(r.effects), ['validate-value']);
    r = step(r.state, valid(A));
    assert.deepEqual(kinds(r.effects), ['persist:vote', 'broadcast:prevote']);
    r = stepAll(r.state, [vote(PV, 1n, 0, 2, idOf(A)), vote(PV, 1n, 0, 0, idOf(A))]);
    assert.deepEqual(kinds(r.effects), []);
    r = step(r.state, vote(PV, 1n, 0, 1, idOf(A)));
    assert.deepEqual(kinds(r.effects), ['schedule-timeout', 'persist:vote', 'broadcast:precommit']);
    const lockRecord = r.effects[1] as Extract<Effect, { type: 'persist' }>;
    assert.ok(lockRecord.record.kind === 'vote' && lockRecord.record.polka !== null);
    assert.equal(lockRecord.record.polka.prevotes.length, 3, 'the lock is logged with its polka');
    assert.equal(r.state.lockedRound, 0);
    assert.equal(r.state.validRound, 0);
    assert.ok(equalBytes(r.state.lockedId!, idOf(A)));
    r = stepAll(r.state, [vote(PC, 1n, 0, 2, idOf(A)), vote(PC, 1n, 0, 0, idOf(A))]);
    assert.deepEqual(kinds(r.effects), []);
    r = step(r.state, vote(PC, 1n, 0, 1, idOf(A)));
    // Validator 2 proposes first at height 2.
    assert.deepEqual(kinds(r.effects), ['persist:decision', 'decide', 'request-value', 'schedule-timeout']);
    const decide = r.effects[1] as Extract<Effect, { type: 'decide' }>;
    assert.equal(decide.height, 1n);
    assert.equal(decide.round, 0);
    assert.deepEqual(
      decide.commit.map((c) => c.vote.validator),
      [0, 1, 2],
    );
    assert.equal(r.state.height, 2n);
    assert.equal(r.state.round, 0);
    assert.equal(r.state.lockedRound, -1);
    assert.deepEqual(r.state.rounds, {});
  });

  it('times out propose → nil prevote, prevote → nil precommit, precommit → next round, with timeouts growing per round', () => {
    let r = started(2);
    r = step(r.state, { type: 'timeout', height: 1n, round: 0, step: 'propose' });
    assert.deepEqual(kinds(r.effects), ['persist:vote', 'broadcast:prevote-nil']);
    assert.equal(r.state.step, 'prevote');
    r = step(r.state, { type: 'timeout', height: 1n, round: 0, step: 'prevote' });
    assert.deepEqual(kinds(r.effects), ['persist:vote', 'broadcast:precommit-nil']);
    r = step(r.state, { type: 'timeout', height: 1n, round: 0, step: 'precommit' });
    // Round 1 of height 1 is validator 2's: it asks the app for a value and arms a longer timeout.
    assert.deepEqual(kinds(r.effects), ['request-value', 'schedule-timeout']);
    assert.equal(r.state.round, 1);
    assert.equal((r.effects[1] as Extract<Effect, { type: 'schedule-timeout' }>).delayMs, 3500);
    assert.equal(
      timeoutMs(testParams(0), 'prevote', 3),
      TEST_TIMEOUTS.prevote.baseMs + 3 * TEST_TIMEOUTS.prevote.deltaMs,
    );
    // Stale timeouts do nothing.
    const stale = step(r.state, { type: 'timeout', height: 1n, round: 0, step: 'propose' });
    assert.deepEqual(stale.effects, []);
    r = step(r.state, { type: 'value', height: 1n, round: 1, value: B });
    assert.deepEqual(kinds(r.effects), ['persist:proposal', 'broadcast:proposal']);
  });

  it('arms timeoutPrevote on 2f+1 prevotes of any kind and precommits nil on 2f+1 nil prevotes', () => {
    let r = started(2);
    r = stepAll(r.state, [
      proposal(1n, 0, A),
      valid(A),
      vote(PV, 1n, 0, 2, idOf(A)),
      vote(PV, 1n, 0, 0, NIL),
    ]);
    r = step(r.state, vote(PV, 1n, 0, 1, NIL));
    assert.deepEqual(kinds(r.effects), ['schedule-timeout']);
    r = step(r.state, vote(PV, 1n, 0, 3, NIL));
    assert.deepEqual(kinds(r.effects), ['persist:vote', 'broadcast:precommit-nil']);
    assert.equal(r.state.lockedRound, -1);
  });

  it('a locked validator prevotes nil for a new value and relays its polka, but accepts its value re-proposed', () => {
    const locked = lockedOnA(3);
    assert.equal(locked.state.lockedRound, 0);
    const r1 = step(locked.state, { type: 'timeout', height: 1n, round: 0, step: 'precommit' });
    assert.equal(r1.state.round, 1);
    // A fresh value (vr = −1): refused (line 22); the lock's proposal and prevotes travel along.
    const fresh = stepAll(r1.state, [proposal(1n, 1, B), valid(B)]);
    assert.deepEqual(kinds(fresh.effects), ['validate-value', 'persist:vote', 'broadcast:prevote-nil']);
    const refusal = fresh.effects[2] as Extract<Effect, { type: 'broadcast' }>;
    assert.deepEqual(
      refusal.relay.map((m) => m.kind),
      ['proposal', 'vote', 'vote', 'vote'],
    );
    // The locked value re-proposed with its polka round (line 28): accepted.
    const again = step(r1.state, proposal(1n, 1, A, 0));
    assert.deepEqual(kinds(again.effects), ['persist:vote', 'broadcast:prevote']);
    // Another value claiming a polka in round 0 that we never saw: wait (then time out to nil).
    const unproven = stepAll(r1.state, [proposal(1n, 1, B, 0), valid(B)]);
    assert.deepEqual(kinds(unproven.effects), ['validate-value']);
  });

  it('a proposer with a valid value re-proposes it with its valid round and the polka as relay', () => {
    const locked = lockedOnA(2);
    const r = step(locked.state, { type: 'timeout', height: 1n, round: 0, step: 'precommit' });
    assert.deepEqual(kinds(r.effects), ['persist:proposal', 'broadcast:proposal', 'schedule-timeout']);
    const b = r.effects[1] as Extract<Effect, { type: 'broadcast' }>;
    assert.ok(b.message.kind === 'proposal');
    assert.equal(b.message.proposal.polRound, 0);
    assert.equal(b.relay.length, 3);
  });

  it('jumps to a higher round on f+1 messages from it (line 55), not on f', () => {
    let r = started(0);
    r = step(r.state, vote(PV, 1n, 2, 1, NIL));
    assert.equal(r.state.round, 0);
    r = step(r.state, vote(PC, 1n, 2, 2, NIL));
    assert.equal(r.state.round, 2);
    assert.deepEqual(kinds(r.effects), ['schedule-timeout']);
  });

  it('learns a polka of an earlier round as its valid value and re-proposes it when its turn comes', () => {
    let r = started(0);
    r = stepAll(r.state, [vote(PV, 1n, 2, 1, NIL), vote(PV, 1n, 2, 2, NIL)]);
    assert.equal(r.state.round, 2);
    r = stepAll(r.state, [
      proposal(1n, 1, A),
      valid(A),
      vote(PV, 1n, 1, 1, idOf(A)),
      vote(PV, 1n, 1, 2, idOf(A)),
    ]);
    assert.equal(r.state.validRound, -1);
    r = step(r.state, vote(PV, 1n, 1, 3, idOf(A)));
    assert.deepEqual(kinds(r.effects), ['persist:valid']);
    assert.equal(r.state.validRound, 1);
    assert.equal(r.state.lockedRound, -1, 'no lock without an own precommit');
    r = stepAll(r.state, [
      { type: 'timeout', height: 1n, round: 2, step: 'propose' },
      { type: 'timeout', height: 1n, round: 2, step: 'prevote' },
      { type: 'timeout', height: 1n, round: 2, step: 'precommit' },
    ]);
    const p = r.effects.find((e) => e.type === 'broadcast' && e.message.kind === 'proposal') as Extract<
      Effect,
      { type: 'broadcast' }
    >;
    assert.ok(p && p.message.kind === 'proposal');
    assert.equal(p.message.proposal.round, 3);
    assert.equal(p.message.proposal.polRound, 1);
    assert.ok(equalBytes(p.message.proposal.value.blockHash, A.blockHash));
  });

  it("reports an equivocation once, ignores duplicates, and counts an equivocator for each value (as the paper's log does)", () => {
    let r = started(2);
    r = stepAll(r.state, [proposal(1n, 0, A), valid(A), vote(PV, 1n, 0, 2, idOf(A))]);
    r = step(r.state, vote(PV, 1n, 0, 0, idOf(B)));
    assert.deepEqual(kinds(r.effects), []);
    const dup = vote(PV, 1n, 0, 0, idOf(B)) as Extract<Input, { type: 'vote' }>;
    assert.throws(() => checkAgainstState(r.state, { kind: 'vote', signed: dup.signed }), {
      code: 'CONSENSUS_DUPLICATE',
      verdict: 'IGNORE',
    });
    const second = vote(PV, 1n, 0, 0, idOf(A)) as Extract<Input, { type: 'vote' }>;
    const ev = checkAgainstState(r.state, { kind: 'vote', signed: second.signed });
    assert.equal(ev?.kind, 'conflicting-votes');
    r = step(r.state, second);
    assert.deepEqual(kinds(r.effects), ['evidence']);
    r = step(r.state, vote(PV, 1n, 0, 0, NIL));
    assert.deepEqual(kinds(r.effects), [], 'one report per equivocator, round and kind');
    // 2 (own), 0 (its second prevote) and 1 make a polka for A.
    r = step(r.state, vote(PV, 1n, 0, 1, idOf(A)));
    assert.ok(kinds(r.effects).includes('broadcast:precommit'));
  });

  it('reports a second, different proposal from the proposer', () => {
    let r = started(2);
    r = step(r.state, proposal(1n, 0, A));
    r = step(r.state, proposal(1n, 0, A));
    assert.deepEqual(kinds(r.effects), []);
    r = step(r.state, proposal(1n, 0, B));
    assert.deepEqual(kinds(r.effects), ['evidence', 'validate-value']);
    const e = r.effects[0] as Extract<Effect, { type: 'evidence' }>;
    assert.equal(e.evidence.kind, 'conflicting-proposals');
  });

  it("decides from a commit (catch-up) even when it holds an equivocator's other vote", () => {
    let r = started(3);
    r = step(r.state, vote(PC, 1n, 0, 0, NIL)); // the equivocator's nil precommit arrives first
    const p = proposal(1n, 0, A) as Extract<Input, { type: 'proposal' }>;
    const precommits = [0, 1, 2].map(
      (i) => (vote(PC, 1n, 0, i, idOf(A)) as Extract<Input, { type: 'vote' }>).signed,
    );
    r = step(r.state, { type: 'commit', commit: { proposal: p.signed, precommits } });
    // 2f+1 precommits of any kind arm timeoutPrecommit (line 47).
    assert.deepEqual(kinds(r.effects), ['validate-value', 'evidence', 'schedule-timeout']);
    r = step(r.state, valid(A));
    assert.deepEqual(kinds(r.effects).slice(0, 2), ['persist:decision', 'decide']);
    assert.equal(r.state.height, 2n);
  });

  it('asks again about a value it found not valid once a commit for it arrives, then decides', () => {
    let r = started(3);
    r = stepAll(r.state, [
      proposal(1n, 0, A),
      { type: 'validity', height: 1n, valueId: idOf(A), valid: false },
    ]);
    const p = proposal(1n, 0, A) as Extract<Input, { type: 'proposal' }>;
    const precommits = [0, 1, 2].map(
      (i) => (vote(PC, 1n, 0, i, idOf(A)) as Extract<Input, { type: 'vote' }>).signed,
    );
    r = step(r.state, { type: 'commit', commit: { proposal: p.signed, precommits } });
    assert.ok(kinds(r.effects).includes('validate-value'), 'the commit re-asks validity');
    assert.equal(r.state.height, 1n, 'no decision on a value not known valid');
    // A second copy of the commit while the check runs asks nothing more.
    const again = step(r.state, { type: 'commit', commit: { proposal: p.signed, precommits } });
    assert.ok(!kinds(again.effects).includes('validate-value'));
    r = step(again.state, valid(A));
    assert.deepEqual(kinds(r.effects).slice(0, 2), ['persist:decision', 'decide']);
    assert.equal(r.state.height, 2n);
  });

  it('refuses to sign a conflicting vote (the last line of defence) and re-sends the signed one instead', () => {
    let r = started(2);
    r = stepAll(r.state, [proposal(1n, 0, A), valid(A)]);
    assert.equal(r.state.step, 'prevote');
    // A stale or corrupted state that forgot it prevoted: the timeout would prevote nil.
    const stale: TendermintState = { ...r.state, step: 'propose' };
    const out = step(stale, { type: 'timeout', height: 1n, round: 0, step: 'propose' });
    assert.deepEqual(kinds(out.effects), ['refused-conflict', 'broadcast:prevote']);
    const b = out.effects[1] as Extract<Effect, { type: 'broadcast' }>;
    assert.ok(b.message.kind === 'vote' && equalBytes(b.message.vote.valueId, idOf(A)));
  });

  it('never mutates its input state, and serializes to JSON and back without changing behaviour', () => {
    const r = lockedOnA(2);
    const before = toJson(r.state);
    const next = step(r.state, vote(PC, 1n, 0, 0, idOf(A)));
    assert.equal(toJson(r.state), before);
    const copy = fromJson<TendermintState>(before);
    assert.deepEqual(copy, r.state);
    assert.deepEqual(step(copy, vote(PC, 1n, 0, 0, idOf(A))), next);
    assert.equal(messagesAt(r.state, [0]).length, 4); // the proposal and three prevotes
  });

  it('rejects bad parameters', () => {
    assert.throws(() => initialState(testParams(4), 1n), { code: 'CONSENSUS_BAD_PARAMS' });
    assert.throws(() => initialState({ ...testParams(0), roundWindow: 0 }, 1n), {
      code: 'CONSENSUS_BAD_PARAMS',
    });
  });
});

describe('tendermint in a fault-free network', () => {
  it('four validators decide the same values at every height, persisting each own message before sending it', () => {
    const run = runMiniNet(4, 3);
    for (let h = 1n; h <= 3n; h++) {
      const ids = new Set(run.decided.map((d) => d.get(h)));
      assert.equal(ids.size, 1, `height ${h}`);
      assert.ok(!ids.has(undefined));
    }
    for (const steps of run.steps) {
      const persisted = new Set<string>();
      for (const effects of steps) {
        for (const e of effects) {
          if (e.type === 'persist' && (e.record.kind === 'vote' || e.record.kind === 'proposal')) {
            const t = e.record.kind === 'vote' ? e.record.type : 0;
            persisted.add(`${e.record.height}/${e.record.round}/${t}`);
          }
          if (e.type === 'broadcast') {
            const m = e.message.kind === 'vote' ? e.message.vote : e.message.proposal;
            const t = e.message.kind === 'vote' ? e.message.vote.type : 0;
            assert.ok(persisted.has(`${m.height}/${m.round}/${t}`), 'broadcast before persist');
          }
        }
      }
    }
  });

  it('decides with f silent validators (n = 4 and n = 7), through rounds whose proposer is silent', () => {
    for (const [n, silent] of [
      [4, [1]],
      [7, [2, 3]],
    ] as const) {
      const run = runMiniNet(n, 3, silent);
      const honest = [...Array(n).keys()].filter((i) => !(silent as readonly number[]).includes(i));
      for (let h = 1n; h <= 3n; h++) assert.equal(new Set(honest.map((i) => run.decided[i]!.get(h))).size, 1);
      assert.ok(
        honest.every((i) => run.decided[i]!.size >= 3),
        `n=${n}: every honest validator decides 3 heights`,
      );
    }
  });
});

describe('tendermint restart from the write-ahead log', () => {
  const run = runMiniNet(4, 2);

  it('restores own votes, lock and round from every prefix of the log, and never contradicts the log', () => {
    for (let i = 0; i < 4; i++) {
      const wal = run.wal[i]!;
      for (let k = 0; k <= wal.length; k++) {
        const prefix = wal.slice(0, k);
        const state = recover(testParams(i), prefix, 1n);
        const recorded = new Map<string, string>();
        let lockRound = -1;
        for (const w of prefix) {
          if (w.kind !== 'vote' || w.height !== state.height) continue;
          recorded.set(`${w.type}/${w.round}`, bytesToHex(w.valueId));
          if (w.type === PC && w.polka && w.round > lockRound) lockRound = w.round;
        }
        assert.equal(state.lockedRound, lockRound);
        // Start, then fire every timeout of the restored round: nothing contradicts the log.
        const r = stepAll(state, [
          { type: 'start' },
          { type: 'timeout', height: state.height, round: state.round, step: 'propose' },
          { type: 'timeout', height: state.height, round: state.round, step: 'prevote' },
        ]);
        for (const e of r.effects) {
          assert.notEqual(e.type, 'refused-conflict');
          if (e.type !== 'broadcast' || e.message.kind !== 'vote') continue;
          const v = e.message.vote;
          const prev = recorded.get(`${v.type}/${v.round}`);
          if (v.height === state.height && prev !== undefined) assert.equal(bytesToHex(v.valueId), prev);
        }
      }
    }
  });

  it('starts after the last decision in the log, and rejects a log that contradicts itself', () => {
    const wal = run.wal[0]!;
    assert.equal(recover(testParams(0), wal, 1n).height, 3n);
    const vote0: Extract<WalRecord, { kind: 'vote' }> = {
      kind: 'vote',
      height: 1n,
      round: 0,
      type: PV,
      valueId: idOf(A),
      polka: null,
    };
    const vote1: WalRecord = { ...vote0, valueId: NIL };
    assert.throws(() => recover(testParams(0), [vote0, vote1], 1n), { code: 'CONSENSUS_BAD_WAL' });
    // The log round-trips through JSON (a LevelDB value, a file line).
    assert.deepEqual(fromJson<WalRecord[]>(toJson(wal)), wal);
  });

  it('serializes byte fields that are Uint8Array subclasses with their own toJSON (Node Buffers)', () => {
    // SSZ decoding can hand back Buffers; JSON.stringify calls toJSON before any replacer.
    class BufferLike extends Uint8Array {
      toJSON(): { type: string; data: number[] } {
        return { type: 'Buffer', data: [...this] };
      }
    }
    const record = { valueId: new BufferLike([1, 2, 255]), height: 7n };
    const back = fromJson<{ valueId: Uint8Array; height: bigint }>(toJson(record));
    assert.deepEqual([...back.valueId], [1, 2, 255]);
    assert.ok(back.valueId instanceof Uint8Array);
    assert.equal(back.height, 7n);
  });
});

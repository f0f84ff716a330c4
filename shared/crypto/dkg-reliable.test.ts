/**
 * The `reliableBroadcast` mode of the JF-DKG state machine (what the networked driver uses): a deal
 * that reaches a party after it acked still counts, and ack hashes no longer decide QUAL.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { assert, describe, it } from '#test';
import { bytesToHex, utf8 } from '../bytes.ts';
import { type DkgAck, type DkgDeal, type DkgMessage, type DkgResult, JointFeldmanDkg } from './dkg.ts';

const sessionId = utf8('pouw-test/reliable');

function seeded(label: string) {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32)
      out.set(sha256(utf8(`${label}/${counter++}`)).subarray(0, Math.min(32, n - o)), o);
    return out;
  };
}

/**
 * n = 4, t = 3. Party 4 acks before dealer 1's deal and share reach it (so it complains against 1),
 * then gets the deal. With `ackEdit`, party 3's ack is rewritten before the others see it.
 */
function lateDealRun(reliableBroadcast: boolean, ackEdit?: (a: DkgAck) => DkgAck) {
  const parties = [1, 2, 3, 4].map(
    (index) =>
      new JointFeldmanDkg({
        n: 4,
        t: 3,
        index,
        sessionId,
        reliableBroadcast,
        randomBytes: seeded(`p${index}`),
      }),
  );
  const deliver = (from: number, msg: DkgMessage, skip: number[] = []) => {
    for (const p of parties) if (p.index !== from && !skip.includes(p.index)) p.handle(msg);
  };
  let lateDeal: DkgDeal | null = null;
  for (const p of parties) {
    const out = p.deal();
    if (p.index === 1) lateDeal = out.broadcast;
    deliver(p.index, out.broadcast, p.index === 1 ? [4] : []);
    for (const s of out.direct)
      if (!(s.dealer === 1 && s.recipient === 4)) parties[s.recipient - 1]!.handle(s);
  }
  const acks = parties.map((p) => p.ack());
  assert.deepEqual(acks[3]!.complaints, [1]);
  acks.forEach((a, k) => {
    deliver(k + 1, ackEdit && k + 1 === 3 ? ackEdit(a) : a);
  });
  let lateError: unknown = null;
  try {
    parties[3]!.handle(lateDeal!);
  } catch (e) {
    lateError = e;
  }
  for (const p of parties) {
    const r = p.reveal();
    if (r !== null) deliver(p.index, r);
  }
  const results: (DkgResult | Error)[] = parties.map((p) => {
    try {
      return p.finalize();
    } catch (e) {
      return e as Error;
    }
  });
  return { results, lateError };
}

describe('dkg: reliableBroadcast mode', () => {
  it('a deal that arrives after the ack still counts: the complainer takes the revealed share', () => {
    const { results, lateError } = lateDealRun(true);
    assert.equal(lateError, null);
    const keys = new Set(results.map((r) => bytesToHex((r as DkgResult).groupPublicKey)));
    assert.equal(keys.size, 1);
    for (const r of results) assert.deepEqual((r as DkgResult).qualified, [1, 2, 3, 4]);
  });

  it('without the mode the same run disqualifies the honest dealer (empty hash in an ack: NO_DEAL)', () => {
    const { results, lateError } = lateDealRun(false);
    assert.equal((lateError as { code?: string }).code, 'DKG_WRONG_PHASE');
    for (const r of results)
      assert.deepEqual((r as DkgResult).disqualified, [{ dealer: 1, reason: 'NO_DEAL' }]);
  });

  it('a false commitment hash in an ack does not disqualify the dealer in this mode, and does without it', () => {
    const lie = (a: DkgAck): DkgAck => {
      const commitmentHashes = a.commitmentHashes.slice();
      commitmentHashes[1] = new Uint8Array(32).fill(3);
      return { ...a, commitmentHashes };
    };
    const reliable = lateDealRun(true, lie).results;
    for (const k of [0, 1, 3]) assert.deepEqual((reliable[k] as DkgResult).qualified, [1, 2, 3, 4]);
    // Without it dealer 2 falls to EQUIVOCATION (and dealer 1 to NO_DEAL): too few are left.
    const plain = lateDealRun(false, lie).results;
    for (const k of [0, 1, 3]) {
      const e = plain[k] as Error & {
        code?: string;
        detail?: { disqualified?: { dealer: number; reason: string }[] };
      };
      assert.equal(e.code, 'DKG_NOT_ENOUGH_QUALIFIED');
      assert.ok(e.detail?.disqualified?.some((d) => d.dealer === 2 && d.reason === 'EQUIVOCATION'));
    }
  });
});

import { sha256 } from '@noble/hashes/sha2.js';
import { assert, describe, it } from '#test';
import { concatBytes, utf8 } from '../bytes.ts';
import * as bls from './bls.ts';
import {
  commitmentHash,
  type DkgAck,
  type DkgDeal,
  type DkgMessage,
  type DkgResult,
  type DkgReveal,
  type DkgShare,
  JointFeldmanDkg,
} from './dkg.ts';
import { combine, partialSign } from './threshold-bls.ts';

function seeded(seed: string): bls.RandomBytes {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = sha256(concatBytes(utf8(seed), Uint8Array.of(counter >> 8, counter & 0xff)));
      counter++;
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
}

const sessionId = utf8('pouw-test/epoch-1');

/** How a test adversary rewrites a faulty party's outgoing messages (null drops the message). */
interface Adversary {
  /** Parties that never send anything. */
  silent?: number[];
  /** The deal that party `to` receives from `dealer`. */
  deal?: (msg: DkgDeal, to: number) => DkgDeal | null;
  share?: (msg: DkgShare) => DkgShare | null;
  ack?: (msg: DkgAck) => DkgAck;
  reveal?: (msg: DkgReveal | null, dealer: number) => DkgReveal | null;
}

interface Run {
  parties: Map<number, JointFeldmanDkg>;
  results: Map<number, DkgResult>;
  failures: Map<number, unknown>;
  rejected: { to: number; msg: DkgMessage; error: unknown }[];
}

/** Runs every phase of the DKG through an in-memory exchange (broadcast = deliver to all others). */
function runDkg(n: number, t: number, adversary: Adversary = {}, seed = 'dkg'): Run {
  const parties = new Map<number, JointFeldmanDkg>();
  for (let i = 1; i <= n; i++) {
    if (adversary.silent?.includes(i)) continue;
    parties.set(i, new JointFeldmanDkg({ n, t, index: i, sessionId, randomBytes: seeded(`${seed}/${i}`) }));
  }
  const rejected: Run['rejected'] = [];
  const deliver = (to: number, msg: DkgMessage) => {
    const p = parties.get(to);
    if (p === undefined) return;
    try {
      p.handle(msg);
    } catch (error) {
      rejected.push({ to, msg, error });
    }
  };
  const broadcast = (from: number, msg: DkgMessage) => {
    for (const to of parties.keys()) if (to !== from) deliver(to, msg);
  };
  // 1. deal
  for (const [i, p] of parties) {
    const out = p.deal();
    for (const to of parties.keys()) {
      if (to === i) continue;
      const d = adversary.deal ? adversary.deal(out.broadcast, to) : out.broadcast;
      if (d !== null) deliver(to, d);
    }
    for (const s of out.direct) {
      const m = adversary.share ? adversary.share(s) : s;
      if (m !== null) deliver(m.recipient, m);
    }
  }
  // 2. ack
  const acks = [...parties].map(([i, p]) => [i, p.ack()] as const);
  for (const [i, a] of acks) broadcast(i, adversary.ack ? adversary.ack(a) : a);
  // 3. reveal
  for (const [i, p] of parties) {
    const r = adversary.reveal ? adversary.reveal(p.reveal(), i) : p.reveal();
    if (r !== null) broadcast(i, r);
  }
  // 4-5. QUAL and keys
  const results = new Map<number, DkgResult>();
  const failures = new Map<number, unknown>();
  for (const [i, p] of parties) {
    try {
      results.set(i, p.finalize());
    } catch (e) {
      failures.set(i, e);
    }
  }
  return { parties, results, failures, rejected };
}

/**
 * Every honest party agrees on QUAL, the group key and the public shares; each holds the secret
 * share behind its public share; t honest partials combine into a signature that plain verify
 * accepts under the group key.
 */
function checkAgreementAndSign(run: Run, honest: number[], t: number): DkgResult {
  const first = run.results.get(honest[0]!);
  assert.ok(first, `party ${honest[0]} finalized`);
  for (const i of honest) {
    const r = run.results.get(i);
    assert.ok(r, `party ${i} finalized (${String(run.failures.get(i))})`);
    assert.deepEqual(r.qualified, first.qualified, `QUAL of ${i}`);
    assert.deepEqual(r.disqualified, first.disqualified, `disqualified of ${i}`);
    assert.deepEqual(r.groupPublicKey, first.groupPublicKey, `group key of ${i}`);
    assert.deepEqual(r.publicShares, first.publicShares, `public shares of ${i}`);
    assert.deepEqual(bls.getPublicKey(r.secretShare.secretKey), first.publicShares[i - 1], `share of ${i}`);
  }
  const message = utf8(`block signed after DKG ${honest.join(',')}`);
  const signers = honest.slice(0, t).map((i) => run.results.get(i)!.secretShare);
  const partials = signers.map((s) => partialSign(s, message));
  const sig = combine(partials, t, { publicShares: first.publicShares, message });
  assert.ok(
    bls.verify(first.groupPublicKey, message, sig),
    'threshold signature verifies under the group key',
  );
  return first;
}

function bumpShare(share: Uint8Array): Uint8Array {
  const x = bls.scalarFromBytes(share);
  return bls.scalarToBytes(bls.Fr.add(x, 1n));
}

describe('dkg: Joint-Feldman, n=4 t=3', () => {
  it('all honest: everyone qualifies and agrees; the threshold key signs', () => {
    const run = runDkg(4, 3);
    assert.equal(run.rejected.length, 0);
    const r = checkAgreementAndSign(run, [1, 2, 3, 4], 3);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    assert.deepEqual(r.disqualified, []);
  });

  it('a dealer sends one bad share, answers the complaint correctly and stays qualified', () => {
    const run = runDkg(4, 3, {
      share: (m) => (m.dealer === 2 && m.recipient === 3 ? { ...m, share: bumpShare(m.share) } : m),
    });
    const r = checkAgreementAndSign(run, [1, 3, 4], 3);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    // Party 3 took the revealed share, so even the faulty dealer's own share is consistent.
    assert.deepEqual(bls.getPublicKey(run.results.get(2)!.secretShare.secretKey), r.publicShares[1]);
  });

  it('a dealer sends one bad share and reveals nothing: disqualified', () => {
    const run = runDkg(4, 3, {
      share: (m) => (m.dealer === 2 && m.recipient === 3 ? { ...m, share: bumpShare(m.share) } : m),
      reveal: (m, dealer) => (dealer === 2 ? null : m),
    });
    const r = checkAgreementAndSign(run, [1, 3, 4], 3);
    assert.deepEqual(r.qualified, [1, 3, 4]);
    assert.deepEqual(r.disqualified, [{ dealer: 2, reason: 'UNANSWERED_COMPLAINT' }]);
  });

  it('a dealer answers a complaint with a bad share: disqualified', () => {
    const run = runDkg(4, 3, {
      share: (m) => (m.dealer === 2 && m.recipient === 3 ? { ...m, share: bumpShare(m.share) } : m),
      reveal: (m, dealer) =>
        dealer === 2 && m !== null
          ? { ...m, shares: m.shares.map((s) => ({ ...s, share: bumpShare(s.share) })) }
          : m,
    });
    const r = checkAgreementAndSign(run, [1, 3, 4], 3);
    assert.deepEqual(r.disqualified, [{ dealer: 2, reason: 'BAD_REVEAL' }]);
  });

  it('a dealer sends different commitment vectors to different parties: disqualified', () => {
    // Party 4 gets a second, self-consistent polynomial from dealer 2 (so it has nothing to
    // complain about); only the commitment hashes in the acks expose the equivocation.
    const alt = new JointFeldmanDkg({ n: 4, t: 3, index: 2, sessionId, randomBytes: seeded('alt') }).deal();
    const run = runDkg(4, 3, {
      deal: (m, to) => (m.dealer === 2 && to === 4 ? alt.broadcast : m),
      share: (m) => (m.dealer === 2 && m.recipient === 4 ? alt.direct.find((s) => s.recipient === 4)! : m),
    });
    const ack4 = run.parties.get(4)!;
    assert.deepEqual(ack4.missing().reveals, []);
    const r = checkAgreementAndSign(run, [1, 3, 4], 3);
    assert.deepEqual(r.qualified, [1, 3, 4]);
    assert.deepEqual(r.disqualified, [{ dealer: 2, reason: 'EQUIVOCATION' }]);
  });

  it('malformed commitments: the message is rejected, recorded, complained about; dealer disqualified', () => {
    let truncated: Uint8Array[] = [];
    const run = runDkg(4, 3, {
      deal: (m) => {
        if (m.dealer !== 1) return m;
        truncated = m.commitments.slice(0, 2);
        return { ...m, commitments: truncated };
      },
      // The faulty dealer's own ack consistently reports the vector it broadcast.
      ack: (a) => {
        if (a.from !== 1) return a;
        const commitmentHashes = a.commitmentHashes.slice();
        commitmentHashes[0] = commitmentHash(sessionId, 1, truncated);
        return { ...a, commitmentHashes };
      },
    });
    assert.equal(run.rejected.length, 3);
    for (const x of run.rejected) assert.equal((x.error as { code: string }).code, 'DKG_BAD_MESSAGE');
    const r = checkAgreementAndSign(run, [2, 3, 4], 3);
    assert.deepEqual(r.disqualified, [{ dealer: 1, reason: 'MALFORMED_COMMITMENTS' }]);
  });

  it('fewer than t qualified dealers: DKG_NOT_ENOUGH_QUALIFIED', () => {
    const run = runDkg(4, 3, { silent: [3, 4] });
    assert.equal(run.results.size, 0);
    for (const e of run.failures.values()) {
      assert.equal((e as { name: string }).name, 'DkgError');
      assert.equal((e as { code: string }).code, 'DKG_NOT_ENOUGH_QUALIFIED');
    }
    assert.deepEqual(run.parties.get(1)!.missing().deals, [3, 4]);
  });
});

describe('dkg: Joint-Feldman, n=7 t=5', () => {
  it('all honest', () => {
    const run = runDkg(7, 5, {}, 'dkg7');
    const r = checkAgreementAndSign(run, [1, 2, 3, 4, 5, 6, 7], 5);
    assert.deepEqual(r.qualified, [1, 2, 3, 4, 5, 6, 7]);
  });

  it('f=2 faulty dealers (one equivocates, one sends a bad share and goes quiet)', () => {
    const alt = new JointFeldmanDkg({ n: 7, t: 5, index: 3, sessionId, randomBytes: seeded('alt7') }).deal();
    const run = runDkg(
      7,
      5,
      {
        deal: (m, to) => (m.dealer === 3 && to >= 6 ? alt.broadcast : m),
        share: (m) => {
          if (m.dealer === 3 && m.recipient >= 6) return alt.direct.find((s) => s.recipient === m.recipient)!;
          if (m.dealer === 6 && m.recipient === 1) return { ...m, share: bumpShare(m.share) };
          return m;
        },
        reveal: (m, dealer) => (dealer === 6 ? null : m),
      },
      'dkg7f',
    );
    const r = checkAgreementAndSign(run, [1, 2, 4, 5, 7], 5);
    assert.deepEqual(r.qualified, [1, 2, 4, 5, 7]);
    assert.deepEqual(r.disqualified, [
      { dealer: 3, reason: 'EQUIVOCATION' },
      { dealer: 6, reason: 'UNANSWERED_COMPLAINT' },
    ]);
  });
});

describe('dkg: message validation', () => {
  const code = (c: string, verdict?: string) => ({
    name: 'DkgError',
    code: c,
    ...(verdict ? { verdict } : {}),
  });
  const party = (index: number, seed = 'v') =>
    new JointFeldmanDkg({ n: 4, t: 3, index, sessionId, randomBytes: seeded(`${seed}/${index}`) });

  it('parameters', () => {
    assert.throws(() => new JointFeldmanDkg({ n: 3, t: 4, index: 1 }), code('DKG_BAD_PARAMETERS'));
    assert.throws(() => new JointFeldmanDkg({ n: 4, t: 3, index: 0 }), code('DKG_BAD_PARAMETERS'));
    assert.throws(() => new JointFeldmanDkg({ n: 4, t: 0, index: 1 }), code('DKG_BAD_PARAMETERS'));
  });

  it('phases, unknown parties, duplicates and malformed fields', () => {
    const p1 = party(1);
    const p2 = party(2);
    assert.throws(() => p1.ack(), code('DKG_WRONG_PHASE'));
    assert.throws(() => p1.finalize(), code('DKG_WRONG_PHASE'));
    const out1 = p1.deal();
    const out2 = p2.deal();
    assert.throws(() => p1.deal(), code('DKG_WRONG_PHASE'));
    assert.throws(() => p1.handle({ ...out2.broadcast, dealer: 5 }), code('DKG_UNKNOWN_PARTY', 'REJECT'));
    p1.handle(out2.broadcast);
    assert.throws(() => p1.handle(out2.broadcast), code('DKG_DUPLICATE_MESSAGE', 'IGNORE'));
    assert.throws(
      () => p1.handle({ ...out2.broadcast, commitments: out1.broadcast.commitments }),
      code('DKG_DUPLICATE_MESSAGE', 'REJECT'),
    );
    // The loopback copy of its own deal is a harmless duplicate.
    assert.throws(() => p1.handle(out1.broadcast), code('DKG_DUPLICATE_MESSAGE', 'IGNORE'));
    const toMe = out2.direct.find((s) => s.recipient === 1)!;
    const toOther = out2.direct.find((s) => s.recipient === 3)!;
    assert.throws(() => p1.handle(toOther), code('DKG_BAD_MESSAGE', 'IGNORE'));
    assert.throws(() => p1.handle({ ...toMe, share: new Uint8Array(31) }), code('DKG_BAD_MESSAGE', 'REJECT'));
    // The malformed share was recorded: the correct one now counts as a conflicting duplicate.
    assert.throws(() => p1.handle(toMe), code('DKG_DUPLICATE_MESSAGE', 'REJECT'));
    // A deal with a bad point from party 3 is rejected but recorded (and complained about).
    const p3deal = party(3).deal().broadcast;
    const bad = p3deal.commitments.slice();
    bad[1] = new Uint8Array(48).fill(0xff);
    assert.throws(() => p1.handle({ ...p3deal, commitments: bad }), code('DKG_BAD_MESSAGE', 'REJECT'));
    assert.throws(() => p1.handle({ type: 'nope' } as unknown as DkgMessage), code('DKG_BAD_MESSAGE'));

    const ack = p1.ack();
    assert.deepEqual(ack.complaints, [2, 3, 4]);
    assert.equal(ack.commitmentHashes[3]!.length, 0);
    assert.equal(ack.commitmentHashes[2]!.length, 32);
    assert.throws(() => p1.handle(out2.broadcast), code('DKG_WRONG_PHASE', 'IGNORE'));

    const ack2 = p2.ack();
    assert.throws(() => p1.handle({ ...ack2, complaints: [2] }), code('DKG_BAD_MESSAGE'));
    assert.throws(() => p1.handle({ ...ack2, complaints: [4, 3, 1] }), code('DKG_BAD_MESSAGE'));
    assert.throws(
      () => p1.handle({ ...ack2, commitmentHashes: ack2.commitmentHashes.slice(1) }),
      code('DKG_BAD_MESSAGE'),
    );
    p1.handle(ack2);
    assert.throws(() => p1.handle(ack2), code('DKG_DUPLICATE_MESSAGE', 'IGNORE'));

    // Party 2 never got party 1's deal, so it complained: party 1 must reveal f_1(2).
    const reveal = p1.reveal();
    assert.deepEqual(
      reveal?.shares.map((x) => x.recipient),
      [2],
    );
    assert.deepEqual(reveal?.shares[0]?.share, out1.direct.find((x) => x.recipient === 2)!.share);
    assert.throws(() => p1.handle(ack2), code('DKG_WRONG_PHASE', 'IGNORE'));
    const share = new Uint8Array(32);
    assert.throws(
      () =>
        p1.handle({
          type: 'reveal',
          dealer: 2,
          shares: [
            { recipient: 3, share },
            { recipient: 1, share },
          ],
        }),
      code('DKG_BAD_MESSAGE'),
    );
    assert.throws(
      () => p1.handle({ type: 'reveal', dealer: 2, shares: [{ recipient: 2, share }] }),
      code('DKG_BAD_MESSAGE'),
    );
    assert.throws(() => p1.finalize(), code('DKG_NOT_ENOUGH_QUALIFIED'));
  });
});

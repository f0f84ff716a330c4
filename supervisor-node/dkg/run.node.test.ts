/**
 * The networked DKG over the in-memory channel: honest runs at two committee sizes, duplicated and
 * reordered delivery, and each Byzantine behaviour the protocol must absorb (a bad share, a dealer
 * that equivocates on its commitments, a false hash in an ack, a silent member). Every test runs
 * the real driver, broadcast, codec and signatures; only the transport is in memory.
 */
import { assert, describe, it } from '#test';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { utf8 } from '../../shared/bytes.ts';
import { JointFeldmanDkg } from '../../shared/crypto/dkg.ts';
import {
  decodeDkgFrame,
  dkgSessionTag,
  encodeDkgFrame,
  openDkgMessage,
} from '../../shared/crypto/dkg-wire.ts';
import { MemoryNetwork } from './channel.ts';
import { runNetworkDkg } from './run.ts';
import {
  bumpShare,
  CHAIN_ID,
  checkHonestAgreement,
  makeCommittee,
  resign,
  rewriteFrame,
  runMemoryDkg,
  seededRandom,
} from './testkit.ts';

function code(e: unknown): string | undefined {
  return (e as { code?: string } | undefined)?.code;
}

describe('networked DKG (in-memory channel): honest committees', () => {
  it('n=4, t=3: all agree on QUAL, group key and shares; 3 shares sign', async () => {
    const run = await runMemoryDkg(4, { t: 3, label: 'honest4' });
    assert.equal(run.failures.size, 0, String([...run.failures.values()]));
    const r = checkHonestAgreement(run, [1, 2, 3, 4], [2, 3, 4]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    assert.deepEqual(r.confirmedBy, [1, 2, 3, 4]);
    for (const x of run.results.values()) assert.deepEqual(x.faults, []);
  });

  it('n=7, t=5: all agree; 5 shares sign', async () => {
    const run = await runMemoryDkg(7, { t: 5, label: 'honest7' });
    assert.equal(run.failures.size, 0, String([...run.failures.values()]));
    const r = checkHonestAgreement(run, [1, 2, 3, 4, 5, 6, 7], [1, 3, 4, 6, 7]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4, 5, 6, 7]);
  });

  it('every frame delivered twice, with random delays (reordering): same outcome', async () => {
    const rand = seededRandom('jitter');
    const run = await runMemoryDkg(4, {
      t: 3,
      label: 'dup4',
      intercept: (_from, _to, bytes) => [bytes, bytes],
      delayMs: () => rand(1)[0]! % 40,
    });
    assert.equal(run.failures.size, 0, String([...run.failures.values()]));
    const r = checkHonestAgreement(run, [1, 2, 3, 4], [1, 2, 4]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    for (const x of run.results.values()) assert.deepEqual(x.faults, []);
  });
});

describe('networked DKG (in-memory channel): Byzantine members', () => {
  it('a dealer sends one bad share and never answers the complaint: disqualified by every honest member', async () => {
    const committee = makeCommittee(4, 'badshare');
    const run = await runMemoryDkg(4, {
      t: 3,
      label: 'badshare',
      timeouts: { reveal: 800 },
      intercept: (from, to, bytes) =>
        from !== 2
          ? [bytes]
          : rewriteFrame(bytes, committee[1]!.seed, (m) => {
              if (m.type === 'share' && to === 3) return { ...m, share: bumpShare(m.share) };
              if (m.type === 'reveal') return null;
              return m;
            }),
    });
    const r = checkHonestAgreement(run, [1, 3, 4], [1, 3, 4]);
    assert.deepEqual(r.qualified, [1, 3, 4]);
    assert.deepEqual(r.disqualified, [{ dealer: 2, reason: 'UNANSWERED_COMPLAINT' }]);
    // The faulty dealer's own view (its reveal counted) is outvoted at the confirmation.
    assert.equal(code(run.failures.get(2)), 'DKG_NO_AGREEMENT');
  });

  for (const split of [
    { name: 'majority', real: [1, 2], alt: [3], expect: 'qualified' },
    { name: 'minority', real: [1], alt: [2, 3], expect: 'BAD_REVEAL' },
  ] as const) {
    it(`a dealer broadcasts different commitments to different members (real vector to the ${split.name}): honest members agree`, async () => {
      const committee = makeCommittee(4, `equiv-${split.name}`);
      // A second, self-consistent polynomial for dealer 4: its commitments and shares go to `alt`.
      const alt = new JointFeldmanDkg({
        n: 4,
        t: 3,
        index: 4,
        sessionId: utf8(`equiv-${split.name}/session`),
        randomBytes: seededRandom('alt-poly'),
      }).deal();
      let equivocated = 0;
      const run = await runMemoryDkg(4, {
        t: 3,
        label: `equiv-${split.name}`,
        intercept: (from, to, bytes) => {
          if (from !== 4 || !(split.alt as readonly number[]).includes(to)) return [bytes];
          return rewriteFrame(bytes, committee[3]!.seed, (m) => {
            if (m.type === 'deal' && m.dealer === 4) {
              equivocated++;
              return alt.broadcast;
            }
            if (m.type === 'share') return alt.direct.find((s) => s.recipient === to)!;
            return m;
          });
        },
      });
      assert.ok(equivocated >= split.alt.length, 'the dealer sent the second vector');
      const r = checkHonestAgreement(run, [1, 2, 3], [1, 2, 3]);
      if (split.expect === 'qualified') {
        assert.deepEqual(r.qualified, [1, 2, 3, 4]);
      } else {
        assert.deepEqual(r.qualified, [1, 2, 3]);
        assert.deepEqual(r.disqualified, [{ dealer: 4, reason: 'BAD_REVEAL' }]);
      }
    });
  }

  it('an ack with a false commitment hash no longer disqualifies the honest dealer; the liar is named', async () => {
    const committee = makeCommittee(4, 'falsehash');
    const run = await runMemoryDkg(4, {
      t: 3,
      label: 'falsehash',
      intercept: (from, _to, bytes) =>
        from !== 4
          ? [bytes]
          : rewriteFrame(bytes, committee[3]!.seed, (m) => {
              if (m.type !== 'ack') return m;
              const commitmentHashes = m.commitmentHashes.slice();
              commitmentHashes[0] = new Uint8Array(32).fill(7);
              return { ...m, commitmentHashes };
            }),
    });
    const r = checkHonestAgreement(run, [1, 2, 3], [1, 2, 3]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    for (const i of [1, 2, 3]) {
      assert.ok(
        run.results.get(i)!.faults.some((f) => f.party === 4 && f.code === 'DKG_BAD_MESSAGE'),
        `member ${i} names member 4`,
      );
    }
  });

  it('a silent member: the others finish without it (QUAL of t), and their shares sign', async () => {
    const run = await runMemoryDkg(4, {
      t: 3,
      label: 'silent',
      silent: [4],
      timeouts: { deal: 800, ack: 500, reveal: 500, confirm: 2000, linger: 200 },
    });
    assert.equal(run.failures.size, 0, String([...run.failures.values()]));
    const r = checkHonestAgreement(run, [1, 2, 3], [1, 2, 3]);
    assert.deepEqual(r.qualified, [1, 2, 3]);
    assert.deepEqual(r.disqualified, [{ dealer: 4, reason: 'NO_DEAL' }]);
    assert.deepEqual(r.confirmedBy, [1, 2, 3]);
  });

  it('two silent members of four: fewer than t qualify, every live member fails with a typed error', async () => {
    const run = await runMemoryDkg(4, {
      t: 3,
      label: 'silent2',
      silent: [3, 4],
      timeouts: { deal: 300, ack: 200, reveal: 200, confirm: 500, linger: 100 },
    });
    assert.equal(run.results.size, 0);
    for (const i of [1, 2]) assert.equal(code(run.failures.get(i)), 'DKG_NOT_ENOUGH_QUALIFIED');
  });

  it('frames that are garbage, forged or from another session change nothing; forgeries are attributed', async () => {
    const committee = makeCommittee(4, 'garbage');
    const other = dkgSessionTag(CHAIN_ID, utf8('another session'));
    let injected = 0;
    const run = await runMemoryDkg(4, {
      t: 3,
      label: 'garbage',
      intercept: (from, _to, bytes) => {
        if (from !== 4) return [bytes];
        const frame = decodeDkgFrame(bytes);
        if (frame.kind !== 'send' && frame.kind !== 'direct') return [bytes];
        injected++;
        const seed = committee[3]!.seed;
        const { message } = openDkgMessage(CHAIN_ID, frame.signed);
        // Garbage, a truncated frame, a message claiming to be member 1's (signed by 4), the same
        // message bound to another session: then the genuine frame.
        const forged = rewriteFrame(bytes, seed, (m) =>
          m.type === 'share' || m.type === 'deal' ? { ...m, dealer: 1 } : m,
        );
        const foreign = encodeDkgFrame({ kind: frame.kind, signed: resign(other, message, seed) });
        return [Uint8Array.of(9, 9, 9), bytes.subarray(0, bytes.length - 1), ...forged, foreign, bytes];
      },
    });
    assert.ok(injected > 0);
    const r = checkHonestAgreement(run, [1, 2, 3, 4], [1, 2, 3]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    const faults = run.results.get(1)!.faults;
    assert.ok(faults.some((f) => f.party === 4 && f.code.startsWith('DECODE_')));
    assert.ok(faults.some((f) => f.party === 4 && f.code === 'DKG_BAD_SIGNATURE'));
  });

  it('aborting through the signal ends the run with DKG_ABORTED', async () => {
    const committee = makeCommittee(4, 'abort');
    const network = new MemoryNetwork(4);
    const controller = new AbortController();
    const running = runNetworkDkg({
      chainId: CHAIN_ID,
      self: { index: 1, nodeKeySeed: committee[0]!.seed },
      committee: committee.map((m) => m.nodeKey),
      threshold: 3,
      sessionId: utf8('abort'),
      channel: network.channel(1),
      ed25519: nodeCryptoEd25519,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(() => running, { name: 'DkgError', code: 'DKG_ABORTED' });
    network.close();
  });

  it('bad parameters are rejected before anything is sent', async () => {
    const committee = makeCommittee(4, 'params');
    const network = new MemoryNetwork(4);
    const base = {
      chainId: CHAIN_ID,
      committee: committee.map((m) => m.nodeKey),
      threshold: 3,
      sessionId: utf8('params'),
      ed25519: nodeCryptoEd25519,
    };
    await assert.rejects(
      () =>
        runNetworkDkg({
          ...base,
          self: { index: 1, nodeKeySeed: committee[1]!.seed },
          channel: network.channel(1),
        }),
      { code: 'DKG_BAD_PARAMETERS' },
    );
    await assert.rejects(
      () =>
        runNetworkDkg({
          ...base,
          self: { index: 1, nodeKeySeed: committee[0]!.seed },
          channel: network.channel(2),
        }),
      { code: 'DKG_BAD_PARAMETERS' },
    );
    await assert.rejects(
      () =>
        runNetworkDkg({
          ...base,
          committee: [
            committee[0]!.nodeKey,
            committee[0]!.nodeKey,
            committee[2]!.nodeKey,
            committee[3]!.nodeKey,
          ],
          self: { index: 1, nodeKeySeed: committee[0]!.seed },
          channel: network.channel(1),
        }),
      { code: 'DKG_BAD_PARAMETERS' },
    );
    assert.equal(network.sentCount.size, 0);
    network.close();
  });
});

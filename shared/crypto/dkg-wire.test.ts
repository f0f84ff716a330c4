import { sha256 } from '@noble/hashes/sha2.js';
import { assert, describe, it } from '#test';
import { equalBytes, utf8 } from '../bytes.ts';
import {
  DkgKind,
  type DkgWireMessage,
  decodeDkgBody,
  decodeDkgFrame,
  dkgDigest,
  dkgSessionTag,
  dkgTranscriptHash,
  encodeDkgBody,
  encodeDkgFrame,
  MAX_DKG_FRAME,
  openDkgMessage,
  signDkgMessage,
  verifyDkgMessage,
} from './dkg-wire.ts';
import { nobleEd25519 } from './ed25519.ts';

const CHAIN = 'pouw-wire-test';
const seed = sha256(utf8('dkg-wire/author'));
const otherSeed = sha256(utf8('dkg-wire/other'));
const session = dkgSessionTag(CHAIN, utf8('epoch-1'));
const b = (fill: number, length: number) => new Uint8Array(length).fill(fill);

const samples: DkgWireMessage[] = [
  { type: 'deal', dealer: 2, commitments: [b(0xa1, 48), b(0xa2, 48), b(0xa3, 48)] },
  { type: 'share', dealer: 2, recipient: 3, share: b(5, 32) },
  {
    type: 'ack',
    from: 3,
    commitmentHashes: [b(1, 32), new Uint8Array(0), b(3, 32), b(4, 32)],
    complaints: [2],
  },
  { type: 'reveal', dealer: 2, shares: [{ recipient: 3, share: b(6, 32) }] },
  { type: 'confirm', from: 1, transcriptHash: b(9, 32) },
];

describe('dkg wire: bodies, signatures and frames', () => {
  it('every message kind round-trips through a signed frame and verifies under its author key', async () => {
    const author = await nobleEd25519.getPublicKey(seed);
    const other = await nobleEd25519.getPublicKey(otherSeed);
    for (const msg of samples) {
      const signed = await signDkgMessage(nobleEd25519, seed, CHAIN, session, msg);
      for (const kind of ['send', 'echo', 'direct'] as const) {
        const frame = decodeDkgFrame(encodeDkgFrame({ kind, signed: signed.signed }));
        assert.equal(frame.kind, kind);
        if (frame.kind === 'ready') throw new Error('unreachable');
        const opened = openDkgMessage(CHAIN, frame.signed);
        assert.deepEqual(opened.message, msg);
        assert.equal(opened.author, signed.author);
        assert.ok(equalBytes(opened.session, session));
        assert.ok(equalBytes(opened.digest, signed.digest));
        assert.ok(await verifyDkgMessage(nobleEd25519, author, opened));
        assert.equal(await verifyDkgMessage(nobleEd25519, other, opened), false);
      }
    }
  });

  it('a changed body, another chain or another kind breaks the signature', async () => {
    const author = await nobleEd25519.getPublicKey(seed);
    const signed = await signDkgMessage(nobleEd25519, seed, CHAIN, session, samples[1]!);
    const tampered = { ...signed.signed, body: signed.signed.body.slice() };
    tampered.body[tampered.body.length - 1]! ^= 1;
    assert.equal(await verifyDkgMessage(nobleEd25519, author, openDkgMessage(CHAIN, tampered)), false);
    assert.equal(
      await verifyDkgMessage(nobleEd25519, author, openDkgMessage('pouw-other', signed.signed)),
      false,
    );
    const { body } = encodeDkgBody(session, samples[1]!);
    assert.ok(!equalBytes(dkgDigest(CHAIN, DkgKind.share, body), dkgDigest(CHAIN, DkgKind.confirm, body)));
  });

  it('session tags separate chains and session ids', () => {
    assert.ok(!equalBytes(dkgSessionTag(CHAIN, utf8('epoch-1')), dkgSessionTag(CHAIN, utf8('epoch-2'))));
    assert.ok(
      !equalBytes(dkgSessionTag(CHAIN, utf8('epoch-1')), dkgSessionTag('pouw-other', utf8('epoch-1'))),
    );
  });

  it('READY frames round-trip', () => {
    const ready = { session, kind: DkgKind.ack, author: 4, digest: b(8, 32) };
    const frame = decodeDkgFrame(encodeDkgFrame({ kind: 'ready', ready }));
    assert.deepEqual(frame, { kind: 'ready', ready });
  });

  it('bad frames get typed rejections: empty, unknown kind, cut short, bad offset, oversized, not bytes', async () => {
    const signed = await signDkgMessage(nobleEd25519, seed, CHAIN, session, samples[0]!);
    const good = encodeDkgFrame({ kind: 'send', signed: signed.signed });
    // SignedDkgMessage is kind ‖ offset(body) ‖ signature ‖ body: a bad offset is malformed, a cut
    // into the fixed part is too short. (A cut into the body is a different body: the signature
    // check catches that, as the test above shows.)
    const badOffset = good.slice();
    badOffset[2] = badOffset[2]! + 1;
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(0), 'DECODE_UNDERSIZED'],
      [Uint8Array.of(7, ...good.subarray(1)), 'DECODE_MALFORMED'],
      [good.subarray(0, 40), 'DECODE_UNDERSIZED'],
      [badOffset, 'DECODE_'],
      [new Uint8Array(MAX_DKG_FRAME + 1).fill(1), 'DECODE_OVERSIZED'],
    ];
    for (const [bytes, code] of cases) {
      const e = assert.throws(() => decodeDkgFrame(bytes), { name: 'DecodeError', verdict: 'REJECT' });
      assert.ok((e as unknown as { code: string }).code.startsWith(code), `${code}: ${e.message}`);
    }
    assert.throws(() => decodeDkgFrame('x' as unknown as Uint8Array), { code: 'DECODE_WRONG_TYPE' });
    assert.throws(() => decodeDkgBody(9, new Uint8Array(40)), { code: 'DECODE_MALFORMED' });
    // Values the wire cannot carry are refused, never silently cut: a 47-byte commitment, a
    // 31-byte share, an index past uint16.
    assert.throws(() => encodeDkgBody(session, { type: 'share', dealer: 1, recipient: 2, share: b(1, 31) }), {
      code: 'DKG_BAD_MESSAGE',
    });
    assert.throws(
      () => encodeDkgBody(session, { type: 'share', dealer: 70_000, recipient: 2, share: b(1, 32) }),
      {
        code: 'DKG_BAD_MESSAGE',
      },
    );
    assert.throws(() => encodeDkgBody(session, { type: 'deal', dealer: 1, commitments: [b(1, 47)] }), {
      code: 'DKG_BAD_MESSAGE',
    });
  });

  it('random bytes never decode into a frame silently wrong: typed rejection or a canonical frame', () => {
    let state = sha256(utf8('fuzz'));
    for (let i = 0; i < 300; i++) {
      state = sha256(state);
      const length = state[0]! % 120;
      const bytes = new Uint8Array(length);
      for (let k = 0; k < length; k++) bytes[k] = sha256(Uint8Array.of(i, k, ...state.subarray(0, 4)))[0]!;
      bytes[0] = (state[1]! % 5) as number;
      try {
        const frame = decodeDkgFrame(bytes);
        assert.ok(equalBytes(encodeDkgFrame(frame), bytes), 'a decoded frame re-encodes to the same bytes');
      } catch (e) {
        assert.equal((e as { name: string }).name, 'DecodeError');
      }
    }
  });

  it('the transcript hash commits to QUAL and the group key', () => {
    const base = {
      session,
      n: 4,
      t: 3,
      committee: [b(1, 32), b(2, 32), b(3, 32), b(4, 32)],
      qualified: [1, 2, 3],
      commitmentHashes: [b(11, 32), b(12, 32), b(13, 32)],
      groupPublicKey: b(0xaa, 48),
    };
    const h = dkgTranscriptHash(CHAIN, base);
    assert.ok(equalBytes(h, dkgTranscriptHash(CHAIN, { ...base })));
    assert.ok(!equalBytes(h, dkgTranscriptHash(CHAIN, { ...base, qualified: [1, 2, 4] })));
    assert.ok(!equalBytes(h, dkgTranscriptHash(CHAIN, { ...base, groupPublicKey: b(0xab, 48) })));
  });
});

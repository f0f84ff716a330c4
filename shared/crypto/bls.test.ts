import { sha256 } from '@noble/hashes/sha2.js';
import { assert, describe, it } from '#test';
import { bytesToHex, concatBytes, hexToBytes, utf8 } from '../bytes.ts';
import * as bls from './bls.ts';
import vectors from './vectors/bls-eth.json' with { type: 'json' };

const h = (s: string): Uint8Array => hexToBytes(s.startsWith('0x') ? s.slice(2) : s);
const hx = (b: Uint8Array): string => `0x${bytesToHex(b)}`;

/** Deterministic randomness for tests: SHA-256(seed ‖ counter) blocks. */
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

// Three keys shared by the round-trip tests (deriving keys is cheap; signing and pairings are not).
const sks = [1, 2, 3].map((i) => bls.keyGen(new Uint8Array(32).fill(i)));
const pks = sks.map((sk) => bls.getPublicKey(sk));
const msgA = utf8('block 42 finalized');
const msgB = utf8('block 43 finalized');

describe('bls: Ethereum test vectors', () => {
  it(`keygen: ${vectors.keygen.length} EIP-2333 master keys (draft KeyGen)`, () => {
    for (const c of vectors.keygen) {
      const sk = bls.keyGen(h(c.input.ikm), h(c.input.keyInfo));
      assert.equal(BigInt(hx(sk)), BigInt(c.output.skDecimal), c.name);
    }
  });

  for (const c of vectors.sign) {
    it(c.name, () => {
      if (c.output === null) {
        assert.throws(() => bls.sign(h(c.input.privkey), h(c.input.message)), {
          name: 'CryptoError',
          code: 'CRYPTO_BAD_KEY',
        });
      } else {
        assert.equal(hx(bls.sign(h(c.input.privkey), h(c.input.message))), c.output);
      }
    });
  }

  for (const c of vectors.verify) {
    it(c.name, () => {
      assert.equal(bls.verify(h(c.input.pubkey), h(c.input.message), h(c.input.signature)), c.output);
    });
  }

  for (const c of vectors.aggregate) {
    it(c.name, () => {
      const input = c.input.map(h);
      if (c.output === null) {
        assert.throws(() => bls.aggregateSignatures(input), {
          name: 'CryptoError',
          code: 'CRYPTO_BAD_PARAMETER',
        });
      } else {
        assert.equal(hx(bls.aggregateSignatures(input)), c.output);
      }
    });
  }

  for (const c of vectors.fast_aggregate_verify) {
    it(c.name, () => {
      const { pubkeys, message, signature } = c.input;
      assert.equal(bls.fastAggregateVerify(pubkeys.map(h), h(message), h(signature)), c.output);
    });
  }

  for (const c of vectors.aggregate_verify) {
    it(c.name, () => {
      const { pubkeys, messages, signature } = c.input;
      assert.equal(bls.aggregateVerify(pubkeys.map(h), messages.map(h), h(signature)), c.output);
    });
  }

  it(`deserialization_G1: ${vectors.deserialization_G1.length} cases (KeyValidate also rejects the identity)`, () => {
    for (const c of vectors.deserialization_G1) {
      const bytes = h(c.input.pubkey);
      const expectKey = c.output && c.name !== 'deserialization_succeeds_infinity_with_true_b_flag';
      assert.equal(bls.isValidPublicKey(bytes), expectKey, c.name);
      if (!expectKey) assert.throws(() => bls.decodePublicKey(bytes), { name: 'CryptoError' }, c.name);
    }
  });

  it(`deserialization_G2: ${vectors.deserialization_G2.length} cases`, () => {
    for (const c of vectors.deserialization_G2) {
      const bytes = h(c.input.signature);
      let ok = true;
      try {
        bls.decodeSignature(bytes);
      } catch (e) {
        ok = false;
        assert.equal((e as Error).name, 'CryptoError', c.name);
      }
      assert.equal(ok, c.output, c.name);
    }
  });
});

describe('bls: keys', () => {
  it('secret keys are 32 bytes with 0 < sk < r', () => {
    assert.throws(() => bls.getPublicKey(new Uint8Array(32)), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_KEY',
    });
    assert.throws(() => bls.getPublicKey(new Uint8Array(32).fill(0xff)), { code: 'CRYPTO_BAD_KEY' });
    const r = h(bls.CURVE_ORDER.toString(16).padStart(64, '0'));
    assert.throws(() => bls.getPublicKey(r), { code: 'CRYPTO_BAD_KEY' });
    assert.throws(() => bls.getPublicKey(new Uint8Array(31).fill(1)), { code: 'CRYPTO_BAD_LENGTH' });
    assert.equal(bls.secretKeyToScalar(bls.scalarToSecretKey(bls.CURVE_ORDER - 1n)), bls.CURVE_ORDER - 1n);
  });

  it('KeyGen needs at least 32 bytes of IKM and is deterministic', () => {
    assert.throws(() => bls.keyGen(new Uint8Array(31)), { name: 'CryptoError', code: 'CRYPTO_BAD_LENGTH' });
    assert.deepEqual(bls.keyGen(new Uint8Array(32).fill(1)), sks[0]);
    assert.notEqual(hx(bls.keyGen(new Uint8Array(32).fill(1), utf8('info'))), hx(sks[0]!));
    assert.deepEqual(bls.randomSecretKey(seeded('k')), bls.randomSecretKey(seeded('k')));
    assert.equal(bls.randomSecretKey().length, 32);
  });

  it('decodePublicKey: typed errors for bad length, identity and garbage', () => {
    assert.throws(() => bls.decodePublicKey(new Uint8Array(47)), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_LENGTH',
    });
    assert.throws(() => bls.decodePublicKey(h(`0xc0${'00'.repeat(47)}`)), { code: 'CRYPTO_BAD_KEY' });
    assert.throws(() => bls.decodePublicKey(new Uint8Array(48).fill(0xff)), { code: 'CRYPTO_BAD_KEY' });
    const p = bls.decodePublicKey(pks[0]!);
    assert.deepEqual(bls.encodePublicKey(p), pks[0]);
  });

  it('decodeSignature: typed errors for bad length and garbage', () => {
    assert.throws(() => bls.decodeSignature(new Uint8Array(95)), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_LENGTH',
    });
    assert.throws(() => bls.decodeSignature(new Uint8Array(96).fill(0xff)), { code: 'CRYPTO_BAD_SIGNATURE' });
  });
});

describe('bls: sign, verify, aggregate', () => {
  const sigsA = sks.map((sk) => bls.sign(sk, msgA));

  it('sign/verify round trip; wrong message, key or garbage is false, never a throw', () => {
    assert.ok(bls.verify(pks[0]!, msgA, sigsA[0]!));
    assert.ok(!bls.verify(pks[0]!, msgB, sigsA[0]!));
    assert.ok(!bls.verify(pks[1]!, msgA, sigsA[0]!));
    assert.ok(!bls.verify(pks[0]!.subarray(1), msgA, sigsA[0]!));
    assert.ok(!bls.verify(pks[0]!, msgA, sigsA[0]!.subarray(1)));
    assert.ok(!bls.verify(pks[0]!, msgA, new Uint8Array(96)));
    assert.ok(!bls.verify(null as unknown as Uint8Array, msgA, sigsA[0]!));
  });

  it('fastAggregateVerify: many signers, one message (bytes or cached points)', () => {
    const agg = bls.aggregateSignatures(sigsA);
    assert.ok(bls.fastAggregateVerify(pks, msgA, agg));
    assert.ok(bls.fastAggregateVerify(pks.map(bls.decodePublicKey), msgA, agg));
    assert.ok(!bls.fastAggregateVerify(pks.slice(0, 2), msgA, agg));
    assert.ok(!bls.fastAggregateVerify([], msgA, agg));
    // The aggregate public key is the sum of the keys: plain verify accepts it.
    assert.ok(bls.verify(bls.aggregatePublicKeys(pks), msgA, agg));
  });

  it('aggregateVerify: distinct messages; duplicate messages are rejected', () => {
    const sigB = bls.sign(sks[1]!, msgB);
    const agg = bls.aggregateSignatures([sigsA[0]!, sigB]);
    assert.ok(bls.aggregateVerify([pks[0]!, pks[1]!], [msgA, msgB], agg));
    assert.ok(!bls.aggregateVerify([pks[0]!, pks[1]!], [msgB, msgA], agg));
    assert.ok(!bls.aggregateVerify([pks[0]!], [msgA, msgB], agg));
    // Two signers on the same message: a valid fast-aggregate, but AggregateVerify refuses it.
    const same = bls.aggregateSignatures([sigsA[0]!, sigsA[1]!]);
    assert.ok(!bls.aggregateVerify([pks[0]!, pks[1]!], [msgA, msgA], same));
  });

  it('aggregation errors are typed and name the bad position', () => {
    assert.throws(() => bls.aggregateSignatures([]), { name: 'CryptoError', code: 'CRYPTO_BAD_PARAMETER' });
    const e = assert.throws(() => bls.aggregateSignatures([sigsA[0]!, new Uint8Array(96).fill(0xff)]), {
      code: 'CRYPTO_BAD_SIGNATURE',
    });
    assert.equal((e as unknown as { detail: { position: number } }).detail.position, 1);
    assert.throws(() => bls.aggregatePublicKeys([]), { code: 'CRYPTO_BAD_PARAMETER' });
    const e2 = assert.throws(() => bls.aggregatePublicKeys([pks[0]!, h(`0xc0${'00'.repeat(47)}`)]), {
      code: 'CRYPTO_BAD_KEY',
    });
    assert.equal((e2 as unknown as { detail: { position: number } }).detail.position, 1);
  });
});

describe('bls: proof of possession', () => {
  it('popProve/popVerify; a plain signature over the key is not a proof', () => {
    const proof = bls.popProve(sks[0]!);
    assert.ok(bls.popVerify(pks[0]!, proof));
    assert.ok(!bls.popVerify(pks[1]!, proof));
    assert.ok(!bls.popVerify(pks[0]!, bls.sign(sks[0]!, pks[0]!)));
    assert.ok(!bls.popVerify(h(`0xc0${'00'.repeat(47)}`), proof));
    assert.ok(!bls.popVerify(pks[0]!, new Uint8Array(96)));
  });
});

import { ed25519 } from '@noble/curves/ed25519.js';
import { assert, describe, it } from '#test';
import { bigIntToBytesLE, bytesToBigIntLE, bytesToHex, concatBytes, hexToBytes, utf8 } from '../bytes.ts';
import {
  VRF_PROOF_LENGTH,
  type VrfRejectReason,
  vrfProofToHash,
  vrfProve,
  vrfProveTrace,
  vrfPublicKey,
  vrfVerify,
} from './ecvrf.ts';
import rfc from './vectors/ecvrf-rfc9381.json' with { type: 'json' };

const L = ed25519.Point.Fn.ORDER;

function rejectReason(
  publicKey: Uint8Array,
  alpha: Uint8Array,
  proof: Uint8Array,
): VrfRejectReason | 'VALID' {
  const r = vrfVerify(publicKey, alpha, proof);
  return r.valid ? 'VALID' : r.reason;
}

const ex16 = rfc.vectors[0]!;
const sk = hexToBytes(ex16.sk);
const pk = hexToBytes(ex16.pk);
const alpha = hexToBytes(ex16.alpha);
const pi = hexToBytes(ex16.pi);

describe('ECVRF-EDWARDS25519-SHA512-TAI: RFC 9381 Appendix B.3', () => {
  it('has the three examples of the final RFC (16, 17, 18)', () => {
    assert.deepEqual(
      rfc.vectors.map((v) => v.example),
      [16, 17, 18],
    );
    assert.equal(rfc.suite, 'ECVRF-EDWARDS25519-SHA512-TAI');
  });

  for (const v of rfc.vectors) {
    describe(`Example ${v.example}`, () => {
      const skV = hexToBytes(v.sk);
      const alphaV = hexToBytes(v.alpha);
      it('derives PK and the secret scalar x', () => {
        assert.equal(bytesToHex(vrfPublicKey(skV)), v.pk);
        assert.equal(bytesToHex(vrfProveTrace(skV, alphaV).x), v.x);
      });
      it('reproduces every intermediate value (ctr, H, k, U, V)', () => {
        const t = vrfProveTrace(skV, alphaV);
        assert.equal(t.ctr, v.ctr, 'try-and-increment counter');
        assert.equal(bytesToHex(t.H), v.h, 'H');
        assert.equal(bytesToHex(t.kString), v.k_string, 'k string');
        assert.equal(bytesToHex(t.k), v.k, 'k mod L');
        assert.equal(bytesToHex(t.U), v.u, 'U = k*B');
        assert.equal(bytesToHex(t.V), v.v, 'V = k*H');
      });
      it('produces pi and beta', () => {
        assert.equal(bytesToHex(vrfProve(skV, alphaV)), v.pi);
        assert.equal(bytesToHex(vrfProofToHash(hexToBytes(v.pi))), v.beta);
        const t = vrfProveTrace(skV, alphaV);
        assert.equal(bytesToHex(concatBytes(t.gamma, t.c, t.s)), v.pi);
        assert.equal(bytesToHex(t.beta), v.beta);
      });
      it('verifies pi and returns beta', () => {
        const r = vrfVerify(hexToBytes(v.pk), alphaV, hexToBytes(v.pi));
        assert.ok(r.valid, `expected VALID, got ${JSON.stringify(r)}`);
        assert.equal(bytesToHex(r.beta), v.beta);
      });
    });
  }
});

describe('ECVRF prove/verify round trips', () => {
  it('is deterministic and verifies for fresh keys and inputs of several lengths', () => {
    for (let i = 0; i < 4; i++) {
      const key = ed25519.utils.randomSecretKey();
      const pub = vrfPublicKey(key);
      assert.deepEqual(pub, ed25519.getPublicKey(key), 'VRF public key = Ed25519 public key');
      const input = new Uint8Array(i * 37).fill(i);
      const proof = vrfProve(key, input);
      assert.equal(proof.length, VRF_PROOF_LENGTH);
      assert.deepEqual(vrfProve(key, input), proof, 'deterministic');
      const r = vrfVerify(pub, input, proof);
      assert.ok(r.valid);
      assert.deepEqual(r.beta, vrfProofToHash(proof));
      assert.equal(r.beta.length, 64);
    }
  });
  it('gives different outputs for different inputs', () => {
    const a = vrfProofToHash(vrfProve(sk, utf8('round 1')));
    const b = vrfProofToHash(vrfProve(sk, utf8('round 2')));
    assert.notEqual(bytesToHex(a), bytesToHex(b));
  });
});

describe('ECVRF rejects', () => {
  const flip = (bytes: Uint8Array, index: number, mask = 0x01): Uint8Array => {
    const out = bytes.slice();
    out[index]! ^= mask;
    return out;
  };

  it('accepts the untouched proof (control)', () => {
    assert.equal(rejectReason(pk, alpha, pi), 'VALID');
  });
  it('rejects a wrong public key', () => {
    assert.equal(rejectReason(hexToBytes(rfc.vectors[1]!.pk), alpha, pi), 'CHALLENGE_MISMATCH');
  });
  it('rejects a wrong alpha', () => {
    assert.equal(rejectReason(pk, utf8('x'), pi), 'CHALLENGE_MISMATCH');
    assert.equal(
      rejectReason(hexToBytes(rfc.vectors[1]!.pk), new Uint8Array(0), hexToBytes(rfc.vectors[1]!.pi)),
      'CHALLENGE_MISMATCH',
    );
  });
  it('rejects a proof for another key and input', () => {
    assert.equal(rejectReason(pk, alpha, hexToBytes(rfc.vectors[2]!.pi)), 'CHALLENGE_MISMATCH');
  });
  it('rejects a tampered Gamma (valid point, wrong point)', () => {
    const other = concatBytes(ed25519.Point.BASE.toBytes(), pi.subarray(32));
    assert.equal(rejectReason(pk, alpha, other), 'CHALLENGE_MISMATCH');
    // Flipping the sign bit of Gamma negates it: still a point, but the wrong one.
    assert.equal(rejectReason(pk, alpha, flip(pi, 31, 0x80)), 'CHALLENGE_MISMATCH');
  });
  it('rejects a Gamma that does not decode', () => {
    const badY = new Uint8Array(32);
    badY[0] = 2; // y = 2 has no x on edwards25519
    assert.equal(rejectReason(pk, alpha, concatBytes(badY, pi.subarray(32))), 'INVALID_GAMMA');
    const yIsP = hexToBytes('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
    assert.equal(rejectReason(pk, alpha, concatBytes(yIsP, pi.subarray(32))), 'INVALID_GAMMA');
    assert.throws(() => vrfProofToHash(concatBytes(badY, pi.subarray(32))), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_PROOF',
    });
  });
  it('rejects a tampered c (every byte)', () => {
    for (let i = 32; i < 48; i++)
      assert.equal(rejectReason(pk, alpha, flip(pi, i)), 'CHALLENGE_MISMATCH', `c byte ${i}`);
  });
  it('rejects a tampered s', () => {
    for (const i of [48, 60, 78])
      assert.equal(rejectReason(pk, alpha, flip(pi, i)), 'CHALLENGE_MISMATCH', `s byte ${i}`);
  });
  it('rejects a non-canonical s (s + L, and 2^256 - 1)', () => {
    const s = bytesToBigIntLE(pi.subarray(48));
    assert.ok(s < L);
    const sPlusL = concatBytes(pi.subarray(0, 48), bigIntToBytesLE(s + L, 32));
    assert.equal(rejectReason(pk, alpha, sPlusL), 'NON_CANONICAL_S');
    const sMax = concatBytes(pi.subarray(0, 48), new Uint8Array(32).fill(0xff));
    assert.equal(rejectReason(pk, alpha, sMax), 'NON_CANONICAL_S');
    assert.throws(() => vrfProofToHash(sPlusL), { name: 'CryptoError', code: 'CRYPTO_BAD_PROOF' });
  });
  it('rejects small-order public keys (validate_key)', () => {
    const smallOrder = [
      '0100000000000000000000000000000000000000000000000000000000000000', // identity
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2 (0, -1)
      '0000000000000000000000000000000000000000000000000000000000000000', // order 4
      '0000000000000000000000000000000000000000000000000000000000000080', // order 4
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
    ];
    for (const h of smallOrder) {
      const key = hexToBytes(h);
      assert.ok(ed25519.Point.fromBytes(key).isSmallOrder(), `fixture ${h} is small order`);
      assert.equal(rejectReason(key, alpha, pi), 'SMALL_ORDER_PUBLIC_KEY', h);
    }
  });
  it('rejects public keys that do not decode strictly (RFC 8032 §5.1.3)', () => {
    const cases = [
      '0200000000000000000000000000000000000000000000000000000000000000', // y = 2: not on the curve
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p: non-canonical
      '0100000000000000000000000000000000000000000000000000000000000080', // x = 0 with sign bit set
    ];
    for (const h of cases) assert.equal(rejectReason(hexToBytes(h), alpha, pi), 'INVALID_PUBLIC_KEY', h);
  });
  it('rejects wrong lengths without throwing', () => {
    assert.equal(rejectReason(pk.subarray(0, 31), alpha, pi), 'BAD_PUBLIC_KEY_LENGTH');
    assert.equal(rejectReason(pk, alpha, pi.subarray(0, 79)), 'BAD_PROOF_LENGTH');
    assert.equal(rejectReason(pk, alpha, concatBytes(pi, new Uint8Array(1))), 'BAD_PROOF_LENGTH');
  });
  it('throws CryptoError for bad arguments to prove and proofToHash', () => {
    assert.throws(() => vrfProve(new Uint8Array(31), alpha), { name: 'CryptoError', code: 'CRYPTO_BAD_KEY' });
    assert.throws(() => vrfPublicKey(new Uint8Array(64)), { name: 'CryptoError', code: 'CRYPTO_BAD_KEY' });
    assert.throws(() => vrfProofToHash(pi.subarray(0, 79)), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_PROOF',
    });
    assert.throws(() => vrfVerify('pk' as unknown as Uint8Array, alpha, pi), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_KEY',
    });
  });
});

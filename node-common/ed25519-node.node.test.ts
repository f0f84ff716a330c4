import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { assert, describe, it } from '#test';
import { buildEdgeVectors } from '../scripts/gen-ed25519-vectors.ts';
import { bytesToHex, concatBytes, hexToBytes } from '../shared/bytes.ts';
import {
  type Ed25519,
  nobleEd25519,
  SPKI_ED25519_PREFIX,
  selectEd25519,
  webCryptoEd25519,
} from '../shared/crypto/ed25519.ts';
import edge from '../shared/crypto/vectors/ed25519-edge.json' with { type: 'json' };
import rfc from '../shared/crypto/vectors/ed25519-rfc8032.json' with { type: 'json' };
import { defaultNodeEd25519, nodeCryptoEd25519 } from './ed25519-node.ts';

async function implementations(): Promise<Ed25519[]> {
  return [nodeCryptoEd25519, nobleEd25519, await webCryptoEd25519()];
}

const verdict = (ok: boolean) => (ok ? 'accept' : 'reject');

describe('ed25519 node:crypto: vectors', () => {
  it('RFC 8032 §7.1: derives the key, signs byte-exactly and verifies', async () => {
    for (const v of rfc.vectors) {
      const sk = hexToBytes(v.secretKey);
      const m = hexToBytes(v.message);
      assert.equal(bytesToHex(await nodeCryptoEd25519.getPublicKey(sk)), v.publicKey, v.name);
      assert.equal(bytesToHex(await nodeCryptoEd25519.sign(sk, m)), v.signature, v.name);
      assert.equal(await nodeCryptoEd25519.verify(hexToBytes(v.publicKey), m, hexToBytes(v.signature)), true);
      assert.equal(
        await nodeCryptoEd25519.verify(
          hexToBytes(v.publicKey),
          concatBytes(m, Uint8Array.of(1)),
          hexToBytes(v.signature),
        ),
        false,
      );
    }
  });

  it('edge vectors: node:crypto gives the expected verdict and agrees with noble and WebCrypto', async () => {
    const impls = await implementations();
    const wrong: string[] = [];
    for (const v of edge.vectors) {
      const pk = hexToBytes(v.publicKey);
      const m = hexToBytes(v.message);
      const sig = hexToBytes(v.signature);
      const verdicts: string[] = [];
      for (const impl of impls) verdicts.push(verdict(await impl.verify(pk, m, sig)));
      if (verdicts.some((x) => x !== v.expected)) {
        wrong.push(
          `${v.id}: ${impls.map((x, i) => `${x.name}=${verdicts[i]}`).join(' ')}, want ${v.expected}`,
        );
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('the committed edge-vector file is exactly what scripts/gen-ed25519-vectors.ts generates', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(buildEdgeVectors())), edge);
  });

  it('raw node:crypto (no pre-check) accepts vectors the pinned rule rejects', async () => {
    // Documents why the pre-check is needed: OpenSSL accepts small-order keys, R = identity, and
    // even a 33-byte "key" (SPKI with a trailing byte).
    const raw = (pk: Uint8Array, m: Uint8Array, sig: Uint8Array) => {
      try {
        const key = createPublicKey({
          key: Buffer.from(concatBytes(SPKI_ED25519_PREFIX, pk)),
          format: 'der',
          type: 'spki',
        });
        return nodeVerify(null, m, key, sig);
      } catch {
        return false;
      }
    };
    const laxer: string[] = [];
    for (const v of edge.vectors) {
      const ok = raw(hexToBytes(v.publicKey), hexToBytes(v.message), hexToBytes(v.signature));
      if (v.expected === 'accept') assert.equal(ok, true, v.id);
      else if (ok) laxer.push(v.id);
    }
    assert.ok(laxer.includes('a-small-order-0'), 'identity public key');
    assert.ok(laxer.includes('r-small-order-0'), 'R = identity');
  });
});

describe('ed25519 node:crypto: behaviour', () => {
  it('random round trips agree byte for byte with noble and WebCrypto', async () => {
    const impls = await implementations();
    for (let i = 0; i < 12; i++) {
      const sk = crypto.getRandomValues(new Uint8Array(32));
      const m = crypto.getRandomValues(new Uint8Array((i * 53) % 400));
      const pk = await nodeCryptoEd25519.getPublicKey(sk);
      const sig = await nodeCryptoEd25519.sign(sk, m);
      for (const impl of impls) {
        assert.deepEqual(await impl.getPublicKey(sk), pk, impl.name);
        assert.deepEqual(await impl.sign(sk, m), sig, impl.name);
        assert.equal(await impl.verify(pk, m, sig), true, impl.name);
        const bad = sig.slice();
        bad[i]! ^= 0x04;
        assert.equal(await impl.verify(pk, m, bad), false, impl.name);
      }
    }
  });

  it('wrong-length seeds throw CRYPTO_BAD_LENGTH; bad inputs to verify give false', async () => {
    for (const n of [0, 31, 33]) {
      await assert.rejects(() => nodeCryptoEd25519.getPublicKey(new Uint8Array(n)), {
        name: 'CryptoError',
        code: 'CRYPTO_BAD_LENGTH',
      });
      await assert.rejects(() => nodeCryptoEd25519.sign(new Uint8Array(n), new Uint8Array(1)), {
        code: 'CRYPTO_BAD_LENGTH',
      });
    }
    const v = rfc.vectors[1]!;
    const pk = hexToBytes(v.publicKey);
    const sig = hexToBytes(v.signature);
    assert.equal(await nodeCryptoEd25519.verify(pk, 'r' as unknown as Uint8Array, sig), false);
    assert.equal(
      await nodeCryptoEd25519.verify(concatBytes(pk, Uint8Array.of(0)), hexToBytes(v.message), sig),
      false,
    );
  });

  it('cached key objects do not leak between keys', async () => {
    const seeds = [1, 2, 3].map((i) => new Uint8Array(32).fill(i));
    const m = Uint8Array.of(1, 2, 3);
    const pks = await Promise.all(seeds.map((s) => nodeCryptoEd25519.getPublicKey(s)));
    const sigs = await Promise.all(seeds.map((s) => nodeCryptoEd25519.sign(s, m)));
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        assert.equal(await nodeCryptoEd25519.verify(pks[i]!, m, sigs[j]!), i === j, `key ${i} sig ${j}`);
      }
    }
  });

  it('defaultNodeEd25519 picks node:crypto; selection accepts it', async () => {
    assert.equal((await defaultNodeEd25519()).name, 'node:crypto');
    assert.equal(await selectEd25519([nodeCryptoEd25519, nobleEd25519]), nodeCryptoEd25519);
  });
});

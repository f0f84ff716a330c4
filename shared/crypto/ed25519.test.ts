import { ed25519 } from '@noble/curves/ed25519.js';
import { assert, describe, it } from '#test';
import { bytesToHex, concatBytes, hexToBytes } from '../bytes.ts';
import {
  assertValidSignature,
  BoundedMap,
  checkStrictEncoding,
  defaultEd25519,
  type Ed25519,
  nobleEd25519,
  SMALL_ORDER_ENCODINGS,
  STRICT_CHECK_FAILURES,
  selectEd25519,
  selfTestEd25519,
  signatureFailure,
  webCryptoEd25519,
} from './ed25519.ts';
import edge from './vectors/ed25519-edge.json' with { type: 'json' };
import rfc from './vectors/ed25519-rfc8032.json' with { type: 'json' };

/** Every implementation available in this runtime (Node 22+ and Chromium 156 both have WebCrypto Ed25519). */
async function implementations(): Promise<Ed25519[]> {
  return [nobleEd25519, await webCryptoEd25519()];
}

const verdict = (ok: boolean) => (ok ? 'accept' : 'reject');

/** Deterministic bytes for tests that must not depend on a random draw. */
function fixedBytes(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++)
    out[i] = (i * 151 + label.length * 17 + label.charCodeAt(i % label.length)) & 0xff;
  return out;
}

/** A WebCrypto wrapper WITHOUT the strict pre-check: what the raw native verify says. */
async function rawWebCrypto(): Promise<Ed25519> {
  const subtle = globalThis.crypto.subtle;
  const inner = await webCryptoEd25519();
  return {
    name: 'raw-webcrypto',
    getPublicKey: (sk) => inner.getPublicKey(sk),
    sign: (sk, m) => inner.sign(sk, m),
    async verify(pk, m, sig) {
      try {
        const key = await subtle.importKey('raw', new Uint8Array(pk), { name: 'Ed25519' }, false, ['verify']);
        return await subtle.verify({ name: 'Ed25519' }, key, new Uint8Array(sig), new Uint8Array(m));
      } catch {
        return false;
      }
    },
  };
}

describe('ed25519: WebCrypto availability', () => {
  it('WebCrypto supports Ed25519 in this runtime and is the default', async () => {
    const wc = await webCryptoEd25519();
    assert.equal(wc.name, 'webcrypto');
    assert.equal(webCryptoEd25519(), webCryptoEd25519(), 'detection is memoised');
    assert.equal((await defaultEd25519()).name, 'webcrypto');
  });

  it('a SubtleCrypto without Ed25519 rejects with CRYPTO_UNAVAILABLE', async () => {
    const notSupported = async () => {
      throw new DOMException('Algorithm: Unrecognized name', 'NotSupportedError');
    };
    const fake = { importKey: notSupported, verify: notSupported } as unknown as SubtleCrypto;
    await assert.rejects(() => webCryptoEd25519(fake), { name: 'CryptoError', code: 'CRYPTO_UNAVAILABLE' });
  });
});

describe('ed25519: RFC 8032 §7.1 vectors', () => {
  it('has the five RFC vectors', () => {
    assert.deepEqual(
      rfc.vectors.map((v) => v.name),
      ['TEST 1', 'TEST 2', 'TEST 3', 'TEST 1024', 'TEST SHA(abc)'],
    );
    assert.equal(hexToBytes(rfc.vectors[3]!.message).length, 1023);
  });

  it('every implementation derives the key, signs byte-exactly and verifies', async () => {
    for (const impl of await implementations()) {
      for (const v of rfc.vectors) {
        const sk = hexToBytes(v.secretKey);
        const pk = hexToBytes(v.publicKey);
        const m = hexToBytes(v.message);
        const sig = hexToBytes(v.signature);
        const what = `${impl.name} ${v.name}`;
        assert.equal(bytesToHex(await impl.getPublicKey(sk)), v.publicKey, `${what} public key`);
        assert.equal(bytesToHex(await impl.sign(sk, m)), v.signature, `${what} signature`);
        assert.equal(await impl.verify(pk, m, sig), true, `${what} verify`);
        assert.equal(
          await impl.verify(pk, concatBytes(m, Uint8Array.of(0)), sig),
          false,
          `${what} other message`,
        );
        assert.equal(signatureFailure(pk, m, sig), null, `${what} signatureFailure`);
      }
    }
  });
});

describe('ed25519: edge vectors (pinned rule)', () => {
  it('covers the cases the rule is about', () => {
    const failures = new Set(edge.vectors.map((v) => v.failure ?? 'accept'));
    for (const f of [...STRICT_CHECK_FAILURES, 'R_NOT_ON_CURVE', 'EQUATION', 'accept']) {
      assert.ok(failures.has(f), `a vector for ${f}`);
    }
    assert.ok(edge.vectors.length >= 60);
  });

  it('signatureFailure and checkStrictEncoding give each vector its failure', () => {
    const strict = new Set<string>(STRICT_CHECK_FAILURES);
    const wrong: string[] = [];
    for (const v of edge.vectors) {
      const pk = hexToBytes(v.publicKey);
      const m = hexToBytes(v.message);
      const sig = hexToBytes(v.signature);
      const failure = v.failure ?? null;
      assert.equal(
        v.expected,
        failure === null ? 'accept' : 'reject',
        `${v.id}: expected/failure consistent`,
      );
      const got = signatureFailure(pk, m, sig);
      if (got !== failure) wrong.push(`${v.id}: signatureFailure ${got}, want ${failure}`);
      const pre = checkStrictEncoding(pk, sig);
      const wantPre = failure !== null && strict.has(failure) ? failure : null;
      if (pre !== wantPre) wrong.push(`${v.id}: checkStrictEncoding ${pre}, want ${wantPre}`);
    }
    assert.deepEqual(wrong, []);
  });

  it('every implementation gives every vector its expected verdict', async () => {
    const wrong: string[] = [];
    for (const impl of await implementations()) {
      for (const v of edge.vectors) {
        const ok = await impl.verify(hexToBytes(v.publicKey), hexToBytes(v.message), hexToBytes(v.signature));
        if (verdict(ok) !== v.expected)
          wrong.push(`${impl.name} ${v.id}: ${verdict(ok)}, want ${v.expected}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('repeated verification (hot keys with precomputed tables) keeps every verdict', async () => {
    // Keys verified 16 times switch to a precomputed multiplication table in the
    // noble path; the mixed-order keys of the vectors must keep their exact cofactorless verdicts.
    const wrong: string[] = [];
    for (let round = 0; round < 20; round++) {
      for (const v of edge.vectors) {
        if (v.failure !== undefined && v.failure !== 'EQUATION') continue; // only these reach the equation
        const args = [hexToBytes(v.publicKey), hexToBytes(v.message), hexToBytes(v.signature)] as const;
        if (verdict(await nobleEd25519.verify(...args)) !== v.expected) wrong.push(`round ${round} ${v.id}`);
        const failure = signatureFailure(...args);
        if (failure !== (v.failure ?? null)) wrong.push(`round ${round} ${v.id}: ${failure}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('the informational zip215 verdicts are what noble (ZIP-215, cofactored) says', () => {
    const wrong: string[] = [];
    for (const v of edge.vectors) {
      let ok = false;
      try {
        ok = ed25519.verify(hexToBytes(v.signature), hexToBytes(v.message), hexToBytes(v.publicKey));
      } catch {
        ok = false;
      }
      if (verdict(ok) !== v.zip215) wrong.push(v.id);
    }
    assert.deepEqual(wrong, []);
  });

  it('raw WebCrypto (no pre-check) is more lenient than the rule, which is why the pre-check exists', async () => {
    // BoringSSL and OpenSSL accept small-order public keys and R = identity; the exact set is
    // platform dependent, so only the direction is asserted: raw never rejects what the rule accepts.
    const raw = await rawWebCrypto();
    let laxer = 0;
    for (const v of edge.vectors) {
      const ok = await raw.verify(hexToBytes(v.publicKey), hexToBytes(v.message), hexToBytes(v.signature));
      if (v.expected === 'accept') assert.equal(ok, true, `raw webcrypto ${v.id}`);
      else if (ok) laxer++;
    }
    assert.ok(laxer > 0, 'raw WebCrypto accepts some vectors the pinned rule rejects');
    assert.equal(
      await selfTestEd25519(raw),
      false,
      'the self-test rejects an implementation without the pre-check',
    );
  });
});

describe('ed25519: small-order encodings', () => {
  it('are exactly the 8 torsion points', () => {
    const seen = new Set<string>();
    for (const hex of SMALL_ORDER_ENCODINGS) {
      const P = ed25519.Point.fromBytes(hexToBytes(hex), false);
      assert.ok(P.isSmallOrder(), hex);
      assert.equal(P.toHex(), hex, 'canonical');
      seen.add(hex);
    }
    assert.equal(seen.size, 8);
    const T = ed25519.Point.fromBytes(hexToBytes(SMALL_ORDER_ENCODINGS[1]!));
    SMALL_ORDER_ENCODINGS.forEach((hex, i) => {
      const Q = i === 0 ? ed25519.Point.ZERO : T.multiplyUnsafe(BigInt(i));
      assert.equal(Q.toHex(), hex, `[${i}]T`);
    });
  });
});

describe('ed25519: round trips and tampering', () => {
  it('sign → verify with random keys and messages; all implementations agree byte for byte', async () => {
    const impls = await implementations();
    for (let i = 0; i < 12; i++) {
      const sk = crypto.getRandomValues(new Uint8Array(32));
      const m = crypto.getRandomValues(new Uint8Array((i * 37) % 300));
      const pk = await nobleEd25519.getPublicKey(sk);
      const sig = await nobleEd25519.sign(sk, m);
      for (const impl of impls) {
        assert.deepEqual(await impl.getPublicKey(sk), pk, `${impl.name} public key`);
        assert.deepEqual(await impl.sign(sk, m), sig, `${impl.name} signature`);
        assert.equal(await impl.verify(pk, m, sig), true, `${impl.name} verify`);
      }
      assert.equal(checkStrictEncoding(pk, sig), null);
      assert.equal(signatureFailure(pk, m, sig), null);
    }
  });

  it('changing any byte of the signature, message or key makes verify false', async () => {
    const impls = await implementations();
    const sk = fixedBytes('tamper', 32);
    const m = fixedBytes('message', 16);
    const pk = await nobleEd25519.getPublicKey(sk);
    const sig = await nobleEd25519.sign(sk, m);
    const cases: [string, Uint8Array, Uint8Array, Uint8Array][] = [];
    for (let i = 0; i < 64; i++) {
      const s = sig.slice();
      s[i]! ^= 1 << (i % 8);
      cases.push([`signature[${i}]`, pk, m, s]);
    }
    for (let i = 0; i < 32; i++) {
      const k = pk.slice();
      k[i]! ^= 1 << (i % 8);
      cases.push([`key[${i}]`, k, m, sig]);
    }
    for (let i = 0; i < 16; i++) {
      const mm = m.slice();
      mm[i]! ^= 0x80;
      cases.push([`message[${i}]`, pk, mm, sig]);
    }
    cases.push(['message + 1 byte', pk, concatBytes(m, Uint8Array.of(0)), sig]);
    cases.push(['message - 1 byte', pk, m.subarray(0, 15), sig]);
    for (const impl of impls) {
      assert.equal(await impl.verify(pk, m, sig), true, `${impl.name} untampered`);
      for (const [what, k, mm, s] of cases) {
        assert.equal(await impl.verify(k, mm, s), false, `${impl.name} ${what}`);
      }
    }
  });

  it('verify returns false (never throws) for non-bytes and wrong lengths', async () => {
    const sk = fixedBytes('lengths', 32);
    const m = fixedBytes('m', 8);
    const pk = await nobleEd25519.getPublicKey(sk);
    const sig = await nobleEd25519.sign(sk, m);
    const bad = [undefined, null, 'x', [1, 2, 3], new Uint16Array(16)] as unknown as Uint8Array[];
    for (const impl of await implementations()) {
      for (const b of bad) {
        assert.equal(await impl.verify(b, m, sig), false, `${impl.name} key ${String(b)}`);
        assert.equal(await impl.verify(pk, b, sig), false, `${impl.name} message ${String(b)}`);
        assert.equal(await impl.verify(pk, m, b), false, `${impl.name} signature ${String(b)}`);
      }
      assert.equal(await impl.verify(pk.subarray(1), m, sig), false);
      assert.equal(await impl.verify(pk, m, sig.subarray(1)), false);
    }
  });

  it('sign and getPublicKey throw CRYPTO_BAD_LENGTH for a wrong-length seed', async () => {
    for (const impl of await implementations()) {
      for (const n of [0, 31, 33, 64]) {
        const seed = new Uint8Array(n).fill(7);
        await assert.rejects(() => impl.getPublicKey(seed), {
          name: 'CryptoError',
          code: 'CRYPTO_BAD_LENGTH',
        });
        await assert.rejects(() => impl.sign(seed, new Uint8Array(1)), {
          name: 'CryptoError',
          code: 'CRYPTO_BAD_LENGTH',
        });
      }
      await assert.rejects(() => impl.sign(new Uint8Array(32), 'text' as unknown as Uint8Array), {
        code: 'CRYPTO_BAD_LENGTH',
      });
    }
  });
});

describe('ed25519: selection and helpers', () => {
  it('selectEd25519 picks the first working candidate', async () => {
    const wc = await webCryptoEd25519();
    assert.equal(await selectEd25519([wc, nobleEd25519]), wc);
    const broken: Ed25519 = { ...nobleEd25519, name: 'broken', sign: async () => new Uint8Array(64) };
    const missing = Promise.reject(new Error('no such implementation'));
    assert.equal(await selectEd25519([missing, broken, nobleEd25519]), nobleEd25519);
    await assert.rejects(() => selectEd25519([broken]), { name: 'CryptoError', code: 'CRYPTO_UNAVAILABLE' });
    await assert.rejects(() => selectEd25519([]), { code: 'CRYPTO_UNAVAILABLE' });
  });

  it('assertValidSignature throws CRYPTO_BAD_SIGNATURE with the failed step', async () => {
    const v = rfc.vectors[0]!;
    const pk = hexToBytes(v.publicKey);
    const sig = hexToBytes(v.signature);
    await assertValidSignature(nobleEd25519, pk, new Uint8Array(0), sig);
    const e = await assert.rejects(() => assertValidSignature(nobleEd25519, pk, Uint8Array.of(1), sig), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_SIGNATURE',
    });
    assert.equal((e as Error & { detail: { reason: string } }).detail.reason, 'EQUATION');
    const small = edge.vectors.find((x) => x.id === 'a-small-order-0')!;
    const e2 = await assert.rejects(
      () =>
        assertValidSignature(
          nobleEd25519,
          hexToBytes(small.publicKey),
          hexToBytes(small.message),
          hexToBytes(small.signature),
        ),
      { code: 'CRYPTO_BAD_SIGNATURE' },
    );
    assert.equal((e2 as Error & { detail: { reason: string } }).detail.reason, 'A_SMALL_ORDER');
  });

  it('BoundedMap evicts the least recently used entry', () => {
    const m = new BoundedMap<string, number>(3);
    m.set('a', 1);
    m.set('b', 2);
    m.set('c', 3);
    assert.equal(m.get('a'), 1); // a is now the most recent
    m.set('d', 4); // evicts b
    assert.equal(m.size, 3);
    assert.equal(m.has('b'), false);
    assert.deepEqual([m.get('a'), m.get('c'), m.get('d')], [1, 3, 4]);
    m.set('c', 30); // update in place, no eviction
    assert.equal(m.size, 3);
    assert.equal(m.get('c'), 30);
    assert.throws(() => new BoundedMap(0), { code: 'CRYPTO_BAD_PARAMETER' });
  });

  it('verification results do not depend on the key cache', async () => {
    // Many distinct keys (more than fit in a small cache) then an old one again.
    const keys: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) keys.push(await nobleEd25519.getPublicKey(fixedBytes(`k${i}`, 32)));
    const m = fixedBytes('cache', 4);
    const sig0 = await nobleEd25519.sign(fixedBytes('k0', 32), m);
    for (const impl of await implementations()) {
      for (const k of keys) assert.equal(await impl.verify(k, m, sig0), k === keys[0], impl.name);
      assert.equal(await impl.verify(keys[0]!, m, sig0), true, impl.name);
    }
  });
});

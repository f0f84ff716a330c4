import { assert, describe, it } from '#test';
import { bytesToHex, utf8 } from '../bytes.ts';
import { domainPrefix, signingMessage, taggedHash } from './domain.ts';
import { Bytes32 } from './primitives.ts';

describe('domain-tagged hashing', () => {
  it('prefixes tag and chain id with their lengths', () => {
    const p = domainPrefix('pouw/tx/v1', 'devnet');
    assert.equal(p[0], 'pouw/tx/v1'.length);
    assert.equal(p[1 + 10], 'devnet'.length);
    assert.equal(p.length, 2 + 10 + 6);
  });

  it('is pinned: a known vector', () => {
    // SHA-256(0x0a 'pouw/tx/v1' 0x06 'devnet' 'abc'): fixed so that every node computes the same bytes.
    const h = taggedHash('pouw/tx/v1', 'devnet', utf8('abc'));
    // Computed independently (Python hashlib) when the encoding was fixed.
    assert.equal(bytesToHex(h), 'a251009f846dc9f5e617cc0572c45773ce7115d1ef74f717fc7041eeb6ae2744');
  });

  it('separates domains and chains', () => {
    const m = utf8('same payload');
    const a = bytesToHex(taggedHash('pouw/tx/v1', 'devnet', m));
    assert.notEqual(a, bytesToHex(taggedHash('pouw/itres/v1', 'devnet', m)));
    assert.notEqual(a, bytesToHex(taggedHash('pouw/tx/v1', 'mainnet', m)));
    // Moving bytes between chain id and payload changes the hash (length prefixes).
    assert.notEqual(
      bytesToHex(taggedHash('pouw/tx/v1', 'devnet', utf8('x'))),
      bytesToHex(taggedHash('pouw/tx/v1', 'devnetx', new Uint8Array())),
    );
  });

  it('hashes the canonical SSZ encoding of a value', () => {
    const v = new Uint8Array(32).fill(7);
    assert.deepEqual(
      signingMessage('pouw/test/v1', 'devnet', Bytes32, v),
      taggedHash('pouw/test/v1', 'devnet', v),
    );
  });

  it('rejects bad chain ids and unknown tags with a typed error', () => {
    for (const bad of ['', 'UPPER', 'has space', 'a'.repeat(33), '-lead']) {
      assert.throws(() => taggedHash('pouw/tx/v1', bad, new Uint8Array()), {
        name: 'CryptoError',
        code: 'CRYPTO_BAD_PARAMETER',
      });
    }
    assert.throws(() => taggedHash('pouw/nope/v1' as 'pouw/tx/v1', 'devnet', new Uint8Array()), {
      code: 'CRYPTO_BAD_PARAMETER',
    });
  });
});

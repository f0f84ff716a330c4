import { assert, describe, it } from '#test';
import { bigIntToBytesBE, bigIntToBytesLE, bytesToBigIntBE, bytesToBigIntLE, equalBytes } from './bytes.ts';

describe('bytes', () => {
  it('converts integers both ways in both byte orders', () => {
    const x = 0x0102030405n;
    assert.deepEqual(bigIntToBytesBE(x, 5), new Uint8Array([1, 2, 3, 4, 5]));
    assert.deepEqual(bigIntToBytesLE(x, 5), new Uint8Array([5, 4, 3, 2, 1]));
    assert.equal(bytesToBigIntBE(bigIntToBytesBE(x, 8)), x);
    assert.equal(bytesToBigIntLE(bigIntToBytesLE(x, 8)), x);
  });
  it('rejects integers that do not fit', () => {
    assert.throws(() => bigIntToBytesLE(256n, 1), { name: 'CryptoError', code: 'CRYPTO_BAD_PARAMETER' });
  });
  it('compares bytes', () => {
    assert.ok(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
    assert.ok(!equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
    assert.ok(!equalBytes(new Uint8Array([1]), new Uint8Array([1, 3])));
  });
});

import { bech32, bech32m } from '@scure/base';
import { assert, describe, it } from '#test';
import { bytesToHex, hexToBytes } from '../bytes.ts';
import {
  ADDRESS_PREFIX,
  addressFromPublicKey,
  decodeAddress,
  decodeBech32m,
  encodeAddress,
  isAddress,
} from './address.ts';

// BIP-350 test vectors, from github.com/bitcoin/bips bip-0350.mediawiki, section "Test vectors".
const BIP350_VALID = [
  'A1LQFN3A',
  'a1lqfn3a',
  'an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6',
  'abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx',
  '11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8',
  'split1checkupstagehandshakeupstreamerranterredcaperredlc445v',
  '?1v759aa',
];

// [string, BIP-350's stated reason, the message our decoder must give]
const BIP350_INVALID: [string, string, RegExp][] = [
  ['\x201xj0phk', 'HRP character out of range', /character out of range \(code 32\)/],
  ['\x7f1g6xzxy', 'HRP character out of range', /character out of range \(code 127\)/],
  ['\x801vctc34', 'HRP character out of range', /character out of range \(code 128\)/],
  [
    'an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4',
    'overall max length exceeded',
    /too long: 91 characters/,
  ],
  ['qyrz8wqd2c9m', 'No separator character', /no separator/],
  ['1qyrz8wqd2c9m', 'Empty HRP', /empty human-readable prefix/],
  ['y1b0jsk6g', 'Invalid data character', /invalid data character "b"/],
  ['lt1igcx5c0', 'Invalid data character', /invalid data character "i"/],
  ['in1muywd', 'Too short checksum', /checksum too short/],
  ['mm1crxm3i', 'Invalid character in checksum', /invalid checksum character "i"/],
  ['au1s5cgom', 'Invalid character in checksum', /invalid checksum character "o"/],
  ['M1VUXWEZ', 'checksum calculated with uppercase form of HRP', /invalid checksum/],
  ['16plkw9', 'empty HRP', /empty human-readable prefix/],
  ['1p2gdwpf', 'empty HRP', /empty human-readable prefix/],
];

// BIP-350 segwit address vectors, used only where they exercise the generic bech32m layer.
const SEGWIT_BECH32M = [
  'bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y',
  'BC1SW50QGDZ25J',
  'bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs',
  'tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c',
  'bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0',
  // "Invalid checksum (Bech32m instead of Bech32)" for v0 programs: valid bech32m strings.
  'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh',
  'tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47',
];
const SEGWIT_BECH32_ONLY = [
  'BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4',
  'tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7',
  'tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy',
  // "Invalid checksum (Bech32 instead of Bech32m)"
  'bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd',
  'tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf',
  'BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL',
];

/** Independent BIP-350 checksum check, straight from the BIP's reference pseudocode. */
function bip350ChecksumOk(s: string): boolean {
  const lower = s.toLowerCase();
  const sep = lower.lastIndexOf('1');
  const hrp = lower.slice(0, sep);
  const data = [...lower.slice(sep + 1)].map((c) => 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'.indexOf(c));
  const values = [
    ...[...hrp].map((c) => c.charCodeAt(0) >> 5),
    0,
    ...[...hrp].map((c) => c.charCodeAt(0) & 31),
    ...data,
  ];
  const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk = (chk ^ GEN[i]!) >>> 0;
  }
  return chk === 0x2bc830a3;
}

const BAD = { name: 'CryptoError', code: 'CRYPTO_BAD_ADDRESS' } as const;

describe('bech32m (BIP-350 vectors) through the generic decoder', () => {
  for (const s of BIP350_VALID) {
    it(`accepts ${JSON.stringify(s)}`, () => {
      const { prefix, words } = decodeBech32m(s);
      assert.equal(prefix, s.slice(0, s.lastIndexOf('1')).toLowerCase());
      assert.ok(bip350ChecksumOk(s));
      // Re-encoding gives the lowercase form back.
      assert.equal(bech32m.encode(prefix, words), s.toLowerCase());
    });
  }
  for (const [s, reason, message] of BIP350_INVALID) {
    it(`rejects ${JSON.stringify(s)} (${reason})`, () => {
      assert.throws(() => decodeBech32m(s), { ...BAD, message });
    });
  }
  it('accepts bech32m segwit strings and rejects bech32 ones as such', () => {
    for (const s of SEGWIT_BECH32M) assert.ok(decodeBech32m(s).words.length > 0, s);
    for (const s of SEGWIT_BECH32_ONLY) {
      assert.throws(() => decodeBech32m(s), { ...BAD, message: /bech32 \(BIP-173\) checksum/ }, s);
    }
  });
  it('rejects the BIP-350 mixed-case and bad-checksum-character segwit strings', () => {
    assert.throws(() => decodeBech32m('tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq'), {
      ...BAD,
      message: /mixed-case/,
    });
    assert.throws(() => decodeBech32m('bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4'), {
      ...BAD,
      message: /invalid checksum character "o"/,
    });
  });
});

describe('pouw addresses', () => {
  // Pinned: RFC 8032 test 1 public key. Its SHA-256 starts 21fe31df…; the string's checksum is
  // verified independently below.
  const pk = hexToBytes('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  const golden = 'pouw1y8lrrhap2j3xzcntlp2qgm7jyudhhm2tarhhnt';

  it('derives the address from SHA-256(public key)[0..20]', () => {
    assert.equal(addressFromPublicKey(pk), golden);
    assert.equal(golden.length, 43);
    assert.ok(bip350ChecksumOk(golden));
    assert.equal(bytesToHex(decodeAddress(golden)), '21fe31dfa154a261626bf854046fd2271b7bed4b');
  });
  it('round-trips arbitrary payloads', () => {
    for (const fill of [0x00, 0x01, 0x7f, 0xff]) {
      const bytes = new Uint8Array(20).fill(fill);
      bytes[0] = 0xa5;
      const a = encodeAddress(bytes);
      assert.ok(a.startsWith(`${ADDRESS_PREFIX}1`));
      assert.deepEqual(decodeAddress(a), bytes);
      assert.ok(isAddress(a));
    }
  });
  it('accepts the all-uppercase form of an address', () => {
    assert.deepEqual(decodeAddress(golden.toUpperCase()), decodeAddress(golden));
  });
  it('rejects mixed case', () => {
    const mixed = `${golden.slice(0, 10)}${golden.slice(10).toUpperCase()}`;
    assert.throws(() => decodeAddress(mixed), { ...BAD, message: /mixed-case/ });
    assert.ok(!isAddress(mixed));
  });
  it('rejects a wrong prefix', () => {
    const other = bech32m.encode('pouwx', bech32m.toWords(new Uint8Array(20)));
    assert.throws(() => decodeAddress(other), { ...BAD, message: /wrong prefix "pouwx", expected "pouw"/ });
    assert.throws(() => decodeAddress('bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0'), {
      ...BAD,
      message: /wrong prefix "bc"/,
    });
  });
  it('rejects a bech32 (non-m) checksum over a valid payload', () => {
    const legacy = bech32.encode('pouw', bech32.toWords(decodeAddress(golden)));
    assert.throws(() => decodeAddress(legacy), { ...BAD, message: /bech32 \(BIP-173\) checksum/ });
  });
  it('rejects any single-character substitution (bad checksum)', () => {
    for (let i = 5; i < golden.length; i++) {
      const c = golden[i] === 'q' ? 'p' : 'q';
      const typo = golden.slice(0, i) + c + golden.slice(i + 1);
      assert.throws(() => decodeAddress(typo), { ...BAD, message: /invalid checksum/ }, typo);
    }
  });
  it('rejects wrong payload lengths and bad padding', () => {
    const w = bech32m.toWords(new Uint8Array(20).fill(7));
    assert.throws(() => decodeAddress(bech32m.encode('pouw', bech32m.toWords(new Uint8Array(19)))), {
      ...BAD,
      message: /wrong payload length: 19 bytes/,
    });
    assert.throws(() => decodeAddress(bech32m.encode('pouw', bech32m.toWords(new Uint8Array(32)))), {
      ...BAD,
      message: /wrong payload length: 32 bytes/,
    });
    assert.throws(() => decodeAddress(bech32m.encode('pouw', [])), {
      ...BAD,
      message: /wrong payload length: 0/,
    });
    // 33 words = 165 bits: five zero padding bits (more than 4) is not canonical.
    assert.throws(() => decodeAddress(bech32m.encode('pouw', [...w, 0])), { ...BAD, message: /padding/ });
    // 31 words = 155 bits: 19 bytes plus 3 padding bits, which must be zero.
    assert.throws(() => decodeAddress(bech32m.encode('pouw', [...w.slice(0, 30), 1])), {
      ...BAD,
      message: /padding/,
    });
  });
  it('rejects non-strings and wrong key or payload lengths', () => {
    assert.ok(!isAddress(42));
    assert.ok(!isAddress(''));
    assert.throws(() => decodeAddress(undefined as unknown as string), BAD);
    assert.throws(() => encodeAddress(new Uint8Array(21)), BAD);
    assert.throws(() => addressFromPublicKey(new Uint8Array(33)), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_KEY',
    });
  });
});

/**
 * BLS12-381 (Ethereum PoP ciphersuite), threshold combine and the Joint-Feldman DKG, on noble.
 * Portable: runs under Node and inside the browser bench page. Setup does the expensive key
 * material once (100 keys for the aggregate case; the 100 signatures on one message are produced
 * as one signature with the summed secret, which is the same bytes as aggregating them).
 */
import { utf8 } from '../../shared/bytes.ts';
import {
  decodePublicKey,
  Fr,
  fastAggregateVerify,
  type G1Point,
  getPublicKey,
  keyGen,
  scalarToSecretKey,
  secretKeyToScalar,
  sign,
  verify,
} from '../../shared/crypto/bls.ts';
import { runLocalDkg } from '../../shared/crypto/dkg.ts';
import {
  combine,
  dealShares,
  type PartialSignature,
  partialSign,
} from '../../shared/crypto/threshold-bls.ts';
import { CryptoError } from '../../shared/errors.ts';
import type { BenchCase } from '../harness.ts';

function check(ok: boolean, what: string): void {
  if (!ok) throw new CryptoError('CRYPTO_BAD_SIGNATURE', `bls bench: ${what} did not verify`);
}

/** Deterministic bench randomness (xorshift; quality is irrelevant here, determinism is not). */
function benchRandom(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[i] = s & 0xff;
    }
    return out;
  };
}

export function blsCases(): BenchCase[] {
  const message = new Uint8Array(32).fill(0x42);
  const sk = keyGen(new Uint8Array(32).fill(7));
  let pk: Uint8Array = new Uint8Array(0);
  let sig: Uint8Array = new Uint8Array(0);

  const signers = 100;
  let pks: Uint8Array[] = [];
  let pkPoints: G1Point[] = [];
  let aggSig: Uint8Array = new Uint8Array(0);
  const aggSetup = () => {
    if (pks.length === signers) return;
    const sks = Array.from({ length: signers }, (_, i) => keyGen(new Uint8Array(32).fill(i + 1)));
    pks = sks.map(getPublicKey);
    pkPoints = pks.map(decodePublicKey);
    const sum = sks.reduce((acc, k) => Fr.add(acc, secretKeyToScalar(k)), 0n);
    aggSig = sign(scalarToSecretKey(sum), message);
  };

  const thresholdCase = (t: number, verified: boolean): BenchCase => {
    const n = t + 1;
    let partials: PartialSignature[] = [];
    let publicShares: Uint8Array[] = [];
    let groupKey: Uint8Array = new Uint8Array(0);
    return {
      group: 'threshold-bls',
      name: verified ? 'combine-verified' : 'combine',
      impl: `t=${t}`,
      setup: () => {
        const keys = dealShares(n, t, { randomBytes: benchRandom(t) });
        partials = keys.shares.slice(0, t).map((s) => partialSign(s, message));
        publicShares = keys.publicShares;
        groupKey = keys.groupPublicKey;
        check(verify(groupKey, message, combine(partials, t)), `combine t=${t}`);
      },
      run: () =>
        verified
          ? combine(partials, t, { publicShares, message, randomBytes: benchRandom(99) })
          : combine(partials, t),
    };
  };

  const dkgCase = (n: number, t: number): BenchCase => ({
    group: 'dkg',
    name: 'full-run',
    impl: `n=${n}`,
    run: () => runLocalDkg(n, t, { sessionId: utf8('bench'), randomBytes: benchRandom(n) }),
  });

  return [
    {
      group: 'bls',
      name: 'sign',
      impl: 'noble',
      run: () => sign(sk, message),
    },
    {
      group: 'bls',
      name: 'verify',
      impl: 'noble',
      setup: () => {
        pk = getPublicKey(sk);
        sig = sign(sk, message);
      },
      run: () => check(verify(pk, message, sig), 'verify'),
    },
    {
      group: 'bls',
      name: 'aggregate-verify-100',
      impl: 'noble',
      opsPerRun: 1,
      setup: aggSetup,
      run: () => check(fastAggregateVerify(pks, message, aggSig), 'aggregate-verify-100'),
    },
    {
      group: 'bls',
      name: 'aggregate-verify-100',
      impl: 'noble, decoded keys',
      opsPerRun: 1,
      setup: aggSetup,
      run: () => check(fastAggregateVerify(pkPoints, message, aggSig), 'aggregate-verify-100 (decoded keys)'),
    },
    thresholdCase(3, false),
    thresholdCase(5, false),
    thresholdCase(3, true),
    thresholdCase(5, true),
    dkgCase(4, 3),
    dkgCase(7, 5),
  ];
}

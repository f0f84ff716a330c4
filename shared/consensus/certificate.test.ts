import { assert, describe, it } from '#test';
import { finalityMessage, verifyCertificate } from '../chain/certificate.ts';
import { FinalityCertificate } from '../chain/types.ts';
import * as bls from '../crypto/bls.ts';
import { partialSign } from '../crypto/threshold-bls.ts';
import { assembleCertificate, verifyCommit } from './certificate.ts';
import { pinnedVerifier, signMessageSync, validateMessage, valueId } from './messages.ts';
import { realCommittee, TEST_CHAIN, testValue } from './testkit.ts';
import { type ConsensusMessage, type SignedVote, VoteType } from './types.ts';

// Real BLS (pure JS: ~12 ms a partial, ~25 ms a verification): one committee, a handful of operations.
const real = realCommittee(4);
const value = testValue(7);
const height = 9n;
const id = valueId(TEST_CHAIN, height, value);
const precommits: SignedVote[] = [0, 1, 2, 3].map(
  (i) =>
    (
      signMessageSync(real.keys[i]!, TEST_CHAIN, {
        kind: 'vote',
        vote: { type: VoteType.precommit, height, round: 2, validator: i, valueId: id },
      }) as Extract<ConsensusMessage, { kind: 'vote' }>
    ).signed,
);

describe('finality certificate from precommits (real threshold BLS)', () => {
  it('the value id is the finality message, so t precommit partials combine into a certificate plain BLS verify accepts', () => {
    assert.deepEqual(id, finalityMessage(TEST_CHAIN, height, value.blockHash, value.historyRoot));
    for (const signed of precommits.slice(0, 3)) {
      validateMessage(
        { kind: 'vote', signed },
        { chainId: TEST_CHAIN, committee: real.committee },
        pinnedVerifier,
      );
    }
    const { certificate, used, bad } = assembleCertificate(
      TEST_CHAIN,
      height,
      value,
      precommits.slice(0, 3),
      real.committee,
    );
    assert.deepEqual(used, [0, 1, 2]);
    assert.deepEqual(bad, []);
    assert.deepEqual(FinalityCertificate.decode(FinalityCertificate.encode(certificate)), certificate);
    assert.ok(bls.verify(real.committee.groupPublicKey, id, certificate.groupSignature));
    verifyCertificate(certificate, {
      chainId: TEST_CHAIN,
      height,
      blockHash: value.blockHash,
      groupPublicKey: real.committee.groupPublicKey,
      blsVerify: bls.verify,
    });
    assert.equal(
      verifyCommit(TEST_CHAIN, real.committee, height, value, precommits.slice(1), pinnedVerifier),
      2,
    );
  });

  it('names and skips a bad partial, and needs t good ones', () => {
    const forged = { ...precommits[3]!, blsPartial: partialSign(real.dealt.shares[0]!, id).signature };
    const withBad = [precommits[0]!, forged, precommits[2]!, precommits[1]!];
    const r = assembleCertificate(TEST_CHAIN, height, value, withBad, real.committee);
    assert.deepEqual(r.bad, [3]);
    assert.deepEqual(r.used, [0, 1, 2]);
    assert.ok(bls.verify(real.committee.groupPublicKey, id, r.certificate.groupSignature));
    assert.throws(
      () => assembleCertificate(TEST_CHAIN, height, value, [precommits[0]!, forged], real.committee),
      {
        code: 'CONSENSUS_NOT_ENOUGH_PARTIALS',
      },
    );
    assert.throws(
      () => verifyCommit(TEST_CHAIN, real.committee, height, value, precommits.slice(0, 2), pinnedVerifier),
      {
        code: 'CONSENSUS_NOT_ENOUGH_PARTIALS',
      },
    );
  });
});

/**
 * The simulator with real signatures instead of the stand-in: Ed25519 node keys (pinned rule) and a
 * dealt threshold-BLS committee key. Every message is checked at the boundary (BLS partials too);
 * each decision's precommits combine into a FinalityCertificate that plain BLS verify accepts
 * against the committee's group key, and a Byzantine member's bad signatures are rejected.
 */
import { assert, describe, it } from '#test';
import { verifyCertificate } from '../../../shared/chain/certificate.ts';
import { assembleCertificate } from '../../../shared/consensus/certificate.ts';
import { memoizeVerifier, pinnedVerifier } from '../../../shared/consensus/messages.ts';
import { realCommittee } from '../../../shared/consensus/testkit.ts';
import * as bls from '../../../shared/crypto/bls.ts';
import { failuresOf, scenarioConfig } from './scenarios.ts';
import { CHAIN_ID, Simulation } from './sim.ts';

describe('consensus with real Ed25519 and threshold BLS', () => {
  it('decides, rejects forged messages, and every commit yields a certificate the group key verifies', () => {
    const config = scenarioConfig('calm', 4, 3);
    config.byzantine = [{ index: 3, strategy: 'garbage' }];
    config.heights = 2;
    const real = realCommittee(4, 'sim-real-crypto');
    const sim = new Simulation(config, {
      committee: real.committee,
      keys: real.keys,
      verifier: memoizeVerifier(pinnedVerifier),
    });
    const r = sim.run();
    assert.deepEqual(failuresOf(r), []);
    assert.ok((r.stats.rejected['CONSENSUS_BAD_SIGNATURE'] ?? 0) > 0, JSON.stringify(r.stats.rejected));
    for (let h = 1n; h <= 2n; h++) {
      const c = sim.commits.get(h);
      assert.ok(c, `a commit for height ${h}`);
      const { certificate } = assembleCertificate(CHAIN_ID, h, c.value, c.commit, real.committee);
      verifyCertificate(certificate, {
        chainId: CHAIN_ID,
        height: h,
        blockHash: c.value.blockHash,
        groupPublicKey: real.committee.groupPublicKey,
        blsVerify: bls.verify,
      });
    }
  });
});

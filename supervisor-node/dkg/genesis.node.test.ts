import { assert, describe, it } from '#test';
import { bytesToHex } from '../../shared/bytes.ts';
import { DEVNET_PARAMS, genesisToJson } from '../../shared/chain/genesis.ts';
import { encodeAddress } from '../../shared/crypto/address.ts';
import { dealShares } from '../../shared/crypto/threshold-bls.ts';
import {
  type GenesisTemplate,
  genesisFromDkg,
  genesisTemplateToJson,
  parseGenesisTemplate,
} from './genesis.ts';
import { makeCommittee } from './testkit.ts';

const template: GenesisTemplate = {
  chainId: 'pouw-genesis-test',
  time: 1_800_000_000_000n,
  params: DEVNET_PARAMS,
  allocations: [{ address: encodeAddress(new Uint8Array(20).fill(1)), value: 5n }],
};

function outcome() {
  const keys = dealShares(4, 3);
  return {
    committee: makeCommittee(4, 'genesis').map((m) => m.nodeKey),
    t: 3,
    groupPublicKey: keys.groupPublicKey,
    publicShares: keys.publicShares,
  };
}

describe('genesis from a DKG outcome', () => {
  it('is a function of template and outcome: the same inputs give byte-identical files', () => {
    const o = outcome();
    const a = JSON.stringify(genesisToJson(genesisFromDkg(template, o)));
    const b = JSON.stringify(genesisToJson(genesisFromDkg({ ...template }, { ...o })));
    assert.equal(a, b);
    const g = genesisFromDkg(template, o);
    assert.equal(g.committee.threshold, 3);
    assert.deepEqual(
      g.committee.members.map((m) => bytesToHex(m.blsPublicShare)),
      o.publicShares.map((p) => bytesToHex(p)),
    );
    assert.notEqual(
      JSON.stringify(genesisToJson(genesisFromDkg(template, outcome()))),
      a,
      'another key, another genesis',
    );
  });

  it('templates round-trip through JSON; a template with a committee, or a broken one, is refused', () => {
    const json = genesisTemplateToJson(template);
    assert.ok(!('committee' in json));
    assert.deepEqual(parseGenesisTemplate(JSON.parse(JSON.stringify(json))), template);
    assert.throws(() => parseGenesisTemplate({ ...json, committee: {} }), { code: 'GENESIS_INVALID' });
    assert.throws(() => parseGenesisTemplate({ ...json, chainId: 'Bad Id' }), {
      code: 'GENESIS_INVALID',
      message: /chainId/,
    });
    assert.throws(() => genesisFromDkg(template, { ...outcome(), publicShares: [] }), {
      code: 'GENESIS_INVALID',
    });
  });
});

import { Ajv2020 } from 'ajv/dist/2020.js';
import { assert, describe, it } from '#test';
import schema from './genesis.schema.json' with { type: 'json' };
import { INVALID_GENESIS, sampleGenesisJson } from './genesis-fixtures.ts';

describe('genesis JSON schema', () => {
  const validate = new Ajv2020({ allErrors: true }).compile(schema);

  it('accepts what parseGenesis accepts', async () => {
    assert.ok(validate(await sampleGenesisJson()), JSON.stringify(validate.errors));
  });

  it('rejects the structural mistakes parseGenesis rejects', async () => {
    const base = await sampleGenesisJson();
    // Rules a schema cannot express (canonical compact bits, threshold ≤ member count) are
    // parseGenesis's alone.
    const semanticOnly = new Set(['non-canonical bits', 'threshold above members', 'uint64 overflow']);
    for (const [what, mutate] of INVALID_GENESIS) {
      if (semanticOnly.has(what)) continue;
      const doc = JSON.parse(JSON.stringify(base));
      mutate(doc);
      assert.ok(!validate(doc), `schema accepted: ${what}`);
    }
  });
});

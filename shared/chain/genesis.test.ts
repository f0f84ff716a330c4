import { assert, describe, it } from '#test';
import { bytesToHex } from '../bytes.ts';
import { StateTree } from '../state/state-tree.ts';
import { genesisBlock, genesisToJson, parseGenesis } from './genesis.ts';
import { INVALID_GENESIS, sampleGenesisJson } from './genesis-fixtures.ts';
import { blockHash } from './ids.ts';

describe('genesis', () => {
  it('round-trips through its JSON form and builds the same block everywhere', async () => {
    const json = await sampleGenesisJson();
    const g = parseGenesis(JSON.parse(JSON.stringify(json)));
    assert.deepEqual(genesisToJson(g), json);
    const a = genesisBlock(g, new StateTree());
    const b = genesisBlock(parseGenesis(json), new StateTree());
    assert.equal(bytesToHex(blockHash(g.chainId, a.header)), bytesToHex(blockHash(g.chainId, b.header)));
  });

  it('rejects each invalid document with GENESIS_INVALID naming the field', async () => {
    const base = await sampleGenesisJson();
    for (const [what, mutate, path] of INVALID_GENESIS) {
      const doc = JSON.parse(JSON.stringify(base));
      mutate(doc);
      const e = assert.throws(
        () => parseGenesis(doc),
        { name: 'LedgerError', code: 'GENESIS_INVALID' },
        what,
      );
      assert.equal((e as unknown as { detail: { path: string } }).detail.path, path, what);
    }
  });

  it('rejects a group key that is not a curve point, although it is well-formed hex', async () => {
    const doc = JSON.parse(JSON.stringify(await sampleGenesisJson()));
    doc.committee.groupPublicKey = 'a0'.padEnd(96, '0');
    assert.throws(() => parseGenesis(doc), { code: 'GENESIS_INVALID' });
  });
});

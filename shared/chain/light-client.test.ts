import { assert, describe, it } from '#test';
import { LightClient, MemoryLightClientStore } from './light-client.ts';
import { lightClientScenario } from './light-client-scenario.ts';

describe('light client (memory store)', () => {
  it('accepts headers only with a valid certificate, and a balance only with proofs against them', async () => {
    const s = await lightClientScenario();
    const store = new MemoryLightClientStore();
    const lc = new LightClient(s.config, store);
    const b = s.chain.accounts[1]!;
    // No verified header yet: the wallet update is refused.
    await assert.rejects(() => lc.applyWalletUpdate(2n, s.walletAt2), { code: 'CERT_MISSING' });
    // A header whose certificate is for another block is refused and not stored.
    await assert.rejects(() => lc.addFinalizedHeader(s.headers[1]!.header, s.headers[0]!.certificate), {
      name: 'LedgerError',
    });
    assert.equal(await store.latestHeight(), undefined);
    for (const h of s.headers) await lc.addFinalizedHeader(h.header, h.certificate);
    const spent = s.chain.ledger.proveUtxo(s.spentOutpoint);
    assert.equal(spent.out, undefined);
    await lc.applyWalletUpdate(2n, s.walletAt2, [{ outpoint: s.spentOutpoint, proof: spent.proof }]);
    const balance = await lc.balance(b.address);
    assert.equal(balance.spendable, s.received);
    assert.equal(balance.height, 2n);
  });

  it('rejects an inflated output, a proof against the wrong header, and a false claim of spending', async () => {
    const s = await lightClientScenario();
    const lc = new LightClient(s.config, new MemoryLightClientStore());
    for (const h of s.headers) await lc.addFinalizedHeader(h.header, h.certificate);
    const [first] = s.walletAt2;
    const inflated = { ...first!, out: { ...first!.out, value: first!.out.value + 1n } };
    await assert.rejects(() => lc.applyWalletUpdate(2n, [inflated]), { code: 'BLOCK_BAD_STATE_ROOT' });
    // Outputs created in block 2 are not in the state of block 1.
    await assert.rejects(() => lc.applyWalletUpdate(1n, [s.walletAt2[2]!]), { name: 'StateError' });
    // An unspent output cannot be declared spent with its own inclusion proof.
    await assert.rejects(
      () => lc.applyWalletUpdate(2n, [], [{ outpoint: first!.outpoint, proof: first!.proof }]),
      { code: 'BLOCK_BAD_STATE_ROOT' },
    );
    assert.equal((await lc.balance(s.chain.accounts[1]!.address)).spendable, 0n, 'nothing was stored');
  });
});

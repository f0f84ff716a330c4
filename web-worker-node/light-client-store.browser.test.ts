import { assert, describe, it } from '#test';
import { LightClient } from '../shared/chain/light-client.ts';
import { lightClientScenario } from '../shared/chain/light-client-scenario.ts';
import { IdbLightClientStore } from './light-client-store.ts';

describe('light client on IndexedDB (Chromium)', () => {
  it('verifies proofs against headers stored in IndexedDB, across a reopen', async () => {
    const s = await lightClientScenario();
    const name = `lc-test-${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const store = await IdbLightClientStore.open(name);
    const lc = new LightClient(s.config, store);
    for (const h of s.headers) await lc.addFinalizedHeader(h.header, h.certificate);
    await lc.applyWalletUpdate(2n, s.walletAt2);
    store.close();

    // A new page session: everything comes back from IndexedDB and is re-verified on read.
    const reopened = await IdbLightClientStore.open(name);
    assert.equal(await reopened.latestHeight(), 2n);
    const lc2 = new LightClient(s.config, reopened);
    const balance = await lc2.balance(s.chain.accounts[1]!.address);
    assert.equal(balance.spendable, s.received);
    for (const o of await reopened.listOutputs()) await lc2.checkOutput(2n, o);

    // A header rewritten in the database (say, by another script) no longer verifies.
    const stored = (await reopened.getHeader(2n))!;
    await reopened.putHeader({
      header: { ...stored.header, stateRoot: new Uint8Array(32).fill(1) },
      certificate: stored.certificate,
    });
    await assert.rejects(() => lc2.balance(s.chain.accounts[1]!.address), { code: 'CERT_BAD_BLOCK_HASH' });
    reopened.close();
    await new Promise<void>((resolve) => {
      const req = indexedDB.deleteDatabase(name);
      req.onsuccess = () => resolve();
      req.onerror = () => resolve();
    });
  });
});

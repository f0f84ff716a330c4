/**
 * The volunteer Web Worker in Chromium: trainer (TF.js in the worker) and miner (grinding in the same
 * worker) behind comlink, on a LoopbackNetwork in this page. Two workers, one on wasm and one on cpu,
 * train a tiny MNIST task from the packed file (checked against the task's commitment inside the
 * worker), exchange IT_RES through the page, and mine blocks the loopback committee finalizes.
 */
import { assert, describe, it } from '#test';
import { bytesToHex } from '../shared/bytes.ts';
import { MemoryLightClientStore } from '../shared/chain/light-client.ts';
import { addressBytesOf } from '../shared/chain/validate-tx.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import type { ItRes } from '../shared/pouw/itres.ts';
import { WalletBalance } from './balance.ts';
import { createDemoNetwork } from './demo.ts';
import type { VolunteerEvent } from './progress.ts';
import { spawnVolunteerWorker, Volunteer } from './volunteer-client.ts';

const DATA_URL = `${globalThis.location.origin}/public/data/mnist-10k.u8.gz`;

async function identity(i: number) {
  const secretKey = new Uint8Array(32).fill(40 + i);
  const publicKey = await nobleEd25519.getPublicKey(secretKey);
  return { secretKey, publicKey, payout: addressBytesOf(publicKey) };
}

describe('volunteer Web Worker (Chromium)', () => {
  it('wasm and cpu workers train, exchange IT_RES through the page and mine finalized blocks', async () => {
    const raw = new Uint8Array(await (await fetch(DATA_URL)).arrayBuffer());
    const net = await createDemoNetwork({
      raw,
      url: DATA_URL,
      minerSlots: 2,
      task: 'tiny',
      extra: { initialBits: 0x207fffff },
    });
    const published: ItRes[] = [];
    net.observe((m) => published.push(m));
    const backends = ['wasm', 'cpu'] as const;
    const ids = await Promise.all(backends.map((_, i) => identity(i)));
    const events: VolunteerEvent[][] = [[], []];
    const volunteers = await Promise.all(
      backends.map((force, i) =>
        Volunteer.launch({
          network: net.connect(force),
          worker: spawnVolunteerWorker(),
          identity: ids[i]!,
          payout: ids[i]!.payout,
          backend: { force },
          heldOut: { every: 10, examples: 200 },
          maxIterations: 20,
          onEvent: (e) => events[i]!.push(e),
        }),
      ),
    );
    try {
      const done = volunteers.map(
        (v, i) =>
          new Promise<void>((resolve, reject) => {
            const check = (e: VolunteerEvent) => {
              if (e.type === 'phase' && e.phase === 'done') resolve();
              if (e.type === 'error')
                reject(new Error(`${backends[i]}: ${e.error.code}: ${e.error.message}`));
            };
            events[i]!.forEach(check);
            v.onEvent(check);
          }),
      );
      await Promise.all(volunteers.map((v) => v.start()));
      await Promise.all(done);
      for (const [i, v] of volunteers.entries()) {
        const s = v.snapshot();
        assert.equal(s.backend?.name, backends[i]);
        assert.equal(s.iterations, 20);
        assert.equal(s.itres.sent, 20);
        assert.equal(s.itres.rejected, 0);
        assert.equal(s.heldOut.length, 2);
        assert.ok(s.series.every((p) => p.loss > 0 && p.accuracy >= 0 && p.accuracy <= 1));
        assert.ok(s.noncesTried > 0);
        assert.ok(s.blocksFound > 0, `${backends[i]} found no block`);
      }
      // Each worker's IT_RES reached the bus, signed by its node key, one per iteration.
      for (const id of ids)
        assert.equal(
          published.filter((m) => bytesToHex(m.body.miner) === bytesToHex(id.publicKey)).length,
          20,
        );
      // The peers' messages reach each worker and pass its miner's checks.
      for (const v of volunteers) {
        const end = performance.now() + 10_000;
        while ((await v.status()).itres.received < 20 && performance.now() < end)
          await new Promise((r) => setTimeout(r, 20));
        assert.equal((await v.status()).itres.received, 20);
      }
      assert.ok(net.stats.accepted >= 1, `no block finalized: ${JSON.stringify(net.stats.rejected)}`);
      // The finalized rewards show up as a verified balance (certificates and state proofs).
      const total = await Promise.all(
        ids.map(async (id) => {
          const view = await new WalletBalance(
            net.connect('wallet'),
            net.anchor,
            new MemoryLightClientStore(),
            id.payout,
          ).sync();
          assert.equal(view.status, 'verified');
          return view.status === 'verified' ? view.spendable : 0n;
        }),
      );
      assert.ok(total[0]! + total[1]! > 0n, 'block rewards are visible to the light client');
    } finally {
      for (const v of volunteers) await v.close();
    }
  });
});

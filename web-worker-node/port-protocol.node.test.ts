/**
 * The page side of the worker port (bridgeNetwork) against a scripted network: a candidate refused
 * as a block (its template lags the chain) makes the bridge fetch a fresh template at once, and only
 * one candidate per height is in flight.
 */
import { assert, describe, it } from '#test';
import { Block } from '../shared/chain/types.ts';
import { BlockCandidate } from '../shared/net/messages.ts';
import type { CandidateVerdict, VolunteerNetwork } from './network.ts';
import { bridgeNetwork, type NetworkPort } from './port-protocol.ts';

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('network port bridge', () => {
  it('fetches a fresh template after a block-level refusal; one candidate per height in flight', async () => {
    let fetches = 0;
    let submitted = 0;
    let answer: (v: CandidateVerdict) => void = () => {};
    const network = {
      fetchTemplate: async () => {
        fetches++;
        return Block.defaultValue();
      },
      submitCandidate: () => {
        submitted++;
        return new Promise<CandidateVerdict>((r) => {
          answer = r;
        });
      },
      publishItRes: async () => {},
      onItRes: () => () => {},
      onFinalized: () => () => {},
    } as unknown as VolunteerNetwork;
    const { port1, port2 } = new MessageChannel();
    const bridge = bridgeNetwork(network, port1 as unknown as NetworkPort, {
      payout: new Uint8Array(20),
      taskId: new Uint8Array(32),
      onEvent: () => {},
    });
    try {
      await until(() => fetches === 1);
      const candidate = BlockCandidate.encode(BlockCandidate.defaultValue());
      port2.postMessage({ t: 'candidate', bytes: candidate });
      port2.postMessage({ t: 'candidate', bytes: candidate });
      await until(() => submitted === 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(submitted, 1, 'the second candidate of the height waits for the first verdict');
      answer({
        accepted: false,
        code: 'BLOCK_BAD_HEIGHT',
        reason: 'candidate for height 0, the next height is 3',
      });
      await until(() => fetches === 2);
      port2.postMessage({ t: 'candidate', bytes: candidate });
      await until(() => submitted === 2);
    } finally {
      bridge.close();
      port2.close();
    }
  });
});

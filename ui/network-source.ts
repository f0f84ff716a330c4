/**
 * Opens the network the page's config selects. Demo: a LoopbackNetwork in this page (chain, task,
 * IT_RES bus; web-worker-node/loopback.ts), committed to the packed MNIST file this site serves.
 * Relay: the libp2p network through the given relay; this build has no browser libp2p node yet, so
 * it fails with NetError('NET_UNAVAILABLE') and the page says so instead of pretending.
 */
import type { LightClientStore } from '../shared/chain/light-client.ts';
import { MemoryLightClientStore } from '../shared/chain/light-client.ts';
import { NetError } from '../shared/errors.ts';
import { createDemoNetwork } from '../web-worker-node/demo.ts';
import type { ChainAnchor, VolunteerNetwork } from '../web-worker-node/network.ts';
import type { NetworkSource } from './config.ts';

export interface OpenNetwork {
  /** What the page shows as "network". */
  description: string;
  anchor: ChainAnchor;
  /** A connection for one volunteer (the page's own, a demo peer) or for the wallet view. */
  connect(name: string): VolunteerNetwork;
  /** Where the light client keeps verified headers and proofs. */
  lightClientStore(): Promise<LightClientStore>;
  /** Volunteers the task waits for: the page's own plus its demo peers. */
  minerSlots: number;
}

/** Where this site serves the packed MNIST digits (public/data → /data). */
export function dataUrl(base: string = document.baseURI): string {
  return new URL('data/mnist-10k.u8.gz', base).href;
}

export async function openNetwork(source: NetworkSource): Promise<OpenNetwork> {
  if (source.kind === 'relay') {
    throw new NetError(
      'NET_UNAVAILABLE',
      `network not available: this build cannot connect to the relay ${source.relay} yet (no browser libp2p node); open the page without ?relay= for the demo network`,
      'IGNORE',
      { relay: source.relay },
    );
  }
  const url = dataUrl();
  const res = await fetch(url);
  if (!res.ok)
    throw new NetError(
      'NET_NOT_FOUND',
      `the training data is not served at ${url} (HTTP ${res.status})`,
      'IGNORE',
    );
  const net = await createDemoNetwork({
    raw: new Uint8Array(await res.arrayBuffer()),
    url,
    minerSlots: 1 + source.peers,
  });
  return {
    description: `demo network in this page (${1 + source.peers} miner${source.peers === 0 ? '' : 's'}, chain ${net.chainId})`,
    anchor: net.anchor,
    connect: (name) => net.connect(name),
    // The demo chain lives in this page's memory: persisting its headers would outlive it.
    lightClientStore: async () => new MemoryLightClientStore(),
    minerSlots: 1 + source.peers,
  };
}

/**
 * Opens the network the page's config selects. Demo: a LoopbackNetwork in this page (chain, task,
 * IT_RES bus; web-worker-node/loopback.ts), committed to the packed MNIST file this site serves.
 * Relay (`?relay=<multiaddr>`): the real network, a libp2p node on this page's main thread
 * (web-worker-node/net-libp2p.ts) whose identity is the keystore's node key. What the page trusts
 * comes from the site that served it, never from the network: `config.json` next to the page names
 * the supervisors' addresses and the genesis file, and the genesis gives the chain id, the
 * committee's node keys (supervisor identities, task leads' signatures) and its group key (the light
 * client's anchor). Verified headers and proofs persist in IndexedDB, one database per chain id.
 *
 * config.json: { "genesis": "genesis.json", "supervisors": ["/ip4/…/tcp/…/ws/p2p/12D3…", …],
 *                "task": "<hex task id, optional>", "allowPrivateDials": <optional boolean> }
 * `allowPrivateDials` defaults to whether the relay's address is loopback or private (a devnet).
 */
import { multiaddr } from '@multiformats/multiaddr';
import { hexToBytes } from '../shared/bytes.ts';
import { parseGenesis } from '../shared/chain/genesis.ts';
import type { LightClientStore } from '../shared/chain/light-client.ts';
import { MemoryLightClientStore } from '../shared/chain/light-client.ts';
import { NetError } from '../shared/errors.ts';
import { createDemoNetwork } from '../web-worker-node/demo.ts';
import { Keystore } from '../web-worker-node/keystore.ts';
import { IdbLightClientStore } from '../web-worker-node/light-client-store.ts';
import { Libp2pVolunteerNetwork } from '../web-worker-node/net-libp2p.ts';
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
  if (source.kind === 'relay') return openRelayNetwork(source.relay);
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

/** What config.json next to the page says about the real network. */
export interface SiteNetworkConfig {
  genesis: string;
  supervisors: string[];
  task: Uint8Array | undefined;
  allowPrivateDials: boolean | undefined;
}

function badConfig(field: string, message: string): never {
  throw new NetError('NET_BAD_CONFIG', `config.json ${field}: ${message}`, 'REJECT', { field });
}

/** Parses config.json. Throws NetError('NET_BAD_CONFIG') naming the bad field. */
export function parseSiteConfig(json: unknown): SiteNetworkConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    badConfig('(root)', 'must be an object');
  const c = json as Record<string, unknown>;
  for (const k of Object.keys(c))
    if (!['genesis', 'supervisors', 'task', 'allowPrivateDials'].includes(k)) badConfig(k, 'unknown field');
  const genesis = c['genesis'] ?? 'genesis.json';
  if (typeof genesis !== 'string' || genesis === '') badConfig('genesis', 'must be a URL');
  if (!Array.isArray(c['supervisors']) || c['supervisors'].length === 0)
    badConfig('supervisors', 'must be a non-empty array of multiaddrs');
  const supervisors = (c['supervisors'] as unknown[]).map((a, i) => {
    if (typeof a !== 'string') badConfig(`supervisors[${i}]`, 'must be a multiaddr');
    try {
      multiaddr(a);
    } catch {
      badConfig(`supervisors[${i}]`, `is not a multiaddr: ${a}`);
    }
    return a;
  });
  const task = c['task'];
  if (task !== undefined && (typeof task !== 'string' || !/^[0-9a-f]{64}$/.test(task)))
    badConfig('task', 'must be 32 bytes of lowercase hex');
  const allow = c['allowPrivateDials'];
  if (allow !== undefined && typeof allow !== 'boolean') badConfig('allowPrivateDials', 'must be a boolean');
  return {
    genesis,
    supervisors,
    task: task === undefined ? undefined : hexToBytes(task as string),
    allowPrivateDials: allow as boolean | undefined,
  };
}

/** Whether a multiaddr names a loopback or private-range host (a devnet on one machine or LAN). */
export function isPrivateAddress(addr: string): boolean {
  const host = multiaddr(addr)
    .getComponents()
    .find(
      (c) =>
        c.name === 'ip4' || c.name === 'ip6' || c.name === 'dns4' || c.name === 'dns6' || c.name === 'dns',
    );
  const v = host?.value ?? '';
  if (host?.name === 'ip6') return v === '::1' || v.startsWith('fc') || v.startsWith('fd');
  if (host?.name !== 'ip4') return v === 'localhost';
  const [a, b] = v.split('.').map(Number) as [number, number];
  return a === 127 || a === 10 || (a === 192 && b === 168) || (a === 172 && b >= 16 && b <= 31);
}

async function fetchJson(url: string, what: string): Promise<unknown> {
  const res = await fetch(url);
  if (!res.ok)
    throw new NetError('NET_NOT_FOUND', `${what} is not served at ${url} (HTTP ${res.status})`, 'IGNORE');
  try {
    return await res.json();
  } catch (e) {
    throw new NetError('NET_BAD_CONFIG', `${what} at ${url} is not JSON: ${(e as Error).message}`);
  }
}

async function openRelayNetwork(relay: string, base: string = document.baseURI): Promise<OpenNetwork> {
  const configUrl = new URL('config.json', base).href;
  const config = parseSiteConfig(await fetchJson(configUrl, 'the network configuration (config.json)'));
  const genesisUrl = new URL(config.genesis, configUrl).href;
  const genesis = parseGenesis(await fetchJson(genesisUrl, 'the genesis'));
  const keystore = await Keystore.open();
  let nodeKey: Awaited<ReturnType<Keystore['nodeIdentity']>>;
  try {
    nodeKey = await keystore.nodeIdentity();
  } finally {
    keystore.close();
  }
  const net = await Libp2pVolunteerNetwork.create({
    chainId: genesis.chainId,
    committee: genesis.committee,
    nodeKey,
    relay,
    supervisors: config.supervisors,
    ...(config.task === undefined ? {} : { taskId: config.task }),
    // No public STUN servers: tabs meet on the addresses they have (a LAN, a devnet namespace).
    rtcConfiguration: { iceServers: [] },
    allowPrivateDials: config.allowPrivateDials ?? isPrivateAddress(relay),
    resolveDatasetUrl: (url) => new URL(url, base).href,
  });
  return {
    description: net.description,
    anchor: { chainId: genesis.chainId, groupPublicKey: genesis.committee.groupPublicKey },
    // One node for the page: each user (the volunteer, the wallet panel) gets a view of it.
    connect: () => net.view(),
    lightClientStore: async () => IdbLightClientStore.open(`pouw-light-client-${genesis.chainId}`),
    minerSlots: 1,
  };
}

/**
 * The relay's libp2p node: TCP and WebSocket listeners, Noise, Yamux, identify, ping, the circuit
 * relay v2 server with our limits, and gossipsub as a hub for the network's topics; every inbound
 * stream and connection passes `RelayGuard` first. `startRelay` returns the running node with its
 * health report and metrics registry; `main.ts` adds the HTTP endpoint, logs and signals.
 */
import { type CircuitRelayService, circuitRelayServer, RELAY_V2_STOP_CODEC } from '@libp2p/circuit-relay-v2';
import { type GossipSub, gossipsub } from '@libp2p/gossipsub';
import { type Identify, identify } from '@libp2p/identify';
import type { PeerId } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { type Ping, ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { Registry } from 'prom-client';
import { MAX_GOSSIP_BYTES } from '../shared/net/protocols.ts';
import type { RelayConfig } from './config.ts';
import { GossipHub } from './gossip.ts';
import { RelayGuard } from './guard.ts';
import { loadOrCreateNodeKey } from './key.ts';
import { type DropReason, type PeerDropReport, PeerLimiter } from './limits.ts';
import type { Logger } from './log.ts';
import { createRelayMetrics } from './metrics.ts';

/** Gossip frames may exceed the largest message by the envelope (topic, signature, key, seqno). */
const GOSSIP_FRAME_SLACK = 64 * 1024;

interface RelayServices extends Record<string, unknown> {
  identify: Identify;
  ping: Ping;
  relay: CircuitRelayService;
  pubsub?: GossipSub;
}

/** The limits this relay enforces, as reported on /health and in the startup log line. */
export interface RelayLimits {
  connections: RelayConfig['connections'];
  relay: RelayConfig['relay'] & {
    /** Fixed by the protocol: a peer's new reservation replaces its old one. */
    reservationsPerPeer: 1;
  };
  rateLimits: RelayConfig['rateLimits'];
  gossip: RelayConfig['gossip'];
}

export interface RelayHealth {
  status: 'ok' | 'stopping';
  peerId: string;
  multiaddrs: string[];
  uptimeSeconds: number;
  limits: RelayLimits;
  connections: { open: number; tcp: number; ws: number; inboundAdmitted: number };
  reservations: number;
  circuits: number;
  gossip: { enabled: boolean; topics: number; peers: number; accepted: number };
  peers: { rateLimited: number; banned: number; disconnected: number };
  drops: Partial<Record<DropReason, number>>;
  topOffenders: PeerDropReport[];
  memory: { rssBytes: number; heapUsedBytes: number; externalBytes: number };
}

export interface RelayNode {
  peerId: string;
  /** Listen (or announced) multiaddrs, each ending in this relay's `/p2p/<peerId>`. */
  multiaddrs(): string[];
  limits: RelayLimits;
  health(): RelayHealth;
  registry: Registry;
  /** Whether the node key was created by this start (a fresh identity). */
  keyCreated: boolean;
  stop(): Promise<void>;
}

export function relayLimits(config: RelayConfig): RelayLimits {
  return {
    connections: { ...config.connections },
    relay: { ...config.relay, reservationsPerPeer: 1 },
    rateLimits: { ...config.rateLimits },
    gossip: { ...config.gossip },
  };
}

function flatten(prefix: string, value: unknown, out: Record<string, number>): Record<string, number> {
  if (typeof value === 'number') out[prefix] = value;
  else if (typeof value === 'boolean') out[prefix] = value ? 1 : 0;
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}.${k}` : k, v, out);
  }
  return out;
}

export async function startRelay(config: RelayConfig, log: Logger): Promise<RelayNode> {
  const { key, created } = await loadOrCreateNodeKey(config.dataDir);
  const startedAt = performance.now();
  const limits = relayLimits(config);
  const flatLimits = flatten('', limits, {});
  const limiter = new PeerLimiter(config.rateLimits, () => performance.now());
  let node: Libp2p<RelayServices> | undefined;
  let hub: GossipHub | undefined;
  let stopping = false;

  const connectionsByTransport = () => {
    let ws = 0;
    let tcpCount = 0;
    for (const c of node?.getConnections() ?? []) {
      if (c.remoteAddr.getComponents().some((p) => p.name === 'ws' || p.name === 'wss')) ws++;
      else tcpCount++;
    }
    return { tcp: tcpCount, ws };
  };
  const metrics = createRelayMetrics({
    connections: connectionsByTransport,
    reservations: () => node?.services.relay.reservations.size ?? 0,
    circuits: () => guard.circuitCount(),
    rateLimitedPeers: () => limiter.limitedPeerCount(),
    bannedPeers: () => limiter.bannedPeerCount(),
    gossipTopics: () => hub?.topicCount() ?? 0,
    gossipPeers: () => hub?.peerCount() ?? 0,
    gossipAccepted: () => hub?.acceptedCount() ?? 0,
    uptimeSeconds: () => (performance.now() - startedAt) / 1000,
    limits: () => flatLimits,
  });
  const guard = new RelayGuard(config, limiter, metrics.counters, log);

  const r = config.relay;
  const services = {
    identify: identify(),
    ping: ping(),
    relay: guard.countHopBytes(
      circuitRelayServer({
        hopTimeout: r.hopTimeoutMs,
        reservations: {
          // The guard refuses first (and counts); this is the library's own backstop.
          maxReservations: r.maxReservations,
          reservationTtl: r.reservationTtlMs,
          applyDefaultLimit: true,
          // js-libp2p enforces this in milliseconds (and sends the same number in the Limit message).
          defaultDurationLimit: r.circuitDurationMs,
          defaultDataLimit: BigInt(r.circuitDataBytes),
        },
        // Per-connection backstops under the guard's per-peer bound (+2: reservation refreshes).
        maxInboundHopStreams: r.circuitsPerPeer + 2,
        maxOutboundStopStreams: r.circuitsPerPeer + 1,
      }),
    ),
    ...(config.gossip.enabled
      ? {
          pubsub: gossipsub({
            allowPublishToZeroTopicPeers: true,
            fallbackToFloodsub: false,
            doPX: false,
            emitSelf: false,
            maxInboundDataLength: MAX_GOSSIP_BYTES + GOSSIP_FRAME_SLACK,
            // A reader too slow for two largest messages loses its stream, not the relay's memory.
            maxOutboundBufferSize: 2 * (MAX_GOSSIP_BYTES + GOSSIP_FRAME_SLACK),
            scoreParams: {
              // Strikes from the guard (oversized, over rate) lower a peer's gossip score.
              appSpecificScore: (peer: string) => -limiter.strikes(peer),
              appSpecificWeight: 1,
              // Many honest tabs share one NAT address; per-IP caps are the guard's job.
              IPColocationFactorWeight: 0,
            },
          }),
        }
      : {}),
  };

  node = await createLibp2p<RelayServices>({
    privateKey: key,
    addresses: {
      listen: config.listen,
      ...(config.announce.length > 0 ? { announce: config.announce } : {}),
    },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [guard.guardMuxer(yamux({ maxInboundStreams: config.connections.streamsPerConnection }))],
    connectionGater: guard.gater(),
    connectionManager: {
      // The guard refuses at `connections.max` and counts it; the library prunes only above this.
      maxConnections: config.connections.max + 16,
      inboundConnectionThreshold: config.connections.inboundPerSecondPerIp,
      maxIncomingPendingConnections: config.connections.maxPendingUpgrades,
      reconnectRetries: 0,
    },
    services,
    start: false,
  });
  const running = node;
  guard.attach(running, running.services.relay);
  running.use(RELAY_V2_STOP_CODEC, guard.stopStreamMiddleware());
  running.addEventListener('peer:disconnect', (e) => limiter.forget(e.detail.toString()));
  if (running.services.pubsub !== undefined) {
    hub = new GossipHub(
      running.services.pubsub,
      {
        chainId: config.chainId,
        maxTopics: config.gossip.maxTopics,
        maxMessageBytes: config.gossip.maxMessageBytes,
      },
      limiter,
      (peer: PeerId, reason: DropReason) => guard.drop(peer, reason),
      log,
    );
    hub.start();
  }
  await running.start();

  const peerId = running.peerId.toString();
  const multiaddrs = () => running.getMultiaddrs().map((a) => a.toString());
  return {
    peerId,
    multiaddrs,
    limits,
    registry: metrics.registry,
    keyCreated: created,
    health: () => {
      const mem = process.memoryUsage();
      const byTransport = connectionsByTransport();
      return {
        status: stopping ? 'stopping' : 'ok',
        peerId,
        multiaddrs: multiaddrs(),
        uptimeSeconds: (performance.now() - startedAt) / 1000,
        limits,
        connections: {
          open: byTransport.tcp + byTransport.ws,
          ...byTransport,
          inboundAdmitted: guard.inboundConnectionCount(),
        },
        reservations: running.services.relay.reservations.size,
        circuits: guard.circuitCount(),
        gossip: {
          enabled: hub !== undefined,
          topics: hub?.topicCount() ?? 0,
          peers: hub?.peerCount() ?? 0,
          accepted: hub?.acceptedCount() ?? 0,
        },
        peers: {
          rateLimited: limiter.limitedPeerCount(),
          banned: limiter.bannedPeerCount(),
          disconnected: limiter.disconnects(),
        },
        drops: limiter.dropTotals(),
        topOffenders: limiter.topOffenders(10),
        memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, externalBytes: mem.external },
      };
    },
    stop: async () => {
      stopping = true;
      await running.stop();
    },
  };
}

/**
 * Prometheus metrics of the relay (prom-client, its own registry). Counters are bumped as events
 * happen (drops, relayed bytes, circuits); gauges are read from the node when scraped. Process
 * memory comes with prom-client's default metrics (`process_resident_memory_bytes`, heap sizes).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { GuardCounters } from './guard.ts';
import { DROP_REASONS, type DropReason } from './limits.ts';

/** What the gauges read at scrape time. */
export interface RelayGaugeSource {
  connections(): { tcp: number; ws: number };
  reservations(): number;
  circuits(): number;
  rateLimitedPeers(): number;
  bannedPeers(): number;
  gossipTopics(): number;
  gossipPeers(): number;
  gossipAccepted(): number;
  uptimeSeconds(): number;
  /** Configured limits, flattened (`relay.maxReservations` → value). */
  limits(): Record<string, number>;
}

export interface RelayMetrics {
  registry: Registry;
  counters: GuardCounters;
}

export function createRelayMetrics(source: RelayGaugeSource): RelayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const drops = new Counter({
    name: 'pouw_relay_drops_total',
    help: 'Streams, messages, connections, reservations and circuits dropped or refused, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of DROP_REASONS) drops.inc({ reason }, 0);
  const disconnects = new Counter({
    name: 'pouw_relay_disconnects_total',
    help: 'Peers disconnected and banned after reaching their strike limit',
    registers,
  });
  const relayedBytes = new Counter({
    name: 'pouw_relay_relayed_bytes_total',
    help: 'Bytes received for relaying over circuits, by direction',
    labelNames: ['direction'] as const,
    registers,
  });
  relayedBytes.inc({ direction: 'to_destination' }, 0);
  relayedBytes.inc({ direction: 'to_source' }, 0);
  const circuitsOpened = new Counter({
    name: 'pouw_relay_circuits_opened_total',
    help: 'Relayed connections opened (STOP streams to destinations)',
    registers,
  });

  gauge(registry, 'pouw_relay_connections', 'Open connections by transport', ['transport'], (g) => {
    const c = source.connections();
    g.set({ transport: 'tcp' }, c.tcp);
    g.set({ transport: 'ws' }, c.ws);
  });
  simpleGauge(registry, 'pouw_relay_reservations', 'Reservations held', source.reservations);
  simpleGauge(registry, 'pouw_relay_circuits', 'Relayed connections open', source.circuits);
  simpleGauge(
    registry,
    'pouw_relay_rate_limited_peers',
    'Connected peers with strikes not yet forgiven',
    source.rateLimitedPeers,
  );
  simpleGauge(registry, 'pouw_relay_banned_peers', 'Peers serving a ban', source.bannedPeers);
  simpleGauge(registry, 'pouw_relay_gossip_topics', 'Gossip topics followed', source.gossipTopics);
  simpleGauge(registry, 'pouw_relay_gossip_peers', 'Peers speaking gossipsub', source.gossipPeers);
  simpleGauge(
    registry,
    'pouw_relay_gossip_accepted',
    'Gossip messages accepted for forwarding since start',
    source.gossipAccepted,
  );
  simpleGauge(registry, 'pouw_relay_uptime_seconds', 'Seconds since the relay started', source.uptimeSeconds);
  gauge(registry, 'pouw_relay_limit', 'Configured limits', ['limit'], (g) => {
    for (const [limit, value] of Object.entries(source.limits())) g.set({ limit }, value);
  });

  return {
    registry,
    counters: {
      drop: (reason: DropReason) => drops.inc({ reason }),
      disconnect: () => disconnects.inc(),
      relayedBytes: (direction, bytes) => relayedBytes.inc({ direction }, bytes),
      circuitOpened: () => circuitsOpened.inc(),
    },
  };
}

function gauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: (g: Gauge<string>) => void,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      read(this);
    },
  });
}

function simpleGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

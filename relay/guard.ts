/**
 * The relay's enforcement point in libp2p. Three hooks, each counting what it refuses by a typed
 * `DropReason`:
 * - a connection gater: total, per-IP and per-peer connection caps, bans, the reservation table
 *   (total and per IP) and relayed connections (total and per peer);
 * - a guarded stream muxer: each inbound stream, whatever its protocol, takes a token from its
 *   peer's bucket before protocol negotiation (a flooding peer empties only its own bucket);
 * - middleware on the circuit STOP streams, plus a listener on HOP streams: open circuits and the
 *   bytes relayed in each direction.
 * The decisions themselves live in the pure `PeerLimiter`; this file wires them to libp2p.
 */
import { RELAY_V2_HOP_CODEC, RELAY_V2_STOP_CODEC } from '@libp2p/circuit-relay-v2';
import type {
  Connection,
  ConnectionGater,
  MultiaddrConnection,
  PeerId,
  Stream,
  StreamHandler,
  StreamHandlerOptions,
  StreamMiddleware,
  StreamMuxer,
  StreamMuxerFactory,
} from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { RelayConfig } from './config.ts';
import { RelayError } from './errors.ts';
import type { DropReason, PeerLimiter } from './limits.ts';
import type { Logger } from './log.ts';

/** What the guard needs of the running node (a `Libp2p` satisfies it). */
export interface NodeView {
  getConnections(peerId?: PeerId): Connection[];
  hangUp(peer: PeerId): Promise<void>;
}

/** What the guard needs of the circuit relay server. */
export interface ReservationView {
  reservations: { size: number; has(peer: PeerId): boolean; values(): Iterable<{ addr: Multiaddr }> };
}

/** Counters the guard feeds (prom-client metrics in production). */
export interface GuardCounters {
  drop(reason: DropReason): void;
  disconnect(): void;
  relayedBytes(direction: 'to_destination' | 'to_source', bytes: number): void;
  circuitOpened(): void;
}

interface Admitted {
  ip: string;
  peer: string | undefined;
}

/** The IP address of a multiaddr, or '' for addresses without one. */
export function ipOf(addr: Multiaddr): string {
  for (const c of addr.getComponents()) {
    if ((c.name === 'ip4' || c.name === 'ip6') && c.value !== undefined) return c.value;
  }
  return '';
}

function isOpen(s: Stream): boolean {
  return s.status === 'open';
}

export class RelayGuard {
  /** Inbound raw connections admitted and not yet closed (handshakes included). */
  private readonly admitted = new Map<MultiaddrConnection, Admitted>();
  private readonly perIp = new Map<string, number>();
  private node: NodeView | undefined;
  private relay: ReservationView | undefined;
  private openCircuits = 0;
  private muxerAwaitingPeer: StreamMuxer | undefined;
  private readonly muxerPeers = new WeakMap<StreamMuxer, PeerId>();
  private readonly anonymousKeys = new WeakMap<StreamMuxer, string>();
  private anonymousCount = 0;

  constructor(
    private readonly config: RelayConfig,
    readonly limiter: PeerLimiter,
    private readonly counters: GuardCounters,
    private readonly log: Logger,
  ) {}

  /** The node and relay service exist only after the guard's hooks went into their config. */
  attach(node: NodeView, relay: ReservationView): void {
    this.node = node;
    this.relay = relay;
  }

  inboundConnectionCount(): number {
    return this.admitted.size;
  }

  circuitCount(): number {
    return this.openCircuits;
  }

  /** Counts a drop and, for a peer past its strikes, hangs up on it. */
  drop(peer: PeerId | undefined, reason: DropReason): void {
    this.counters.drop(reason);
    const id = peer?.toString();
    const action = this.limiter.record(id, reason);
    this.log.debug('dropped', { peer: id, reason });
    if (action === 'disconnect' && peer !== undefined) {
      this.counters.disconnect();
      this.log.warn('peer disconnected and banned', {
        peer: id,
        reason,
        strikes: this.limiter.limits.strikesBeforeDisconnect,
        banMs: this.limiter.limits.banMs,
      });
      this.node?.hangUp(peer).catch((e: unknown) => this.log.debug('hang up failed', { peer: id, error: e }));
    }
  }

  gater(): ConnectionGater {
    const c = this.config;
    return {
      // The relay answers; it never dials anyone.
      denyDialMultiaddr: () => true,
      denyInboundConnection: (maConn) => {
        if (maConn.status !== 'open') return true;
        const ip = ipOf(maConn.remoteAddr);
        if (this.admitted.size >= c.connections.max) return this.refuse(undefined, 'connections_total');
        if ((this.perIp.get(ip) ?? 0) >= c.connections.perIp)
          return this.refuse(undefined, 'connections_per_ip');
        this.admitted.set(maConn, { ip, peer: undefined });
        this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
        maConn.addEventListener('close', () => this.release(maConn), { once: true });
        return false;
      },
      denyInboundEncryptedConnection: (peerId, maConn) => {
        const peer = peerId.toString();
        if (this.limiter.isBanned(peer)) return this.refuse(peerId, 'banned');
        let held = 0;
        for (const [m, a] of this.admitted) if (a.peer === peer && m !== maConn) held++;
        if (held >= c.connections.perPeer) return this.refuse(peerId, 'connections_per_peer');
        const entry = this.admitted.get(maConn);
        if (entry !== undefined) entry.peer = peer;
        return false;
      },
      denyInboundUpgradedConnection: (peerId) => {
        if (this.muxerAwaitingPeer !== undefined) this.muxerPeers.set(this.muxerAwaitingPeer, peerId);
        this.muxerAwaitingPeer = undefined;
        return false;
      },
      denyInboundRelayReservation: (source) => {
        const relay = this.relay;
        if (relay === undefined || relay.reservations.has(source)) return false; // a refresh
        if (relay.reservations.size >= c.relay.maxReservations)
          return this.refuse(source, 'reservations_total');
        const ip = this.peerIp(source);
        let sameIp = 0;
        for (const r of relay.reservations.values()) if (ipOf(r.addr) === ip) sameIp++;
        if (sameIp >= c.relay.reservationsPerIp) return this.refuse(source, 'reservations_per_ip');
        return false;
      },
      denyOutboundRelayedConnection: (source, destination) => {
        if (this.openCircuits >= c.relay.maxCircuits) return this.refuse(source, 'circuits_total');
        // The source's own HOP request stream is open while this runs: it is not a circuit yet.
        if (this.circuitsOf(source) - 1 >= c.relay.circuitsPerPeer)
          return this.refuse(source, 'circuits_per_peer');
        if (this.circuitsOf(destination) >= c.relay.circuitsPerPeer) {
          return this.refuse(destination, 'circuits_destination_full');
        }
        return false;
      },
    };
  }

  /**
   * Wraps the stream muxer so every inbound stream, whatever its protocol (unknown ones included),
   * takes a token from its peer's bucket before libp2p negotiates a protocol for it. A refused
   * stream is reset and never reaches libp2p.
   */
  guardMuxer<C>(factory: (components: C) => StreamMuxerFactory): (components: C) => StreamMuxerFactory {
    return (components) => {
      const inner = factory(components);
      return {
        protocol: inner.protocol,
        createStreamMuxer: (stream) => {
          const muxer = inner.createStreamMuxer(stream);
          // libp2p calls `denyInboundUpgradedConnection` synchronously right after this: it names
          // the peer (see gater). Cleared after this tick so a change in that order cannot misname.
          this.muxerAwaitingPeer = muxer;
          queueMicrotask(() => {
            if (this.muxerAwaitingPeer === muxer) this.muxerAwaitingPeer = undefined;
          });
          return this.watchInboundStreams(muxer);
        },
      };
    };
  }

  /**
   * Our 'stream' listener must run before the connection's, and must not be added earlier than
   * the connection's (the muxer buffers streams that arrive while nobody listens): it is added
   * when the connection adds its own, first.
   */
  private watchInboundStreams(muxer: StreamMuxer): StreamMuxer {
    let watching = false;
    const onStream = (e: CustomEvent<Stream>) => {
      const key = this.muxerPeers.get(muxer)?.toString() ?? this.anonymousKey(muxer);
      const reason = this.limiter.admitStream(key);
      if (reason === undefined) return;
      e.stopImmediatePropagation();
      e.detail.abort(new RelayError('RELAY_LIMITED', reason, 'IGNORE', { reason }));
      const peer = this.muxerPeers.get(muxer);
      if (peer !== undefined) {
        this.drop(peer, reason);
        return;
      }
      this.counters.drop(reason);
      if (this.limiter.record(key, reason) === 'disconnect') {
        this.counters.disconnect();
        muxer.abort(new RelayError('RELAY_LIMITED', `${reason}: connection closed`, 'REJECT', { reason }));
      }
    };
    return new Proxy(muxer, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop);
        if (prop === 'addEventListener') {
          return (type: string, ...rest: unknown[]) => {
            if (type === 'stream' && !watching) {
              watching = true;
              target.addEventListener('stream', onStream);
            }
            return (value as (...a: unknown[]) => void).call(target, type, ...rest);
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  private anonymousKey(muxer: StreamMuxer): string {
    let key = this.anonymousKeys.get(muxer);
    if (key === undefined) {
      key = `connection-${++this.anonymousCount}`;
      this.anonymousKeys.set(muxer, key);
    }
    return key;
  }

  /** Counts the bytes sources send into circuits (the HOP stream of a circuit carries them). */
  countHopBytes<C extends object, S>(factory: (components: C) => S): (components: C) => S {
    return (components) => {
      const registrar = (components as { registrar: { handle: RegistrarHandle } }).registrar;
      const counting = new Proxy(registrar, {
        get: (target, prop) => {
          if (prop === 'handle') {
            const handle: RegistrarHandle = (protocol, handler, options) =>
              target.handle(
                protocol,
                protocol !== RELAY_V2_HOP_CODEC
                  ? handler
                  : (stream, connection) => {
                      stream.addEventListener('message', (e) =>
                        this.counters.relayedBytes('to_destination', e.data.byteLength),
                      );
                      return handler(stream, connection);
                    },
                options,
              );
            return handle;
          }
          const value = Reflect.get(target, prop);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      return factory(
        new Proxy(components, { get: (t, p) => (p === 'registrar' ? counting : Reflect.get(t, p)) }),
      );
    };
  }

  /** Counts circuits and the bytes flowing from destinations back to sources. */
  stopStreamMiddleware(): StreamMiddleware {
    return (stream, connection, next) => {
      this.openCircuits++;
      this.counters.circuitOpened();
      stream.addEventListener('message', (e) => this.counters.relayedBytes('to_source', e.data.byteLength));
      stream.addEventListener('close', () => this.openCircuits--, { once: true });
      next(stream, connection);
    };
  }

  /** Circuits `peer` takes part in: HOP streams it opened and STOP streams to it. */
  private circuitsOf(peer: PeerId): number {
    let n = 0;
    for (const conn of this.node?.getConnections(peer) ?? []) {
      for (const s of conn.streams) {
        if (!isOpen(s)) continue;
        if (s.protocol === RELAY_V2_HOP_CODEC && s.direction === 'inbound') n++;
        else if (s.protocol === RELAY_V2_STOP_CODEC && s.direction === 'outbound') n++;
      }
    }
    return n;
  }

  private peerIp(peer: PeerId): string {
    const conn = this.node?.getConnections(peer)[0];
    return conn === undefined ? '' : ipOf(conn.remoteAddr);
  }

  private refuse(peer: PeerId | undefined, reason: DropReason): true {
    this.drop(peer, reason);
    return true;
  }

  private release(maConn: MultiaddrConnection): void {
    const entry = this.admitted.get(maConn);
    if (entry === undefined) return;
    this.admitted.delete(maConn);
    const left = (this.perIp.get(entry.ip) ?? 1) - 1;
    if (left <= 0) this.perIp.delete(entry.ip);
    else this.perIp.set(entry.ip, left);
  }
}

type RegistrarHandle = (
  protocol: string,
  handler: StreamHandler,
  options?: StreamHandlerOptions,
) => Promise<void>;

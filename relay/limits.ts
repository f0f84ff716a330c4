/**
 * Per-peer limits of the relay as a small pure core: token buckets for inbound streams and gossip
 * (messages and bytes), a decaying strike count per peer, temporary bans, and drop counters by typed
 * reason. Time comes in through `now()` (ms), so tests drive it with a virtual clock; the libp2p
 * adapter (`guard.ts`) asks before admitting a stream or a message and acts on the answer.
 *
 * Policy: each peer has its own buckets, so a flooding peer only empties its own; a drop that is the
 * peer's fault adds a strike; strikes decay over time; a peer reaching `strikesBeforeDisconnect` is
 * disconnected and banned for `banMs`. Capacity refusals (the relay is full) are counted but are no
 * peer's fault and add no strike.
 */

/** Why something from a peer was dropped or refused. Stable: these are metric label values. */
export type DropReason =
  /** An inbound stream over the peer's stream rate. */
  | 'stream_rate'
  /** A gossip message over the peer's message rate. */
  | 'gossip_rate'
  /** A gossip message over the peer's byte rate. */
  | 'gossip_bytes_rate'
  /** A gossip message larger than the relay's `gossip.maxMessageBytes` (at most MAX_GOSSIP_BYTES). */
  | 'gossip_oversized'
  /** A relayed connection beyond the per-peer bound (as source or destination). */
  | 'circuits_per_peer'
  /** A relayed connection refused because its destination is at the per-peer bound (no strike). */
  | 'circuits_destination_full'
  /** A relayed connection refused because the relay carries its maximum. */
  | 'circuits_total'
  /** A reservation refused because the reservation table is full. */
  | 'reservations_total'
  /** A reservation refused because the peer's IP address holds its maximum. */
  | 'reservations_per_ip'
  /** An inbound connection refused at the total cap. */
  | 'connections_total'
  /** An inbound connection refused at the per-IP cap. */
  | 'connections_per_ip'
  /** An inbound connection refused at the per-peer cap. */
  | 'connections_per_peer'
  /** An inbound connection from a peer serving a ban. */
  | 'banned';

export const DROP_REASONS: readonly DropReason[] = [
  'stream_rate',
  'gossip_rate',
  'gossip_bytes_rate',
  'gossip_oversized',
  'circuits_per_peer',
  'circuits_destination_full',
  'circuits_total',
  'reservations_total',
  'reservations_per_ip',
  'connections_total',
  'connections_per_ip',
  'connections_per_peer',
  'banned',
];

/** Drops that are the peer's own doing: they add a strike. */
const PEER_FAULTS: ReadonlySet<DropReason> = new Set<DropReason>([
  'stream_rate',
  'gossip_rate',
  'gossip_bytes_rate',
  'gossip_oversized',
  'circuits_per_peer',
]);

export function isPeerFault(reason: DropReason): boolean {
  return PEER_FAULTS.has(reason);
}

export interface RateLimits {
  /** Sustained inbound streams per second per peer, and the burst allowed above it. */
  streamsPerSecond: number;
  streamBurst: number;
  /** Sustained gossip messages per second per peer, and the burst. */
  gossipMessagesPerSecond: number;
  gossipMessageBurst: number;
  /** Sustained gossip bytes per second per peer, and the burst (at least one largest message). */
  gossipBytesPerSecond: number;
  gossipBytesBurst: number;
  /** Strikes at which a peer is disconnected and banned. */
  strikesBeforeDisconnect: number;
  /** Strikes forgiven per second. */
  strikeDecayPerSecond: number;
  /** How long a disconnected offender is refused. */
  banMs: number;
}

/** A token bucket: `capacity` tokens, refilled at `ratePerSecond`, starting full. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly capacity: number,
    private readonly ratePerSecond: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  /** Takes `n` tokens if there are that many; a refusal takes none. */
  take(now: number, n = 1): boolean {
    this.refill(now);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.capacity, this.tokens + elapsed * this.ratePerSecond);
  }
}

/** A count that leaks away at a fixed rate (strikes are forgiven over time). */
class LeakyCount {
  private value = 0;
  private last: number;

  constructor(
    private readonly leakPerSecond: number,
    now: number,
  ) {
    this.last = now;
  }

  add(now: number, n: number): number {
    this.value = this.current(now) + n;
    return this.value;
  }

  current(now: number): number {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.value = Math.max(0, this.value - elapsed * this.leakPerSecond);
    return this.value;
  }
}

interface PeerState {
  streams: TokenBucket;
  gossipMessages: TokenBucket;
  gossipBytes: TokenBucket;
  strikes: LeakyCount;
  drops: Map<DropReason, number>;
  disconnects: number;
}

export interface PeerDropReport {
  peer: string;
  drops: Partial<Record<DropReason, number>>;
  total: number;
  disconnects: number;
  connected: boolean;
}

/** What the adapter must do after a drop. */
export type DropAction = 'none' | 'disconnect';

/** How many departed offenders /health still lists. */
const REMEMBERED_OFFENDERS = 64;
/** Bans held at once; the oldest is forgotten first (a flood of fresh identities cannot grow it). */
const MAX_BANS = 4096;

export class PeerLimiter {
  private readonly peers = new Map<string, PeerState>();
  /** Departed peers that had drops, most recent last, for reporting only. */
  private readonly offenders = new Map<string, PeerDropReport>();
  private readonly bans = new Map<string, number>();
  private readonly totals = new Map<DropReason, number>();
  private disconnectCount = 0;

  constructor(
    readonly limits: RateLimits,
    private readonly now: () => number,
  ) {}

  /** Admits one inbound stream from `peer`, or records a `stream_rate` drop. */
  admitStream(peer: string): DropReason | undefined {
    return this.state(peer).streams.take(this.now()) ? undefined : 'stream_rate';
  }

  /** Admits one gossip message of `bytes` from `peer` (its propagation source). */
  admitGossip(peer: string, bytes: number): DropReason | undefined {
    const s = this.state(peer);
    const t = this.now();
    // Check bytes first without spending a message token on a message that is refused anyway.
    if (s.gossipBytes.available(t) < bytes) return 'gossip_bytes_rate';
    if (!s.gossipMessages.take(t)) return 'gossip_rate';
    s.gossipBytes.take(t, bytes);
    return undefined;
  }

  /**
   * Counts a drop. `peer` is undefined where the peer is not known yet (refused before encryption).
   * Returns 'disconnect' when the peer's strikes reached the limit: the caller hangs up, and the
   * peer is banned from now on.
   */
  record(peer: string | undefined, reason: DropReason): DropAction {
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + 1);
    if (peer === undefined) return 'none';
    const s = this.peers.get(peer);
    if (s === undefined) {
      this.remember(peer, reason);
      return 'none';
    }
    s.drops.set(reason, (s.drops.get(reason) ?? 0) + 1);
    if (!isPeerFault(reason)) return 'none';
    const strikes = s.strikes.add(this.now(), 1);
    if (strikes < this.limits.strikesBeforeDisconnect) return 'none';
    s.disconnects++;
    this.disconnectCount++;
    this.ban(peer);
    return 'disconnect';
  }

  isBanned(peer: string): boolean {
    const until = this.bans.get(peer);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.bans.delete(peer);
    return false;
  }

  /** The peer left: its buckets go; its drop counts move to the reported offenders. */
  forget(peer: string): void {
    const s = this.peers.get(peer);
    if (s === undefined) return;
    this.peers.delete(peer);
    if (s.drops.size > 0) this.keepOffender(this.report(peer, s, false));
  }

  /** Peers whose strikes have not decayed to zero yet. */
  limitedPeerCount(): number {
    const t = this.now();
    let n = 0;
    for (const s of this.peers.values()) if (s.strikes.current(t) > 0) n++;
    return n;
  }

  bannedPeerCount(): number {
    const t = this.now();
    for (const [peer, until] of this.bans) if (until <= t) this.bans.delete(peer);
    return this.bans.size;
  }

  dropTotals(): Partial<Record<DropReason, number>> {
    return Object.fromEntries(this.totals);
  }

  disconnects(): number {
    return this.disconnectCount;
  }

  strikes(peer: string): number {
    return this.peers.get(peer)?.strikes.current(this.now()) ?? 0;
  }

  /** The peers with the most drops, connected ones and recently departed ones. */
  topOffenders(limit: number): PeerDropReport[] {
    const reports = [...this.offenders.values()];
    for (const [peer, s] of this.peers) if (s.drops.size > 0) reports.push(this.report(peer, s, true));
    return reports.sort((a, b) => b.total - a.total).slice(0, limit);
  }

  private state(peer: string): PeerState {
    let s = this.peers.get(peer);
    if (s === undefined) {
      const t = this.now();
      const l = this.limits;
      s = {
        streams: new TokenBucket(l.streamBurst, l.streamsPerSecond, t),
        gossipMessages: new TokenBucket(l.gossipMessageBurst, l.gossipMessagesPerSecond, t),
        gossipBytes: new TokenBucket(l.gossipBytesBurst, l.gossipBytesPerSecond, t),
        strikes: new LeakyCount(l.strikeDecayPerSecond, t),
        drops: this.offenders.has(peer) ? this.revive(peer) : new Map(),
        disconnects: this.offenders.get(peer)?.disconnects ?? 0,
      };
      this.offenders.delete(peer);
      this.peers.set(peer, s);
    }
    return s;
  }

  /** A returning offender keeps its history. */
  private revive(peer: string): Map<DropReason, number> {
    const r = this.offenders.get(peer)!;
    return new Map(Object.entries(r.drops) as [DropReason, number][]);
  }

  private remember(peer: string, reason: DropReason): void {
    const r = this.offenders.get(peer) ?? { peer, drops: {}, total: 0, disconnects: 0, connected: false };
    r.drops[reason] = (r.drops[reason] ?? 0) + 1;
    r.total++;
    this.keepOffender(r);
  }

  private keepOffender(r: PeerDropReport): void {
    this.offenders.delete(r.peer);
    this.offenders.set(r.peer, r);
    while (this.offenders.size > REMEMBERED_OFFENDERS) {
      this.offenders.delete(this.offenders.keys().next().value!);
    }
  }

  private ban(peer: string): void {
    this.bans.delete(peer);
    this.bans.set(peer, this.now() + this.limits.banMs);
    while (this.bans.size > MAX_BANS) this.bans.delete(this.bans.keys().next().value!);
  }

  private report(peer: string, s: PeerState, connected: boolean): PeerDropReport {
    let total = 0;
    for (const n of s.drops.values()) total += n;
    return { peer, drops: Object.fromEntries(s.drops), total, disconnects: s.disconnects, connected };
  }
}

/**
 * An in-memory IT_RES bus for miner simulations: deterministic (seeded delays and duplicates,
 * delivery order fixed by (due tick, send order)), bounded (per-member in-flight cap, oldest dropped),
 * and a real wire: messages are SSZ-encoded on publish and decoded per delivery, so members never
 * share objects and the byte counts are what gossip would carry. No timers: the driver calls tick().
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../../shared/bytes.ts';
import { isPouwError } from '../../shared/errors.ts';
import { SeededStream } from '../../shared/pouw/init.ts';
import type { ItRes } from '../../shared/pouw/itres.ts';
import { ItRes as ItResCodec } from '../../shared/pouw/itres.ts';
import type { ItResTransport } from '../../shared/pouw/miner.ts';

export interface BusOptions {
  /** Seed of delays and duplicates. */
  seed?: string;
  /** Each delivery is delayed by a uniform number of ticks in [minDelay, maxDelay] (default 0..0). */
  minDelay?: number;
  maxDelay?: number;
  /** Probability that a delivery is sent twice (the copy gets its own delay). */
  duplicateRate?: number;
  /** In-flight deliveries per member at most; beyond it the oldest is dropped (default 1024). */
  capacity?: number;
}

export interface BusStats {
  published: number;
  delivered: number;
  duplicated: number;
  dropped: number;
  /** Receivers that threw (typed rejections), by error code. */
  rejected: Record<string, number>;
  /** Encoded bytes published (once per message, as one gossip publish). */
  bytes: number;
  /** Map entries published. */
  mapEntries: number;
}

interface Delivery {
  due: number;
  seq: number;
  bytes: Uint8Array;
}

interface Member {
  name: string;
  receive: (msg: ItRes) => Promise<unknown>;
  inbox: Delivery[];
}

export class ItResBus {
  private readonly members: Member[] = [];
  private readonly rng: SeededStream;
  private readonly opts: Required<BusOptions>;
  private now = 0;
  private seq = 0;
  readonly stats: BusStats = {
    published: 0,
    delivered: 0,
    duplicated: 0,
    dropped: 0,
    rejected: {},
    bytes: 0,
    mapEntries: 0,
  };

  constructor(opts: BusOptions = {}) {
    this.opts = {
      seed: opts.seed ?? 'bus',
      minDelay: opts.minDelay ?? 0,
      maxDelay: opts.maxDelay ?? opts.minDelay ?? 0,
      duplicateRate: opts.duplicateRate ?? 0,
      capacity: opts.capacity ?? 1024,
    };
    if (this.opts.maxDelay < this.opts.minDelay) throw new RangeError('maxDelay < minDelay');
    this.rng = new SeededStream(sha256(utf8(this.opts.seed)));
  }

  /** Adds a member; returns its transport (a member does not receive its own messages). */
  join(name: string, receive: (msg: ItRes) => Promise<unknown>): ItResTransport {
    const member: Member = { name, receive, inbox: [] };
    this.members.push(member);
    return { broadcast: (msg) => this.publish(member, msg) };
  }

  get tickCount(): number {
    return this.now;
  }

  /** Messages still in flight. */
  get inFlight(): number {
    return this.members.reduce((s, m) => s + m.inbox.length, 0);
  }

  private random(): number {
    return this.rng.nextUint32() / 2 ** 32;
  }

  private delay(): number {
    const span = this.opts.maxDelay - this.opts.minDelay;
    return this.opts.minDelay + (span === 0 ? 0 : Math.floor(this.random() * (span + 1)));
  }

  private publish(from: Member, msg: ItRes): void {
    const bytes = ItResCodec.encode(msg);
    this.stats.published++;
    this.stats.bytes += bytes.length;
    this.stats.mapEntries += msg.body.map.length;
    for (const to of this.members) {
      if (to === from) continue;
      this.enqueue(to, bytes);
      if (this.opts.duplicateRate > 0 && this.random() < this.opts.duplicateRate) {
        this.stats.duplicated++;
        this.enqueue(to, bytes);
      }
    }
  }

  private enqueue(to: Member, bytes: Uint8Array): void {
    to.inbox.push({ due: this.now + this.delay(), seq: this.seq++, bytes });
    while (to.inbox.length > this.opts.capacity) {
      // Bounded: the oldest delivery goes.
      let oldest = 0;
      for (let i = 1; i < to.inbox.length; i++) if (to.inbox[i]!.seq < to.inbox[oldest]!.seq) oldest = i;
      to.inbox.splice(oldest, 1);
      this.stats.dropped++;
    }
  }

  /**
   * Advances the clock by one tick and delivers everything due, member by member in join order,
   * each inbox in (due, send) order; waits for every receiver.
   */
  async tick(): Promise<void> {
    this.now++;
    await this.deliverDue();
  }

  /** Delivers everything in flight regardless of delay. */
  async flush(): Promise<void> {
    while (this.inFlight > 0) {
      this.now = Math.max(this.now, ...this.members.flatMap((m) => m.inbox.map((d) => d.due)));
      await this.deliverDue();
    }
  }

  private async deliverDue(): Promise<void> {
    for (const m of this.members) {
      const due = m.inbox.filter((d) => d.due <= this.now).sort((a, b) => a.due - b.due || a.seq - b.seq);
      if (due.length === 0) continue;
      m.inbox = m.inbox.filter((d) => d.due > this.now);
      for (const d of due) {
        this.stats.delivered++;
        try {
          await m.receive(ItResCodec.decode(d.bytes));
        } catch (e) {
          if (!isPouwError(e)) throw e;
          this.stats.rejected[e.code] = (this.stats.rejected[e.code] ?? 0) + 1;
        }
      }
    }
  }
}

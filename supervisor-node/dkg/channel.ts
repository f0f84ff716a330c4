/**
 * The DKG's view of the network: authenticated point-to-point messages between committee members,
 * addressed by committee index (1..n). A channel says who sent a message because the transport
 * proved it (the libp2p channel matches the Noise-authenticated peer id against the committee's
 * node keys); the DKG additionally signs what it authors, so relayed messages stay attributable.
 *
 * `send` never blocks and never fails: a channel keeps retrying delivery (dialing with backoff
 * while a peer comes up, resending after a broken stream) until it is closed, because the DKG's
 * reliable broadcast only needs every message between two live honest parties to arrive
 * eventually, not promptly. Receivers must therefore treat repeats as harmless (they are).
 *
 * `incoming` is one bounded queue with a per-sender cap: a flood from one member is dropped
 * (counted in `dropped`) without crowding out the others.
 */

export interface DkgIncoming {
  /** Committee index of the authenticated sender (never this party's own). */
  fromIndex: number;
  bytes: Uint8Array;
}

export interface DkgChannel {
  /** This party's committee index. */
  readonly self: number;
  /** Committee size. */
  readonly n: number;
  /** Queues `bytes` for member `toIndex` (≠ self); delivery is retried until close. */
  send(toIndex: number, bytes: Uint8Array): void;
  /** Messages from other members, in arrival order; ends when the channel closes. Single consumer. */
  readonly incoming: AsyncIterable<DkgIncoming>;
  /** Messages dropped at the per-sender cap, by sender index. */
  dropped(): ReadonlyMap<number, number>;
  close(): Promise<void>;
}

/** Default cap on queued, unread messages per sender (a whole DKG run is a few hundred per sender). */
export const DEFAULT_MAX_QUEUED_PER_SENDER = 4096;

/** Incoming queue: FIFO, per-sender cap with drop-newest, one async consumer. */
export class IncomingQueue implements AsyncIterable<DkgIncoming> {
  private readonly items: DkgIncoming[] = [];
  private head = 0;
  private readonly perSender = new Map<number, number>();
  private readonly drops = new Map<number, number>();
  private waiter: ((r: IteratorResult<DkgIncoming>) => void) | null = null;
  private closed = false;

  constructor(private readonly maxPerSender: number = DEFAULT_MAX_QUEUED_PER_SENDER) {}

  /** False when the message was dropped (sender over its cap, or queue closed). */
  push(item: DkgIncoming): boolean {
    if (this.closed) return false;
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: item, done: false });
      return true;
    }
    const queued = this.perSender.get(item.fromIndex) ?? 0;
    if (queued >= this.maxPerSender) {
      this.drops.set(item.fromIndex, (this.drops.get(item.fromIndex) ?? 0) + 1);
      return false;
    }
    this.perSender.set(item.fromIndex, queued + 1);
    this.items.push(item);
    return true;
  }

  dropped(): ReadonlyMap<number, number> {
    return new Map(this.drops);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.items.length = 0;
    this.head = 0;
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<DkgIncoming>> {
    if (this.head < this.items.length) {
      const item = this.items[this.head++]!;
      this.perSender.set(item.fromIndex, (this.perSender.get(item.fromIndex) ?? 1) - 1);
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      return Promise.resolve({ value: item, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter !== null) throw new Error('IncomingQueue has a single consumer');
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<DkgIncoming> {
    return {
      next: () => this.next(),
      // A consumer that stops early releases its pending read, so a later consumer can take over.
      return: () => {
        this.release();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private release(): void {
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: undefined, done: true });
    }
  }
}

/** Rewrites what member `from` sends to `to`: a list of frames to deliver instead (empty drops it). */
export type Interceptor = (from: number, to: number, bytes: Uint8Array) => readonly Uint8Array[];

export interface MemoryNetworkOptions {
  /** Faults for tests: Byzantine members' outgoing frames are rewritten here. */
  intercept?: Interceptor;
  /** Delivery delay in ms per (from, to); default 0 (next macrotask). */
  delayMs?: (from: number, to: number) => number;
  maxQueuedPerSender?: number;
}

/**
 * In-memory channels for n members: what one sends arrives at the other's queue after the
 * configured delay (as a macrotask, never re-entrantly). Members that have not started reading yet
 * simply find the messages queued, which is how a late joiner looks on this network.
 */
export class MemoryNetwork {
  private readonly queues: IncomingQueue[] = [];
  private readonly closedMembers = new Set<number>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** Frames handed to the network, by sender (after interception). */
  readonly sentCount = new Map<number, number>();

  constructor(
    readonly n: number,
    private readonly options: MemoryNetworkOptions = {},
  ) {
    for (let i = 0; i < n; i++) this.queues.push(new IncomingQueue(options.maxQueuedPerSender));
  }

  channel(self: number): DkgChannel {
    if (!Number.isInteger(self) || self < 1 || self > this.n) throw new RangeError(`no member ${self}`);
    const queue = this.queues[self - 1]!;
    return {
      self,
      n: this.n,
      send: (to, bytes) => this.deliver(self, to, bytes),
      incoming: queue,
      dropped: () => queue.dropped(),
      close: async () => {
        this.closedMembers.add(self);
        queue.close();
      },
    };
  }

  /** Stops every pending delivery (test teardown). */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const q of this.queues) q.close();
  }

  private deliver(from: number, to: number, bytes: Uint8Array): void {
    if (this.closedMembers.has(from)) return;
    if (!Number.isInteger(to) || to < 1 || to > this.n || to === from) {
      throw new RangeError(`member ${from} cannot send to ${to}`);
    }
    const frames = this.options.intercept ? this.options.intercept(from, to, bytes) : [bytes];
    for (const frame of frames) {
      this.sentCount.set(from, (this.sentCount.get(from) ?? 0) + 1);
      const copy = frame.slice();
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.queues[to - 1]!.push({ fromIndex: from, bytes: copy });
      }, this.options.delayMs?.(from, to) ?? 0);
      this.timers.add(timer);
    }
  }
}

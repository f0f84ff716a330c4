/**
 * Gap filling for a task's message history. Gossip may drop or reorder IT_RES; the history parks a
 * message until its predecessor and the peer messages it lists are recorded (shared/pouw/history.ts),
 * and without help it would wait until gossip happened to deliver them, if ever, while proposals
 * naming later messages are refused here. The filler asks the other committee members for what is
 * missing: peer messages by id (`wanted()`), a member's own missing iterations by (miner, iteration)
 * (`gaps()`, whose ids cannot be known). One round runs at a time, shortly after a message parks and
 * then again while anything stays parked, backing off while rounds bring nothing.
 */
import { bytesToHex, hexToBytes } from '../shared/bytes.ts';
import { MAX_HISTORY_IDS } from '../shared/net/messages.ts';
import type { TaskHistory } from '../shared/pouw/history.ts';
import { type ItRes, itResId } from '../shared/pouw/itres.ts';

/** A history request to one member: by ids, or a member's iterations from a number. */
export type GapQuery =
  | { kind: 'ids'; ids: Uint8Array[] }
  | { kind: 'iterations'; miner: Uint8Array; fromIteration: number; count: number };

export interface GapFillerOptions {
  chainId: string;
  /** The task history now supervised (undefined while none is). */
  history: () => TaskHistory | undefined;
  /** The other members to ask, in the order to ask them. */
  peers: () => readonly string[];
  /** One request to one member; throws when it fails or times out. */
  ask: (peer: string, query: GapQuery) => Promise<ItRes[]>;
  log?: (event: string, fields: Record<string, unknown>) => void;
  /** Delay after a message parks before the first round (gossip may still bring it). */
  firstDelayMs?: number;
  /** Delay between rounds while messages stay parked; doubles up to maxDelayMs without progress. */
  retryMs?: number;
  maxDelayMs?: number;
}

export class GapFiller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private delay: number;
  private readonly firstDelay: number;
  private readonly retry: number;
  private readonly maxDelay: number;
  /** Messages recorded by filling, in all (for logs and tests). */
  fetched = 0;
  rounds = 0;

  constructor(private readonly opts: GapFillerOptions) {
    this.firstDelay = opts.firstDelayMs ?? 300;
    this.retry = opts.retryMs ?? 1000;
    this.maxDelay = opts.maxDelayMs ?? 10_000;
    this.delay = this.retry;
  }

  /** A message was parked: make sure a round is coming. */
  poke(): void {
    if (this.stopped || this.timer !== undefined || this.running !== undefined) return;
    this.schedule(this.firstDelay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.round()
        .then(() => {})
        .catch((e: unknown) => this.opts.log?.('gap-fill-failed', { error: String(e) }))
        .finally(() => {
          this.running = undefined;
          const h = this.opts.history();
          if (!this.stopped && h !== undefined && h.usage().parked > 0) this.schedule(this.delay);
        });
    }, ms);
    this.timer.unref?.();
  }

  /** One round: every missing peer id and every gap, asked of each member until found. */
  async round(): Promise<number> {
    const h = this.opts.history();
    if (h === undefined) return 0;
    this.rounds++;
    let recorded = 0;
    const offer = async (msgs: ItRes[]) => {
      for (const m of msgs) {
        const r = await h.offer(m);
        // A fetched message may park in turn and be released by the next one: count both.
        recorded += [r, ...r.released].filter((o) => o.verdict === 'ACCEPT').length;
      }
    };
    const peers = this.opts.peers();

    await offer(await fetchByIds(this.opts.chainId, peers, this.opts.ask, h.wanted()));

    for (const gap of h.gaps()) {
      const miner = hexToBytes(gap.miner);
      let from = gap.fromIteration;
      const end = gap.fromIteration + gap.count;
      for (const peer of peers) {
        // One member may hold part of the range; the next one is asked from where it stopped.
        while (from < end) {
          const count = Math.min(end - from, MAX_HISTORY_IDS);
          const got = (
            await this.tryAsk(peer, { kind: 'iterations', miner, fromIteration: from, count })
          ).filter((m) => bytesToHex(m.body.miner) === gap.miner && m.body.iteration >= from);
          if (got.length === 0) break;
          await offer(got);
          from = Math.max(from, ...got.map((m) => m.body.iteration + 1));
        }
        if (from >= end) break;
      }
    }

    this.fetched += recorded;
    this.delay = recorded > 0 ? this.retry : Math.min(this.maxDelay, this.delay * 2);
    if (recorded > 0 || h.usage().parked > 0)
      this.opts.log?.('gap-fill', { recorded, parked: h.usage().parked, rounds: this.rounds });
    return recorded;
  }

  private async tryAsk(peer: string, query: GapQuery): Promise<ItRes[]> {
    try {
      return await this.opts.ask(peer, query);
    } catch {
      // Unreachable or slow: the next member is asked.
      return [];
    }
  }
}

/**
 * The IT_RES with the given ids (hex), asked of one member after the other, each for what is still
 * missing (at most MAX_HISTORY_IDS a request), until all are found or every member was asked. A
 * member that fails or times out is skipped. Only messages with a requested id are returned.
 */
export async function fetchByIds(
  chainId: string,
  peers: readonly string[],
  ask: (peer: string, query: GapQuery) => Promise<ItRes[]>,
  idsHex: readonly string[],
): Promise<ItRes[]> {
  const out: ItRes[] = [];
  const want = new Set(idsHex);
  for (const peer of peers) {
    if (want.size === 0) break;
    const ids = [...want].slice(0, MAX_HISTORY_IDS).map((x) => hexToBytes(x));
    try {
      for (const m of await ask(peer, { kind: 'ids', ids }))
        if (want.delete(bytesToHex(itResId(chainId, m.body)))) out.push(m);
    } catch {
      // Ask the next member.
    }
  }
  return out;
}

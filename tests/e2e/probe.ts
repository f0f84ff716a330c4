/**
 * Reads a running network through the supervisors' own request/response protocols, as any client
 * would (a libp2p node of its own): status (finalized tip), finalized blocks with certificates, and
 * the recorded message history (IT_RES ids and bodies). Used by the end-to-end orchestrator and
 * bench/network.ts; every request is bounded.
 */
import { join } from 'node:path';
import { ChainStore } from '../../node-common/chain-store.ts';
import { createNode, multiaddr, type PouwNode } from '../../node-common/p2p.ts';
import type { SupervisorInfo } from '../../scripts/network.ts';
import { bytesToHex } from '../../shared/bytes.ts';
import { blockHash } from '../../shared/chain/ids.ts';
import type { Block } from '../../shared/chain/types.ts';
import { isPouwError } from '../../shared/errors.ts';
import {
  BlockRequest,
  FinalizedBlock,
  HistoryRequest,
  HistoryResponse,
  MAX_HISTORY_ID_PAGE,
  MAX_HISTORY_IDS,
  StatusRequest,
  StatusResponse,
} from '../../shared/net/messages.ts';
import { type ItRes, ItRes as ItResCodec, itResId as itResIdOf } from '../../shared/pouw/itres.ts';

const TIMEOUT_MS = 5000;
const REQUEST_ATTEMPTS = 3;

export class NetworkProbe {
  readonly node: PouwNode;
  readonly supervisors: SupervisorInfo[];
  readonly chainId: string;

  private constructor(node: PouwNode, supervisors: SupervisorInfo[], chainId: string) {
    this.node = node;
    this.supervisors = supervisors;
    this.chainId = chainId;
  }

  static async start(host: string, supervisors: SupervisorInfo[], chainId: string): Promise<NetworkProbe> {
    const node = await createNode({
      nodeKeySeed: crypto.getRandomValues(new Uint8Array(32)),
      listen: [`/ip4/${host}/tcp/0`],
    });
    return new NetworkProbe(node, supervisors, chainId);
  }

  /** Per-request bound (ms); raise it for big answers from a busy supervisor. */
  timeoutMs = TIMEOUT_MS;

  async #request(
    member: number,
    name: 'status' | 'block' | 'history',
    body: Uint8Array,
  ): Promise<Uint8Array> {
    // A busy supervisor may reset a stream or drop the connection: a read is retried, bounded.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.node.request(multiaddr(this.supervisors[member]!.tcp), name, body, {
          timeoutMs: this.timeoutMs,
        });
      } catch (e) {
        const transient = isPouwError(e) && ['NET_CLOSED', 'NET_TIMEOUT', 'NET_UNAVAILABLE'].includes(e.code);
        if (!transient || attempt >= REQUEST_ATTEMPTS) throw e;
        await new Promise((r) => setTimeout(r, 300 * attempt));
      }
    }
  }

  async status(member: number): Promise<StatusResponse> {
    return StatusResponse.decode(
      await this.#request(member, 'status', StatusRequest.encode({ chainId: new Uint8Array(0) })),
    );
  }

  /** Finalized tips of every supervisor (undefined where it does not answer). */
  async tips(): Promise<(bigint | undefined)[]> {
    return Promise.all(
      this.supervisors.map((_, i) =>
        this.status(i).then(
          (s) => s.tipHeight,
          () => undefined,
        ),
      ),
    );
  }

  async block(member: number, height: bigint): Promise<FinalizedBlock> {
    return FinalizedBlock.decode(
      await this.#request(member, 'block', BlockRequest.encode({ height, hash: new Uint8Array(0) })),
    );
  }

  /** Block hashes at heights 0..upTo as `member` serves them. */
  async hashes(member: number, upTo: bigint): Promise<string[]> {
    const out: string[] = [];
    for (let h = 0n; h <= upTo; h++) {
      const b = await this.block(member, h);
      out.push(bytesToHex(blockHash(this.chainId, b.block.header)));
    }
    return out;
  }

  /** Finalized blocks 1..upTo from `member`. */
  async blocks(member: number, upTo: bigint): Promise<Block[]> {
    const out: Block[] = [];
    for (let h = 1n; h <= upTo; h++) out.push((await this.block(member, h)).block);
    return out;
  }

  /** One page of recorded IT_RES ids from `fromIndex`, and how many are recorded in all. */
  async historyIds(member: number, fromIndex: number): Promise<{ ids: Uint8Array[]; total: number }> {
    const r = HistoryResponse.decode(
      await this.#request(
        member,
        'history',
        HistoryRequest.encode({
          ids: [],
          fromIndex: BigInt(fromIndex),
          count: MAX_HISTORY_ID_PAGE,
          miner: new Uint8Array(0),
          fromIteration: 0,
        }),
      ),
    );
    return { ids: r.ids, total: Number(r.total) };
  }

  /** The recorded IT_RES with these ids (in pages of MAX_HISTORY_IDS). */
  async historyMessages(member: number, ids: readonly Uint8Array[]): Promise<ItRes[]> {
    const out: ItRes[] = [];
    for (let i = 0; i < ids.length; i += MAX_HISTORY_IDS) {
      const r = HistoryResponse.decode(
        await this.#request(
          member,
          'history',
          HistoryRequest.encode({
            ids: ids.slice(i, i + MAX_HISTORY_IDS),
            fromIndex: 0n,
            count: 0,
            miner: new Uint8Array(0),
            fromIteration: 0,
          }),
        ),
      );
      out.push(...r.messages);
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.node.stop();
  }
}

/** A stopped supervisor's finalized chain, read from its LevelDB store: hash and certificate per height. */
export async function readStoredChain(
  dataDir: string,
  chainId: string,
): Promise<{ hashes: string[]; certified: number }> {
  const store = await ChainStore.open(join(dataDir, 'chain'));
  try {
    const hashes: string[] = [];
    let certified = 0;
    for (let h = 0n; ; h++) {
      const b = await store.getBlock(h);
      if (!b) break;
      hashes.push(bytesToHex(blockHash(chainId, b.header)));
      if (h > 0n && (await store.getCertificate(h)) !== undefined) certified++;
    }
    return { hashes, certified };
  } finally {
    await store.close();
  }
}

/** Percentile (nearest rank) of a sorted array. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * When each supervisor first lists each IT_RES in its recorded history, by polling the history
 * protocol (`intervalMs` apart per supervisor), against the miner's own clock in the message
 * (`body.time`; every process here shares one machine clock). The arrival time is an upper bound
 * by up to one poll interval plus a request's round trip.
 */
export class ItresArrivals {
  readonly #probe: NetworkProbe;
  readonly #next: number[];
  /** Per supervisor: id → first time listed. */
  readonly seen: Map<string, number>[];
  /** id → miner (hex), iteration, sent time. */
  readonly bodies = new Map<string, { miner: string; iteration: number; sentAt: number; bytes: number }>();
  #stopped = false;
  #loops: Promise<void>[] = [];
  errors = 0;

  constructor(probe: NetworkProbe) {
    this.#probe = probe;
    this.#next = probe.supervisors.map(() => 0);
    this.seen = probe.supervisors.map(() => new Map());
  }

  /** Starts polling; ids already recorded now are skipped (only new messages are timed). */
  async start(intervalMs: number): Promise<void> {
    await Promise.all(
      this.#probe.supervisors.map(async (_, m) => {
        this.#next[m] = (await this.#probe.historyIds(m, 0).catch(() => ({ total: 0 }))).total;
      }),
    );
    this.#loops = this.#probe.supervisors.map((_, m) => this.#loop(m, intervalMs));
  }

  async #loop(member: number, intervalMs: number): Promise<void> {
    while (!this.#stopped) {
      const began = Date.now();
      try {
        const { ids } = await this.#probe.historyIds(member, this.#next[member]!);
        const now = Date.now();
        const unknown: Uint8Array[] = [];
        for (const id of ids) {
          const hex = bytesToHex(id);
          if (!this.seen[member]!.has(hex)) this.seen[member]!.set(hex, now);
          if (!this.bodies.has(hex)) unknown.push(id);
        }
        this.#next[member]! += ids.length;
        for (const m of await this.#probe.historyMessages(member, unknown)) {
          const hex = bytesToHex(itResIdOf(this.#probe.chainId, m.body));
          this.bodies.set(hex, {
            miner: bytesToHex(m.body.miner),
            iteration: m.body.iteration,
            sentAt: Number(m.body.time),
            bytes: ItResCodec.encode(m).byteLength,
          });
        }
      } catch {
        this.errors++;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - began))));
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  /**
   * Latencies (ms) from the miner's send time to the k-th supervisor listing it (k = 4 of 4: all of
   * them; 3: a threshold), over the ids at least k supervisors listed.
   */
  toKth(k: number, filter: (miner: string) => boolean = () => true): number[] {
    const out: number[] = [];
    for (const [id, b] of this.bodies) {
      if (!filter(b.miner)) continue;
      const times = this.seen
        .map((s) => s.get(id))
        .filter((t): t is number => t !== undefined)
        .sort((x, y) => x - y);
      if (times.length >= k) out.push(times[k - 1]! - b.sentAt);
    }
    return out.sort((a, b) => a - b);
  }

  /** Latencies (ms) from send to one supervisor's listing. */
  toMember(member: number): number[] {
    const out: number[] = [];
    for (const [id, t] of this.seen[member]!) {
      const b = this.bodies.get(id);
      if (b !== undefined) out.push(t - b.sentAt);
    }
    return out.sort((a, b) => a - b);
  }
}

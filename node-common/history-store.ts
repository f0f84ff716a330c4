/**
 * The supervisors' message history on LevelDB (classic-level), so a restarted supervisor rebuilds
 * exactly the `TaskHistory` it had (shared/pouw/history.ts; ADR 0011, "Persistence"): the same ids,
 * in the same order, with the same root, and every IT_RES it acknowledged.
 *
 *   'm' taskId(32) seq(u32 BE)  → an IT_RES the history recorded (SSZ), in recording order
 *   'd' taskId(32) from(u32 BE) → a decided id list (SSZ HistoryIds) the history adopted
 *
 * `DurableTaskHistory` is a `TaskHistory` whose `offer` resolves only once every message it recorded
 * (the offered one and the parked ones it released) is durable, so the gossip validator, the
 * candidate path and the fetch path acknowledge nothing a crash can take back. Proposals list only
 * durable ids. Decided lists are written after the records they name. `open` reloads the records,
 * offers them again in recording order (each one must be recorded again) and adopts the decided
 * lists in order; the audit is deterministic, so ids, order, root and the ACCEPT tallies come back
 * equal. Refusals, parked messages and replay tallies are not kept: nothing was acknowledged for them.
 *
 * Writes are group commits: appends made while a batch is in flight go out together in the next
 * synced batch, in call order, so the records on disk are always a prefix of the recording order.
 * A failed write closes the store for writing (HISTORY_STORE_CLOSED): no later record may become
 * durable without the one before it.
 *
 * `catchUpWithChain` closes the one window this leaves: a decided list is adopted after its block is
 * durable in the chain store, so a crash between the two loses the list. It compares the history's
 * decided root with the roots the finality certificates sign, adopts the lists of the heights in
 * between from the consensus log (`walDecidedIds`), and marks the work ids of the task's finalized
 * blocks rewarded.
 */
import { ClassicLevel } from 'classic-level';
import { bytesToHex, equalBytes } from '../shared/bytes.ts';
import type { BlockHeader } from '../shared/chain/types.ts';
import { Commit, decisionsIn } from '../shared/consensus/index.ts';
import { HistoryError, isPouwError } from '../shared/errors.ts';
import { ConsensusPayload } from '../shared/net/messages.ts';
import {
  HistoryIds,
  type OfferResult,
  TaskHistory,
  type TaskHistoryOptions,
} from '../shared/pouw/history.ts';
import { ItRes } from '../shared/pouw/itres.ts';
import { taskId as taskIdOf } from '../shared/pouw/task.ts';
import type { ChainStore } from './chain-store.ts';
import type { WalStore } from './wal-store.ts';

const MESSAGE = 0x6d; // 'm'
const DECIDED = 0x64; // 'd'
const KEY_BYTES = 1 + 32 + 4;

function key(prefix: number, taskId: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(KEY_BYTES);
  out[0] = prefix;
  out.set(taskId, 1);
  new DataView(out.buffer).setUint32(33, n);
  return out;
}

/** Every key of `prefix` and `taskId` (a key of another length in it is reported as damage). */
function range(prefix: number, taskId: Uint8Array): { gte: Uint8Array; lte: Uint8Array } {
  const gte = new Uint8Array(33);
  gte[0] = prefix;
  gte.set(taskId, 1);
  const lte = new Uint8Array(KEY_BYTES + 1).fill(0xff);
  lte.set(gte);
  return { gte, lte };
}

function numberOf(k: Uint8Array): number {
  return new DataView(k.buffer, k.byteOffset, k.byteLength).getUint32(33);
}

function corrupt(message: string, detail: Record<string, unknown> = {}): HistoryError {
  return new HistoryError('HISTORY_STORE_CORRUPT', message, 'REJECT', detail);
}

function closed(message: string, cause?: unknown): HistoryError {
  return new HistoryError(
    'HISTORY_STORE_CLOSED',
    message,
    'IGNORE',
    cause === undefined ? {} : { cause: String(cause) },
  );
}

type Put = { type: 'put'; key: Uint8Array; value: Uint8Array };
type Resolvers = { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void };

function resolvers(): Resolvers {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export interface HistoryStoreStats {
  /** Synced batches written. */
  batches: number;
  /** IT_RES records written. */
  messages: number;
  /** Decided lists written. */
  decidedLists: number;
}

/** What a task's log held when it was opened, and where its next records go. */
export interface TaskLog {
  readonly taskId: Uint8Array;
  /** Recorded IT_RES, in recording order. */
  readonly messages: readonly ItRes[];
  /** Decided id lists, in the order they were adopted (each `from` = the ids decided before it). */
  readonly decided: readonly HistoryIds[];
  /** Appends records after the last one; resolves once they are durable. */
  append(messages: readonly ItRes[]): Promise<void>;
  /** Appends a decided list (non-empty, `from` = the decided count so far); resolves once durable. */
  appendDecided(ids: HistoryIds): Promise<void>;
}

export class HistoryStore {
  readonly #db: ClassicLevel<Uint8Array, Uint8Array>;
  /** Writes waiting for the next batch, in call order, with the promises they resolve. */
  #queued: { ops: Put[]; done: Resolvers }[] = [];
  #writing: Promise<void> | undefined;
  #failure: HistoryError | undefined;
  #closed = false;
  /** Tasks opened in this process (a second TaskLog would reuse sequence numbers). */
  readonly #open = new Set<string>();
  readonly stats: HistoryStoreStats = { batches: 0, messages: 0, decidedLists: 0 };

  private constructor(db: ClassicLevel<Uint8Array, Uint8Array>) {
    this.#db = db;
  }

  /** Opens (creating if needed) the store in `dir`. */
  static async open(dir: string): Promise<HistoryStore> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    return new HistoryStore(db);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads a task's records and decided lists and returns its log. Throws HISTORY_STORE_CORRUPT for
   * a record that does not decode, a key of the wrong shape, a gap in the sequence, or a decided
   * list that does not continue the one before it.
   */
  async task(taskId: Uint8Array): Promise<TaskLog> {
    if (this.#closed) throw closed('the history store is closed');
    if (taskId.length !== 32) throw corrupt('a task id is 32 bytes');
    const taskHex = bytesToHex(taskId);
    if (this.#open.has(taskHex)) throw closed(`task ${taskHex} is already open in this process`);
    const messages: ItRes[] = [];
    for await (const [k, v] of this.#db.iterator(range(MESSAGE, taskId))) {
      if (k.length !== KEY_BYTES) throw corrupt('a record key of the wrong shape', { task: taskHex });
      const seq = numberOf(k);
      if (seq !== messages.length)
        throw corrupt(`record ${messages.length} is missing (next key is ${seq})`, { task: taskHex, seq });
      try {
        messages.push(ItRes.decode(v));
      } catch (e) {
        throw corrupt(`record ${seq} does not decode: ${(e as Error).message}`, { task: taskHex, seq });
      }
    }
    const decided: HistoryIds[] = [];
    let decidedCount = 0;
    for await (const [k, v] of this.#db.iterator(range(DECIDED, taskId))) {
      if (k.length !== KEY_BYTES) throw corrupt('a decided-list key of the wrong shape', { task: taskHex });
      let ids: HistoryIds;
      try {
        ids = HistoryIds.decode(v);
      } catch (e) {
        throw corrupt(`decided list at ${numberOf(k)} does not decode: ${(e as Error).message}`, {
          task: taskHex,
        });
      }
      if (ids.from !== numberOf(k) || ids.from !== decidedCount || ids.ids.length === 0)
        throw corrupt(
          `decided list at ${numberOf(k)} does not continue the ${decidedCount} ids decided before it`,
          {
            task: taskHex,
            from: ids.from,
            decided: decidedCount,
          },
        );
      decided.push(ids);
      decidedCount += ids.ids.length;
    }
    this.#open.add(taskHex);
    let nextSeq = messages.length;
    let nextFrom = decidedCount;
    return {
      taskId,
      messages,
      decided,
      append: (msgs) => {
        if (msgs.length === 0) return Promise.resolve();
        const ops = msgs.map((m) => ({
          type: 'put' as const,
          key: key(MESSAGE, taskId, nextSeq++),
          value: ItRes.encode(m),
        }));
        this.stats.messages += ops.length;
        return this.#write(ops);
      },
      appendDecided: (ids) => {
        if (ids.from !== nextFrom || ids.ids.length === 0)
          return Promise.reject(
            corrupt(`a decided list must be non-empty and start at ${nextFrom}`, { from: ids.from }),
          );
        nextFrom += ids.ids.length;
        this.stats.decidedLists++;
        return this.#write([
          { type: 'put', key: key(DECIDED, taskId, ids.from), value: HistoryIds.encode(ids) },
        ]);
      },
    };
  }

  /** Queues `ops` for the next synced batch; resolves once it is durable. */
  #write(ops: Put[]): Promise<void> {
    if (this.#closed) return Promise.reject(closed('the history store is closed'));
    if (this.#failure) return Promise.reject(this.#failure);
    const done = resolvers();
    this.#queued.push({ ops, done });
    this.#writing ??= this.#drain();
    return done.promise;
  }

  async #drain(): Promise<void> {
    while (this.#queued.length > 0) {
      const group = this.#queued;
      this.#queued = [];
      try {
        if (this.#failure) throw this.#failure;
        await this.#db.batch(
          group.flatMap((g) => g.ops),
          { sync: true },
        );
        this.stats.batches++;
        for (const g of group) g.done.resolve();
      } catch (e) {
        this.#failure ??= isPouwError(e) ? (e as HistoryError) : closed('a history write failed', e);
        for (const g of group) g.done.reject(this.#failure);
      }
    }
    this.#writing = undefined;
  }

  /** Waits for queued writes, then closes the database. Later writes reject with HISTORY_STORE_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#writing;
    this.#closed = true;
    await this.#db.close();
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * A TaskHistory whose recordings are durable before they are acknowledged (see the file comment).
 * Build it with `open`, which rebuilds the history from its log.
 */
export class DurableTaskHistory extends TaskHistory {
  readonly #log: TaskLog;
  /** Records durable on disk, in recording order (the first `durable` recordings). */
  #durable = 0;
  /** The latest offer: settles once its recordings are durable (or their write failed). */
  #lastOffer: Promise<unknown> = Promise.resolve();
  /** Decided-list writes in flight. */
  #decidedWrites: Promise<void> = Promise.resolve();
  #failure: unknown;

  private constructor(opts: TaskHistoryOptions, log: TaskLog) {
    super(opts);
    this.#log = log;
  }

  /**
   * Opens the task's log in `store` and rebuilds the history from it: every record is offered
   * again in recording order and must be recorded again; the decided lists are adopted in order.
   * Throws HISTORY_STORE_CORRUPT when the log does not rebuild (a damaged record, or a log written
   * for another miner set or other limits).
   */
  static async open(store: HistoryStore, opts: TaskHistoryOptions): Promise<DurableTaskHistory> {
    const log = await store.task(taskIdOf(opts.chainId, opts.task));
    const h = new DurableTaskHistory(opts, log);
    await h.#restore();
    return h;
  }

  async #restore(): Promise<void> {
    const { messages, decided } = this.#log;
    for (const [i, msg] of messages.entries()) {
      const r = await super.offer(msg);
      if (r.code !== 'ACCEPT' || r.released.length > 0)
        throw corrupt(`record ${i} does not rebuild the history (${r.code})`, { index: i, code: r.code });
    }
    for (const [i, ids] of decided.entries()) {
      try {
        super.applyDecided(ids);
      } catch (e) {
        throw corrupt(`decided list ${i} does not apply (${isPouwError(e) ? e.code : String(e)})`, {
          index: i,
          from: ids.from,
        });
      }
    }
    this.#durable = messages.length;
  }

  /** Records restored from the log when the history was opened. */
  get restored(): { messages: number; decidedLists: number } {
    return { messages: this.#log.messages.length, decidedLists: this.#log.decided.length };
  }

  /** Recordings known durable (a prefix of the recording order). */
  get durableCount(): number {
    return this.#durable;
  }

  /** The first write failure, if any: the history then acknowledges nothing more. */
  get failure(): unknown {
    return this.#failure;
  }

  /**
   * Offers one IT_RES (TaskHistory.offer) and resolves once everything it recorded is durable.
   * Rejects with the store's error when the write fails (the in-memory record then stays out of
   * every proposal).
   */
  override offer(msg: ItRes): Promise<OfferResult> {
    // Attached in the same call: this callback runs as soon as the offer settles, before the next
    // offer (queued behind it inside TaskHistory) can record anything, so appends follow recording order.
    const run = super.offer(msg).then(async (r) => {
      const recorded = [r, ...r.released].filter((o) => o.code === 'ACCEPT').map((o) => this.get(o.idHex)!);
      if (this.#failure !== undefined) throw this.#failure;
      if (recorded.length > 0) {
        try {
          await this.#log.append(recorded);
        } catch (e) {
          this.#failure ??= e;
          throw e;
        }
        this.#durable += recorded.length;
      }
      return r;
    });
    this.#lastOffer = run.catch(() => undefined);
    return run;
  }

  /**
   * The decided prefix and the durable part of the tail. The records not yet durable are the most
   * recent recordings, so they are at the tail's end; cutting `count − durable` ids off the tail
   * removes every one of them (and, if some were already decided, a few durable ones too).
   */
  override proposal(): HistoryIds {
    const p = super.proposal();
    const durableInTail = Math.max(0, this.#durable - this.decidedCount);
    return p.ids.length <= durableInTail ? p : { from: p.from, ids: p.ids.slice(0, durableInTail) };
  }

  /**
   * Adopts a decided list (TaskHistory.applyDecided) and writes it once the records it names are
   * durable (after every offer made so far). Synchronous like the base; `flush` waits for the write.
   */
  override applyDecided(p: HistoryIds): Uint8Array {
    const root = super.applyDecided(p);
    if (p.ids.length > 0) {
      const ids: HistoryIds = { from: p.from, ids: [...p.ids] };
      const after = this.#lastOffer;
      const write = this.#decidedWrites.then(async () => {
        await after;
        if (this.#failure !== undefined) return;
        await this.#log.appendDecided(ids);
      });
      this.#decidedWrites = write.catch((e: unknown) => {
        this.#failure ??= e;
      });
    }
    return root;
  }

  /** Resolves once every offer and decided list so far is durable; rejects with the first write failure. */
  async flush(): Promise<void> {
    await this.#lastOffer;
    await this.#decidedWrites;
    if (this.#failure !== undefined) throw this.#failure;
  }
}

// ---------------------------------------------------------------------------------------------

/** What `catchUpWithChain` reads from the finalized chain and the consensus log. */
export interface FinalizedHistoryView {
  /** The finalized tip height. */
  tip: bigint;
  /** The history root the finality certificate of `height` (≥ 1) signs. */
  historyRoot(height: bigint): Promise<Uint8Array | undefined>;
  /** The id list the value decided at `height` carried, if the consensus log still holds it. */
  decidedIds(height: bigint): Promise<HistoryIds | undefined>;
  /** Up to `count` finalized headers from `from` on. */
  headers(from: bigint, count: number): Promise<BlockHeader[]>;
}

export interface CatchUpReport {
  /** Decided lists adopted from the consensus log (lost in a crash after their block was stored). */
  adopted: number;
  /** Work ids of the task's finalized blocks marked rewarded. */
  rewarded: number;
  /** Why the decided history still differs from the chain's (it lags: ids it never recorded), or undefined. */
  behind: string | undefined;
  /**
   * When behind for want of messages: the decided lists from the first one that could not be
   * applied up to the tip, in height order, for the caller to fetch the missing ids and apply.
   */
  pending: HistoryIds[];
}

/** Heights searched back from the tip for the one whose root the history's decided root equals. */
const MAX_CATCH_UP_HEIGHTS = 64n;
const HEADER_PAGE = 256;

/**
 * Brings a reopened history level with the finalized chain: adopts the decided lists of the heights
 * whose root the history lacks (a crash between the block write and the list's), and marks the work
 * ids of the task's finalized blocks rewarded (a replayed work id stays VERIFY_REPLAYED after a
 * restart). Call it before consensus runs.
 */
export async function catchUpWithChain(
  h: DurableTaskHistory,
  view: FinalizedHistoryView,
): Promise<CatchUpReport> {
  let rewarded = 0;
  for (let from = 1n; from <= view.tip; from += BigInt(HEADER_PAGE)) {
    const headers = await view.headers(from, HEADER_PAGE);
    for (const header of headers)
      if (equalBytes(header.taskId, h.taskId)) {
        h.markRewarded(bytesToHex(header.hashMsg));
        rewarded++;
      }
    if (headers.length < HEADER_PAGE) break;
  }
  const rootOf = async (height: bigint) => (height === 0n ? h.rootAt(0) : await view.historyRoot(height));
  const report = (adopted: number, behind?: string, pending: HistoryIds[] = []): CatchUpReport => ({
    adopted,
    rewarded,
    behind,
    pending,
  });
  const ours = h.rootAt(h.decidedCount);
  const tipRoot = await rootOf(view.tip);
  if (tipRoot !== undefined && equalBytes(tipRoot, ours)) return report(0);
  // The newest height whose certificate signs our decided root: the lists after it are missing here.
  let base: bigint | undefined;
  for (let height = view.tip - 1n; height >= 0n && view.tip - height <= MAX_CATCH_UP_HEIGHTS; height--) {
    const root = await rootOf(height);
    if (root !== undefined && equalBytes(root, ours)) {
      base = height;
      break;
    }
  }
  if (base === undefined) return report(0, 'no recent finalized height signs this history’s decided root');
  let adopted = 0;
  for (let height = base + 1n; height <= view.tip; height++) {
    const ids = await view.decidedIds(height);
    if (ids === undefined) return report(adopted, `the consensus log no longer holds height ${height}`);
    try {
      h.applyDecided(ids);
    } catch (e) {
      const why = `height ${height}: ${isPouwError(e) ? e.code : String(e)}`;
      if (!isPouwError(e) || e.code !== 'HISTORY_MISSING') return report(adopted, why);
      // Messages this member never recorded: hand over this list and the later ones to fetch.
      const pending = [ids];
      for (let later = height + 1n; later <= view.tip; later++) {
        const next = await view.decidedIds(later);
        if (next === undefined) break;
        pending.push(next);
      }
      await h.flush();
      return report(adopted, why, pending);
    }
    adopted++;
  }
  await h.flush();
  return report(adopted);
}

/**
 * The decided id lists the consensus log holds: the commit kept for each finished height, or the
 * decision record of a height whose block was stored but not yet closed in the log. Read before the
 * driver starts (it prunes decision records of stored heights).
 */
export async function walDecidedIds(
  wal: WalStore,
): Promise<(height: bigint) => Promise<HistoryIds | undefined>> {
  const decisions = new Map(decisionsIn(await wal.records()).map((d) => [d.height, d.value.payload]));
  return async (height) => {
    const [commit] = await wal.commits(height, 1);
    const payload =
      commit !== undefined ? Commit.decode(commit).proposal.proposal.value.payload : decisions.get(height);
    return payload === undefined ? undefined : ConsensusPayload.decode(payload).history;
  };
}

/** The view `catchUpWithChain` needs, from a supervisor's chain store and consensus log. */
export async function finalizedHistoryView(
  store: ChainStore,
  wal: WalStore,
  tip: bigint,
): Promise<FinalizedHistoryView> {
  return {
    tip,
    historyRoot: async (height) => (await store.getCertificate(height))?.historyRoot,
    decidedIds: await walDecidedIds(wal),
    headers: (from, count) => store.getHeaders(from, count),
  };
}

/**
 * The consensus write-ahead log on LevelDB (classic-level), for the driver in supervisor-node
 * (docs/adr/0010-consensus.md, "The WAL rule"). Records are the core's `WalRecord`s, serialized with
 * its `toJson`, under keys ordered by (height, sequence), so a scan returns them in append order.
 *
 *   'w' height(u64 BE) seq(u64 BE) → WalRecord as JSON (UTF-8)
 *   'c' height(u64 BE)          → the Commit (SSZ) that decided the height, kept for catch-up
 *
 * `append` resolves only once the batch is durable (`{ sync: true }`): the driver awaits it before
 * it signs or sends anything the records describe. `prune(h)` drops every record of heights ≤ h;
 * the driver calls it once the block of height h is durably in the ChainStore, so the log holds at
 * most the heights not yet stored (normally one).
 */
import { ClassicLevel } from 'classic-level';
import { bytesToHex } from '../shared/bytes.ts';
import { ConsensusError } from '../shared/consensus/errors.ts';
import { fromJson, type WalRecord } from '../shared/consensus/tendermint.ts';

const PREFIX = 0x77; // 'w'
const COMMIT_PREFIX = 0x63; // 'c'
const RECORDS = { gte: Uint8Array.of(PREFIX), lt: Uint8Array.of(PREFIX + 1) };
const KEY_BYTES = 1 + 8 + 8;
const U64_MAX = 2n ** 64n - 1n;

function key(height: bigint, seq: bigint): Uint8Array {
  const out = new Uint8Array(KEY_BYTES);
  out[0] = PREFIX;
  const v = new DataView(out.buffer);
  v.setBigUint64(1, height);
  v.setBigUint64(9, seq);
  return out;
}

function commitKey(height: bigint): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = COMMIT_PREFIX;
  new DataView(out.buffer).setBigUint64(1, height);
  return out;
}

function heightOf(k: Uint8Array): bigint {
  return new DataView(k.buffer, k.byteOffset, k.byteLength).getBigUint64(1);
}

function seqOf(k: Uint8Array): bigint {
  return new DataView(k.buffer, k.byteOffset, k.byteLength).getBigUint64(9);
}

/**
 * The core's JSON form (`fromJson` reads it back): bytes as {$bytes: hex}, bigints as {$bigint}.
 * The replacer reads the holder's original value, because JSON.stringify applies `toJSON` before
 * any replacer, and byte fields that SSZ decoding returns as Buffers would otherwise arrive as
 * {type: 'Buffer', data: [...]} and come back as plain objects.
 */
export function recordToJson(record: WalRecord): string {
  return JSON.stringify(record, function (this: Record<string, unknown>, k: string, v: unknown) {
    const original = k === '' ? v : this[k];
    if (original instanceof Uint8Array) return { $bytes: bytesToHex(original) };
    if (typeof original === 'bigint') return { $bigint: original.toString() };
    return v;
  });
}

function corrupt(message: string): ConsensusError {
  return new ConsensusError('CONSENSUS_BAD_WAL', message, 'REJECT');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface WalStats {
  appends: number;
  batches: number;
  records: number;
}

export class WalStore {
  readonly #db: ClassicLevel<Uint8Array, Uint8Array>;
  #seq = 0n;
  #closed = false;
  readonly stats: WalStats = { appends: 0, batches: 0, records: 0 };
  /** Called after every durable append (tests observe the order of log writes and actions). */
  onAppend: ((records: readonly WalRecord[]) => void) | undefined;

  private constructor(db: ClassicLevel<Uint8Array, Uint8Array>) {
    this.#db = db;
  }

  /** Opens (creating if needed) the log in `dir`. */
  static async open(dir: string): Promise<WalStore> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    const store = new WalStore(db);
    // Continue the sequence after the last record, so appends stay in order across restarts.
    for await (const k of db.keys({ ...RECORDS, reverse: true, limit: 1 })) {
      if (k.length !== KEY_BYTES || k[0] !== PREFIX) throw corrupt('a key of the wrong shape');
      store.#seq = seqOf(k) + 1n;
    }
    return store;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Appends records in order, in one synced batch; resolves once they are durable. */
  async append(records: readonly WalRecord[]): Promise<void> {
    if (this.#closed) throw corrupt('the log is closed');
    if (records.length === 0) return;
    const ops = records.map((r) => {
      if (r.height < 0n || r.height > U64_MAX) throw corrupt(`height ${r.height} out of range`);
      return {
        type: 'put' as const,
        key: key(r.height, this.#seq++),
        value: encoder.encode(recordToJson(r)),
      };
    });
    await this.#db.batch(ops, { sync: true });
    this.stats.appends += records.length;
    this.stats.batches++;
    this.onAppend?.(records);
  }

  /** Every record, in append order. Throws CONSENSUS_BAD_WAL for a damaged one. */
  async records(): Promise<WalRecord[]> {
    const out: WalRecord[] = [];
    for await (const [k, v] of this.#db.iterator(RECORDS)) {
      if (k.length !== KEY_BYTES || k[0] !== PREFIX) throw corrupt('a key of the wrong shape');
      let r: WalRecord;
      try {
        r = fromJson<WalRecord>(decoder.decode(v));
      } catch (e) {
        throw corrupt(`record at height ${heightOf(k)} does not parse: ${(e as Error).message}`);
      }
      if (typeof r !== 'object' || r === null || typeof r.height !== 'bigint' || r.height !== heightOf(k))
        throw corrupt(`record at height ${heightOf(k)} names another height`);
      out.push(r);
    }
    this.stats.records = out.length;
    return out;
  }

  /** Deletes every record of heights ≤ `height` (their block is durably stored). */
  async prune(height: bigint): Promise<number> {
    if (this.#closed) return 0;
    const ops: { type: 'del'; key: Uint8Array }[] = [];
    const end = height >= U64_MAX ? Uint8Array.of(PREFIX + 1) : key(height + 1n, 0n);
    for await (const k of this.#db.keys({ gte: RECORDS.gte, lt: end })) ops.push({ type: 'del', key: k });
    if (ops.length > 0) await this.#db.batch(ops, { sync: true });
    return ops.length;
  }

  /**
   * Closes a height whose block is durably stored: keeps the commit that decided it (for
   * catch-up) and drops every record of heights ≤ `height`, in one synced batch.
   */
  async finishHeight(height: bigint, commit: Uint8Array): Promise<void> {
    if (this.#closed) throw corrupt('the log is closed');
    const ops: ({ type: 'del'; key: Uint8Array } | { type: 'put'; key: Uint8Array; value: Uint8Array })[] = [
      { type: 'put', key: commitKey(height), value: commit },
    ];
    for await (const k of this.#db.keys({ gte: RECORDS.gte, lt: key(height + 1n, 0n) }))
      ops.push({ type: 'del', key: k });
    await this.#db.batch(ops, { sync: true });
  }

  /** Stored commits (SSZ) of consecutive heights from `from`, at most `count`. */
  async commits(from: bigint, count: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    if (this.#closed || count <= 0 || from > U64_MAX) return out;
    for await (const [k, v] of this.#db.iterator({
      gte: commitKey(from),
      lt: Uint8Array.of(COMMIT_PREFIX + 1),
      limit: count,
    })) {
      if (heightOf(k) !== from + BigInt(out.length)) break;
      out.push(v);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#db.close();
  }
}

/**
 * The finalized chain on disk (LevelDB via classic-level): blocks, certificates, the UTXO set, an
 * address index, transaction locations and the state tree's node records. Each finalized block is
 * written as ONE atomic LevelDB batch with `{ sync: true }` (fsync of the write-ahead log), and
 * `commitBlock` resolves only once that batch is durable: the resolution is the acknowledgement.
 * A crash at any point leaves the store at some committed height, never between two.
 *
 * Key layout (one prefix byte, then fixed-size fields, so no separators are needed):
 *
 *   'm' "meta"                  → StoreMeta (SSZ): format version, chain id, genesis hash, tip height
 *                                 and hash, supply (genesis + subsidies), recent block times
 *   'b' height(u64 BE)          → Block (SSZ); the header is its first BlockHeader.fixedSize bytes
 *   'h' blockHash(32)           → height (u64 BE)
 *   'c' height(u64 BE)          → FinalityCertificate (SSZ); none for height 0 (genesis)
 *   'u' OutPoint(36, SSZ)       → TxOut (SSZ)
 *   'a' owner(20) OutPoint(36)  → empty (address index: the unspent outputs of an address)
 *   't' txId(32)                → TxLocation (SSZ {height, index}): the block and position of a tx
 *   'n' node record key         → state-tree node record value (shared/state/state-tree.ts NodeRecord)
 *
 * Heights are big-endian so that a range scan over 'b' walks the chain in order.
 *
 * The state tree is persisted, not rebuilt: the tree the store hands to the Ledger is the one whose
 * `commit()` yields the node changes, so `commitBlock` must be called after the ledger has applied
 * the same diff (`ledger.applyFinalized(...)` or `validateBlock` + `commit`), exactly once per block,
 * in height order. `commitBlock` checks the tree root equals the diff's stateRoot before writing.
 * On open the tree is loaded from its node records and every stored UTXO is checked against it
 * (key and value hash), so a damaged record is reported as STORE_CORRUPT instead of being trusted.
 */
import { createHash } from 'node:crypto';
import {
  ByteListType,
  ByteVectorType,
  ContainerType,
  ListCompositeType,
  UintBigintType,
  UintNumberType,
} from '@chainsafe/ssz';
import { ClassicLevel } from 'classic-level';
import { equalBytes, utf8 } from '../shared/bytes.ts';
import { type Genesis, genesisBlock } from '../shared/chain/genesis.ts';
import { blockHash, stateKey, stateValue, txId } from '../shared/chain/ids.ts';
import { type BlockDiff, Ledger, MTP_WINDOW } from '../shared/chain/ledger.ts';
import {
  Block,
  BlockHeader,
  type ChainParams,
  FinalityCertificate,
  OutPoint,
  TxOut,
} from '../shared/chain/types.ts';
import { UtxoSet } from '../shared/chain/utxo-set.ts';
import type { SignatureVerifiers } from '../shared/chain/validate-tx.ts';
import { type CodecValue, defineCodec } from '../shared/codec/codec.ts';
import { isPouwError, LedgerError } from '../shared/errors.ts';
import { type NodeBatch, type NodeRecord, StateTree } from '../shared/state/state-tree.ts';

/** Bumped when the key layout or a record format changes. */
export const STORE_FORMAT_VERSION = 1;

export const PREFIX = {
  META: 0x6d, // 'm'
  BLOCK: 0x62, // 'b'
  HASH: 0x68, // 'h'
  CERT: 0x63, // 'c'
  UTXO: 0x75, // 'u'
  ADDR: 0x61, // 'a'
  TX: 0x74, // 't'
  NODE: 0x6e, // 'n'
} as const;

const OUTPOINT_BYTES = 36;
const ADDRESS_BYTES = 20;
const HEADER_BYTES = BlockHeader.maxSize;
/** parseGenesis bounds retargetWindow by 100 000; the times kept are retargetWindow + MTP_WINDOW + 1. */
const MAX_TIMES = 100_000 + MTP_WINDOW + 2;

const uint32 = new UintNumberType(4);
const uint64 = new UintBigintType(8);
const uint128 = new UintBigintType(16);
const bytes32 = new ByteVectorType(32);

export const StoreMeta = defineCodec(
  'StoreMeta',
  new ContainerType({
    version: uint32,
    chainId: new ByteListType(32),
    genesisHash: bytes32,
    tipHeight: uint64,
    tipHash: bytes32,
    supplyGenesis: uint128,
    supplySubsidies: uint128,
    times: new ListCompositeType(new ContainerType({ height: uint64, time: uint64 }), MAX_TIMES),
  }),
);
export type StoreMeta = CodecValue<typeof StoreMeta>;

export const TxLocation = defineCodec('TxLocation', new ContainerType({ height: uint64, index: uint32 }));
export type TxLocation = CodecValue<typeof TxLocation>;

// ---------------------------------------------------------------------------------------------------
// Keys

function prefixed(prefix: number, ...parts: Uint8Array[]): Uint8Array {
  let n = 1;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  out[0] = prefix;
  let o = 1;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u64be(x: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, x);
  return out;
}

const U64_MAX = 2n ** 64n - 1n;

function isHeight(h: bigint): boolean {
  return h >= 0n && h <= U64_MAX;
}

function readU64be(b: Uint8Array, what: string): bigint {
  if (b.length !== 8) throw corrupt(`${what}: expected 8 bytes, got ${b.length}`);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
}

/** Key builders, exported for tests and tools that inspect a store directory. */
export const keys = {
  meta: (): Uint8Array => prefixed(PREFIX.META, utf8('meta')),
  block: (height: bigint): Uint8Array => prefixed(PREFIX.BLOCK, u64be(height)),
  hash: (hash: Uint8Array): Uint8Array => prefixed(PREFIX.HASH, hash),
  cert: (height: bigint): Uint8Array => prefixed(PREFIX.CERT, u64be(height)),
  utxo: (op: OutPoint): Uint8Array => prefixed(PREFIX.UTXO, OutPoint.encode(op)),
  addr: (owner: Uint8Array, op: OutPoint): Uint8Array => prefixed(PREFIX.ADDR, owner, OutPoint.encode(op)),
  tx: (id: Uint8Array): Uint8Array => prefixed(PREFIX.TX, id),
  node: (recordKey: Uint8Array): Uint8Array => prefixed(PREFIX.NODE, recordKey),
};

/** The smallest key greater than every key starting with `prefix`. */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  throw new RangeError('prefix has no upper bound');
}

function range(prefix: Uint8Array): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: prefix, lt: prefixEnd(prefix) };
}

// ---------------------------------------------------------------------------------------------------
// Errors and decoding

function corrupt(message: string, detail: Record<string, unknown> = {}): LedgerError {
  return new LedgerError('STORE_CORRUPT', message, 'REJECT', detail);
}

interface Decoder<T> {
  readonly typeName: string;
  decode(bytes: Uint8Array): T;
}

/** Decodes a stored record; any decoding failure is a corrupt store. */
function decodeStored<T>(codec: Decoder<T>, bytes: Uint8Array, where: string): T {
  try {
    return codec.decode(bytes);
  } catch (e) {
    if (isPouwError(e)) throw corrupt(`${where}: ${e.message}`, { record: where, cause: e.code });
    throw e;
  }
}

/** node:crypto SHA-256, the same function as the tree's default, faster for 65-byte inputs. */
function nodeSha256(data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest();
}

/** Lowercase hex of bytes (node's native encoder: a flat string, cheap to hash as a Map key). */
function hexOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

/**
 * Order-independent digest of a multiset of (owner, outpoint) pairs: the count and the sums mod 2^32
 * of four seeded FNV-1a hashes of each pair. Compares the address index with the UTXO set without a
 * lookup per entry; any missing, extra or altered entry changes it (except with negligible chance
 * for accidental damage; it is not meant to resist a forger who can write the disk anyway).
 */
class IndexDigest {
  count = 0;
  readonly sums = new Uint32Array(4);

  add(owner: Uint8Array, outpoint: Uint8Array): void {
    this.count++;
    for (let lane = 0; lane < 4; lane++) {
      let h = (0x811c9dc5 ^ Math.imul(lane + 1, 0x9e3779b1)) >>> 0;
      for (let i = 0; i < owner.length; i++) h = Math.imul(h ^ owner[i]!, 0x01000193);
      for (let i = 0; i < outpoint.length; i++) h = Math.imul(h ^ outpoint[i]!, 0x01000193);
      h ^= h >>> 15;
      h = Math.imul(h, 0x2c1b3c6d);
      h ^= h >>> 12;
      this.sums[lane] = (this.sums[lane]! + h) >>> 0;
    }
  }

  equals(other: IndexDigest): boolean {
    return this.count === other.count && this.sums.every((x, i) => x === other.sums[i]);
  }
}

// ---------------------------------------------------------------------------------------------------
// The store

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

export interface LoadLedgerOptions {
  /**
   * Check every stored UTXO against the loaded state tree (its key and value hash) and the address
   * index against the UTXO set. Default true; turning it off trusts the records (faster open).
   */
  verify?: boolean;
}

const EMPTY = new Uint8Array(0);

interface Loaded {
  chainId: string;
  params: ChainParams;
  tree: StateTree;
  meta: StoreMeta;
}

export interface LoadStats {
  utxos: number;
  nodeRecords: number;
  verified: boolean;
  /** Milliseconds per phase of the last `loadLedger` of a non-empty store. */
  ms: { readNodes: number; buildTree: number; readUtxos: number; checkIndex: number; total: number };
}

export class ChainStore {
  #stats: LoadStats | undefined;
  #db: ClassicLevel<Uint8Array, Uint8Array>;
  #closed = false;
  #loaded: Loaded | undefined;
  /** Serializes batches; never rejects (failures are kept in #failure). */
  #writes: Promise<void> = Promise.resolve();
  #failure: unknown;

  private constructor(db: ClassicLevel<Uint8Array, Uint8Array>) {
    this.#db = db;
  }

  /** Opens (creating if needed) the store in `dir`. */
  static async open(dir: string): Promise<ChainStore> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    return new ChainStore(db);
  }

  /** Sizes and timings of the last restore from disk (for logs and benchmarks). */
  get loadStats(): LoadStats | undefined {
    return this.#stats;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Height of the committed tip (including batches submitted but not yet acknowledged). */
  get tipHeight(): bigint | undefined {
    return this.#loaded?.meta.tipHeight;
  }

  /** Waits for submitted batches, then closes the database. Later calls reject with STORE_CLOSED. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes;
    await this.#db.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new LedgerError('STORE_CLOSED', 'the chain store is closed');
  }

  /**
   * Restores the ledger from disk, or builds it from the genesis block when the store is empty
   * (writing height 0 in one durable batch). Throws STORE_CORRUPT when the store belongs to another
   * genesis, or any record fails to decode or disagrees with the committed state.
   */
  async loadLedger(
    genesis: Genesis,
    verifiers: SignatureVerifiers,
    opts: LoadLedgerOptions = {},
  ): Promise<Ledger> {
    this.#assertOpen();
    if (this.#loaded !== undefined)
      throw new LedgerError('STORE_MISUSE', 'loadLedger may be called once per open store');
    const chainId = genesis.chainId;
    const block0 = genesisBlock(genesis, new StateTree({ hash: nodeSha256 }));
    const genesisHash = blockHash(chainId, block0.header);
    const metaBytes = await this.#db.get(keys.meta());
    if (metaBytes === undefined) {
      for await (const _ of this.#db.keys({ limit: 1 })) {
        throw corrupt('store has records but no meta record');
      }
      return this.#initFromGenesis(genesis, block0, verifiers);
    }
    const meta = decodeStored(StoreMeta, metaBytes, 'meta');
    if (meta.version !== STORE_FORMAT_VERSION) {
      throw corrupt(`store format version ${meta.version}, this code reads ${STORE_FORMAT_VERSION}`);
    }
    if (!equalBytes(meta.chainId, utf8(chainId)) || !equalBytes(meta.genesisHash, genesisHash)) {
      throw corrupt('the store was created from another genesis', { chainId });
    }
    const tipBlock = await this.#getBlockAt(meta.tipHeight);
    if (tipBlock === undefined) throw corrupt(`tip block ${meta.tipHeight} is missing`);
    const header = tipBlock.header;
    if (header.height !== meta.tipHeight || !equalBytes(blockHash(chainId, header), meta.tipHash)) {
      throw corrupt('tip block does not match the meta record');
    }

    const t0 = performance.now();
    const records: NodeRecord[] = [];
    for await (const batch of this.#scan(Uint8Array.of(PREFIX.NODE))) {
      for (const [k, v] of batch) records.push({ key: k.subarray(1), value: v });
    }
    const t1 = performance.now();
    let tree: StateTree;
    try {
      tree = StateTree.fromNodeRecords(records, { hash: nodeSha256 });
    } catch (e) {
      if (isPouwError(e)) throw corrupt(`state tree records: ${e.message}`, { cause: e.code });
      throw e;
    }

    const t2 = performance.now();
    const verify = opts.verify ?? true;
    const utxos = new UtxoSet();
    // Multiset digest of (owner, outpoint) over the UTXOs, compared with the address index below.
    const fromUtxos = new IndexDigest();
    for await (const batch of this.#scan(Uint8Array.of(PREFIX.UTXO))) {
      for (const [k, v] of batch) {
        const opBytes = k.subarray(1);
        if (opBytes.length !== OUTPOINT_BYTES) throw corrupt('utxo key has a bad length');
        const out = decodeStored(TxOut, v, 'utxo');
        // Every 36 bytes are a canonical OutPoint encoding, so the key's hex is outpointKey(op).
        const key = hexOf(opBytes);
        if (verify) {
          const op = decodeStored(OutPoint, opBytes, 'utxo key');
          const committed = tree.get(stateKey(chainId, op));
          if (committed === undefined || !equalBytes(committed, stateValue(chainId, out))) {
            throw corrupt('a stored UTXO is not in the committed state', { outpoint: key });
          }
          fromUtxos.add(out.owner, opBytes);
        }
        utxos.set(key, out);
      }
    }
    if (utxos.size !== tree.size) {
      throw corrupt(`the store holds ${utxos.size} UTXOs, the committed state ${tree.size}`);
    }
    const t3 = performance.now();
    if (verify) {
      const fromIndex = new IndexDigest();
      for await (const batch of this.#scan(Uint8Array.of(PREFIX.ADDR))) {
        for (const [k] of batch) {
          if (k.length !== 1 + ADDRESS_BYTES + OUTPOINT_BYTES)
            throw corrupt('address index key has a bad length');
          fromIndex.add(k.subarray(1, 1 + ADDRESS_BYTES), k.subarray(1 + ADDRESS_BYTES));
        }
      }
      if (!fromIndex.equals(fromUtxos)) {
        throw corrupt(
          `the address index (${fromIndex.count} entries) does not match the ${utxos.size} UTXOs`,
        );
      }
    }

    const t4 = performance.now();
    this.#stats = {
      utxos: utxos.size,
      nodeRecords: records.length,
      verified: verify,
      ms: { readNodes: t1 - t0, buildTree: t2 - t1, readUtxos: t3 - t2, checkIndex: t4 - t3, total: t4 - t0 },
    };
    const times = new Map<bigint, bigint>();
    for (const t of meta.times) times.set(t.height, t.time);
    const ledger = Ledger.restore({
      chainId,
      params: genesis.params,
      committee: genesis.committee,
      genesisHash,
      utxos,
      tree,
      tip: { height: meta.tipHeight, hash: meta.tipHash, header },
      times,
      supply: { genesis: meta.supplyGenesis, subsidies: meta.supplySubsidies },
      verifiers,
    });
    this.#loaded = { chainId, params: genesis.params, tree, meta };
    return ledger;
  }

  /** Every entry under `prefix`, in key order, a thousand at a time (much faster than one by one). */
  async *#scan(prefix: Uint8Array): AsyncGenerator<[Uint8Array, Uint8Array][]> {
    const it = this.#db.iterator(range(prefix));
    try {
      for (;;) {
        const entries = await it.nextv(1000);
        if (entries.length === 0) return;
        yield entries;
      }
    } finally {
      await it.close();
    }
  }

  async #initFromGenesis(genesis: Genesis, block0: Block, verifiers: SignatureVerifiers): Promise<Ledger> {
    const chainId = genesis.chainId;
    const tree = new StateTree({ hash: nodeSha256 });
    const ledger = Ledger.fromGenesisBlock({
      chainId,
      params: genesis.params,
      committee: genesis.committee,
      block: block0,
      tree,
      verifiers,
    });
    const hash = ledger.tip.hash;
    const txIds: Uint8Array[] = [];
    const created: BlockDiff['created'] = [];
    for (const tx of block0.transactions) {
      const id = txId(chainId, tx.body);
      txIds.push(id);
      for (const [index, out] of tx.body.outputs.entries())
        created.push({ outpoint: { txId: id, index }, out });
    }
    const meta: StoreMeta = {
      version: STORE_FORMAT_VERSION,
      chainId: utf8(chainId),
      genesisHash: hash,
      tipHeight: 0n,
      tipHash: hash,
      supplyGenesis: ledger.supply.genesis,
      supplySubsidies: 0n,
      times: [...ledger.recentTimes].map(([height, time]) => ({ height, time })),
    };
    const ops: BatchOp[] = [];
    pushBlockOps(ops, { height: 0n, hash, block: block0, txIds, spent: [], created }, undefined);
    pushNodeOps(ops, tree.commit());
    ops.push({ type: 'put', key: keys.meta(), value: StoreMeta.encode(meta) });
    this.#loaded = { chainId, params: genesis.params, tree, meta };
    await this.#enqueue(ops);
    return ledger;
  }

  /**
   * Persists a finalized block that the ledger returned by `loadLedger` has just applied: block,
   * certificate, UTXO and address-index changes, transaction locations, state-tree node changes and
   * the new meta, in ONE batch written with `{ sync: true }`. Resolves once the batch is durable.
   * Batches are written in call order; a call may be made before the previous one resolved.
   */
  async commitBlock(diff: BlockDiff, certificate: FinalityCertificate): Promise<void> {
    this.#assertOpen();
    if (this.#failure !== undefined) throw corrupt('an earlier write failed; reopen the store');
    const loaded = this.#loaded;
    if (loaded === undefined) throw new LedgerError('STORE_MISUSE', 'call loadLedger before commitBlock');
    const { chainId, params, tree } = loaded;
    const prev = loaded.meta;
    const header = diff.block.header;
    if (diff.height !== prev.tipHeight + 1n || header.height !== diff.height) {
      throw new LedgerError(
        'BLOCK_BAD_HEIGHT',
        `diff is for height ${diff.height}, store tip is ${prev.tipHeight}`,
      );
    }
    if (!equalBytes(header.prevHash, prev.tipHash)) {
      throw new LedgerError('BLOCK_BAD_PREV_HASH', 'block does not build on the stored tip');
    }
    const hash = blockHash(chainId, header); // recomputed: the hash index must name this block
    if (!equalBytes(diff.stateRoot, header.stateRoot)) {
      throw new LedgerError('BLOCK_BAD_STATE_ROOT', 'diff stateRoot does not match its header');
    }
    if (certificate.height !== diff.height) {
      throw new LedgerError(
        'CERT_BAD_HEIGHT',
        `certificate height ${certificate.height}, block ${diff.height}`,
      );
    }
    if (!equalBytes(certificate.blockHash, hash)) {
      throw new LedgerError('CERT_BAD_BLOCK_HASH', 'certificate finalizes another block');
    }
    if (!equalBytes(certificate.chainId, utf8(chainId))) {
      throw new LedgerError('CERT_BAD_CHAIN', 'certificate is for another chain');
    }
    if (!equalBytes(tree.root(), diff.stateRoot)) {
      throw new LedgerError(
        'BLOCK_BAD_STATE_ROOT',
        "the ledger's state is not this block's: apply the diff to the ledger, then commit it to the store",
      );
    }

    const keep = BigInt(params.retargetWindow + MTP_WINDOW + 1);
    const times = prev.times.filter((t) => t.height + keep >= diff.height);
    times.push({ height: diff.height, time: header.time });
    const meta: StoreMeta = {
      ...prev,
      tipHeight: diff.height,
      tipHash: hash,
      supplySubsidies: prev.supplySubsidies + diff.subsidy,
      times,
    };
    const ops: BatchOp[] = [];
    try {
      pushBlockOps(ops, { ...diff, hash }, certificate);
      // From here the tree's pending node changes belong to this batch: if it is not written, the
      // store can no longer follow the ledger, so any failure poisons it (reopen to recover).
      pushNodeOps(ops, tree.commit());
      ops.push({ type: 'put', key: keys.meta(), value: StoreMeta.encode(meta) });
    } catch (e) {
      this.#failure ??= e;
      throw e;
    }
    loaded.meta = meta;
    await this.#enqueue(ops);
  }

  /**
   * Writes `ops` after every earlier batch, and after a macrotask turn so that the caller of the
   * earlier batch has seen its acknowledgement before the next write starts (at most one
   * unacknowledged batch is ever in flight).
   */
  #enqueue(ops: BatchOp[]): Promise<void> {
    const before = this.#writes;
    const write = (async () => {
      await before;
      if (this.#failure !== undefined) throw corrupt('an earlier write failed; reopen the store');
      await new Promise<void>((resolve) => setImmediate(resolve));
      await this.#db.batch(ops, { sync: true });
    })();
    this.#writes = write.then(
      () => undefined,
      (e: unknown) => {
        this.#failure ??= e;
      },
    );
    return write;
  }

  // -------------------------------------------------------------------------------------------------
  // Queries

  /** The block at a height, or with a hash. */
  async getBlock(at: bigint | Uint8Array): Promise<Block | undefined> {
    this.#assertOpen();
    if (typeof at === 'bigint') return isHeight(at) ? this.#getBlockAt(at) : undefined;
    const h = await this.#db.get(keys.hash(at));
    if (h === undefined) return undefined;
    const height = readU64be(h, 'height by hash');
    const block = await this.#getBlockAt(height);
    if (block === undefined) throw corrupt(`hash index points at missing block ${height}`);
    return block;
  }

  async #getBlockAt(height: bigint): Promise<Block | undefined> {
    const v = await this.#db.get(keys.block(height));
    return v === undefined ? undefined : decodeStored(Block, v, `block ${height}`);
  }

  /** Height of the block with `hash`, if stored. */
  async getHeight(hash: Uint8Array): Promise<bigint | undefined> {
    this.#assertOpen();
    const h = await this.#db.get(keys.hash(hash));
    return h === undefined ? undefined : readU64be(h, 'height by hash');
  }

  async getCertificate(height: bigint): Promise<FinalityCertificate | undefined> {
    this.#assertOpen();
    if (!isHeight(height)) return undefined;
    const v = await this.#db.get(keys.cert(height));
    return v === undefined ? undefined : decodeStored(FinalityCertificate, v, `certificate ${height}`);
  }

  /** Up to `count` consecutive headers from height `from` (fewer at the tip). */
  async getHeaders(from: bigint, count: number): Promise<BlockHeader[]> {
    this.#assertOpen();
    if (count <= 0 || !isHeight(from)) return [];
    const out: BlockHeader[] = [];
    const end = from + BigInt(count);
    const it = this.#db.iterator({
      gte: keys.block(from),
      lt: isHeight(end) ? keys.block(end) : prefixEnd(Uint8Array.of(PREFIX.BLOCK)),
      limit: count,
    });
    for await (const [k, v] of it) {
      const height = readU64be(k.subarray(1), 'block key');
      if (height !== from + BigInt(out.length)) break; // a gap: never written (heights are contiguous)
      if (v.length < HEADER_BYTES) throw corrupt(`block ${height}: shorter than a header`);
      const header = decodeStored(BlockHeader, v.subarray(0, HEADER_BYTES), `header ${height}`);
      if (header.height !== height) throw corrupt(`block ${height}: header says height ${header.height}`);
      out.push(header);
    }
    return out;
  }

  async getUtxo(op: OutPoint): Promise<TxOut | undefined> {
    this.#assertOpen();
    const v = await this.#db.get(keys.utxo(op));
    return v === undefined ? undefined : decodeStored(TxOut, v, 'utxo');
  }

  /** Unspent outpoints owned by a 20-byte address, in key order (address index). */
  async outpointsOf(address: Uint8Array, limit = Number.POSITIVE_INFINITY): Promise<OutPoint[]> {
    this.#assertOpen();
    if (address.length !== ADDRESS_BYTES) throw new RangeError(`address must be ${ADDRESS_BYTES} bytes`);
    const out: OutPoint[] = [];
    const it = this.#db.keys({
      ...range(prefixed(PREFIX.ADDR, address)),
      ...(Number.isFinite(limit) ? { limit } : {}),
    });
    for await (const k of it) {
      if (k.length !== 1 + ADDRESS_BYTES + OUTPOINT_BYTES)
        throw corrupt('address index key has a bad length');
      out.push(decodeStored(OutPoint, k.subarray(1 + ADDRESS_BYTES), 'address index key'));
    }
    return out;
  }

  async getTxLocation(id: Uint8Array): Promise<TxLocation | undefined> {
    this.#assertOpen();
    const v = await this.#db.get(keys.tx(id));
    return v === undefined ? undefined : decodeStored(TxLocation, v, 'tx location');
  }
}

/** Block, hash index, certificate, tx locations, UTXO and address-index changes, in ledger order. */
function pushBlockOps(
  ops: BatchOp[],
  diff: Pick<BlockDiff, 'height' | 'hash' | 'block' | 'txIds' | 'spent' | 'created'>,
  certificate: FinalityCertificate | undefined,
): void {
  ops.push({ type: 'put', key: keys.block(diff.height), value: Block.encode(diff.block) });
  ops.push({ type: 'put', key: keys.hash(diff.hash), value: u64be(diff.height) });
  if (certificate !== undefined) {
    ops.push({ type: 'put', key: keys.cert(diff.height), value: FinalityCertificate.encode(certificate) });
  }
  diff.txIds.forEach((id, index) => {
    ops.push({ type: 'put', key: keys.tx(id), value: TxLocation.encode({ height: diff.height, index }) });
  });
  // Same order as Ledger.commit: every spend is deleted, then every creation is written.
  for (const s of diff.spent) {
    ops.push({ type: 'del', key: keys.utxo(s.outpoint) });
    ops.push({ type: 'del', key: keys.addr(s.out.owner, s.outpoint) });
  }
  for (const c of diff.created) {
    ops.push({ type: 'put', key: keys.utxo(c.outpoint), value: TxOut.encode(c.out) });
    ops.push({ type: 'put', key: keys.addr(c.out.owner, c.outpoint), value: EMPTY });
  }
}

function pushNodeOps(ops: BatchOp[], nodes: NodeBatch): void {
  for (const k of nodes.deletes) ops.push({ type: 'del', key: keys.node(k) });
  for (const r of nodes.puts) ops.push({ type: 'put', key: keys.node(r.key), value: r.value });
}

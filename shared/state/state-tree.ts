/**
 * The authenticated map behind a block's `stateRoot`: a compact sparse Merkle tree over 256-bit keys
 * (the ledger uses SHA-256 of the 36-byte outpoint) whose values are 32-byte hashes (of the output).
 *
 * Hashing (pinned; see docs/adr/0003-state-commitment.md):
 * - the empty subtree is 32 zero bytes (so the root of the empty tree is 32 zero bytes);
 * - leaf = H(0x00 ‖ key ‖ valueHash);
 * - internal = H(0x01 ‖ left ‖ right), left = subtree whose next key bit (MSB first) is 0;
 * - a subtree holding exactly one leaf is represented by that leaf's hash at the subtree's root
 *   position (shortcut leaf), so an internal node exists only where its subtree holds ≥ 2 leaves:
 *   there is never an internal node with two empty children or with one empty child and one
 *   single-leaf child (that leaf is lifted). Depth is ~log2(n), not 256.
 * H is SHA-256 unless a tree is built with another `hash` (e.g. node:crypto's SHA-256, which gives the
 * same bytes faster); proofs must be verified with the same function.
 *
 * Representation: the root tree (no parent) keeps its nodes in typed arrays (an arena: 40 bytes per
 * internal node, 96 per leaf, free lists), about 155 MB for 10^6 entries. A fork keeps the nodes it
 * creates as small immutable objects and reads everything else from its parent, so `fork()` is O(1)
 * and a discarded fork is reclaimed by the garbage collector. A fork is valid until its parent
 * changes; `commit()` on a fork folds it into its parent (up to the root) and returns the node-record
 * changes to persist.
 */
import {
  BitArray,
  BitListType,
  ByteListType,
  ByteVectorType,
  ContainerType,
  ListCompositeType,
  UintNumberType,
} from '@chainsafe/ssz';
import { sha256 } from '@noble/hashes/sha2.js';
import { isBytes } from '../bytes.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { PouwError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------------
// Errors

export type StateErrorCode =
  | 'STATE_BAD_KEY'
  | 'STATE_BAD_VALUE'
  | 'STATE_BAD_ROOT'
  | 'STATE_BAD_PROOF'
  | 'STATE_PROOF_MISMATCH'
  | 'STATE_BAD_RECORD'
  | 'STATE_STALE_FORK'
  | 'STATE_NOT_A_FORK';

/** Invalid state-tree input (keys, values, proofs, node records) or misuse of a stale fork. */
export class StateError extends PouwError<StateErrorCode> {
  constructor(code: StateErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super('StateError', code, message, 'REJECT', detail);
  }
}

// ---------------------------------------------------------------------------------------------------
// Public types and constants

/** A 32-byte hash function; SHA-256 unless a faster implementation of the same function is given. */
export type Hasher = (data: Uint8Array) => Uint8Array;

export interface StateTreeOptions {
  /** Defaults to `sha256` from @noble/hashes. Must compute SHA-256 for roots to match the chain. */
  readonly hash?: Hasher;
}

export interface LoadOptions extends StateTreeOptions {
  /** Recompute every stored hash while loading node records (as slow as `fromEntries`). */
  readonly verify?: boolean;
}

/** One change: a key and its new value hash, or `null` to delete it. */
export type StateChange = readonly [key: Uint8Array, valueHash: Uint8Array | null];

/**
 * A persisted node. `key` = depth (uint16 big-endian) ‖ the first `depth` bits of the node's path,
 * MSB first, in ceil(depth/8) bytes with the unused low bits zero. `value` = the node's hash (32
 * bytes, internal node) or hash ‖ key ‖ valueHash (96 bytes, leaf).
 */
export interface NodeRecord {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/**
 * Node records to write and delete, atomically with the block that caused them. Keys and values are
 * views into one buffer made for this batch (the caller owns it; nothing else refers to it).
 */
export interface NodeBatch {
  readonly puts: NodeRecord[];
  readonly deletes: Uint8Array[];
}

export type ProofResult =
  | { readonly included: true; readonly valueHash: Uint8Array }
  | { readonly included: false };

export const KEY_BYTES = 32;
export const VALUE_BYTES = 32;
/** Keys are 256 bits, so no node is deeper than 256. */
export const MAX_DEPTH = 256;
/** Root of the empty map (and hash of any empty subtree): 32 zero bytes. */
export const EMPTY_ROOT: Uint8Array = new Uint8Array(32);
/** Private copy, so a caller writing into EMPTY_ROOT cannot change verification. */
const ZERO_HASH = new Uint8Array(32);

/** `kind` of a StateProof: the key is present. */
export const PROOF_INCLUSION = 0;
/** `kind` of a StateProof: the key's path ends in an empty subtree. */
export const PROOF_ABSENT_EMPTY = 1;
/** `kind` of a StateProof: the key's path ends in a leaf with another key sharing the path. */
export const PROOF_ABSENT_LEAF = 2;

/**
 * Proof for one key, root to leaf. `emptySiblings` has one bit per level on the key's path (its
 * length is the depth where the path ends); a set bit means that level's sibling is the empty
 * subtree and is not listed, so `siblings` holds only the non-empty siblings, in depth order.
 * `valueHash` is the leaf's value (kinds 0 and 2, else empty); `otherKey` the other leaf's key (kind 2,
 * else empty).
 */
export const StateProof = defineCodec(
  'StateProof',
  new ContainerType({
    kind: new UintNumberType(1),
    otherKey: new ByteListType(KEY_BYTES),
    valueHash: new ByteListType(VALUE_BYTES),
    emptySiblings: new BitListType(MAX_DEPTH),
    siblings: new ListCompositeType(new ByteVectorType(32), MAX_DEPTH),
  }),
);
export type StateProof = CodecValue<typeof StateProof>;

// ---------------------------------------------------------------------------------------------------
// Helpers

function assertKey(key: unknown, detail: Record<string, unknown> = {}): asserts key is Uint8Array {
  if (!isBytes(key) || key.length !== KEY_BYTES) {
    throw new StateError('STATE_BAD_KEY', `key must be a ${KEY_BYTES}-byte Uint8Array`, {
      ...detail,
      length: isBytes(key) ? key.length : null,
    });
  }
}

function assertValue(value: unknown, detail: Record<string, unknown> = {}): asserts value is Uint8Array {
  if (!isBytes(value) || value.length !== VALUE_BYTES) {
    throw new StateError('STATE_BAD_VALUE', `value hash must be a ${VALUE_BYTES}-byte Uint8Array`, {
      ...detail,
      length: isBytes(value) ? value.length : null,
    });
  }
}

function bitAt(key: Uint8Array, d: number): number {
  return (key[d >> 3]! >> (7 - (d & 7))) & 1;
}

function cmpKeys(a: Uint8Array, b: Uint8Array, from = 0): number {
  for (let i = from; i < KEY_BYTES; i++) {
    const x = a[i]! - b[i]!;
    if (x !== 0) return x;
  }
  return 0;
}

function eq32(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isZero32(a: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== 0) return false;
  return true;
}

/** True when a and b agree on their first `bits` bits. */
function samePrefix(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

/** leaf = H(0x00 ‖ key ‖ valueHash). */
export function leafHash(key: Uint8Array, valueHash: Uint8Array, hash: Hasher = sha256): Uint8Array {
  assertKey(key);
  assertValue(valueHash);
  const buf = new Uint8Array(65);
  buf.set(key, 1);
  buf.set(valueHash, 33);
  return hash(buf);
}

/** internal = H(0x01 ‖ left ‖ right). */
export function internalHash(left: Uint8Array, right: Uint8Array, hash: Hasher = sha256): Uint8Array {
  const buf = new Uint8Array(65);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 33);
  return hash(buf);
}

/** Record key of the node at `depth` on the path of `path` (any key inside that subtree). */
export function nodeRecordKey(depth: number, path: Uint8Array): Uint8Array {
  const n = (depth + 7) >> 3;
  const out = new Uint8Array(2 + n);
  out[0] = depth >> 8;
  out[1] = depth & 0xff;
  for (let i = 0; i < n; i++) out[2 + i] = path[i]!;
  if (depth & 7) out[1 + n]! &= (0xff << (8 - (depth & 7))) & 0xff;
  return out;
}

/**
 * Sorts change indices by key; equal keys stay in input order. Radix on the first two bytes for
 * large inputs (keys are hashes, so buckets are small), comparison sort inside each bucket.
 */
function sortedOrder(keys: Uint8Array[]): Int32Array {
  const n = keys.length;
  const order = new Int32Array(n);
  if (n < 4096) {
    const idx = Array.from({ length: n }, (_, i) => i);
    idx.sort((a, b) => cmpKeys(keys[a]!, keys[b]!) || a - b);
    order.set(idx);
    return order;
  }
  const start = new Int32Array(65537);
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    start[((k[0]! << 8) | k[1]!) + 1]!++;
  }
  for (let b = 1; b <= 65536; b++) start[b]! += start[b - 1]!;
  const pos = start.slice(0, 65536);
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    order[pos[(k[0]! << 8) | k[1]!]!++] = i;
  }
  const cmp = (a: number, b: number) => cmpKeys(keys[a]!, keys[b]!, 2) || a - b;
  for (let b = 0; b < 65536; b++) {
    const lo = start[b]!;
    const hi = start[b + 1]!;
    if (hi - lo < 2) continue;
    if (hi - lo <= 16) {
      for (let i = lo + 1; i < hi; i++) {
        const x = order[i]!;
        let j = i - 1;
        while (j >= lo && cmp(order[j]!, x) > 0) {
          order[j + 1] = order[j]!;
          j--;
        }
        order[j + 1] = x;
      }
    } else {
      order.set(Array.from(order.subarray(lo, hi)).sort(cmp), lo);
    }
  }
  return order;
}

interface PreparedChanges {
  keys: Uint8Array[];
  vals: (Uint8Array | null)[];
}

/** Validates every change (nothing is applied if one is bad), sorts by key, keeps the last per key. */
function prepare(changes: Iterable<StateChange>, allowDelete: boolean): PreparedChanges {
  const rawK: Uint8Array[] = [];
  const rawV: (Uint8Array | null)[] = [];
  let i = 0;
  for (const change of changes) {
    if (!Array.isArray(change)) {
      throw new StateError('STATE_BAD_KEY', 'a change must be a [key, valueHash] pair', { index: i });
    }
    const [k, v] = change;
    assertKey(k, { index: i });
    if (v === null && allowDelete) rawV.push(null);
    else {
      assertValue(v, { index: i });
      rawV.push(v);
    }
    rawK.push(k);
    i++;
  }
  const order = sortedOrder(rawK);
  const keys: Uint8Array[] = [];
  const vals: (Uint8Array | null)[] = [];
  for (let j = 0; j < order.length; j++) {
    const a = order[j]!;
    const next = order[j + 1];
    if (next !== undefined && cmpKeys(rawK[a]!, rawK[next]!) === 0) continue; // a later change wins
    keys.push(rawK[a]!);
    vals.push(rawV[a]!);
  }
  return { keys, vals };
}

// ---------------------------------------------------------------------------------------------------
// Node storage

/** A leaf created by a fork. Immutable. */
class LeafNode {
  readonly h: Uint8Array;
  readonly k: Uint8Array;
  readonly v: Uint8Array;
  constructor(h: Uint8Array, k: Uint8Array, v: Uint8Array) {
    this.h = h;
    this.k = k;
    this.v = v;
  }
}

/** An internal node created by a fork. Immutable. */
class InnerNode {
  readonly h: Uint8Array;
  readonly l: Ref;
  readonly r: Ref;
  constructor(h: Uint8Array, l: Ref, r: Ref) {
    this.h = h;
    this.l = l;
    this.r = r;
  }
}

/**
 * A node reference: 0 = empty subtree; i > 0 = internal node i of the arena; -j < 0 = leaf j of the
 * arena; an object = a node created by a fork.
 */
type Ref = number | LeafNode | InnerNode;

const LEAF_BYTES = 96; // hash ‖ key ‖ valueHash, the same layout as a leaf's NodeRecord value

/** Typed-array node store of a root tree. Index 0 is unused in both pools (0 is the empty ref). */
class Arena {
  inner: Uint8Array;
  kids: Int32Array;
  innerCap: number;
  innerTop = 1;
  freeInner: number[] = [];
  leaves: Uint8Array;
  leafCap: number;
  leafTop = 1;
  freeLeaf: number[] = [];

  constructor(innerCap = 16, leafCap = 16) {
    this.innerCap = innerCap;
    this.inner = new Uint8Array(innerCap * 32);
    this.kids = new Int32Array(innerCap * 2);
    this.leafCap = leafCap;
    this.leaves = new Uint8Array(leafCap * LEAF_BYTES);
  }

  allocInner(): number {
    const f = this.freeInner.pop();
    if (f !== undefined) return f;
    if (this.innerTop >= this.innerCap) this.#growInner(this.innerTop + 1);
    return this.innerTop++;
  }

  allocLeaf(): number {
    const f = this.freeLeaf.pop();
    if (f !== undefined) return f;
    if (this.leafTop >= this.leafCap) this.#growLeaves(this.leafTop + 1);
    return this.leafTop++;
  }

  #growInner(min: number): void {
    const cap = Math.max(min, Math.ceil(this.innerCap * 1.5) + 16);
    const inner = new Uint8Array(cap * 32);
    inner.set(this.inner.subarray(0, this.innerTop * 32));
    const kids = new Int32Array(cap * 2);
    kids.set(this.kids.subarray(0, this.innerTop * 2));
    this.inner = inner;
    this.kids = kids;
    this.innerCap = cap;
  }

  #growLeaves(min: number): void {
    const cap = Math.max(min, Math.ceil(this.leafCap * 1.5) + 16);
    const leaves = new Uint8Array(cap * LEAF_BYTES);
    leaves.set(this.leaves.subarray(0, this.leafTop * LEAF_BYTES));
    this.leaves = leaves;
    this.leafCap = cap;
  }

  /** Shrinks capacity to what is used plus room for a few blocks of changes (after a load). */
  trim(): void {
    const slack = (top: number) => top + Math.max(65536, top >> 4);
    if (this.innerCap > slack(this.innerTop)) {
      const cap = slack(this.innerTop);
      this.inner = this.inner.slice(0, cap * 32);
      this.kids = this.kids.slice(0, cap * 2);
      this.innerCap = cap;
    }
    if (this.leafCap > slack(this.leafTop)) {
      const cap = slack(this.leafTop);
      this.leaves = this.leaves.slice(0, cap * LEAF_BYTES);
      this.leafCap = cap;
    }
  }

  get bytes(): number {
    return this.inner.byteLength + this.kids.byteLength + this.leaves.byteLength;
  }
}

export interface StateTreeStats {
  /** Entries (leaves). */
  readonly size: number;
  /** Internal nodes reachable from the root. */
  readonly internalNodes: number;
  /** Bytes of the typed arrays holding the root tree's nodes (shared by its forks). */
  readonly arenaBytes: number;
}

// ---------------------------------------------------------------------------------------------------
// The tree

/**
 * In-memory sparse Merkle tree. `new StateTree()` is empty; `fromEntries` and `fromNodeRecords` load
 * one. All inputs are validated before anything changes, so a bad key leaves the tree as it was.
 */
export class StateTree {
  #hash: Hasher;
  #arena: Arena;
  #parent: StateTree | null = null;
  #parentVersion = 0;
  #version = 0;
  #consumed = false;
  #root: Ref = 0;
  #size = 0;
  /**
   * Root tree: node changes since the last commit, appended by each update's diff: record keys
   * packed in #pendKeys, the node now at that path in #pendRefs (0 = deleted). A path appears once
   * per diff; with several diffs the last one wins (an earlier ref may since have been freed).
   */
  #pendKeys = new Uint8Array(4096);
  #pendLen = 0;
  #pendRefs: number[] = [];
  #pendDiffs = 0;
  /** Fork: arena refs of the root that this fork no longer uses (freed when folded into the root). */
  #dropped: number[] = [];
  /** Root tree, during an update: arena refs to free once the diff is recorded. */
  #freeLater: number[] = [];
  #delta = 0;
  #keys: Uint8Array[] = [];
  #vals: (Uint8Array | null)[] = [];
  readonly #buf = new Uint8Array(65);

  constructor(options: StateTreeOptions = {}) {
    this.#hash = options.hash ?? sha256;
    this.#arena = new Arena();
  }

  /** Builds a tree from (key, valueHash) pairs; a key given twice keeps its last value. */
  static fromEntries(
    entries: Iterable<readonly [Uint8Array, Uint8Array]>,
    options: StateTreeOptions = {},
  ): StateTree {
    const t = new StateTree(options);
    const { keys, vals } = prepare(entries, false);
    t.#arena = new Arena(Math.ceil(keys.length * 1.5) + 16, keys.length + 16);
    t.#keys = keys;
    t.#vals = vals;
    try {
      t.#root = t.#build(0, 0, keys.length);
    } finally {
      t.#keys = [];
      t.#vals = [];
    }
    t.#size = t.#delta;
    t.#delta = 0;
    return t;
  }

  /**
   * Rebuilds a tree from its node records (any order, e.g. a LevelDB range scan of what `commit()`
   * and `nodeRecords()` produced). Checks the records form exactly one canonical tree; stored hashes
   * are trusted unless `verify` is set. The loaded state counts as committed.
   */
  static fromNodeRecords(records: Iterable<NodeRecord>, options: LoadOptions = {}): StateTree {
    const t = new StateTree(options);
    const a = t.#arena;
    const placeholders = new Set<number>();
    const bad = (message: string, detail: Record<string, unknown> = {}) =>
      new StateError('STATE_BAD_RECORD', message, detail);
    let root = 0;
    let index = 0;
    const trail = new Int32Array(MAX_DEPTH + 1);
    const prevPath = new Uint8Array(32);
    let trailLen = 0;
    for (const rec of records) {
      if (typeof rec !== 'object' || rec === null) throw bad('malformed record', { index });
      const { key, value } = rec;
      if (!isBytes(key) || !isBytes(value) || key.length < 2) throw bad('malformed record', { index });
      const depth = (key[0]! << 8) | key[1]!;
      const n = (depth + 7) >> 3;
      if (depth > MAX_DEPTH || key.length !== 2 + n) throw bad('bad record key length', { index, depth });
      if (depth & 7 && (key[1 + n]! & (0xff >> (depth & 7))) !== 0) {
        throw bad('record key has bits past its depth', { index, depth });
      }
      const isLeaf = value.length === LEAF_BYTES;
      if (!isLeaf && value.length !== 32) throw bad('bad record value length', { index });
      const path = key.subarray(2);
      if (isLeaf && !samePrefix(value.subarray(32, 64), path, depth)) {
        throw bad('leaf key does not lie on its record path', { index, depth });
      }
      // Walk down to the parent, creating placeholder internal nodes for records not seen yet. The
      // walk resumes from the deepest node shared with the previous record's path (sorted input,
      // as from a LevelDB scan, shares long prefixes).
      let k = Math.min(depth, trailLen);
      for (let i = 0; i < k; i += 8) {
        const x = path[i >> 3]! ^ prevPath[i >> 3]!;
        if (x !== 0) {
          k = Math.min(k, i + Math.clz32(x) - 24);
          break;
        }
      }
      let parent = k === 0 ? 0 : trail[k - 1]!;
      let side = k === 0 ? 0 : bitAt(path, k - 1);
      let slot = k === 0 ? root : a.kids[2 * parent + side]!;
      for (let d = k; d < depth; d++) {
        if (slot === 0) {
          slot = a.allocInner();
          a.kids[2 * slot] = 0;
          a.kids[2 * slot + 1] = 0;
          placeholders.add(slot);
          if (parent === 0) root = slot;
          else a.kids[2 * parent + side] = slot;
        } else if (slot < 0) {
          throw bad('record lies below a leaf', { index, depth });
        }
        trail[d] = slot;
        parent = slot;
        side = bitAt(path, d);
        slot = a.kids[2 * parent + side]!;
      }
      trailLen = depth;
      prevPath.fill(0);
      prevPath.set(path);
      let placed: number;
      if (slot === 0) {
        if (isLeaf) {
          const j = a.allocLeaf();
          a.leaves.set(value, j * LEAF_BYTES);
          placed = -j;
        } else {
          placed = a.allocInner();
          a.kids[2 * placed] = 0;
          a.kids[2 * placed + 1] = 0;
          a.inner.set(value, placed * 32);
        }
        if (parent === 0) root = placed;
        else a.kids[2 * parent + side] = placed;
      } else if (!isLeaf && slot > 0 && placeholders.has(slot)) {
        placeholders.delete(slot);
        a.inner.set(value, slot * 32);
      } else {
        throw bad('two records for one node', { index, depth });
      }
      index++;
    }
    if (placeholders.size > 0) throw bad('internal node record missing', { missing: placeholders.size });
    a.trim();
    t.#root = root;
    t.#size = t.#checkLoaded(root, 0, options.verify === true);
    return t;
  }

  /** Validates the loaded shape (and hashes when `verify`), returns the number of leaves. */
  #checkLoaded(ref: number, depth: number, verify: boolean): number {
    const a = this.#arena;
    if (ref === 0) return 0;
    if (ref < 0) {
      if (verify) {
        const o = -ref * LEAF_BYTES;
        const h = leafHash(a.leaves.subarray(o + 32, o + 64), a.leaves.subarray(o + 64, o + 96), this.#hash);
        if (!eq32(h, a.leaves.subarray(o, o + 32))) {
          throw new StateError('STATE_BAD_RECORD', 'stored leaf hash does not match', { depth });
        }
      }
      return 1;
    }
    const l = a.kids[2 * ref]!;
    const r = a.kids[2 * ref + 1]!;
    if ((l === 0 && r <= 0) || (r === 0 && l <= 0)) {
      throw new StateError('STATE_BAD_RECORD', 'internal node with fewer than two leaves below', { depth });
    }
    const n = this.#checkLoaded(l, depth + 1, verify) + this.#checkLoaded(r, depth + 1, verify);
    if (verify) {
      this.#copyHash(l, this.#buf, 1);
      this.#copyHash(r, this.#buf, 33);
      this.#buf[0] = 1;
      if (!eq32(this.#hash(this.#buf), a.inner.subarray(ref * 32, ref * 32 + 32))) {
        throw new StateError('STATE_BAD_RECORD', 'stored internal hash does not match', { depth });
      }
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------------
  // Reading

  /** Number of entries. */
  get size(): number {
    this.#check();
    return this.#size;
  }

  /** True for a tree made by `fork()`. */
  get isFork(): boolean {
    return this.#parent !== null;
  }

  /** The 32-byte root (32 zero bytes when empty). */
  root(): Uint8Array {
    this.#check();
    const out = new Uint8Array(32);
    this.#copyHash(this.#root, out, 0);
    return out;
  }

  /** The value hash stored under `key`, or undefined. */
  get(key: Uint8Array): Uint8Array | undefined {
    this.#check();
    assertKey(key);
    let ref = this.#root;
    let d = 0;
    while (ref !== 0) {
      if (this.#isLeaf(ref)) return eq32(this.#leafKey(ref), key) ? this.#leafVal(ref).slice() : undefined;
      ref = bitAt(key, d) ? this.#right(ref) : this.#left(ref);
      d++;
    }
    return undefined;
  }

  has(key: Uint8Array): boolean {
    return this.get(key) !== undefined;
  }

  /** All entries in key order (copies). */
  *entries(): Generator<[key: Uint8Array, valueHash: Uint8Array]> {
    this.#check();
    const stack: Ref[] = [this.#root];
    while (stack.length > 0) {
      const ref = stack.pop()!;
      if (ref === 0) continue;
      if (this.#isLeaf(ref)) yield [this.#leafKey(ref).slice(), this.#leafVal(ref).slice()];
      else stack.push(this.#right(ref), this.#left(ref));
    }
  }

  /** Every node as a record, parents before children: what a store needs to reload the tree. */
  *nodeRecords(): Generator<NodeRecord> {
    this.#check();
    if (this.#root === 0) return;
    // Pre-order with an explicit stack; one path buffer suffices because, when a node at depth d is
    // popped, the nodes popped last at depths < d are exactly its ancestors.
    const path = new Uint8Array(32);
    const refs: Ref[] = [this.#root];
    const where: number[] = [0]; // depth * 2 + side (1 = right child)
    while (refs.length > 0) {
      const ref = refs.pop()!;
      const w = where.pop()!;
      const depth = w >> 1;
      if (depth > 0) {
        const d = depth - 1;
        const mask = 0x80 >> (d & 7);
        if (w & 1) path[d >> 3]! |= mask;
        else path[d >> 3]! &= ~mask;
      }
      yield { key: nodeRecordKey(depth, path), value: this.#recordValue(ref) };
      if (!this.#isLeaf(ref)) {
        const l = this.#left(ref);
        const r = this.#right(ref);
        if (r !== 0) {
          refs.push(r);
          where.push(((depth + 1) << 1) | 1);
        }
        if (l !== 0) {
          refs.push(l);
          where.push((depth + 1) << 1);
        }
      }
    }
  }

  /** Node counts and memory of the node store. */
  stats(): StateTreeStats {
    this.#check();
    let internalNodes = 0;
    const stack: Ref[] = [this.#root];
    while (stack.length > 0) {
      const ref = stack.pop()!;
      if (ref === 0 || this.#isLeaf(ref)) continue;
      internalNodes++;
      stack.push(this.#left(ref), this.#right(ref));
    }
    return { size: this.#size, internalNodes, arenaBytes: this.#arena.bytes };
  }

  // ------------------------------------------------------------------------------------------------
  // Proofs

  /** Inclusion proof when `key` is present, absence proof otherwise. */
  prove(key: Uint8Array): StateProof {
    this.#check();
    assertKey(key);
    const bits: boolean[] = [];
    const siblings: Uint8Array[] = [];
    let ref = this.#root;
    let d = 0;
    while (ref !== 0 && !this.#isLeaf(ref)) {
      const b = bitAt(key, d);
      const sib = b ? this.#left(ref) : this.#right(ref);
      bits.push(sib === 0);
      if (sib !== 0) {
        const h = new Uint8Array(32);
        this.#copyHash(sib, h, 0);
        siblings.push(h);
      }
      ref = b ? this.#right(ref) : this.#left(ref);
      d++;
    }
    const emptySiblings = BitArray.fromBoolArray(bits);
    if (ref === 0) {
      return {
        kind: PROOF_ABSENT_EMPTY,
        otherKey: new Uint8Array(0),
        valueHash: new Uint8Array(0),
        emptySiblings,
        siblings,
      };
    }
    const k = this.#leafKey(ref);
    const v = this.#leafVal(ref).slice();
    if (eq32(k, key)) {
      return { kind: PROOF_INCLUSION, otherKey: new Uint8Array(0), valueHash: v, emptySiblings, siblings };
    }
    return { kind: PROOF_ABSENT_LEAF, otherKey: k.slice(), valueHash: v, emptySiblings, siblings };
  }

  // ------------------------------------------------------------------------------------------------
  // Writing

  /**
   * Applies a batch of changes (`null` deletes; deleting a missing key is a no-op; a key given twice
   * keeps its last change). Keys are sorted and the tree is updated in one pass, so each touched
   * node is rehashed once. Throws StateError, changing nothing, when any key or value is malformed.
   */
  update(changes: Iterable<StateChange>): void {
    this.#check();
    const { keys, vals } = prepare(changes, true);
    if (keys.length === 0) return;
    const old = this.#root;
    this.#keys = keys;
    this.#vals = vals;
    this.#delta = 0;
    const dropped = this.#dropped.length;
    let root: Ref;
    try {
      root = this.#upd(old, 0, 0, keys.length);
    } catch (e) {
      // Only a throwing hash function gets here. Nodes are immutable, so the tree is unchanged; the
      // replaced nodes must not be freed (nodes built so far are left unused in the arena).
      this.#freeLater = [];
      this.#dropped.length = dropped;
      throw e;
    } finally {
      this.#keys = [];
      this.#vals = [];
    }
    if (root === old) return;
    this.#root = root;
    this.#size += this.#delta;
    this.#version++;
    if (this.#parent === null) this.#settle(old as number, root as number);
  }

  /**
   * A copy-on-write child: reads go to this tree, writes stay in the fork. O(1). The fork is valid
   * until this tree changes (update, or another fork folded in); after that any use throws
   * STATE_STALE_FORK.
   */
  fork(): StateTree {
    this.#check();
    const f = new StateTree({ hash: this.#hash });
    f.#arena = this.#arena;
    f.#parent = this;
    f.#parentVersion = this.#version;
    f.#root = this.#root;
    f.#size = this.#size;
    return f;
  }

  /** Folds this fork into its parent (which must be unchanged since `fork()`); returns the parent. */
  merge(): StateTree {
    this.#check();
    const p = this.#parent;
    if (p === null) throw new StateError('STATE_NOT_A_FORK', 'merge() needs a fork');
    if (p.#parent === null) {
      const old = p.#root as number;
      const root = p.#materialize(this.#root);
      p.#freeLater = this.#dropped;
      p.#root = root;
      p.#settle(old, root);
    } else {
      p.#root = this.#root;
      for (const ref of this.#dropped) p.#dropped.push(ref);
    }
    p.#size = this.#size;
    p.#version++;
    this.#consumed = true;
    this.#dropped = [];
    return p;
  }

  /**
   * Makes this state the committed one and returns the node records to write and delete (in one
   * atomic batch with the block). On a fork, first folds it into its parent and so on up to the root
   * tree (the forks are used up). On the root tree, returns every node change since the last commit.
   */
  commit(): NodeBatch {
    this.#check();
    if (this.#parent !== null) return this.merge().commit();
    const refs = this.#pendRefs;
    const pk = this.#pendKeys;
    const count = refs.length;
    const at = new Int32Array(count + 1);
    for (let i = 0, o = 0; i < count; i++) {
      at[i] = o;
      o += 2 + ((((pk[o]! << 8) | pk[o + 1]!) + 7) >> 3);
      at[i + 1] = o;
    }
    let keep: ((i: number) => boolean) | null = null;
    if (this.#pendDiffs > 1) {
      const last = new Map<string, number>();
      for (let i = 0; i < count; i++) {
        last.set(String.fromCharCode.apply(null, Array.from(pk.subarray(at[i]!, at[i + 1]!))), i);
      }
      const kept = new Uint8Array(count);
      for (const i of last.values()) kept[i] = 1;
      keep = (i) => kept[i] === 1;
    }
    // One buffer for all keys and values of the batch (views into it), not one allocation each.
    let total = 0;
    for (let i = 0; i < count; i++) {
      if (keep !== null && !keep(i)) continue;
      const ref = refs[i]!;
      total += at[i + 1]! - at[i]! + (ref === 0 ? 0 : ref > 0 ? 32 : LEAF_BYTES);
    }
    const out = new Uint8Array(total);
    let o = 0;
    const puts: NodeRecord[] = [];
    const deletes: Uint8Array[] = [];
    const a = this.#arena;
    for (let i = 0; i < count; i++) {
      if (keep !== null && !keep(i)) continue;
      const ref = refs[i]!;
      const kl = at[i + 1]! - at[i]!;
      const key = out.subarray(o, o + kl);
      for (let j = at[i]!; j < at[i + 1]!; j++) out[o++] = pk[j]!;
      if (ref === 0) {
        deletes.push(key);
        continue;
      }
      const size = ref > 0 ? 32 : LEAF_BYTES;
      const from = ref > 0 ? ref * 32 : -ref * LEAF_BYTES;
      const src = ref > 0 ? a.inner : a.leaves;
      puts.push({ key, value: out.subarray(o, o + size) });
      for (let j = from; j < from + size; j++) out[o++] = src[j]!;
    }
    this.#pendLen = 0;
    this.#pendRefs = [];
    this.#pendDiffs = 0;
    return { puts, deletes };
  }

  // ------------------------------------------------------------------------------------------------
  // Internals

  #check(): void {
    for (let t: StateTree = this; ; ) {
      const p = t.#parent;
      if (t.#consumed || (p !== null && p.#version !== t.#parentVersion)) {
        throw new StateError('STATE_STALE_FORK', 'this fork was merged, or its parent changed after fork()');
      }
      if (p === null) return;
      t = p;
    }
  }

  #isLeaf(ref: Ref): boolean {
    return typeof ref === 'number' ? ref < 0 : ref instanceof LeafNode;
  }

  #left(ref: Ref): Ref {
    return typeof ref === 'number' ? this.#arena.kids[2 * ref]! : (ref as InnerNode).l;
  }

  #right(ref: Ref): Ref {
    return typeof ref === 'number' ? this.#arena.kids[2 * ref + 1]! : (ref as InnerNode).r;
  }

  #leafKey(ref: Ref): Uint8Array {
    if (typeof ref !== 'number') return (ref as LeafNode).k;
    const o = -ref * LEAF_BYTES + 32;
    return this.#arena.leaves.subarray(o, o + 32);
  }

  #leafVal(ref: Ref): Uint8Array {
    if (typeof ref !== 'number') return (ref as LeafNode).v;
    const o = -ref * LEAF_BYTES + 64;
    return this.#arena.leaves.subarray(o, o + 32);
  }

  #copyHash(ref: Ref, out: Uint8Array, at: number): void {
    if (typeof ref !== 'number') {
      out.set(ref.h, at);
      return;
    }
    if (ref === 0) {
      out.fill(0, at, at + 32);
      return;
    }
    const src = ref > 0 ? this.#arena.inner : this.#arena.leaves;
    const o = ref > 0 ? ref * 32 : -ref * LEAF_BYTES;
    for (let i = 0; i < 32; i++) out[at + i] = src[o + i]!;
  }

  #recordValue(ref: Ref): Uint8Array {
    if (typeof ref === 'number') {
      if (ref > 0) return this.#arena.inner.slice(ref * 32, ref * 32 + 32);
      return this.#arena.leaves.slice(-ref * LEAF_BYTES, -ref * LEAF_BYTES + LEAF_BYTES);
    }
    if (ref instanceof LeafNode) {
      const out = new Uint8Array(LEAF_BYTES);
      out.set(ref.h, 0);
      out.set(ref.k, 32);
      out.set(ref.v, 64);
      return out;
    }
    return ref.h.slice();
  }

  #newLeaf(key: Uint8Array, value: Uint8Array): Ref {
    const buf = this.#buf;
    buf[0] = 0;
    buf.set(key, 1);
    buf.set(value, 33);
    const h = this.#hash(buf);
    if (this.#parent !== null) return new LeafNode(h, key.slice(), value.slice());
    const a = this.#arena;
    const j = a.allocLeaf();
    const o = j * LEAF_BYTES;
    a.leaves.set(h, o);
    a.leaves.set(key, o + 32);
    a.leaves.set(value, o + 64);
    return -j;
  }

  #newInner(l: Ref, r: Ref): Ref {
    const buf = this.#buf;
    buf[0] = 1;
    this.#copyHash(l, buf, 1);
    this.#copyHash(r, buf, 33);
    const h = this.#hash(buf);
    if (this.#parent !== null) return new InnerNode(h, l, r);
    const a = this.#arena;
    const i = a.allocInner();
    a.inner.set(h, i * 32);
    a.kids[2 * i] = l as number;
    a.kids[2 * i + 1] = r as number;
    return i;
  }

  /** The node replacing `ref` is built; `ref` leaves this tree. */
  #discard(ref: Ref): void {
    if (typeof ref !== 'number') return;
    if (this.#parent === null) this.#freeLater.push(ref);
    else this.#dropped.push(ref);
  }

  /** Joins two subtrees under one position, lifting a lone leaf and collapsing empty pairs. */
  #combine(l: Ref, r: Ref): Ref {
    if (l === 0) {
      if (r === 0 || this.#isLeaf(r)) return r;
    } else if (r === 0 && this.#isLeaf(l)) {
      return l;
    }
    return this.#newInner(l, r);
  }

  /** First index in [lo, hi) whose key has bit `d` set (keys are sorted and share bits < d). */
  #split(d: number, lo: number, hi: number): number {
    const byte = d >> 3;
    const mask = 0x80 >> (d & 7);
    const keys = this.#keys;
    let a = lo;
    let b = hi;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (keys[m]![byte]! & mask) b = m;
      else a = m + 1;
    }
    return a;
  }

  /** Subtree at depth `d` holding the inserts among changes [lo, hi) (the position was empty). */
  #build(d: number, lo: number, hi: number): Ref {
    const vals = this.#vals;
    let count = 0;
    let only = -1;
    for (let i = lo; i < hi && count < 2; i++) {
      if (vals[i] !== null) {
        count++;
        only = i;
      }
    }
    if (count === 0) return 0;
    if (count === 1) {
      this.#delta++;
      return this.#newLeaf(this.#keys[only]!, vals[only]!);
    }
    const mid = this.#split(d, lo, hi);
    return this.#combine(this.#build(d + 1, lo, mid), this.#build(d + 1, mid, hi));
  }

  /** Applies changes [lo, hi) to the position at depth `d` that holds leaf `leaf` (key k, value v). */
  #mergeLeaf(leaf: Ref, k: Uint8Array, v: Uint8Array, d: number, lo: number, hi: number): Ref {
    if (lo === hi) return leaf;
    const keys = this.#keys;
    if (hi - lo === 1 && eq32(keys[lo]!, k)) {
      const nv = this.#vals[lo]!;
      if (nv === null) {
        this.#discard(leaf);
        this.#delta--;
        return 0;
      }
      if (eq32(nv, v)) return leaf;
      this.#discard(leaf);
      return this.#newLeaf(k, nv);
    }
    const mid = this.#split(d, lo, hi);
    if (bitAt(k, d)) {
      return this.#combine(this.#build(d + 1, lo, mid), this.#mergeLeaf(leaf, k, v, d + 1, mid, hi));
    }
    return this.#combine(this.#mergeLeaf(leaf, k, v, d + 1, lo, mid), this.#build(d + 1, mid, hi));
  }

  /** Applies changes [lo, hi) (all under this position) to the subtree `ref` at depth `d`. */
  #upd(ref: Ref, d: number, lo: number, hi: number): Ref {
    if (lo === hi) return ref;
    if (ref === 0) return this.#build(d, lo, hi);
    if (this.#isLeaf(ref)) return this.#mergeLeaf(ref, this.#leafKey(ref), this.#leafVal(ref), d, lo, hi);
    const mid = this.#split(d, lo, hi);
    const l = this.#left(ref);
    const r = this.#right(ref);
    const nl = this.#upd(l, d + 1, lo, mid);
    const nr = this.#upd(r, d + 1, mid, hi);
    if (nl === l && nr === r) return ref;
    this.#discard(ref);
    return this.#combine(nl, nr);
  }

  /** Root tree: records the node changes old → new as pending, then frees the replaced nodes. */
  #settle(old: number, root: number): void {
    this.#pendDiffs++;
    this.#diff(old, root, 0, new Uint8Array(32));
    const a = this.#arena;
    for (const ref of this.#freeLater) {
      if (ref > 0) a.freeInner.push(ref);
      else a.freeLeaf.push(-ref);
    }
    this.#freeLater = [];
  }

  #recordPending(depth: number, path: Uint8Array, ref: number): void {
    const n = (depth + 7) >> 3;
    if (this.#pendLen + 2 + n > this.#pendKeys.length) {
      const bigger = new Uint8Array(this.#pendKeys.length * 2);
      bigger.set(this.#pendKeys);
      this.#pendKeys = bigger;
    }
    const pk = this.#pendKeys;
    let o = this.#pendLen;
    pk[o++] = depth >> 8;
    pk[o++] = depth & 0xff;
    for (let i = 0; i < n; i++) pk[o++] = path[i]!;
    if (depth & 7) pk[o - 1]! &= (0xff << (8 - (depth & 7))) & 0xff;
    this.#pendLen = o;
    this.#pendRefs.push(ref);
  }

  /** Walks two arena trees, skipping shared subtrees (nodes are immutable until freed). */
  #diff(old: number, neu: number, depth: number, path: Uint8Array): void {
    if (old === neu) return;
    this.#recordPending(depth, path, neu);
    if (old <= 0 && neu <= 0) return;
    const kids = this.#arena.kids;
    const byte = depth >> 3;
    const mask = 0x80 >> (depth & 7);
    path[byte]! &= ~mask;
    this.#diff(old > 0 ? kids[2 * old]! : 0, neu > 0 ? kids[2 * neu]! : 0, depth + 1, path);
    path[byte]! |= mask;
    this.#diff(
      old > 0 ? this.#arena.kids[2 * old + 1]! : 0,
      neu > 0 ? this.#arena.kids[2 * neu + 1]! : 0,
      depth + 1,
      path,
    );
    path[byte]! &= ~mask;
  }

  /** Copies a fork's object nodes into this (root) tree's arena. */
  #materialize(ref: Ref): number {
    if (typeof ref === 'number') return ref;
    const a = this.#arena;
    if (ref instanceof LeafNode) {
      const j = a.allocLeaf();
      const o = j * LEAF_BYTES;
      a.leaves.set(ref.h, o);
      a.leaves.set(ref.k, o + 32);
      a.leaves.set(ref.v, o + 64);
      return -j;
    }
    const l = this.#materialize(ref.l);
    const r = this.#materialize(ref.r);
    const i = a.allocInner();
    a.inner.set(ref.h, i * 32);
    a.kids[2 * i] = l;
    a.kids[2 * i + 1] = r;
    return i;
  }
}

// ---------------------------------------------------------------------------------------------------
// Verification

function badProof(message: string, detail: Record<string, unknown> = {}): StateError {
  return new StateError('STATE_BAD_PROOF', message, detail);
}

/**
 * Checks `proof` for `key` against `root` with the pinned hash (SHA-256 unless `hash` is given).
 * Returns whether the key is in the committed map and, if so, its value hash. Throws StateError:
 * STATE_BAD_PROOF for a malformed or non-canonical proof, STATE_PROOF_MISMATCH when it does not
 * reproduce `root` (tampered sibling, key, value or root).
 */
export function verifyProof(
  root: Uint8Array,
  key: Uint8Array,
  proof: StateProof,
  hash: Hasher = sha256,
): ProofResult {
  if (!isBytes(root) || root.length !== 32) throw new StateError('STATE_BAD_ROOT', 'root must be 32 bytes');
  assertKey(key);
  if (typeof proof !== 'object' || proof === null) throw badProof('proof is not an object');
  const { kind, otherKey, valueHash, emptySiblings, siblings } = proof;
  if (!isBytes(otherKey) || !isBytes(valueHash) || !Array.isArray(siblings))
    throw badProof('bad field types');
  if (
    typeof emptySiblings !== 'object' ||
    emptySiblings === null ||
    typeof emptySiblings.bitLen !== 'number' ||
    typeof emptySiblings.get !== 'function'
  ) {
    throw badProof('emptySiblings is not a bit list');
  }
  const depth = emptySiblings.bitLen;
  if (!Number.isInteger(depth) || depth < 0 || depth > MAX_DEPTH) throw badProof('bad depth', { depth });
  const empty: boolean[] = [];
  let nonEmpty = 0;
  for (let i = 0; i < depth; i++) {
    const e = emptySiblings.get(i);
    empty.push(e);
    if (!e) nonEmpty++;
  }
  if (siblings.length !== nonEmpty) {
    throw badProof('sibling count does not match the bitmap', { siblings: siblings.length, nonEmpty });
  }
  for (const s of siblings) {
    if (!isBytes(s) || s.length !== 32) throw badProof('a sibling is not 32 bytes');
    if (isZero32(s)) throw badProof('an empty sibling must be marked in the bitmap, not listed');
  }
  const lastEmpty = depth > 0 && empty[depth - 1] === true;
  let h: Uint8Array;
  if (kind === PROOF_INCLUSION || kind === PROOF_ABSENT_LEAF) {
    if (valueHash.length !== 32) throw badProof('valueHash must be 32 bytes');
    // An internal node with an empty child and a lone leaf does not exist (the leaf is lifted).
    if (lastEmpty) throw badProof('leaf beside an empty sibling');
    if (kind === PROOF_INCLUSION) {
      if (otherKey.length !== 0) throw badProof('inclusion proof carries another key');
      h = leafHash(key, valueHash, hash);
    } else {
      if (otherKey.length !== 32) throw badProof('otherKey must be 32 bytes');
      if (eq32(otherKey, key)) throw badProof('absence proof ends in the key itself');
      if (!samePrefix(otherKey, key, depth)) throw badProof('otherKey is not on the key path');
      h = leafHash(otherKey, valueHash, hash);
    }
  } else if (kind === PROOF_ABSENT_EMPTY) {
    if (otherKey.length !== 0 || valueHash.length !== 0) throw badProof('empty-path proof carries a leaf');
    if (lastEmpty) throw badProof('internal node with two empty children');
    h = ZERO_HASH;
  } else {
    throw badProof('unknown proof kind', { kind });
  }
  const buf = new Uint8Array(65);
  buf[0] = 1;
  let j = siblings.length;
  for (let d = depth - 1; d >= 0; d--) {
    const sib = empty[d] ? ZERO_HASH : siblings[--j]!;
    if (bitAt(key, d)) {
      buf.set(sib, 1);
      buf.set(h, 33);
    } else {
      buf.set(h, 1);
      buf.set(sib, 33);
    }
    h = hash(buf);
  }
  if (!eq32(h, root)) throw new StateError('STATE_PROOF_MISMATCH', 'proof does not reproduce the root');
  return kind === PROOF_INCLUSION ? { included: true, valueHash: valueHash.slice() } : { included: false };
}

/**
 * State tree (sparse Merkle tree behind `stateRoot`) benchmark cases. Portable: hashers come in as
 * parameters (bench/state-tree.ts adds node:crypto). A block is 1,000 changes = 250 transactions of
 * 2 deletes + 2 inserts (the UTXO mix), so `opsPerRun` = 250 and ms/op is the cost per transaction.
 */
import {
  type Hasher,
  type NodeRecord,
  type StateChange,
  StateProof,
  StateTree,
  verifyProof,
} from '../../shared/state/state-tree.ts';
import type { BenchCase } from '../harness.ts';

export interface NamedHasher {
  name: string;
  hash: Hasher;
}

export interface StateTreeBenchOptions {
  /** Existing entries before each block (default 10^4 and 10^6). */
  sizes?: number[];
  hashers: NamedHasher[];
  /** Transactions per block (default 250, i.e. 1,000 changes). */
  txPerBlock?: number;
  /** Include the one-shot 10^6-scale build and reload cases (slow; default true). */
  buildCases?: boolean;
}

/** Deterministic xorshift128 bytes: keys and values that look like hashes without hashing. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(seed: number) {
    this.#a = seed | 1;
    this.#b = 0x9e3779b9;
    this.#c = 0x85ebca6b;
    this.#d = 0xc2b2ae35;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    let t = this.#d;
    const s = this.#a;
    this.#d = this.#c;
    this.#c = this.#b;
    this.#b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.#a = (t ^ s ^ (s >>> 19)) >>> 0;
    return this.#a;
  }
  fill(out: Uint8Array, at = 0, n = 32): void {
    for (let i = 0; i < n; i += 4) {
      const x = this.u32();
      out[at + i] = x;
      out[at + i + 1] = x >>> 8;
      out[at + i + 2] = x >>> 16;
      out[at + i + 3] = x >>> 24;
    }
  }
  bytes32(): Uint8Array {
    const b = new Uint8Array(32);
    this.fill(b);
    return b;
  }
}

/** A tree of `size` random entries plus its live keys (flat, so 10^6 keys cost 32 MB). */
export interface Fixture {
  tree: StateTree;
  live: Uint8Array;
  count: number;
  rng: Rng;
}

/** Entries for a tree of `size` random keys (seeded by `size`), as a flat buffer of key ‖ value. */
export function randomEntries(size: number): Uint8Array {
  const rng = new Rng(size);
  const flat = new Uint8Array(size * 64);
  rng.fill(flat, 0, flat.length);
  return flat;
}

export function* entriesOf(flat: Uint8Array): Generator<[Uint8Array, Uint8Array]> {
  for (let o = 0; o < flat.length; o += 64) yield [flat.subarray(o, o + 32), flat.subarray(o + 32, o + 64)];
}

export function buildFixture(size: number, hash: Hasher): Fixture {
  const flat = randomEntries(size);
  const tree = StateTree.fromEntries(entriesOf(flat), { hash });
  const live = new Uint8Array(size * 32);
  for (let i = 0; i < size; i++) live.set(flat.subarray(i * 64, i * 64 + 32), i * 32);
  return { tree, live, count: size, rng: new Rng(size ^ 0x5eed) };
}

const fixtures = new Map<string, Fixture>();
/** The cached fixture for (size, hasher), built on first use. */
export function fixture(size: number, h: NamedHasher): Fixture {
  const id = `${size}/${h.name}`;
  let f = fixtures.get(id);
  if (f === undefined) {
    f = buildFixture(size, h.hash);
    fixtures.set(id, f);
  }
  return f;
}

/** Drops cached fixtures (so a caller can measure memory or free it between groups). */
export function clearStateTreeFixtures(): void {
  fixtures.clear();
}

/**
 * Next block on the fixture's live set: per transaction 2 deletes of existing keys and 2 inserts of
 * new ones. With `consume`, the live set follows (the block will be applied to the tree).
 */
export function nextBlock(f: Fixture, txs: number, consume: boolean): StateChange[] {
  const changes: StateChange[] = [];
  const inserts: Uint8Array[] = [];
  let count = f.count;
  const live = consume ? f.live : f.live.slice();
  for (let t = 0; t < txs; t++) {
    for (let i = 0; i < 2; i++) {
      const j = f.rng.u32() % count;
      changes.push([live.slice(j * 32, j * 32 + 32), null]);
      live.copyWithin(j * 32, (count - 1) * 32, count * 32);
      count--;
    }
    for (let i = 0; i < 2; i++) {
      const k = f.rng.bytes32();
      inserts.push(k);
      changes.push([k, f.rng.bytes32()]);
    }
  }
  if (consume) {
    for (const k of inserts) live.set(k, count++ * 32);
    f.count = count;
  }
  return changes;
}

const label = (n: number) => (n >= 1e6 ? `${n / 1e6}e6` : n >= 1e3 ? `${n / 1e3}e3` : String(n));

/** Flat record dump: [keyLen u8][key][valueLen u8][value]… (a stand-in for a LevelDB scan). */
export function flattenRecords(tree: StateTree): Uint8Array {
  let out = new Uint8Array(1 << 16);
  let o = 0;
  for (const r of tree.nodeRecords()) {
    const need = o + 2 + r.key.length + r.value.length;
    if (need > out.length) {
      const bigger = new Uint8Array(Math.max(need, out.length * 2));
      bigger.set(out.subarray(0, o));
      out = bigger;
    }
    out[o++] = r.key.length;
    out.set(r.key, o);
    o += r.key.length;
    out[o++] = r.value.length;
    out.set(r.value, o);
    o += r.value.length;
  }
  return out.slice(0, o);
}

export function* recordsOf(flat: Uint8Array): Generator<NodeRecord> {
  let o = 0;
  while (o < flat.length) {
    const kl = flat[o++]!;
    const key = flat.subarray(o, o + kl);
    o += kl;
    const vl = flat[o++]!;
    const value = flat.subarray(o, o + vl);
    o += vl;
    yield { key, value };
  }
}

export function stateTreeCases(options: StateTreeBenchOptions): BenchCase[] {
  const sizes = options.sizes ?? [10_000, 1_000_000];
  const txs = options.txPerBlock ?? 250;
  const group = 'state-tree';
  const cases: BenchCase[] = [];
  for (const size of sizes) {
    for (const h of options.hashers) {
      const impl = `${h.name} n=${label(size)}`;
      let spec: StateChange[] = [];
      cases.push({
        group,
        name: 'speculative root: fork+update+root, per tx',
        impl,
        opsPerRun: txs,
        setup: () => {
          spec = nextBlock(fixture(size, h), txs, false);
        },
        run: () => {
          const f = fixture(size, h).tree.fork();
          f.update(spec);
          return f.root();
        },
      });
      cases.push({
        group,
        name: 'apply block: update+root+commit, per tx',
        impl,
        opsPerRun: txs,
        setup: () => void fixture(size, h),
        run: () => {
          const f = fixture(size, h);
          f.tree.update(nextBlock(f, txs, true));
          f.tree.root();
          return f.tree.commit();
        },
      });
      cases.push({
        group,
        name: 'validate on fork, then commit, per tx',
        impl,
        opsPerRun: txs,
        setup: () => void fixture(size, h),
        run: () => {
          const f = fixture(size, h);
          const fork = f.tree.fork();
          fork.update(nextBlock(f, txs, true));
          fork.root();
          return fork.commit();
        },
      });
      const proofs: { key: Uint8Array; bytes: Uint8Array }[] = [];
      let root: Uint8Array = new Uint8Array(32);
      cases.push({
        group,
        name: 'prove+encode (half present, half absent)',
        impl,
        opsPerRun: 256,
        setup: () => {
          const f = fixture(size, h);
          proofs.length = 0;
          for (let i = 0; i < 256; i++) {
            const key =
              i % 2 === 0
                ? f.live.slice(((i * 7919) % f.count) * 32, ((i * 7919) % f.count) * 32 + 32)
                : f.rng.bytes32();
            proofs.push({ key, bytes: StateProof.encode(f.tree.prove(key)) });
          }
          root = f.tree.root();
        },
        run: () => {
          const t = fixture(size, h).tree;
          for (const p of proofs) StateProof.encode(t.prove(p.key));
        },
      });
      cases.push({
        group,
        name: 'decode+verify proof',
        impl,
        opsPerRun: 256,
        run: () => {
          for (const p of proofs) verifyProof(root, p.key, StateProof.decode(p.bytes), h.hash);
        },
      });
    }
  }
  if (options.buildCases !== false) {
    const size = Math.max(...sizes);
    for (const h of options.hashers) {
      let flat: Uint8Array = new Uint8Array(0);
      cases.push({
        group: 'state-tree build',
        name: 'fromEntries (sort + hash everything)',
        impl: `${h.name} n=${label(size)}`,
        setup: () => {
          flat = randomEntries(size);
        },
        run: () => StateTree.fromEntries(entriesOf(flat), { hash: h.hash }).size,
      });
    }
    let records: Uint8Array | null = null;
    const h = options.hashers[0]!;
    const setup = () => {
      records ??= flattenRecords(fixture(size, h).tree);
    };
    cases.push({
      group: 'state-tree build',
      name: 'fromNodeRecords (stored hashes trusted)',
      impl: `n=${label(size)}`,
      setup,
      run: () => StateTree.fromNodeRecords(recordsOf(records!), { hash: h.hash }).size,
    });
    for (const hv of options.hashers) {
      cases.push({
        group: 'state-tree build',
        name: 'fromNodeRecords (verify: rehash all)',
        impl: `${hv.name} n=${label(size)}`,
        setup,
        run: () => StateTree.fromNodeRecords(recordsOf(records!), { hash: hv.hash, verify: true }).size,
      });
    }
  }
  return cases;
}

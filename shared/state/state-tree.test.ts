import { BitArray } from '@chainsafe/ssz';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { assert, describe, it } from '#test';
import { bytesToHex, concatBytes, hexToBytes, utf8 } from '../bytes.ts';
import { isPouwError } from '../errors.ts';
import {
  EMPTY_ROOT,
  type NodeRecord,
  PROOF_ABSENT_EMPTY,
  PROOF_ABSENT_LEAF,
  PROOF_INCLUSION,
  type StateChange,
  StateProof,
  StateTree,
  verifyProof,
} from './state-tree.ts';

// ---------------------------------------------------------------------------------------------------
// Slow reference: the hashing rules written straight from their definition.

function bit(k: Uint8Array, d: number): number {
  return (k[d >> 3]! >> (7 - (d & 7))) & 1;
}

function refRoot(items: [Uint8Array, Uint8Array][], d = 0): Uint8Array {
  if (items.length === 0) return new Uint8Array(32);
  if (items.length === 1) {
    const [k, v] = items[0]!;
    return sha256(concatBytes(new Uint8Array([0]), k, v));
  }
  const l = items.filter(([k]) => bit(k, d) === 0);
  const r = items.filter(([k]) => bit(k, d) === 1);
  return sha256(concatBytes(new Uint8Array([1]), refRoot(l, d + 1), refRoot(r, d + 1)));
}

function modelRoot(model: Map<string, Uint8Array>): Uint8Array {
  return refRoot([...model].map(([k, v]) => [hexToBytes(k), v]));
}

const key = (i: number) => sha256(utf8(`key${i}`));
const val = (i: number) => sha256(utf8(`val${i}`));
const pyKey = (i: number) => sha256(concatBytes(utf8('key'), new Uint8Array([i])));
const pyVal = (i: number) => sha256(concatBytes(utf8('val'), new Uint8Array([i])));

function applyModel(model: Map<string, Uint8Array>, changes: StateChange[]): void {
  for (const [k, v] of changes) {
    if (v === null) model.delete(bytesToHex(k));
    else model.set(bytesToHex(k), v);
  }
}

// Keys with long shared prefixes: a few bases, each varied by flipping one bit anywhere.
const bases = [new Uint8Array(32), new Uint8Array(32).fill(0xff), key(1), key(2)];
const arbKey = fc.oneof(
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.tuple(fc.constantFrom(...bases), fc.integer({ min: 0, max: 255 })).map(([b, i]) => {
    const k = b.slice();
    k[i >> 3]! ^= 0x80 >> (i & 7);
    return k;
  }),
  fc.constantFrom(...bases),
);
const arbVal = fc.uint8Array({ minLength: 32, maxLength: 32 });
const arbChange: fc.Arbitrary<StateChange> = fc.tuple(arbKey, fc.option(arbVal, { freq: 3, nil: null }));
const arbBatches = fc.array(fc.array(arbChange, { maxLength: 24 }), { minLength: 1, maxLength: 8 });

function expectStateError(fn: () => unknown, code?: string): void {
  assert.throws(fn, { name: 'StateError', ...(code ? { code } : {}) });
}

/** A Map-backed store that applies node batches the way a LevelDB batch would. */
class MemStore {
  readonly map = new Map<string, Uint8Array>();
  putAll(records: Iterable<NodeRecord>): void {
    for (const r of records) this.map.set(bytesToHex(r.key), r.value);
  }
  apply(batch: { puts: NodeRecord[]; deletes: Uint8Array[] }): void {
    for (const d of batch.deletes) this.map.delete(bytesToHex(d));
    this.putAll(batch.puts);
  }
  records(): NodeRecord[] {
    return [...this.map].map(([k, value]) => ({ key: hexToBytes(k), value }));
  }
  dump(): Map<string, string> {
    return new Map([...this.map].map(([k, v]) => [k, bytesToHex(v)]));
  }
}

function dumpOf(tree: StateTree): Map<string, string> {
  return new Map([...tree.nodeRecords()].map((r) => [bytesToHex(r.key), bytesToHex(r.value)]));
}

function randomTree(n: number, seed: number): { tree: StateTree; keys: Uint8Array[] } {
  const keys = Array.from({ length: n }, (_, i) => key(seed * 100_000 + i));
  const tree = StateTree.fromEntries(keys.map((k, i) => [k, val(seed * 100_000 + i)] as const));
  return { tree, keys };
}

describe('state tree', () => {
  it('has the all-zero empty root', () => {
    const t = new StateTree();
    assert.deepEqual(t.root(), new Uint8Array(32));
    assert.deepEqual(t.root(), EMPTY_ROOT);
    assert.equal(t.size, 0);
    assert.equal(t.get(key(1)), undefined);
    const p = t.prove(key(1));
    assert.equal(p.kind, PROOF_ABSENT_EMPTY);
    assert.deepEqual(verifyProof(EMPTY_ROOT, key(1), p), { included: false });
    assert.deepEqual(StateTree.fromEntries([]).root(), EMPTY_ROOT);
  });

  it('matches pinned vectors computed by an independent implementation', () => {
    const one = StateTree.fromEntries([[pyKey(1), pyVal(1)]]);
    assert.equal(bytesToHex(one.root()), '2e5f04789f5489e9096e115e8464788f57cdcd8554feb1b2014b425f41e33c35');
    const three = StateTree.fromEntries([0, 1, 2].map((i) => [pyKey(i), pyVal(i)] as const));
    assert.equal(
      bytesToHex(three.root()),
      'fc797c24d2aebdb2c592e818d82c52587c8ffc32d91e3be6b4e7c1a7b36da7da',
    );
    const ten = new StateTree();
    for (let i = 9; i >= 0; i--) ten.update([[pyKey(i), pyVal(i)]]);
    assert.equal(bytesToHex(ten.root()), 'ea5cccdd7b60e7d8c04f85923741b5ea909b26b83da8274350ca60be3063dca7');
    // Two keys differing only in the last bit: leaves at depth 256.
    const v = new Uint8Array(32).fill(7);
    const k1 = new Uint8Array(32);
    k1[31] = 1;
    const k2 = new Uint8Array(32);
    k2[0] = 0x80;
    const deep = StateTree.fromEntries([
      [new Uint8Array(32), v],
      [k1, v],
      [k2, v],
    ]);
    assert.equal(bytesToHex(deep.root()), 'fa6c45aef7961f6503b0c5380f1c4408dc22298dad68c7e74557854bcfe87f45');
    const p = deep.prove(k1);
    assert.equal(p.emptySiblings.bitLen, 256);
    assert.deepEqual(verifyProof(deep.root(), k1, StateProof.decode(StateProof.encode(p))), {
      included: true,
      valueHash: v,
    });
  });

  it('inserts, updates and deletes', () => {
    const t = new StateTree();
    t.update([
      [key(1), val(1)],
      [key(2), val(2)],
      [key(3), val(3)],
    ]);
    assert.equal(t.size, 3);
    assert.deepEqual(t.get(key(2)), val(2));
    assert.ok(t.has(key(3)));
    assert.ok(!t.has(key(4)));
    const r3 = t.root();
    t.update([[key(2), val(22)]]);
    assert.deepEqual(t.get(key(2)), val(22));
    assert.equal(t.size, 3);
    assert.notEqual(bytesToHex(t.root()), bytesToHex(r3));
    t.update([[key(2), val(2)]]);
    assert.deepEqual(t.root(), r3);
    t.update([[key(2), val(2)]]); // same value: no-op
    t.update([[key(9), null]]); // missing key: no-op
    assert.deepEqual(t.root(), r3);
    t.update([
      [key(1), null],
      [key(3), null],
    ]);
    assert.equal(t.size, 1);
    assert.deepEqual(t.root(), refRoot([[key(2), val(2)]]));
    // The last change for a key wins within a batch.
    t.update([
      [key(5), val(5)],
      [key(5), null],
      [key(6), null],
      [key(6), val(6)],
    ]);
    assert.ok(!t.has(key(5)));
    assert.deepEqual(t.get(key(6)), val(6));
    t.update([
      [key(2), null],
      [key(6), null],
    ]);
    assert.deepEqual(t.root(), EMPTY_ROOT);
    assert.equal(t.size, 0);
  });

  it('rejects malformed keys and values without changing the tree', () => {
    const { tree } = randomTree(20, 1);
    const before = tree.root();
    const bad: unknown[] = [
      [[new Uint8Array(31), val(1)]],
      [[new Uint8Array(33), val(1)]],
      [[key(1), new Uint8Array(31)]],
      [[key(1), undefined]],
      [['00'.repeat(32), val(1)]],
      [
        [key(1000), val(1)],
        [key(1001), new Uint8Array(0)],
      ],
    ];
    for (const changes of bad) {
      expectStateError(() => tree.update(changes as StateChange[]));
      assert.deepEqual(tree.root(), before);
      assert.equal(tree.size, 20);
    }
    expectStateError(() => tree.update([[new Uint8Array(31), val(1)]]), 'STATE_BAD_KEY');
    expectStateError(() => tree.update([[key(1), new Uint8Array(33)]]), 'STATE_BAD_VALUE');
    expectStateError(() => tree.get(new Uint8Array(5)), 'STATE_BAD_KEY');
    expectStateError(() => tree.prove(new Uint8Array(5)), 'STATE_BAD_KEY');
    expectStateError(
      () => StateTree.fromEntries([[key(1), null as unknown as Uint8Array]]),
      'STATE_BAD_VALUE',
    );
    assert.ok(!tree.has(key(1000)));
  });

  it('a hash function that throws mid-update leaves the tree (and its forks) intact', () => {
    let fuse = -1;
    const hash = (d: Uint8Array) => {
      if (fuse === 0) throw new Error('hash failed');
      if (fuse > 0) fuse--;
      return sha256(d);
    };
    const entries = Array.from({ length: 200 }, (_, i) => [key(i), val(i)] as const);
    const tree = StateTree.fromEntries(entries, { hash });
    const store = new MemStore();
    store.putAll(tree.nodeRecords());
    const before = tree.root();
    const changes = [
      ...entries.slice(0, 50).map(([k]) => [k, null] as const),
      ...Array.from({ length: 50 }, (_, i) => [key(1000 + i), val(i)] as const),
    ];
    for (const useFork of [false, true]) {
      const t = useFork ? tree.fork() : tree;
      fuse = 40;
      assert.throws(() => t.update(changes), { message: /hash failed/ });
      fuse = -1;
      assert.deepEqual(t.root(), before);
      t.update(changes);
      const model = new Map(entries.map(([k, v]) => [bytesToHex(k), v]));
      applyModel(model, changes);
      assert.deepEqual(t.root(), modelRoot(model));
      store.apply(t.commit());
      assert.deepEqual(store.dump(), dumpOf(tree));
      tree.update(changes.map(([k]) => [k, null] as const));
      tree.update(entries);
      store.apply(tree.commit());
      assert.deepEqual(tree.root(), before);
    }
    assert.deepEqual(store.dump(), dumpOf(tree));
  });

  it('root is independent of order and batching, and equals a rebuild and the reference', () => {
    fc.assert(
      fc.property(arbBatches, fc.integer(), (batches, seed) => {
        const t = new StateTree();
        const model = new Map<string, Uint8Array>();
        for (const batch of batches) {
          t.update(batch);
          applyModel(model, batch);
          assert.equal(t.size, model.size);
        }
        const want = modelRoot(model);
        assert.deepEqual(t.root(), want, 'batched');
        const entries = [...model].map(([k, v]) => [hexToBytes(k), v] as const);
        assert.deepEqual(StateTree.fromEntries(entries).root(), want, 'rebuild');
        // One change at a time, in a shuffled order.
        const shuffled = entries.slice();
        let s = seed >>> 0;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const one = new StateTree();
        for (const e of shuffled) one.update([e]);
        assert.deepEqual(one.root(), want, 'one by one');
        for (const [k, v] of entries) assert.deepEqual(t.get(k), v);
        assert.deepEqual(
          [...t.entries()].map(([k]) => bytesToHex(k)),
          [...model.keys()].sort(),
          'entries in key order',
        );
      }),
      { numRuns: 100 },
    );
  });

  it('deleting everything returns the empty root and reuses freed nodes', () => {
    const { tree, keys } = randomTree(500, 2);
    tree.update(keys.slice(0, 250).map((k) => [k, null] as const));
    assert.equal(tree.size, 250);
    tree.update(keys.slice(250).map((k) => [k, null] as const));
    assert.deepEqual(tree.root(), EMPTY_ROOT);
    assert.equal(tree.size, 0);
    assert.equal(tree.stats().internalNodes, 0);
    tree.update(keys.map((k, i) => [k, val(i)] as const));
    tree.update(keys.map((k) => [k, null] as const));
    const arena = tree.stats().arenaBytes;
    for (let round = 0; round < 5; round++) {
      tree.update(keys.map((k, i) => [k, val(round * 1000 + i)] as const));
      tree.update(keys.map((k) => [k, null] as const));
    }
    assert.deepEqual(tree.root(), EMPTY_ROOT);
    assert.equal(tree.stats().arenaBytes, arena, 'no arena growth: freed nodes are reused');
  });

  it('fork does not change the base; commit folds it in; stale forks are refused', () => {
    fc.assert(
      fc.property(arbBatches, arbBatches, (baseBatches, forkBatches) => {
        const base = new StateTree();
        const model = new Map<string, Uint8Array>();
        for (const b of baseBatches) {
          base.update(b);
          applyModel(model, b);
        }
        const baseRoot = base.root();
        const f = base.fork();
        assert.ok(f.isFork);
        const fmodel = new Map(model);
        for (const b of forkBatches) {
          f.update(b);
          applyModel(fmodel, b);
          assert.deepEqual(base.root(), baseRoot, 'base unchanged');
          assert.equal(base.size, model.size);
        }
        assert.deepEqual(f.root(), modelRoot(fmodel));
        for (const [k, v] of model) assert.deepEqual(base.get(hexToBytes(k)), v);
        // A nested fork, discarded.
        const g = f.fork();
        g.update([[key(7), val(7)]]);
        assert.deepEqual(f.root(), modelRoot(fmodel));
        f.commit();
        assert.deepEqual(base.root(), modelRoot(fmodel));
        assert.equal(base.size, fmodel.size);
        expectStateError(() => f.root(), 'STATE_STALE_FORK');
        expectStateError(() => g.root(), 'STATE_STALE_FORK');
      }),
      { numRuns: 80 },
    );
  });

  it('invalidates forks when their parent changes; merges nested forks', () => {
    const { tree, keys } = randomTree(50, 3);
    const f = tree.fork();
    f.update([[key(1), val(1)]]);
    tree.update([[keys[0]!, null]]);
    expectStateError(() => f.root(), 'STATE_STALE_FORK');
    expectStateError(() => f.update([]), 'STATE_STALE_FORK');
    expectStateError(() => tree.merge(), 'STATE_NOT_A_FORK');

    const a = tree.fork();
    a.update([[keys[1]!, null]]);
    const b = a.fork();
    b.update([[key(2), val(2)]]);
    const c = b.fork();
    c.update([[keys[2]!, val(0)]]);
    const want = c.root();
    assert.equal(c.merge(), b);
    assert.deepEqual(b.root(), want);
    const other = tree.fork();
    b.commit();
    assert.deepEqual(tree.root(), want);
    expectStateError(() => a.size, 'STATE_STALE_FORK');
    expectStateError(() => other.size, 'STATE_STALE_FORK');
    assert.deepEqual(StateTree.fromEntries(tree.entries()).root(), want);
  });

  it('inclusion and absence proofs verify and survive the codec', () => {
    for (const n of [1, 2, 3, 17, 300]) {
      const { tree, keys } = randomTree(n, 10 + n);
      const root = tree.root();
      for (let i = 0; i < Math.min(n, 40); i++) {
        const p = tree.prove(keys[i]!);
        assert.equal(p.kind, PROOF_INCLUSION);
        const wire = StateProof.decode(StateProof.encode(p));
        assert.deepEqual(verifyProof(root, keys[i]!, wire), {
          included: true,
          valueHash: tree.get(keys[i]!)!,
        });
      }
      const kinds = new Set<number>();
      for (let i = 0; i < 60; i++) {
        const k = key(999_000 + i);
        const p = tree.prove(k);
        kinds.add(p.kind);
        assert.ok(p.kind === PROOF_ABSENT_EMPTY || p.kind === PROOF_ABSENT_LEAF);
        assert.deepEqual(verifyProof(root, k, StateProof.decode(StateProof.encode(p))), { included: false });
      }
      if (n >= 17) assert.ok(kinds.has(PROOF_ABSENT_LEAF) && kinds.has(PROOF_ABSENT_EMPTY));
    }
  });

  it('proofs work on forks and on adversarial deep keys', () => {
    fc.assert(
      fc.property(arbBatches, fc.array(arbKey, { maxLength: 10 }), (batches, probes) => {
        const base = new StateTree();
        const f = base.fork();
        const model = new Map<string, Uint8Array>();
        for (const b of batches) {
          f.update(b);
          applyModel(model, b);
        }
        const root = modelRoot(model);
        for (const k of [...probes, ...[...model.keys()].map(hexToBytes)]) {
          const p = StateProof.decode(StateProof.encode(f.prove(k)));
          const v = model.get(bytesToHex(k));
          assert.deepEqual(
            verifyProof(root, k, p),
            v === undefined ? { included: false } : { included: true, valueHash: v },
          );
        }
      }),
      { numRuns: 100 },
    );
  });

  it('proofs fail when a sibling, the key, the value, the bitmap or the root is tampered', () => {
    const { tree, keys } = randomTree(200, 4);
    const root = tree.root();
    const targets = [...keys.slice(0, 8), ...Array.from({ length: 8 }, (_, i) => key(777_000 + i))];
    const flip = (b: Uint8Array, i: number) => {
      const c = b.slice();
      c[i % c.length]! ^= 1 << (i % 8);
      return c;
    };
    for (const k of targets) {
      const p = tree.prove(k);
      const honest = verifyProof(root, k, p);
      for (let s = 0; s < p.siblings.length; s++) {
        const siblings = p.siblings.slice();
        siblings[s] = flip(siblings[s]!, s * 7 + 3);
        expectStateError(() => verifyProof(root, k, { ...p, siblings }));
      }
      for (let i = 0; i < 32; i += 5) expectStateError(() => verifyProof(flip(root, i * 8 + 1), k, p));
      if (p.valueHash.length > 0) {
        expectStateError(() => verifyProof(root, k, { ...p, valueHash: flip(p.valueHash, 9) }));
      }
      if (p.kind === PROOF_ABSENT_LEAF) {
        expectStateError(() => verifyProof(root, k, { ...p, otherKey: flip(p.otherKey, 250) }));
        // Claiming inclusion with the other leaf's value fails.
        expectStateError(() =>
          verifyProof(root, k, { ...p, kind: PROOF_INCLUSION, otherKey: new Uint8Array(0) }),
        );
      }
      if (p.kind === PROOF_INCLUSION) {
        // Claiming absence at an empty subtree fails.
        expectStateError(() =>
          verifyProof(root, k, { ...p, kind: PROOF_ABSENT_EMPTY, valueHash: new Uint8Array(0) }),
        );
      }
      // Another key with the same proof: an error, or a correct answer for that key; never "included
      // with this value" unless that really is the case.
      for (let i = 0; i < 256; i += 37) {
        const k2 = flip(k, i);
        try {
          const r = verifyProof(root, k2, p);
          assert.ok(!honest.included && !r.included && !tree.has(k2), 'absence holds for k2 too');
        } catch (e) {
          assert.ok(isPouwError(e) && e.name === 'StateError', String(e));
        }
      }
      // Flip each bit of the empty-sibling bitmap.
      for (let i = 0; i < p.emptySiblings.bitLen; i++) {
        const bits = p.emptySiblings.clone();
        bits.set(i, !bits.get(i));
        expectStateError(() => verifyProof(root, k, { ...p, emptySiblings: bits }));
      }
      // Drop the deepest level, or add an empty one.
      const shorter = p.emptySiblings.toBoolArray().slice(0, -1);
      if (p.emptySiblings.bitLen > 0) {
        const last = p.emptySiblings.get(p.emptySiblings.bitLen - 1);
        const siblings = last ? p.siblings : p.siblings.slice(0, -1);
        expectStateError(() =>
          verifyProof(root, k, { ...p, siblings, emptySiblings: BitArray.fromBoolArray(shorter) }),
        );
        const longer = BitArray.fromBoolArray([...p.emptySiblings.toBoolArray(), true]);
        expectStateError(() => verifyProof(root, k, { ...p, emptySiblings: longer }));
      }
    }
  });

  it('rejects malformed proofs with a typed error', () => {
    const { tree, keys } = randomTree(50, 5);
    const root = tree.root();
    const p = tree.prove(keys[0]!);
    const zero = new Uint8Array(32);
    expectStateError(() => verifyProof(root.subarray(1), keys[0]!, p), 'STATE_BAD_ROOT');
    expectStateError(() => verifyProof(root, keys[0]!.subarray(1), p), 'STATE_BAD_KEY');
    expectStateError(() => verifyProof(root, keys[0]!, { ...p, kind: 3 }), 'STATE_BAD_PROOF');
    expectStateError(
      () => verifyProof(root, keys[0]!, { ...p, siblings: [...p.siblings, zero] }),
      'STATE_BAD_PROOF',
    );
    expectStateError(
      () => verifyProof(root, keys[0]!, { ...p, siblings: p.siblings.slice(1) }),
      'STATE_BAD_PROOF',
    );
    expectStateError(() => verifyProof(root, keys[0]!, { ...p, otherKey: keys[1]! }), 'STATE_BAD_PROOF');
    expectStateError(
      () => verifyProof(root, keys[0]!, { ...p, valueHash: zero.subarray(1) }),
      'STATE_BAD_PROOF',
    );
    expectStateError(() => verifyProof(root, keys[0]!, null as unknown as StateProof), 'STATE_BAD_PROOF');
    const absent = tree.prove(key(123_456));
    expectStateError(
      () => verifyProof(root, key(123_456), { ...absent, kind: PROOF_ABSENT_LEAF, otherKey: key(123_456) }),
      'STATE_BAD_PROOF',
    );
  });

  it('decodes random and mutated proof bytes only to typed errors', () => {
    const { tree, keys } = randomTree(100, 6);
    const root = tree.root();
    const encoded = [...keys.slice(0, 5), key(5_000_000)].map((k) => StateProof.encode(tree.prove(k)));
    const check = (bytes: Uint8Array) => {
      let p: StateProof;
      try {
        p = StateProof.decode(bytes);
      } catch (e) {
        assert.ok(isPouwError(e) && e.name === 'DecodeError', `untyped decode error ${String(e)}`);
        return;
      }
      assert.deepEqual(StateProof.encode(p), bytes);
      for (const k of [keys[0]!, key(5_000_000)]) {
        try {
          verifyProof(root, k, p);
        } catch (e) {
          assert.ok(isPouwError(e) && e.name === 'StateError', `untyped verify error ${String(e)}`);
        }
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(b)),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...encoded),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat()),
        (bytes, edits, cut) => {
          const b = bytes.slice();
          for (const [i, x] of edits) b[i % b.length] = x;
          check(cut === null ? b : b.subarray(0, cut % (b.length + 1)));
        },
      ),
      { numRuns: 500 },
    );
    assert.throws(() => StateProof.decode(new Uint8Array(StateProof.maxSize + 1)), {
      name: 'DecodeError',
      code: 'DECODE_OVERSIZED',
    });
  });

  it('commit batches keep a node store equal to the tree, and the store reloads', () => {
    // Per batch: 0 = update the tree and commit, 1 = update without committing (changes pile up),
    // 2 = validate on a fork and commit the fork, 3 = nested forks, merged, then committed.
    const arbSteps = fc.array(
      fc.tuple(fc.array(arbChange, { maxLength: 24 }), fc.integer({ min: 0, max: 3 })),
      {
        minLength: 1,
        maxLength: 8,
      },
    );
    fc.assert(
      fc.property(arbSteps, (steps) => {
        const tree = new StateTree();
        const store = new MemStore();
        for (const [b, how] of steps) {
          if (how === 1) {
            tree.update(b);
            continue;
          }
          if (how === 0) {
            tree.update(b);
            store.apply(tree.commit());
          } else if (how === 2) {
            const f = tree.fork();
            f.update(b);
            store.apply(f.commit());
          } else {
            const f = tree.fork();
            f.update(b.slice(0, 5));
            const g = f.fork();
            g.update(b.slice(5));
            g.merge();
            store.apply(f.commit());
          }
          assert.deepEqual(store.dump(), dumpOf(tree), 'store equals the full dump');
        }
        store.apply(tree.commit());
        assert.deepEqual(store.dump(), dumpOf(tree), 'store equals the full dump');
        assert.deepEqual(tree.commit(), { puts: [], deletes: [] });
        const again = StateTree.fromNodeRecords(store.records().reverse(), { verify: true });
        assert.deepEqual(again.root(), tree.root());
        assert.equal(again.size, tree.size);
      }),
      { numRuns: 120 },
    );
  });

  it('reloads from node records with the same root and proofs', () => {
    const { tree, keys } = randomTree(400, 7);
    const store = new MemStore();
    store.putAll(tree.nodeRecords());
    // Empty commit right after load.
    assert.deepEqual(tree.commit(), { puts: [], deletes: [] });
    tree.update([
      ...keys.slice(0, 100).map((k) => [k, null] as const),
      ...Array.from({ length: 100 }, (_, i) => [key(50_000 + i), val(i)] as const),
    ]);
    const batch = tree.commit();
    assert.ok(batch.puts.length > 0 && batch.deletes.length > 0);
    store.apply(batch);
    const records = store.records();
    for (let i = records.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [records[i], records[j]] = [records[j]!, records[i]!];
    }
    const loaded = StateTree.fromNodeRecords(records);
    assert.deepEqual(loaded.root(), tree.root());
    assert.equal(loaded.size, 400);
    for (const k of [...keys.slice(90, 110), key(50_000), key(1)]) {
      assert.deepEqual(StateProof.encode(loaded.prove(k)), StateProof.encode(tree.prove(k)));
    }
    assert.deepEqual(StateTree.fromNodeRecords(records, { verify: true }).root(), tree.root());
    assert.deepEqual(StateTree.fromNodeRecords([]).root(), EMPTY_ROOT);
    // Loaded trees update like any other.
    loaded.update([[key(1), val(1)]]);
    tree.update([[key(1), val(1)]]);
    assert.deepEqual(loaded.root(), tree.root());
  });

  it('rejects corrupt node records', () => {
    const { tree } = randomTree(64, 8);
    const records = [...tree.nodeRecords()];
    const load = (recs: NodeRecord[], verify = false) => StateTree.fromNodeRecords(recs, { verify });
    const code = 'STATE_BAD_RECORD';
    const leafAt = records.findIndex((r) => r.value.length === 96 && r.key[1]! > 0);
    const innerAt = records.findIndex((r, i) => i > 0 && r.value.length === 32);
    expectStateError(() => load(records.filter((_, i) => i !== innerAt)), code); // missing internal
    expectStateError(() => load(records.filter((_, i) => i !== 0)), code); // missing root
    expectStateError(() => load([...records, records[leafAt]!]), code); // duplicate
    // A leaf whose sibling is a leaf: dropping it leaves a lone leaf that should have been lifted.
    const hex = records.map((r) => bytesToHex(r.key));
    const pairAt = records.findIndex((r) => {
      if (r.value.length !== 96) return false;
      const d = (r.key[0]! << 8) | r.key[1]!;
      if (d === 0) return false;
      const sib = r.key.slice();
      sib[2 + ((d - 1) >> 3)]! ^= 0x80 >> ((d - 1) & 7);
      const j = hex.indexOf(bytesToHex(sib));
      return j >= 0 && records[j]!.value.length === 96;
    });
    assert.ok(pairAt >= 0);
    expectStateError(() => load(records.filter((_, i) => i !== pairAt)), code);
    const withValue = (i: number, value: Uint8Array) =>
      records.map((r, j) => (j === i ? { key: r.key, value } : r));
    expectStateError(() => load(withValue(leafAt, records[leafAt]!.value.subarray(1))), code);
    const tampered = records[leafAt]!.value.slice();
    tampered[95]! ^= 1;
    assert.ok(load(withValue(leafAt, tampered))); // hashes trusted without verify
    expectStateError(() => load(withValue(leafAt, tampered), true), code);
    const moved = records[leafAt]!.value.slice();
    moved[32]! ^= 0x80; // key no longer on the record's path
    expectStateError(() => load(withValue(leafAt, moved)), code);
    const badKey = records.map((r, j) => (j === innerAt ? { key: r.key.subarray(1), value: r.value } : r));
    expectStateError(() => load(badKey), code);
    const innerHash = records[innerAt]!.value.slice();
    innerHash[0]! ^= 1;
    expectStateError(() => load(withValue(innerAt, innerHash), true), code);
  });
});

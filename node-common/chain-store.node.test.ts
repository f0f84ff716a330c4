import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { after, assert, describe, it } from '#test';
import { bytesToHex, hexToBytes } from '../shared/bytes.ts';
import { blockHash, txId } from '../shared/chain/ids.ts';
import type { BlockDiff, Ledger } from '../shared/chain/ledger.ts';
import { Mempool } from '../shared/chain/mempool.ts';
import {
  createTestChain,
  makeTransfer,
  nextFinalizedBlock,
  plainOutput,
  remine,
  type TestChain,
  verifiersFor,
} from '../shared/chain/testkit.ts';
import { type Block, type FinalityCertificate, OutPoint, TxOut } from '../shared/chain/types.ts';
import { ChainStore, keys, PREFIX, StoreMeta } from './chain-store.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'chain-store-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every key/value of a closed store directory, hex, for before/after comparisons. */
async function dump(dir: string): Promise<Map<string, string>> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const out = new Map<string, string>();
  for await (const [k, v] of db.iterator()) out.set(bytesToHex(k), bytesToHex(v));
  await db.close();
  return out;
}

async function rawPut(dir: string, key: Uint8Array, value: Uint8Array | null): Promise<void> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  if (value === null) await db.del(key);
  else await db.put(key, value);
  await db.close();
}

async function rawGet(dir: string, key: Uint8Array): Promise<Uint8Array | undefined> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const v = await db.get(key);
  await db.close();
  return v;
}

/** Outpoints (and outputs) of `owner` in a ledger, by scanning its UTXO set. */
function owned(ledger: Ledger, owner: Uint8Array): { outpoint: OutPoint; out: TxOut }[] {
  const res: { outpoint: OutPoint; out: TxOut }[] = [];
  for (const { key, out } of ledger.unspent()) {
    if (bytesToHex(out.owner) === bytesToHex(owner))
      res.push({ outpoint: OutPoint.decode(hexToBytes(key)), out });
  }
  return res;
}

const opHex = (op: OutPoint) => bytesToHex(OutPoint.encode(op));
const sortedHex = (ops: OutPoint[]) => ops.map(opHex).sort();

/**
 * Next block on `chain.ledger` (the in-memory reference): every account sends its largest output
 * split between the next account and change (`outputs` pieces), paying a fee.
 */
async function nextBlock(
  chain: TestChain,
  outputs = 2,
): Promise<{ block: Block; certificate: FinalityCertificate }> {
  const mempool = new Mempool(chain.ledger, { maxBytes: 1_000_000 });
  for (const [i, from] of chain.accounts.entries()) {
    const mine = owned(chain.ledger, from.address).sort((a, b) => (a.out.value < b.out.value ? 1 : -1));
    const src = mine[0];
    if (src === undefined || src.out.value < 100_000n) continue;
    const to = chain.accounts[(i + 1) % chain.accounts.length]!;
    const fee = 20_000n;
    const piece = (src.out.value - fee) / BigInt(outputs);
    const outs = Array.from({ length: outputs }, (_, j) =>
      plainOutput(
        j === 0 ? to.address : from.address,
        j === 0 ? src.out.value - fee - piece * BigInt(outputs - 1) : piece,
      ),
    );
    await mempool.add(await makeTransfer(chain, from, [src.outpoint], outs));
  }
  return nextFinalizedBlock(chain, mempool, chain.accounts[Number(chain.ledger.tip.height % 4n)]!.address);
}

/** Applies the next block to the reference ledger, the stored ledger and the store. */
async function advance(chain: TestChain, ledger: Ledger, store: ChainStore, outputs = 2): Promise<BlockDiff> {
  const { block, certificate } = await nextBlock(chain, outputs);
  await chain.ledger.applyFinalized(block, certificate);
  const diff = await ledger.applyFinalized(block, certificate);
  await store.commitBlock(diff, certificate);
  return diff;
}

function utxoMap(ledger: Ledger): Map<string, string> {
  const m = new Map<string, string>();
  for (const { key, out } of ledger.unspent()) m.set(key, bytesToHex(TxOut.encode(out)));
  return m;
}

/** The two ledgers hold the same state: tip, root, supply, times and every UTXO. */
function assertSameLedger(actual: Ledger, expected: Ledger): void {
  assert.equal(actual.tip.height, expected.tip.height, 'tip height');
  assert.deepEqual(actual.tip.hash, expected.tip.hash, 'tip hash');
  assert.deepEqual(actual.tip.header, expected.tip.header, 'tip header');
  assert.deepEqual(actual.stateRoot, expected.stateRoot, 'stateRoot');
  assert.deepEqual(actual.supply, expected.supply, 'supply');
  assert.deepEqual(actual.recentTimes, expected.recentTimes, 'recent times');
  assert.deepEqual(actual.genesisHash, expected.genesisHash, 'genesis hash');
  assert.equal(actual.utxoCount, expected.utxoCount, 'utxo count');
  assert.deepEqual(utxoMap(actual), utxoMap(expected), 'utxo set');
}

/** The store's UTXO records and address index match `expected`. */
async function assertStoreMatches(store: ChainStore, chain: TestChain, expected: Ledger): Promise<void> {
  for (const { key, out } of expected.unspent()) {
    const got = await store.getUtxo(OutPoint.decode(hexToBytes(key)));
    assert.ok(got !== undefined, `utxo ${key} stored`);
    assert.deepEqual(got, out);
  }
  let total = 0;
  for (const a of chain.accounts) {
    const got = await store.outpointsOf(a.address);
    total += got.length;
    assert.deepEqual(
      sortedHex(got),
      sortedHex(owned(expected, a.address).map((o) => o.outpoint)),
      `index of ${a.index}`,
    );
  }
  assert.equal(total, expected.utxoCount, 'address index covers every UTXO');
}

async function fresh(accounts = 4) {
  const chain = await createTestChain({ accounts });
  const dir = tempDir();
  const store = await ChainStore.open(dir);
  const ledger = await store.loadLedger(chain.genesis, verifiersFor(chain.ed));
  return { chain, dir, store, ledger };
}

describe('ChainStore: genesis', () => {
  it('initialises an empty store from the genesis block and reads it back', async () => {
    const { chain, store, ledger, dir } = await fresh();
    assertSameLedger(ledger, chain.ledger);
    const b0 = await store.getBlock(0n);
    assert.deepEqual(b0, chain.block0);
    assert.deepEqual(await store.getBlock(chain.ledger.tip.hash), chain.block0);
    assert.equal(await store.getHeight(chain.ledger.tip.hash), 0n);
    assert.equal(await store.getCertificate(0n), undefined, 'genesis has no certificate');
    const gid = txId(chain.genesis.chainId, chain.block0.transactions[0]!.body);
    assert.deepEqual(await store.getTxLocation(gid), { height: 0n, index: 0 });
    await assertStoreMatches(store, chain, chain.ledger);
    assert.equal((await store.getHeaders(0n, 10)).length, 1);
    await store.close();
    // Reopening a genesis-only store restores the same ledger.
    const again = await ChainStore.open(dir);
    assertSameLedger(await again.loadLedger(chain.genesis, verifiersFor(chain.ed)), chain.ledger);
    await again.close();
  });
});

describe('ChainStore: blocks', () => {
  it('round-trips blocks, certificates, headers, tx locations, UTXOs and the address index', async () => {
    const { chain, store, ledger } = await fresh();
    const blocks: { block: Block; certificate: FinalityCertificate }[] = [];
    for (let i = 0; i < 5; i++) {
      const diff = await advance(chain, ledger, store, 3);
      blocks.push({ block: diff.block, certificate: (await store.getCertificate(diff.height))! });
      assert.ok(diff.spent.length > 0, 'blocks spend outputs');
    }
    assertSameLedger(ledger, chain.ledger);
    await assertStoreMatches(store, chain, chain.ledger);
    for (const [i, { block }] of blocks.entries()) {
      const h = BigInt(i + 1);
      assert.deepEqual(await store.getBlock(h), block, `block ${h}`);
      const hash = blockHash(chain.genesis.chainId, block.header);
      assert.deepEqual(await store.getBlock(hash), block, `block ${h} by hash`);
      const cert = await store.getCertificate(h);
      assert.ok(cert !== undefined);
      assert.equal(cert.height, h);
      assert.deepEqual(cert.blockHash, hash);
      for (const [index, tx] of block.transactions.entries()) {
        assert.deepEqual(await store.getTxLocation(txId(chain.genesis.chainId, tx.body)), {
          height: h,
          index,
        });
      }
    }
    const headers = await store.getHeaders(2n, 3);
    assert.deepEqual(
      headers,
      blocks.slice(1, 4).map((b) => b.block.header),
    );
    assert.equal((await store.getHeaders(4n, 100)).length, 2, 'stops at the tip');
    assert.deepEqual(await store.getHeaders(99n, 3), []);
    assert.equal(await store.getBlock(99n), undefined);
    assert.equal(await store.getBlock(-1n), undefined);
    assert.equal(await store.getCertificate(2n ** 64n), undefined);
    assert.deepEqual(await store.getHeaders(2n ** 64n - 2n, 5), []);
    assert.equal(await store.getBlock(new Uint8Array(32)), undefined);
    assert.equal(await store.getCertificate(99n), undefined);
    assert.equal(await store.getTxLocation(new Uint8Array(32)), undefined);
    // Spent outputs are gone from the UTXO records and the index.
    const firstSpent = (await store.getBlock(1n))!.transactions[1]!.body.inputs[0]!;
    assert.equal(await store.getUtxo(firstSpent), undefined);
    assert.deepEqual(await store.outpointsOf(new Uint8Array(20)), []);
    await store.close();
  });

  it('restart: close and reopen restores the identical ledger, and the chain continues', async () => {
    const { chain, store, ledger, dir } = await fresh();
    for (let i = 0; i < 4; i++) await advance(chain, ledger, store, 4);
    await store.close();

    const s2 = await ChainStore.open(dir);
    const restored = await s2.loadLedger(chain.genesis, verifiersFor(chain.ed));
    assertSameLedger(restored, chain.ledger);
    await assertStoreMatches(s2, chain, chain.ledger);
    // Continue on the restored ledger; then restart again.
    for (let i = 0; i < 3; i++) await advance(chain, restored, s2, 2);
    assertSameLedger(restored, chain.ledger);
    await s2.close();

    const s3 = await ChainStore.open(dir);
    const again = await s3.loadLedger(chain.genesis, verifiersFor(chain.ed));
    assertSameLedger(again, chain.ledger);
    await assertStoreMatches(s3, chain, chain.ledger);
    assert.equal(again.tip.height, 7n);
    await s3.close();
  });

  it('accepts a commit before the previous one resolved (writes stay in order)', async () => {
    const { chain, store, ledger, dir } = await fresh();
    const pending: Promise<void>[] = [];
    const acks: bigint[] = [];
    for (let i = 0; i < 4; i++) {
      const { block, certificate } = await nextBlock(chain);
      await chain.ledger.applyFinalized(block, certificate);
      const diff = await ledger.applyFinalized(block, certificate);
      pending.push(store.commitBlock(diff, certificate).then(() => void acks.push(diff.height)));
    }
    await Promise.all(pending);
    assert.deepEqual(acks, [1n, 2n, 3n, 4n]);
    await store.close();
    const s2 = await ChainStore.open(dir);
    assertSameLedger(await s2.loadLedger(chain.genesis, verifiersFor(chain.ed)), chain.ledger);
    await s2.close();
  });
});

describe('ChainStore: nothing changes on failure', () => {
  it('a block that fails validation changes nothing on disk', async () => {
    const { chain, store, ledger, dir } = await fresh();
    await advance(chain, ledger, store);
    await store.close();
    const before = await dump(dir);

    const s2 = await ChainStore.open(dir);
    const l2 = await s2.loadLedger(chain.genesis, verifiersFor(chain.ed));
    const { block, certificate } = await nextBlock(chain);
    // Bad state root (re-mined so that only that rule fails), then a certificate for another block.
    const badRoot = remine(chain.genesis.chainId, {
      ...block,
      header: { ...block.header, stateRoot: new Uint8Array(32).fill(7) },
    });
    await assert.rejects(() => l2.applyFinalized(badRoot, certificate), {
      name: 'LedgerError',
      code: 'CERT_BAD_BLOCK_HASH',
    });
    const badCert = { ...certificate, groupSignature: certificate.groupSignature.slice() };
    badCert.groupSignature[5]! ^= 1;
    await assert.rejects(() => l2.applyFinalized(block, badCert), { name: 'LedgerError' });
    await assert.rejects(() => l2.validateBlock(badRoot), {
      name: 'LedgerError',
      code: 'BLOCK_BAD_STATE_ROOT',
    });
    assert.equal(l2.tip.height, 1n);
    await s2.close();
    assert.deepEqual(await dump(dir), before, 'store unchanged');
  });

  it('commitBlock refuses diffs that do not follow the stored tip or were not applied to the ledger', async () => {
    const { chain, store, ledger, dir } = await fresh();
    await advance(chain, ledger, store);
    const { block, certificate } = await nextBlock(chain);
    const diff = await ledger.validateBlock(block); // validated, not applied to the ledger
    await assert.rejects(() => store.commitBlock(diff, certificate), {
      name: 'LedgerError',
      code: 'BLOCK_BAD_STATE_ROOT',
    });
    await assert.rejects(() => store.commitBlock({ ...diff, height: 5n }, certificate), {
      name: 'LedgerError',
      code: 'BLOCK_BAD_HEIGHT',
    });
    ledger.commit(diff);
    await assert.rejects(() => store.commitBlock(diff, { ...certificate, height: 9n }), {
      name: 'LedgerError',
      code: 'CERT_BAD_HEIGHT',
    });
    await assert.rejects(() => store.commitBlock(diff, { ...certificate, blockHash: new Uint8Array(32) }), {
      name: 'LedgerError',
      code: 'CERT_BAD_BLOCK_HASH',
    });
    await store.close();
    const s2 = await ChainStore.open(dir);
    const restored = await s2.loadLedger(chain.genesis, verifiersFor(chain.ed));
    assert.equal(restored.tip.height, 1n, 'the refused block was not written');
    await s2.close();
  });
});

describe('ChainStore: integrity', () => {
  it('detects a store created from another genesis', async () => {
    const { chain, store, dir } = await fresh();
    await store.close();
    const other = { ...chain.genesis, time: chain.genesis.time + 1n };
    const s2 = await ChainStore.open(dir);
    await assert.rejects(() => s2.loadLedger(other, verifiersFor(chain.ed)), {
      name: 'LedgerError',
      code: 'STORE_CORRUPT',
    });
    await s2.close();
    const s3 = await ChainStore.open(dir);
    const renamed = { ...chain.genesis, chainId: 'pouw-other' };
    await assert.rejects(() => s3.loadLedger(renamed, verifiersFor(chain.ed)), {
      name: 'LedgerError',
      code: 'STORE_CORRUPT',
    });
    await s3.close();
  });

  it('detects corrupted records', async () => {
    const { chain, store, ledger, dir } = await fresh();
    for (let i = 0; i < 3; i++) await advance(chain, ledger, store);
    await store.close();
    const verifiers = verifiersFor(chain.ed);
    const loadFails = async (what: string) => {
      const s = await ChainStore.open(dir);
      await assert.rejects(
        () => s.loadLedger(chain.genesis, verifiers),
        { name: 'LedgerError', code: 'STORE_CORRUPT' },
        what,
      );
      await s.close();
    };
    const [someUtxo] = [...chain.ledger.unspent()];
    const op = OutPoint.decode(hexToBytes(someUtxo!.key));
    const utxoKey = keys.utxo(op);
    const good = (await rawGet(dir, utxoKey))!;

    // A UTXO whose value changed (still decodes): not the committed state.
    const changed = TxOut.encode({ ...TxOut.decode(good), value: TxOut.decode(good).value + 1n });
    await rawPut(dir, utxoKey, changed);
    await loadFails('changed utxo');
    // Bytes that do not decode.
    await rawPut(dir, utxoKey, good.subarray(0, 10));
    await loadFails('truncated utxo');
    // A missing UTXO.
    await rawPut(dir, utxoKey, null);
    await loadFails('missing utxo');
    await rawPut(dir, utxoKey, good);

    // A missing address-index entry.
    const addrKey = keys.addr(someUtxo!.out.owner, op);
    await rawPut(dir, addrKey, null);
    await loadFails('missing index entry');
    await rawPut(dir, addrKey, new Uint8Array(0));

    // A damaged state-tree node record.
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    let nodeKey: Uint8Array | undefined;
    let nodeVal: Uint8Array | undefined;
    for await (const [k, v] of db.iterator({
      gte: Uint8Array.of(PREFIX.NODE),
      lt: Uint8Array.of(PREFIX.NODE + 1),
      limit: 1,
    })) {
      nodeKey = k;
      nodeVal = v;
    }
    await db.close();
    assert.ok(nodeKey !== undefined && nodeVal !== undefined);
    await rawPut(dir, nodeKey, nodeVal.subarray(0, 31));
    await loadFails('bad node record');
    await rawPut(dir, nodeKey, nodeVal);

    // Meta that does not decode.
    const meta = (await rawGet(dir, keys.meta()))!;
    await rawPut(dir, keys.meta(), meta.subarray(0, meta.length - 3));
    await loadFails('bad meta');
    // Meta pointing at a tip that is not the stored block.
    const m = StoreMeta.decode(meta);
    await rawPut(dir, keys.meta(), StoreMeta.encode({ ...m, tipHash: new Uint8Array(32).fill(1) }));
    await loadFails('tip hash mismatch');
    await rawPut(dir, keys.meta(), meta);

    // Intact again: loads. Block and certificate corruption shows on read.
    const s = await ChainStore.open(dir);
    const restored = await s.loadLedger(chain.genesis, verifiers);
    assertSameLedger(restored, chain.ledger);
    await s.close();
    const blockBytes = (await rawGet(dir, keys.block(2n)))!;
    await rawPut(dir, keys.block(2n), blockBytes.subarray(0, 100));
    const certBytes = (await rawGet(dir, keys.cert(2n)))!;
    await rawPut(dir, keys.cert(2n), certBytes.subarray(0, 40));
    const s4 = await ChainStore.open(dir);
    await s4.loadLedger(chain.genesis, verifiers);
    await assert.rejects(() => s4.getBlock(2n), { name: 'LedgerError', code: 'STORE_CORRUPT' }, 'block');
    await assert.rejects(() => s4.getCertificate(2n), { name: 'LedgerError', code: 'STORE_CORRUPT' }, 'cert');
    await assert.rejects(
      () => s4.getHeaders(0n, 5),
      { name: 'LedgerError', code: 'STORE_CORRUPT' },
      'headers',
    );
    assert.ok((await s4.getBlock(1n)) !== undefined);
    await s4.close();
  });

  it('rejects use after close with STORE_CLOSED', async () => {
    const { chain, store, ledger } = await fresh();
    const { block, certificate } = await nextBlock(chain);
    const diff = await ledger.applyFinalized(block, certificate);
    await store.close();
    await assert.rejects(() => store.commitBlock(diff, certificate), {
      name: 'LedgerError',
      code: 'STORE_CLOSED',
    });
    await assert.rejects(() => store.getBlock(0n), { name: 'LedgerError', code: 'STORE_CLOSED' });
    await assert.rejects(() => store.loadLedger(chain.genesis, verifiersFor(chain.ed)), {
      name: 'LedgerError',
      code: 'STORE_CLOSED',
    });
    await store.close(); // idempotent
  });
});

/**
 * Ledger benchmark (`npm run bench`, or `node --import tsx bench/ledger.ts`): transactions validated
 * per second per Ed25519 implementation (signature-bound), and the time to validate, apply and
 * commit a block of 1,000 transfers, in memory and with the LevelDB store. Prints a table and writes
 * bench/results/ledger-latest.json with machine details.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainStore } from '../node-common/chain-store.ts';
import { nodeCryptoEd25519 } from '../node-common/ed25519-node.ts';
import { txId } from '../shared/chain/ids.ts';
import { Mempool } from '../shared/chain/mempool.ts';
import { buildBlockTemplate } from '../shared/chain/template.ts';
import {
  certify,
  createTestChain,
  genesisOutpoint,
  makeTransfer,
  plainOutput,
  remine,
  type TestChain,
} from '../shared/chain/testkit.ts';
import type { Transaction } from '../shared/chain/types.ts';
import { type Block, Block as BlockCodec, type FinalityCertificate } from '../shared/chain/types.ts';
import * as bls from '../shared/crypto/bls.ts';
import { type Ed25519, nobleEd25519, webCryptoEd25519 } from '../shared/crypto/ed25519.ts';
import { describeMachine, machineInfo } from './machine.ts';

const ACCOUNTS = 250;
const FANOUT = 4;
const BLOCK_TXS = 1000;

interface Row {
  what: string;
  impl: string;
  value: number;
  unit: string;
}

interface Prepared {
  chain: TestChain;
  /** Block 1 (the fan-out) with its certificate, to replay on another ledger. */
  fanout: { block: Block; certificate: FinalityCertificate };
  txs: Transaction[];
}

async function prepare(ed: Ed25519): Promise<Prepared> {
  const chain = await createTestChain({ accounts: ACCOUNTS, value: 10_000_000_000n, ed });
  // Block 1 fans each genesis output out into FANOUT outputs, so block 2 can hold 1,000 transfers.
  const mempool = new Mempool(chain.ledger, { maxBytes: 64 << 20 });
  const fanouts: Transaction[] = [];
  for (let i = 0; i < ACCOUNTS; i++) {
    const a = chain.accounts[i]!;
    const each = (10_000_000_000n - 100_000n) / BigInt(FANOUT);
    const tx = await makeTransfer(
      chain,
      a,
      [genesisOutpoint(chain, i)],
      Array.from({ length: FANOUT }, () => plainOutput(a.address, each)),
    );
    fanouts.push(tx);
    await mempool.add(tx);
  }
  const time = chain.genesis.time + 3000n;
  const t1 = await buildBlockTemplate(chain.ledger, mempool, { payout: chain.accounts[0]!.address, time });
  const b1 = remine(chain.genesis.chainId, t1);
  const fanout = { block: b1, certificate: certify(chain.genesis.chainId, b1, chain.committee.groupSecret) };
  await chain.ledger.applyFinalized(fanout.block, fanout.certificate);
  const txs: Transaction[] = [];
  for (let k = 0; k < BLOCK_TXS; k++) {
    const i = k % ACCOUNTS;
    const a = chain.accounts[i]!;
    const to = chain.accounts[(i + 1) % ACCOUNTS]!;
    const src = fanouts[i]!;
    const op = { txId: txId(chain.genesis.chainId, src.body), index: Math.floor(k / ACCOUNTS) };
    const value = src.body.outputs[op.index]!.value - 1000n;
    txs.push(await makeTransfer(chain, a, [op], [plainOutput(to.address, value)]));
  }
  return { chain, fanout, txs };
}

async function timeIt<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}

const rows: Row[] = [];
const impls: Ed25519[] = [nobleEd25519, nodeCryptoEd25519];
try {
  impls.push(await webCryptoEd25519());
} catch {
  // no WebCrypto Ed25519 on this runtime
}

for (const ed of impls) {
  const prepared = await prepare(ed);
  const { chain, txs } = prepared;
  // Transactions validated per second: full stateless + stateful validation, signatures included.
  const [, validateMs] = await timeIt(async () => {
    for (const tx of txs) await chain.ledger.checkTransaction(tx);
  });
  rows.push({
    what: 'transactions validated',
    impl: ed.name,
    value: (txs.length * 1000) / validateMs,
    unit: 'tx/s',
  });

  // Block of 1,000 transfers: validate (signatures, inputs, merkle, stateRoot on a fork) + commit.
  const mempool = new Mempool(chain.ledger, { maxBytes: 64 << 20 });
  for (const tx of txs) await mempool.add(tx);
  const template = await buildBlockTemplate(chain.ledger, mempool, {
    payout: chain.accounts[0]!.address,
    time: chain.genesis.time + 6000n,
  });
  const block = remine(chain.genesis.chainId, template);
  const cert = certify(chain.genesis.chainId, block, chain.committee.groupSecret);
  if (block.transactions.length !== BLOCK_TXS + 1)
    throw new Error(`template took ${block.transactions.length - 1} transactions`);
  const fork = chain.ledger.fork();
  const [, coldMs] = await timeIt(() => fork.applyFinalized(block, cert));
  rows.push({
    what: `apply block of ${BLOCK_TXS} transfers (signatures checked)`,
    impl: ed.name,
    value: coldMs,
    unit: 'ms',
  });
  const [, warmMs] = await timeIt(() =>
    chain.ledger.applyFinalized(block, cert, {}, mempool.verifiedSignatures),
  );
  rows.push({
    what: `apply block of ${BLOCK_TXS} transfers (signatures cached by mempool)`,
    impl: ed.name,
    value: warmMs,
    unit: 'ms',
  });
  if (ed === nodeCryptoEd25519) {
    rows.push({ what: 'block size', impl: '-', value: BlockCodec.encode(block).length, unit: 'bytes' });
    await benchStore(prepared, block, cert, ed);
  }
}

/** The same block on a LevelDB-backed ledger: validate + apply, then one synced atomic batch. */
async function benchStore(p: Prepared, block: Block, cert: FinalityCertificate, ed: Ed25519): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pouw-bench-store-'));
  try {
    const store = await ChainStore.open(dir);
    const ledger = await store.loadLedger(p.chain.genesis, {
      ed25519Verify: ed.verify.bind(ed),
      blsVerify: bls.verify,
    });
    await store.commitBlock(
      await ledger.applyFinalized(p.fanout.block, p.fanout.certificate),
      p.fanout.certificate,
    );
    const [diff, applyMs] = await timeIt(() => ledger.applyFinalized(block, cert));
    const [, commitMs] = await timeIt(() => store.commitBlock(diff, cert));
    rows.push({
      what: `LevelDB: apply block of ${BLOCK_TXS} transfers`,
      impl: ed.name,
      value: applyMs,
      unit: 'ms',
    });
    rows.push({ what: 'LevelDB: durable commit (one synced batch)', impl: '-', value: commitMs, unit: 'ms' });
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const machine = machineInfo();
console.log(`ledger benchmark — ${describeMachine(machine)}`);
const w = Math.max(...rows.map((r) => r.what.length));
for (const r of rows)
  console.log(
    `${r.what.padEnd(w)}  ${r.impl.padEnd(12)}  ${r.value.toFixed(r.unit === 'ms' ? 1 : 0).padStart(10)} ${r.unit}`,
  );
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, 'ledger-latest.json'),
  `${JSON.stringify({ kind: 'ledger', date: new Date().toISOString(), machine, rows }, null, 2)}\n`,
);

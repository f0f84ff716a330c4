import { assert, describe, it } from '#test';
import { bytesToHex, equalBytes, utf8 } from '../bytes.ts';
import * as bls from '../crypto/bls.ts';
import { isPouwError, type PouwError } from '../errors.ts';
import { StateTree } from '../state/state-tree.ts';
import { blockHash, merkleRoot, stateKey, stateValue, txId, wtxId } from './ids.ts';
import { Mempool } from './mempool.ts';
import { BuyTicketsPayload, PayForTaskPayload, SettleTaskPayload, SlashPayload } from './payloads.ts';
import { meetsTarget } from './pow.ts';
import { buildBlockTemplate, grindNonce } from './template.ts';
import {
  certify,
  committeeSign,
  createTestChain,
  genesisOutpoint,
  makeTransfer,
  nextFinalizedBlock,
  plainOutput,
  remine,
  signTx,
  type TestChain,
} from './testkit.ts';
import {
  type Block,
  LockKind,
  OutPoint,
  Role,
  type Transaction,
  Transaction as TransactionCodec,
  TxKind,
} from './types.ts';

async function expectLedgerError(p: Promise<unknown> | (() => unknown), code: string): Promise<PouwError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(isPouwError(e), `expected a typed error, got ${String(e)}`);
    assert.equal(e.name, 'LedgerError', `error ${e.message}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  throw new Error(`expected LedgerError ${code}, nothing was thrown`);
}

function snapshot(chain: TestChain) {
  return {
    height: chain.ledger.tip.height,
    root: bytesToHex(chain.ledger.stateRoot),
    utxos: chain.ledger.utxoCount,
  };
}

async function finalizeNext(chain: TestChain, mempool?: Mempool) {
  const { block, certificate } = await nextFinalizedBlock(chain, mempool);
  const diff = await chain.ledger.applyFinalized(block, certificate);
  mempool?.onBlock(diff, chain.ledger);
  return diff;
}

/** A block at the next height carrying `txs` (after the coinbase), mined and certified. */
async function blockWith(
  chain: TestChain,
  txs: Transaction[],
  fees = 0n,
): Promise<{ block: Block; cert: ReturnType<typeof certify> }> {
  const template = await buildBlockTemplate(chain.ledger, undefined, {
    payout: chain.accounts[0]!.address,
    time: chain.genesis.time + (chain.ledger.tip.height + 1n) * 3000n,
  });
  const coinbase = template.transactions[0]!;
  coinbase.body.outputs[0]!.value += fees;
  const transactions = [coinbase, ...txs];
  const header = {
    ...template.header,
    merkleRoot: merkleRoot(
      chain.genesis.chainId,
      transactions.map((t) => wtxId(chain.genesis.chainId, t)),
    ),
  };
  // stateRoot: compute what it would be if everything were valid, so only the intended rule fails.
  const fork = chain.ledger.fork();
  const spent = txs.flatMap((t) => t.body.inputs.map((outpoint) => ({ outpoint })));
  const created = transactions.flatMap((t) => {
    const id = txId(chain.genesis.chainId, t.body);
    return t.body.outputs.map((out, index) => ({ outpoint: { txId: id, index }, out }));
  });
  header.stateRoot = fork.stateRootAfter(spent, created);
  const block = remine(chain.genesis.chainId, { header, transactions });
  return { block, cert: certify(chain.genesis.chainId, block, chain.committee.groupSecret) };
}

describe('ledger: blocks and finality', () => {
  it('applies finalized blocks in order and pays the subsidy', async () => {
    const chain = await createTestChain();
    const before = chain.ledger.supply;
    const diff = await finalizeNext(chain);
    assert.equal(chain.ledger.tip.height, 1n);
    assert.equal(diff.subsidy, chain.genesis.params.initialReward);
    assert.equal(chain.ledger.supply.subsidies, before.subsidies + diff.subsidy);
    assert.ok(equalBytes(chain.ledger.stateRoot, diff.block.header.stateRoot));
  });

  it('rejects a block without certificate, with a bad one, or one for another block', async () => {
    const chain = await createTestChain();
    const { block, certificate } = await nextFinalizedBlock(chain);
    const snap = snapshot(chain);
    await expectLedgerError(chain.ledger.applyFinalized(block, undefined), 'CERT_MISSING');
    const wrongKeySig = bls.sign(bls.keyGen(new Uint8Array(32).fill(9)), new Uint8Array(32));
    await expectLedgerError(
      chain.ledger.applyFinalized(block, { ...certificate, groupSignature: wrongKeySig }),
      'CERT_BAD_SIGNATURE',
    );
    await expectLedgerError(
      chain.ledger.applyFinalized(block, { ...certificate, height: 2n }),
      'CERT_BAD_HEIGHT',
    );
    await expectLedgerError(
      chain.ledger.applyFinalized(block, { ...certificate, chainId: utf8('other') }),
      'CERT_BAD_CHAIN',
    );
    await expectLedgerError(
      chain.ledger.applyFinalized(block, { ...certificate, blockHash: new Uint8Array(32) }),
      'CERT_BAD_BLOCK_HASH',
    );
    // A valid signature over a different history root is not this certificate.
    await expectLedgerError(
      chain.ledger.applyFinalized(block, { ...certificate, historyRoot: new Uint8Array(32).fill(1) }),
      'CERT_BAD_SIGNATURE',
    );
    assert.deepEqual(snapshot(chain), snap);
    await chain.ledger.applyFinalized(block, certificate);
    assert.equal(chain.ledger.tip.height, 1n);
  });

  it('rejects wrong previous hash, wrong height, proof of work above target, bad bits, bad merkle and state roots', async () => {
    const chain = await createTestChain();
    const { block } = await nextFinalizedBlock(chain);
    const snap = snapshot(chain);
    const tamper = async (change: (b: Block) => void, code: string, mine = true) => {
      const b: Block = { ...block, header: { ...block.header } };
      change(b);
      const mined = mine ? remine(chain.genesis.chainId, b) : b;
      await expectLedgerError(
        chain.ledger.applyFinalized(
          mined,
          certify(chain.genesis.chainId, mined, chain.committee.groupSecret),
        ),
        code,
      );
    };
    await tamper((b) => (b.header.prevHash = new Uint8Array(32).fill(3)), 'BLOCK_BAD_PREV_HASH');
    await tamper((b) => (b.header.height = 2n), 'BLOCK_BAD_HEIGHT');
    await tamper((b) => (b.header.bits = 0x2000ffff), 'BLOCK_BAD_BITS');
    await tamper((b) => (b.header.merkleRoot = new Uint8Array(32)), 'BLOCK_BAD_MERKLE_ROOT');
    await tamper((b) => (b.header.stateRoot = new Uint8Array(32)), 'BLOCK_BAD_STATE_ROOT');
    await tamper((b) => (b.header.time = chain.genesis.time), 'BLOCK_TIME_TOO_OLD');
    await tamper((b) => (b.header.version = 2), 'BLOCK_BAD_VERSION');
    // Proof of work: find a nonce whose hash is above the (easy) target.
    const above = { ...block, header: { ...block.header } };
    for (let i = 1; ; i++) {
      above.header.nonce = new Uint8Array(32).fill(i);
      if (!meetsTarget(blockHash(chain.genesis.chainId, above.header), above.header.bits)) break;
    }
    await tamper((b) => (b.header.nonce = above.header.nonce), 'BLOCK_POW_ABOVE_TARGET', false);
    await expectLedgerError(
      chain.ledger.validateBlock(block, { now: block.header.time - chain.genesis.params.maxFutureMs - 1n }),
      'BLOCK_TIME_TOO_NEW',
    );
    assert.deepEqual(snapshot(chain), snap);
  });

  it('rejects a coinbase above subsidy + fees, a missing coinbase and a second coinbase', async () => {
    const chain = await createTestChain();
    const { block } = await blockWith(chain, [], 1n);
    await expectLedgerError(
      chain.ledger.applyFinalized(block, certify(chain.genesis.chainId, block, chain.committee.groupSecret)),
      'BLOCK_COINBASE_AMOUNT',
    );
    const { block: good } = await blockWith(chain, []);
    const noCoinbase = remine(chain.genesis.chainId, { header: good.header, transactions: [] });
    await expectLedgerError(chain.ledger.validateBlock(noCoinbase), 'BLOCK_NO_COINBASE');
    const twoCoinbases = await blockWith(chain, [good.transactions[0]!]);
    await expectLedgerError(chain.ledger.validateBlock(twoCoinbases.block), 'BLOCK_BAD_COINBASE');
  });

  it('rejects double spends within a block and across blocks', async () => {
    const chain = await createTestChain();
    const [a, b, c] = chain.accounts;
    const op = genesisOutpoint(chain, 0);
    const t1 = await makeTransfer(chain, a!, [op], [plainOutput(b!.address, 999_000_000n)]);
    const t2 = await makeTransfer(chain, a!, [op], [plainOutput(c!.address, 999_000_000n)]);
    const both = await blockWith(chain, [t1, t2], 2_000_000n);
    await expectLedgerError(chain.ledger.applyFinalized(both.block, both.cert), 'BLOCK_DOUBLE_SPEND');
    const one = await blockWith(chain, [t1], 1_000_000n);
    await chain.ledger.applyFinalized(one.block, one.cert);
    const again = await blockWith(chain, [t2], 1_000_000n);
    await expectLedgerError(chain.ledger.applyFinalized(again.block, again.cert), 'TX_MISSING_INPUT');
  });

  it('an output created and spent in the same block is in neither the UTXO set nor the state root', async () => {
    const chain = await createTestChain();
    const [a, b, c] = chain.accounts;
    const { chainId } = chain.genesis;
    const first = await makeTransfer(
      chain,
      a!,
      [genesisOutpoint(chain, 0)],
      [plainOutput(b!.address, 999_000_000n)],
    );
    const x = { txId: txId(chainId, first.body), index: 0 };
    const second = await makeTransfer(chain, b!, [x], [plainOutput(c!.address, 998_000_000n)]);
    const template = await buildBlockTemplate(chain.ledger, undefined, {
      payout: a!.address,
      time: chain.genesis.time + 3000n,
    });
    const coinbase = template.transactions[0]!;
    coinbase.body.outputs[0]!.value += 2_000_000n;
    const transactions = [coinbase, first, second];
    const y = { txId: txId(chainId, second.body), index: 0 };
    const stateRoot = chain.ledger.stateRootAfter(
      [{ outpoint: genesisOutpoint(chain, 0) }],
      [
        { outpoint: { txId: txId(chainId, coinbase.body), index: 0 }, out: coinbase.body.outputs[0]! },
        { outpoint: y, out: second.body.outputs[0]! },
      ],
    );
    const header = {
      ...template.header,
      stateRoot,
      merkleRoot: merkleRoot(
        chainId,
        transactions.map((t) => wtxId(chainId, t)),
      ),
    };
    const block = remine(chainId, { header, transactions });
    await chain.ledger.applyFinalized(block, certify(chainId, block, chain.committee.groupSecret));
    assert.equal(chain.ledger.getUtxo(x), undefined, 'X was spent in the block that created it');
    assert.ok(chain.ledger.getUtxo(y));
    assert.ok(equalBytes(recomputeRoot(chain), chain.ledger.stateRoot));
    const again = await makeTransfer(chain, b!, [x], [plainOutput(b!.address, 998_000_000n)]);
    await expectLedgerError(chain.ledger.checkTransaction(again), 'TX_MISSING_INPUT');
  });

  it('rejects overspend, bad signatures, wrong witnesses and malformed payloads', async () => {
    const chain = await createTestChain();
    const [a, b] = chain.accounts;
    const op = genesisOutpoint(chain, 0);
    const over = await makeTransfer(chain, a!, [op], [plainOutput(b!.address, 1_000_000_001n)]);
    await expectLedgerError(chain.ledger.checkTransaction(over), 'TX_OVERSPEND');
    const good = await makeTransfer(chain, a!, [op], [plainOutput(b!.address, 10n)]);
    const badSig = {
      ...good,
      witnesses: [
        {
          ...good.witnesses[0]!,
          signature: good.witnesses[0]!.signature.map((x, i) => (i === 0 ? x ^ 1 : x)),
        },
      ],
    };
    await expectLedgerError(chain.ledger.checkTransaction(badSig), 'TX_BAD_SIGNATURE');
    const otherSigner = await makeTransfer(chain, b!, [op], [plainOutput(b!.address, 10n)]);
    await expectLedgerError(chain.ledger.checkTransaction(otherSigner), 'TX_WITNESS_MISMATCH');
    const noWitness = { ...good, witnesses: [] };
    await expectLedgerError(chain.ledger.checkTransaction(noWitness), 'TX_BAD_WITNESS_COUNT');
    // Payload: the transfer memo is capped at 160 bytes by the codec; structured kinds must decode.
    const buy = await signTx(
      chain.genesis.chainId,
      {
        kind: TxKind.BUY_TICKETS,
        inputs: [op],
        outputs: [plainOutput(b!.address, 10n)],
        payload: new Uint8Array(7),
      },
      [a!],
    );
    await expectLedgerError(chain.ledger.checkTransaction(buy), 'TX_BAD_PAYLOAD');
    const unknownKind = await signTx(
      chain.genesis.chainId,
      { kind: 9, inputs: [op], outputs: [plainOutput(b!.address, 10n)], payload: new Uint8Array(0) },
      [a!],
    );
    await expectLedgerError(chain.ledger.checkTransaction(unknownKind), 'TX_UNKNOWN_KIND');
    const dupInput = await makeTransfer(chain, a!, [op, op], [plainOutput(b!.address, 10n)]);
    await expectLedgerError(chain.ledger.checkTransaction(dupInput), 'TX_DUPLICATE_INPUT');
    const zero = await makeTransfer(chain, a!, [op], [plainOutput(b!.address, 0n)]);
    await expectLedgerError(chain.ledger.checkTransaction(zero), 'TX_ZERO_OUTPUT');
  });

  it('payloads: 160 bytes pass; 161 bytes fail to decode off the wire and fail validation', async () => {
    const chain = await createTestChain();
    const [a, b] = chain.accounts;
    const tx = await makeTransfer(
      chain,
      a!,
      [genesisOutpoint(chain, 0)],
      [plainOutput(b!.address, 10n)],
      new Uint8Array(160),
    );
    await chain.ledger.checkTransaction(tx);
    const big = await makeTransfer(
      chain,
      a!,
      [genesisOutpoint(chain, 0)],
      [plainOutput(b!.address, 10n)],
      new Uint8Array(161),
    );
    assert.throws(() => TransactionCodec.decode(TransactionCodec.encode(big)), {
      name: 'DecodeError',
      code: 'DECODE_MALFORMED',
    });
    await expectLedgerError(chain.ledger.checkTransaction(big), 'TX_BAD_PAYLOAD');
  });

  it('locks stakes until expiry and escrows until a committee-signed settlement; SLASH confiscates', async () => {
    const chain = await createTestChain();
    const [a, b, c] = chain.accounts;
    const { chainId, params } = chain.genesis;
    const mempool = new Mempool(chain.ledger, { maxBytes: 1 << 20 });
    // a buys 2 tickets (stake locked until height 6); b pays for a task (escrow).
    const stake = {
      value: 2n * params.ticketPrice,
      owner: a!.address,
      lockKind: LockKind.STAKE,
      lockUntil: 6n,
      lockTask: new Uint8Array(32),
    };
    const buy = await signTx(
      chainId,
      {
        kind: TxKind.BUY_TICKETS,
        inputs: [genesisOutpoint(chain, 0)],
        outputs: [stake, plainOutput(a!.address, 1_000_000_000n - stake.value - 10_000n)],
        payload: BuyTicketsPayload.encode({
          role: Role.MINER,
          ticketCount: 2,
          vrfPublicKey: new Uint8Array(32),
          expiryHeight: 6n,
          maxTasks: 1,
          minFeePerTicket: 0n,
          preferencesHash: new Uint8Array(32),
        }),
      },
      [a!],
    );
    const taskId = new Uint8Array(32).fill(0x7a);
    const escrow = {
      value: 500_000_000n,
      owner: b!.address,
      lockKind: LockKind.ESCROW,
      lockUntil: 0n,
      lockTask: taskId,
    };
    const pay = await signTx(
      chainId,
      {
        kind: TxKind.PAY_FOR_TASK,
        inputs: [genesisOutpoint(chain, 1)],
        outputs: [escrow, plainOutput(b!.address, 499_990_000n)],
        payload: PayForTaskPayload.encode({
          taskId,
          datasetCommitment: new Uint8Array(32).fill(1),
          minerShareBps: 7000,
          supervisorShareBps: 2000,
          evaluatorShareBps: 1000,
          maxMiners: 8,
          deadlineHeight: 100n,
        }),
      },
      [b!],
    );
    await mempool.add(buy);
    await mempool.add(pay);
    await finalizeNext(chain, mempool);
    const stakeOp = { txId: txId(chainId, buy.body), index: 0 };
    const escrowOp = { txId: txId(chainId, pay.body), index: 0 };
    assert.equal(chain.ledger.getUtxo(stakeOp)?.lockKind, LockKind.STAKE);
    const totals = chain.ledger.totals();
    assert.equal(totals.staked, stake.value);
    assert.equal(totals.escrowed, escrow.value);

    // Spending the stake early, or the escrow at all, by its owner's signature fails.
    const early = await makeTransfer(chain, a!, [stakeOp], [plainOutput(a!.address, stake.value - 10_000n)]);
    await expectLedgerError(chain.ledger.checkTransaction(early), 'TX_LOCKED_INPUT');
    const steal = await makeTransfer(chain, b!, [escrowOp], [plainOutput(b!.address, 1000n)]);
    await expectLedgerError(chain.ledger.checkTransaction(steal), 'TX_LOCKED_INPUT');

    // Settlement needs the committee's signature over the transaction id.
    const settleBody = {
      version: 1,
      kind: TxKind.SETTLE_TASK,
      inputs: [escrowOp],
      outputs: [plainOutput(c!.address, 350_000_000n), plainOutput(b!.address, 149_990_000n)],
      payload: SettleTaskPayload.encode({
        taskId,
        resultsHash: new Uint8Array(32).fill(2),
        historyRoot: new Uint8Array(32),
      }),
    };
    const forged = committeeSign(chainId, settleBody, bls.keyGen(new Uint8Array(32).fill(5)));
    await expectLedgerError(chain.ledger.checkTransaction(forged), 'TX_BAD_COMMITTEE_SIGNATURE');
    const unsigned = { ...forged, committeeSignature: new Uint8Array(0) };
    await expectLedgerError(chain.ledger.checkTransaction(unsigned), 'TX_MISSING_COMMITTEE_SIGNATURE');
    const wrongTask = committeeSign(
      chainId,
      {
        ...settleBody,
        payload: SettleTaskPayload.encode({
          taskId: new Uint8Array(32).fill(9),
          resultsHash: new Uint8Array(32),
          historyRoot: new Uint8Array(32),
        }),
      },
      chain.committee.groupSecret,
    );
    await expectLedgerError(chain.ledger.checkTransaction(wrongTask), 'TX_BAD_ESCROW');
    const settle = committeeSign(chainId, settleBody, chain.committee.groupSecret);
    await mempool.add(settle);

    // SLASH moves a's still-locked stake into the task's fee pool.
    const slashBody = {
      version: 1,
      kind: TxKind.SLASH,
      inputs: [stakeOp],
      outputs: [
        {
          value: stake.value - 10_000n,
          owner: a!.address,
          lockKind: LockKind.ESCROW,
          lockUntil: 0n,
          lockTask: taskId,
        },
      ],
      payload: SlashPayload.encode({
        taskId,
        offender: a!.address,
        reason: 0,
        evidenceHash: new Uint8Array(32).fill(4),
      }),
    };
    await mempool.add(committeeSign(chainId, slashBody, chain.committee.groupSecret));
    await finalizeNext(chain, mempool);
    assert.equal(mempool.size, 0);
    const after = chain.ledger.totals();
    assert.equal(after.staked, 0n);
    assert.equal(after.escrowed, stake.value - 10_000n);
    assert.equal(
      after.free + after.staked + after.escrowed,
      chain.ledger.supply.genesis + chain.ledger.supply.subsidies,
    );
  });

  it('a stake becomes spendable by its owner at its expiry height', async () => {
    const chain = await createTestChain();
    const [a] = chain.accounts;
    const { chainId, params } = chain.genesis;
    const stake = {
      value: params.ticketPrice,
      owner: a!.address,
      lockKind: LockKind.STAKE,
      lockUntil: 3n,
      lockTask: new Uint8Array(32),
    };
    const buy = await signTx(
      chainId,
      {
        kind: TxKind.BUY_TICKETS,
        inputs: [genesisOutpoint(chain, 0)],
        outputs: [stake, plainOutput(a!.address, 1_000_000_000n - stake.value - 10_000n)],
        payload: BuyTicketsPayload.encode({
          role: Role.SUPERVISOR,
          ticketCount: 1,
          vrfPublicKey: new Uint8Array(32),
          expiryHeight: 3n,
          maxTasks: 1,
          minFeePerTicket: 0n,
          preferencesHash: new Uint8Array(32),
        }),
      },
      [a!],
    );
    const mempool = new Mempool(chain.ledger, { maxBytes: 1 << 20 });
    await mempool.add(buy);
    await finalizeNext(chain, mempool); // height 1
    const stakeOp = { txId: txId(chainId, buy.body), index: 0 };
    const spend = await makeTransfer(chain, a!, [stakeOp], [plainOutput(a!.address, stake.value - 10_000n)]);
    await expectLedgerError(chain.ledger.checkTransaction(spend), 'TX_LOCKED_INPUT'); // would be height 2
    await finalizeNext(chain); // height 2; next is 3 = lockUntil
    await chain.ledger.checkTransaction(spend);
  });
});

describe('mempool', () => {
  it('admits valid transactions, rejects duplicates, conflicts without a higher fee, replays and low fees', async () => {
    const chain = await createTestChain();
    const [a, b, c] = chain.accounts;
    const op = genesisOutpoint(chain, 0);
    const mempool = new Mempool(chain.ledger, { maxBytes: 1 << 20 });
    const t1 = await makeTransfer(chain, a!, [op], [plainOutput(b!.address, 999_000_000n)]); // fee 1,000,000
    await mempool.add(t1);
    await expectLedgerError(mempool.add(t1), 'MEMPOOL_DUPLICATE');
    const lowerFee = await makeTransfer(chain, a!, [op], [plainOutput(c!.address, 999_500_000n)]);
    await expectLedgerError(mempool.add(lowerFee), 'MEMPOOL_CONFLICT');
    const higherFee = await makeTransfer(chain, a!, [op], [plainOutput(c!.address, 998_000_000n)]);
    await mempool.add(higherFee);
    assert.ok(!mempool.has(bytesToHex(txId(chain.genesis.chainId, t1.body))), 'replaced transaction is gone');
    const tiny = await makeTransfer(
      chain,
      b!,
      [genesisOutpoint(chain, 1)],
      [plainOutput(c!.address, 1_000_000_000n - 5n)],
    );
    await expectLedgerError(mempool.add(tiny), 'MEMPOOL_FEE_TOO_LOW');
    await finalizeNext(chain, mempool);
    assert.equal(mempool.size, 0, 'mined transactions leave the pool');
    const e = await expectLedgerError(mempool.add(higherFee), 'TX_MISSING_INPUT');
    assert.equal(e.verdict, 'IGNORE');
  });

  it('is bounded: evicts the lowest fee rate first, refuses what would be evicted at once', async () => {
    const chain = await createTestChain({ accounts: 6 });
    const [a, b, c, d, e] = chain.accounts;
    const sizeOf = async (fee: bigint, from = a!, i = 0) =>
      makeTransfer(chain, from, [genesisOutpoint(chain, i)], [plainOutput(e!.address, 1_000_000_000n - fee)]);
    const sample = await sizeOf(1000n);
    const { Transaction: TxCodec } = await import('./types.ts');
    const size = TxCodec.encode(sample).length;
    const mempool = new Mempool(chain.ledger, { maxBytes: size * 2 });
    const low = await sizeOf(1000n, a!, 0);
    const mid = await sizeOf(5000n, b!, 1);
    const high = await sizeOf(9000n, c!, 2);
    await mempool.add(low);
    await mempool.add(mid);
    await mempool.add(high);
    assert.equal(mempool.size, 2);
    assert.ok(!mempool.has(bytesToHex(txId(chain.genesis.chainId, low.body))), 'lowest fee rate evicted');
    await expectLedgerError(mempool.add(await sizeOf(2000n, d!, 3)), 'MEMPOOL_FULL');
    assert.ok(mempool.totalBytes <= size * 2);
  });
});

describe('templates', () => {
  it('fills a block by fee rate, pays subsidy + fees, and only hashMsg and nonce remain to fill', async () => {
    const chain = await createTestChain();
    const [a, b, c] = chain.accounts;
    const mempool = new Mempool(chain.ledger, { maxBytes: 1 << 20 });
    await mempool.add(
      await makeTransfer(chain, a!, [genesisOutpoint(chain, 0)], [plainOutput(c!.address, 999_000_000n)]),
    );
    await mempool.add(
      await makeTransfer(chain, b!, [genesisOutpoint(chain, 1)], [plainOutput(c!.address, 998_000_000n)]),
    );
    const template = await buildBlockTemplate(chain.ledger, mempool, {
      payout: c!.address,
      time: chain.genesis.time + 3000n,
    });
    assert.equal(template.transactions.length, 3);
    assert.equal(
      template.transactions[0]!.body.outputs[0]!.value,
      chain.genesis.params.initialReward + 3_000_000n,
    );
    // Highest fee rate first.
    assert.equal(template.transactions[1]!.body.outputs[0]!.value, 998_000_000n);
    const mined = grindNonce(
      chain.genesis.chainId,
      { ...template, header: { ...template.header, hashMsg: new Uint8Array(32).fill(0xab) } },
      10_000,
    );
    assert.ok(mined);
    await chain.ledger.applyFinalized(
      mined,
      certify(chain.genesis.chainId, mined, chain.committee.groupSecret),
    );
    assert.equal(chain.ledger.tip.height, 1n);
  });
});

/** Seeded PRNG (xorshift32) so failures replay. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}

function recomputeRoot(chain: TestChain): Uint8Array {
  const entries: [Uint8Array, Uint8Array][] = [];
  for (const { key, out } of chain.ledger.unspent()) {
    const op = OutPoint.decode(Uint8Array.from(key.match(/../g)!.map((h) => Number.parseInt(h, 16))));
    entries.push([stateKey(chain.genesis.chainId, op), stateValue(chain.genesis.chainId, out)]);
  }
  return StateTree.fromEntries(entries).root();
}

describe('ledger: randomized blocks keep the value invariant and the state root', () => {
  it('hundreds of blocks of random valid and invalid transactions', async () => {
    const seed = 20261122;
    const blocks = 200;
    const r = rng(seed);
    const chain = await createTestChain({ accounts: 8, value: 5_000_000_000n });
    const { chainId, params } = chain.genesis;
    const mempool = new Mempool(chain.ledger, { maxBytes: 1 << 20 });
    const byOwner = (owner: Uint8Array) =>
      [...chain.ledger.unspent()].filter(({ out }) => equalBytes(out.owner, owner));
    const opOf = (key: string) =>
      OutPoint.decode(Uint8Array.from(key.match(/../g)!.map((h) => Number.parseInt(h, 16))));
    let rejected = 0;
    let admitted = 0;
    const taskId = new Uint8Array(32).fill(0x33);
    for (let h = 0; h < blocks; h++) {
      const txCount = r.int(5);
      for (let k = 0; k < txCount; k++) {
        const from = r.pick(chain.accounts);
        const mine = byOwner(from.address).filter(({ out }) => out.lockKind === LockKind.NONE);
        if (mine.length === 0) continue;
        const input = r.pick(mine);
        const to = r.pick(chain.accounts);
        const fee = 2_000n + BigInt(r.int(5000));
        const roll = r.next();
        let tx: Transaction;
        let expectFail: string | undefined;
        if (roll < 0.55 || input.out.value < params.ticketPrice + 3n * fee) {
          const value = input.out.value - fee;
          const split = value / 2n;
          tx = await makeTransfer(
            chain,
            from,
            [opOf(input.key)],
            split > 0n
              ? [plainOutput(to.address, split), plainOutput(from.address, value - split)]
              : [plainOutput(to.address, value)],
          );
        } else if (roll < 0.62) {
          tx = await makeTransfer(
            chain,
            from,
            [opOf(input.key)],
            [plainOutput(to.address, input.out.value + 1n)],
          );
          expectFail = 'TX_OVERSPEND';
        } else if (roll < 0.68) {
          tx = await makeTransfer(
            chain,
            to === from ? chain.accounts[(from.index + 1) % 8]! : to,
            [opOf(input.key)],
            [plainOutput(to.address, input.out.value - fee)],
          );
          expectFail = 'TX_WITNESS_MISMATCH';
        } else if (roll < 0.74) {
          const t = await makeTransfer(
            chain,
            from,
            [opOf(input.key)],
            [plainOutput(to.address, input.out.value - fee)],
          );
          tx = { ...t, witnesses: [{ ...t.witnesses[0]!, signature: new Uint8Array(64).fill(7) }] };
          expectFail = 'TX_BAD_SIGNATURE';
        } else if (roll < 0.84) {
          const expiry = chain.ledger.tip.height + 2n + BigInt(r.int(4));
          tx = await signTx(
            chainId,
            {
              kind: TxKind.BUY_TICKETS,
              inputs: [opOf(input.key)],
              outputs: [
                {
                  value: params.ticketPrice,
                  owner: from.address,
                  lockKind: LockKind.STAKE,
                  lockUntil: expiry,
                  lockTask: new Uint8Array(32),
                },
                plainOutput(from.address, input.out.value - params.ticketPrice - fee),
              ],
              payload: BuyTicketsPayload.encode({
                role: Role.MINER,
                ticketCount: 1,
                vrfPublicKey: new Uint8Array(32),
                expiryHeight: expiry,
                maxTasks: 1,
                minFeePerTicket: 0n,
                preferencesHash: new Uint8Array(32),
              }),
            },
            [from],
          );
        } else if (roll < 0.92) {
          const amount = input.out.value / 4n;
          tx = await signTx(
            chainId,
            {
              kind: TxKind.PAY_FOR_TASK,
              inputs: [opOf(input.key)],
              outputs: [
                {
                  value: amount,
                  owner: from.address,
                  lockKind: LockKind.ESCROW,
                  lockUntil: 0n,
                  lockTask: taskId,
                },
                plainOutput(from.address, input.out.value - amount - fee),
              ],
              payload: PayForTaskPayload.encode({
                taskId,
                datasetCommitment: new Uint8Array(32),
                minerShareBps: 8000,
                supervisorShareBps: 1000,
                evaluatorShareBps: 1000,
                maxMiners: 4,
                deadlineHeight: 10_000n,
              }),
            },
            [from],
          );
        } else {
          // Settle one escrow of the task to a random account, or try to spend a locked output.
          const escrows = [...chain.ledger.unspent()].filter(({ out }) => out.lockKind === LockKind.ESCROW);
          const locked = [...chain.ledger.unspent()].filter(
            ({ out }) => out.lockKind === LockKind.STAKE && out.lockUntil > chain.ledger.tip.height + 1n,
          );
          if (escrows.length > 0 && r.next() < 0.6) {
            const e = r.pick(escrows);
            tx = committeeSign(
              chainId,
              {
                version: 1,
                kind: TxKind.SETTLE_TASK,
                inputs: [opOf(e.key)],
                outputs: [plainOutput(to.address, e.out.value - fee)],
                payload: SettleTaskPayload.encode({
                  taskId: e.out.lockTask,
                  resultsHash: new Uint8Array(32),
                  historyRoot: new Uint8Array(32),
                }),
              },
              chain.committee.groupSecret,
            );
          } else if (locked.length > 0) {
            const s = r.pick(locked);
            const owner = chain.accounts.find((a) => equalBytes(a.address, s.out.owner))!;
            tx = await makeTransfer(
              chain,
              owner,
              [opOf(s.key)],
              [plainOutput(owner.address, s.out.value - fee)],
            );
            expectFail = 'TX_LOCKED_INPUT';
          } else continue;
        }
        try {
          await mempool.add(tx);
          assert.equal(expectFail, undefined, `block ${h}: expected ${expectFail}`);
          admitted++;
        } catch (e) {
          assert.ok(isPouwError(e), String(e));
          if (expectFail !== undefined) {
            assert.equal(e.code, expectFail, `seed ${seed} block ${h}: ${e.message}`);
          } else {
            assert.ok(
              ['MEMPOOL_CONFLICT', 'MEMPOOL_DUPLICATE'].includes(e.code),
              `seed ${seed} block ${h}: unexpected ${e.code} ${e.message}`,
            );
          }
          rejected++;
        }
      }
      // Now and then an invalid block: its double spend must leave the ledger untouched.
      if (r.next() < 0.1 && mempool.size > 0) {
        const entry = mempool.byFeeRateDescending()[0]!;
        const bad = await blockWith(chain, [entry.checked.tx, entry.checked.tx], 2n * entry.fee);
        const snap = snapshot(chain);
        await expectLedgerError(chain.ledger.applyFinalized(bad.block, bad.cert), 'BLOCK_DOUBLE_SPEND');
        assert.deepEqual(snapshot(chain), snap);
      }
      const payout = r.pick(chain.accounts).address;
      const { block, certificate } = await nextFinalizedBlock(chain, mempool, payout);
      const diff = await chain.ledger.applyFinalized(block, certificate, {}, mempool.verifiedSignatures);
      mempool.onBlock(diff, chain.ledger);
      const t = chain.ledger.totals();
      const s = chain.ledger.supply;
      assert.equal(
        t.free + t.staked + t.escrowed,
        s.genesis + s.subsidies,
        `seed ${seed} value invariant at height ${diff.height}`,
      );
      assert.ok(
        equalBytes(recomputeRoot(chain), chain.ledger.stateRoot),
        `seed ${seed} state root at height ${diff.height}`,
      );
    }
    assert.equal(chain.ledger.tip.height, BigInt(blocks));
    assert.ok(
      admitted > 100 && rejected > 20,
      `exercised both paths (admitted ${admitted}, rejected ${rejected})`,
    );
  });
});

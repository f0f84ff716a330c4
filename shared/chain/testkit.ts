/**
 * Deterministic fixtures for ledger tests and benchmarks (Node and Chromium): accounts, a 4-member
 * committee (t = 3) whose combined threshold signature equals a plain signature with the group
 * secret (BLS signatures are unique), a genesis, signed transactions, and mined, certified blocks.
 * Not used by production code.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../bytes.ts';
import { encodeAddress } from '../crypto/address.ts';
import * as bls from '../crypto/bls.ts';
import { type Ed25519, nobleEd25519 } from '../crypto/ed25519.ts';
import { type DealtKeys, dealShares } from '../crypto/threshold-bls.ts';
import { StateTree } from '../state/state-tree.ts';
import { finalityMessage } from './certificate.ts';
import { DEVNET_PARAMS, type Genesis, genesisBlock } from './genesis.ts';
import { blockHash, txId } from './ids.ts';
import { Ledger } from './ledger.ts';
import type { Mempool } from './mempool.ts';
import { buildBlockTemplate, grindNonce } from './template.ts';
import {
  type Block,
  type ChainParams,
  type Committee,
  type FinalityCertificate,
  type OutPoint,
  type Transaction,
  TxKind,
  type TxOut,
} from './types.ts';
import { addressBytesOf, TX_VERSION } from './validate-tx.ts';

export const TEST_CHAIN_ID = 'pouw-test';

export interface TestAccount {
  index: number;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  /** 20-byte address payload. */
  address: Uint8Array;
  addressText: string;
}

export async function testAccount(index: number, ed: Ed25519 = nobleEd25519): Promise<TestAccount> {
  const secretKey = sha256(utf8(`pouw-test-account-${index}`));
  const publicKey = await ed.getPublicKey(secretKey);
  const address = addressBytesOf(publicKey);
  return { index, secretKey, publicKey, address, addressText: encodeAddress(address) };
}

/** Deterministic randomness for key dealing (tests only). */
export function seededBytes(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      out.set(sha256(utf8(`${seed}/${counter++}`)).subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
}

export interface TestCommittee {
  committee: Committee;
  dealt: DealtKeys;
  /** f(0): signs exactly what t combined partials would. */
  groupSecret: Uint8Array;
}

export function testCommittee(n = 4, t = 3): TestCommittee {
  const groupSecret = bls.keyGen(sha256(utf8('pouw-test-committee')));
  const dealt = dealShares(n, t, { secretKey: groupSecret, randomBytes: seededBytes('pouw-test-committee') });
  const committee: Committee = {
    groupPublicKey: dealt.groupPublicKey,
    threshold: t,
    members: dealt.publicShares.map((blsPublicShare, i) => ({
      nodeKey: sha256(utf8(`node-${i}`)),
      blsPublicShare,
    })),
  };
  return { committee, dealt, groupSecret };
}

export interface TestChain {
  genesis: Genesis;
  ledger: Ledger;
  block0: Block;
  accounts: TestAccount[];
  committee: TestCommittee;
  ed: Ed25519;
}

export const TEST_PARAMS: ChainParams = {
  ...DEVNET_PARAMS,
  initialBits: 0x207fffff,
  retargetWindow: 10,
  minFeePerByte: 1n,
};
export const GENESIS_TIME = 1_800_000_000_000n;

export function verifiersFor(ed: Ed25519) {
  return { ed25519Verify: ed.verify.bind(ed), blsVerify: bls.verify };
}

export async function createTestChain(
  opts: { accounts?: number; value?: bigint; params?: ChainParams; ed?: Ed25519; stakeUntil?: bigint } = {},
): Promise<TestChain> {
  const ed = opts.ed ?? nobleEd25519;
  const accounts = await Promise.all(
    Array.from({ length: opts.accounts ?? 4 }, (_, i) => testAccount(i, ed)),
  );
  const committee = testCommittee();
  const genesis: Genesis = {
    chainId: TEST_CHAIN_ID,
    time: GENESIS_TIME,
    params: opts.params ?? TEST_PARAMS,
    committee: committee.committee,
    allocations: accounts.map((a) => ({ address: a.addressText, value: opts.value ?? 1_000_000_000n })),
  };
  const block0 = genesisBlock(genesis, new StateTree());
  const ledger = Ledger.fromGenesisBlock({
    chainId: genesis.chainId,
    params: genesis.params,
    committee: genesis.committee,
    block: block0,
    tree: new StateTree(),
    verifiers: verifiersFor(ed),
  });
  return { genesis, ledger, block0, accounts, committee, ed };
}

/** Outpoints of the genesis allocation of account i. */
export function genesisOutpoint(chain: TestChain, i: number): OutPoint {
  const cb = chain.block0.transactions[0]!;
  return { txId: txId(chain.genesis.chainId, cb.body), index: i };
}

export function plainOutput(to: Uint8Array, value: bigint): TxOut {
  return { value, owner: to, lockKind: 0, lockUntil: 0n, lockTask: new Uint8Array(32) };
}

/** Builds and signs a transaction: one witness per distinct owner, in order of first appearance. */
export async function signTx(
  chainId: string,
  body: Omit<Transaction['body'], 'version'> & { version?: number },
  signers: TestAccount[],
  ed: Ed25519 = nobleEd25519,
): Promise<Transaction> {
  const full = { version: TX_VERSION, ...body };
  const id = txId(chainId, full);
  const witnesses = await Promise.all(
    signers.map(async (s) => ({ publicKey: s.publicKey, signature: await ed.sign(s.secretKey, id) })),
  );
  return { body: full, witnesses, committeeSignature: new Uint8Array(0) };
}

export async function makeTransfer(
  chain: { genesis: Genesis; ed: Ed25519 },
  from: TestAccount,
  inputs: OutPoint[],
  outputs: TxOut[],
  memo: Uint8Array = new Uint8Array(0),
): Promise<Transaction> {
  return signTx(
    chain.genesis.chainId,
    { kind: TxKind.TRANSFER, inputs, outputs, payload: memo },
    [from],
    chain.ed,
  );
}

/** Committee-signed transaction (SETTLE_TASK, SLASH) using the group secret. */
export function committeeSign(
  chainId: string,
  body: Transaction['body'],
  groupSecret: Uint8Array,
): Transaction {
  return { body, witnesses: [], committeeSignature: bls.sign(groupSecret, txId(chainId, body)) };
}

export function certify(
  chainId: string,
  block: Block,
  groupSecret: Uint8Array,
  historyRoot = new Uint8Array(32),
): FinalityCertificate {
  const hash = blockHash(chainId, block.header);
  return {
    chainId: utf8(chainId),
    height: block.header.height,
    blockHash: hash,
    historyRoot,
    groupSignature: bls.sign(groupSecret, finalityMessage(chainId, block.header.height, hash, historyRoot)),
  };
}

/** A template for the next height with the given mempool, mined (easy target) and certified. */
export async function nextFinalizedBlock(
  chain: TestChain,
  mempool?: Mempool,
  payout: Uint8Array = chain.accounts[0]!.address,
): Promise<{ block: Block; certificate: FinalityCertificate }> {
  const { ledger } = chain;
  const time = chain.genesis.time + (ledger.tip.height + 1n) * chain.genesis.params.blockIntervalMs;
  const template = await buildBlockTemplate(ledger, mempool, { payout, time });
  const block = grindNonce(chain.genesis.chainId, template, 10_000);
  if (block === undefined) throw new Error('testkit: no nonce found; target too hard for tests');
  return { block, certificate: certify(chain.genesis.chainId, block, chain.committee.groupSecret) };
}

/** Re-mines a (possibly tampered) block so that only the intended rule fails. */
export function remine(chainId: string, block: Block): Block {
  const mined = grindNonce(chainId, block, 10_000, 1n << 40n);
  if (mined === undefined) throw new Error('testkit: no nonce found');
  return mined;
}

/**
 * Child process of the chain-store durability test (and its block sequence). As a module it exports
 * `buildSequence`: a deterministic chain from a fixed seed (the same blocks every run). As a script
 * (`node --import tsx tests/durability/writer.ts --dir D --blocks F [--burst]`) it opens the store in
 * D, resumes after its tip, and commits the blocks of F one by one, printing on stdout
 * `READY <tip>` once loaded, `BEGIN <h>` before handing block h to the store and `ACK <h>` after
 * `commitBlock` resolved (the block is durable). With `--burst` it hands blocks over in groups
 * without waiting for each acknowledgement. After the last block it prints `DONE` and idles until
 * killed.
 *
 * The parent verified every block when it built the sequence; the child skips signature checks (the
 * verifiers accept everything) so that its time goes to validation and storage, not pairings.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { ChainStore } from '../../node-common/chain-store.ts';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { bytesToHex, hexToBytes, utf8 } from '../../shared/bytes.ts';
import type { BlockDiff } from '../../shared/chain/ledger.ts';
import { Mempool } from '../../shared/chain/mempool.ts';
import {
  createTestChain,
  makeTransfer,
  nextFinalizedBlock,
  plainOutput,
  type TestChain,
} from '../../shared/chain/testkit.ts';
import { Block, FinalityCertificate, OutPoint, type TxOut } from '../../shared/chain/types.ts';
import type { SignatureVerifiers } from '../../shared/chain/validate-tx.ts';

export const SEQUENCE_SEED = 'chain-store-durability-v1';
export const ACCOUNTS = 4;
export const ACCOUNT_VALUE = 10n ** 15n;

/** Deterministic uniform integers in [0, n) from a seed (SHA-256 in counter mode). */
export function seededRandom(seed: string): (n: number) => number {
  let counter = 0;
  let pool: Uint8Array = new Uint8Array(0);
  let at = 0;
  return (n: number) => {
    if (at + 4 > pool.length) {
      pool = sha256(utf8(`${seed}/${counter++}`));
      at = 0;
    }
    const x = new DataView(pool.buffer, pool.byteOffset + at, 4).getUint32(0);
    at += 4;
    return Math.floor((x / 2 ** 32) * n);
  };
}

/** The chain every run starts from (deterministic keys, committee and genesis). */
export function sequenceChain(): Promise<TestChain> {
  return createTestChain({ accounts: ACCOUNTS, value: ACCOUNT_VALUE, ed: nodeCryptoEd25519 });
}

/** Verifiers for replaying an already verified sequence. */
export const trustingVerifiers: SignatureVerifiers = {
  ed25519Verify: async () => true,
  blsVerify: () => true,
};

export interface SequenceBlock {
  block: Block;
  certificate: FinalityCertificate;
  diff: BlockDiff;
}

/**
 * `count` finalized blocks on `chain` (whose ledger advances): each account spends its largest
 * output plus up to three small ones into 1–120 outputs to random accounts, so batches carry
 * hundreds of UTXO, index and tree-node writes and deletes. Transactions are validated with real
 * Ed25519 (mempool admission and block validation); certificates come from the testkit signer.
 */
export async function buildSequence(
  chain: TestChain,
  count: number,
  seed = SEQUENCE_SEED,
): Promise<SequenceBlock[]> {
  const rand = seededRandom(seed);
  const out: SequenceBlock[] = [];
  for (let b = 0; b < count; b++) {
    const byOwner = new Map<string, { key: string; out: TxOut }[]>();
    for (const u of chain.ledger.unspent()) {
      const owner = bytesToHex(u.out.owner);
      const list = byOwner.get(owner);
      if (list === undefined) byOwner.set(owner, [u]);
      else list.push(u);
    }
    const mempool = new Mempool(chain.ledger, { maxBytes: 4_000_000 });
    for (const from of chain.accounts) {
      const mine = (byOwner.get(bytesToHex(from.address)) ?? []).sort((x, y) =>
        x.out.value !== y.out.value ? (x.out.value < y.out.value ? 1 : -1) : x.key < y.key ? -1 : 1,
      );
      const big = mine[0];
      if (big === undefined || rand(5) === 0) continue; // sometimes an account sits a block out
      const inputs = [big];
      const extra = rand(4);
      for (let i = 0; i < extra && mine.length > inputs.length + 1; i++) {
        const pick = mine[1 + rand(mine.length - 1)]!;
        if (!inputs.includes(pick)) inputs.push(pick);
      }
      const total = inputs.reduce((s, u) => s + u.out.value, 0n);
      const fee = 50_000n;
      const n = 1 + rand(120);
      const outputs: TxOut[] = [];
      let left = total - fee;
      for (let i = 1; i < n; i++) {
        const v = BigInt(1_000 + rand(1_000_000));
        outputs.push(plainOutput(chain.accounts[rand(ACCOUNTS)]!.address, v));
        left -= v;
      }
      outputs.unshift(plainOutput(from.address, left)); // change keeps the large output
      const tx = await makeTransfer(
        chain,
        from,
        inputs.map((u) => OutPoint.decode(hexToBytes(u.key))),
        outputs,
      );
      await mempool.add(tx);
    }
    const payout = chain.accounts[rand(ACCOUNTS)]!.address;
    const { block, certificate } = await nextFinalizedBlock(chain, mempool, payout);
    const diff = await chain.ledger.validateBlock(block, {}, mempool.verifiedSignatures);
    chain.ledger.commit(diff);
    out.push({ block, certificate, diff });
  }
  return out;
}

/** Length-prefixed Block and FinalityCertificate encodings, in height order. */
export function encodeSequence(
  blocks: readonly { block: Block; certificate: FinalityCertificate }[],
): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { block, certificate } of blocks) {
    for (const bytes of [Block.encode(block), FinalityCertificate.encode(certificate)]) {
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, bytes.length);
      parts.push(len, bytes);
    }
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function decodeSequence(bytes: Uint8Array): { block: Block; certificate: FinalityCertificate }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: { block: Block; certificate: FinalityCertificate }[] = [];
  let o = 0;
  const next = () => {
    const len = view.getUint32(o);
    const part = bytes.subarray(o + 4, o + 4 + len);
    o += 4 + len;
    return part;
  };
  while (o < bytes.length) {
    const block = Block.decode(next());
    const certificate = FinalityCertificate.decode(next());
    out.push({ block, certificate });
  }
  return out;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const dir = arg('--dir');
  const file = arg('--blocks');
  if (dir === undefined || file === undefined)
    throw new Error('usage: writer.ts --dir DIR --blocks FILE [--burst]');
  const burst = process.argv.includes('--burst');
  const blocks = decodeSequence(new Uint8Array(readFileSync(file)));
  const chain = await sequenceChain();
  const store = await ChainStore.open(dir);
  const ledger = await store.loadLedger(chain.genesis, trustingVerifiers);
  // A pipe's stdout is synchronous on Linux: the line is in the pipe when write() returns.
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  say(`READY ${ledger.tip.height}`);
  let h = Number(ledger.tip.height) + 1;
  let group = 0;
  while (h <= blocks.length) {
    // Burst: hand over 2–6 blocks without waiting for their acknowledgements, then wait for all.
    const size = burst ? 2 + (group++ % 5) : 1;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < size && h <= blocks.length; i++, h++) {
      const { block, certificate } = blocks[h - 1]!;
      const diff = await ledger.applyFinalized(block, certificate);
      say(`BEGIN ${diff.height}`);
      pending.push(
        store.commitBlock(diff, certificate).then(() => {
          say(`ACK ${diff.height}`);
        }),
      );
    }
    await Promise.all(pending);
  }
  say('DONE');
  setInterval(() => {}, 1 << 30); // wait to be killed
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`writer: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}

/**
 * Block templates, built by full nodes (supervisors) for a payout address. A browser miner never
 * holds the UTXO set: it commits to a template (ZNB) and fills in only `hashMsg` and `nonce`, which
 * change neither `merkleRoot` nor `stateRoot`.
 */
import { utf8 } from '../bytes.ts';
import { isPouwError } from '../errors.ts';
import { blockHash, merkleRoot, outpointKey, txId, wtxId } from './ids.ts';
import type { Ledger } from './ledger.ts';
import { BLOCK_VERSION } from './ledger.ts';
import type { Mempool } from './mempool.ts';
import { CoinbasePayload } from './payloads.ts';
import { blockSubsidy, meetsTarget } from './pow.ts';
import {
  type Block,
  Block as BlockCodec,
  type OutPoint,
  type Transaction,
  TxKind,
  type TxOut,
} from './types.ts';
import { TX_VERSION } from './validate-tx.ts';

export interface TemplateOptions {
  /** 20-byte address payload that receives subsidy + fees. */
  payout: Uint8Array;
  /** Proposed time (ms); raised to median-time-past + 1 if needed. */
  time: bigint;
  taskId?: Uint8Array;
  hashMsgHist?: Uint8Array;
  /** Free coinbase data (≤ 64 bytes). */
  extra?: Uint8Array;
}

/** Bytes kept free for the header and coinbase when filling a block. */
const RESERVED_BYTES = 1024;

export async function buildBlockTemplate(
  ledger: Ledger,
  mempool: Mempool | undefined,
  opts: TemplateOptions,
): Promise<Block> {
  const height = ledger.tip.height + 1n;
  const chosen: Transaction[] = [];
  const spent: { outpoint: OutPoint }[] = [];
  const created: { outpoint: OutPoint; out: TxOut }[] = [];
  const used = new Set<string>();
  let fees = 0n;
  let bytes = RESERVED_BYTES;
  for (const entry of mempool?.byFeeRateDescending() ?? []) {
    if (bytes + entry.size > ledger.params.maxBlockBytes) continue;
    // Entries were valid at admission; re-check against the current tip, skip what no longer holds.
    let checked: Awaited<ReturnType<Ledger['checkTransaction']>>;
    try {
      checked = await ledger.checkTransaction(entry.checked.tx, mempool?.verifiedSignatures);
    } catch (e) {
      if (isPouwError(e)) continue;
      throw e;
    }
    const keys = checked.tx.body.inputs.map(outpointKey);
    if (keys.some((k) => used.has(k))) continue;
    for (const k of keys) used.add(k);
    chosen.push(checked.tx);
    fees += checked.fee;
    bytes += entry.size;
    for (const input of checked.tx.body.inputs) spent.push({ outpoint: input });
    checked.tx.body.outputs.forEach((out, index) => {
      created.push({ outpoint: { txId: checked.id, index }, out });
    });
  }

  const coinbase: Transaction = {
    body: {
      version: TX_VERSION,
      kind: TxKind.COINBASE,
      inputs: [],
      outputs: [
        {
          value: blockSubsidy(ledger.params, height) + fees,
          owner: opts.payout,
          lockKind: 0,
          lockUntil: 0n,
          lockTask: new Uint8Array(32),
        },
      ],
      payload: CoinbasePayload.encode({ height, extra: opts.extra ?? utf8('') }),
    },
    witnesses: [],
    committeeSignature: new Uint8Array(0),
  };
  const cbId = txId(ledger.chainId, coinbase.body);
  coinbase.body.outputs.forEach((out, index) => {
    created.push({ outpoint: { txId: cbId, index }, out });
  });
  const transactions = [coinbase, ...chosen];
  const mtp = ledger.medianTimePast();
  return {
    header: {
      version: BLOCK_VERSION,
      height,
      prevHash: ledger.tip.hash,
      merkleRoot: merkleRoot(
        ledger.chainId,
        transactions.map((t) => wtxId(ledger.chainId, t)),
      ),
      stateRoot: ledger.stateRootAfter(spent, created),
      time: opts.time > mtp ? opts.time : mtp + 1n,
      bits: ledger.nextBits(),
      nonce: new Uint8Array(32),
      taskId: opts.taskId ?? new Uint8Array(32),
      hashMsg: new Uint8Array(32),
      hashMsgHist: opts.hashMsgHist ?? new Uint8Array(32),
    },
    transactions,
  };
}

/**
 * Grinds the nonce (as a little-endian counter from `start`) until the header meets its target or
 * `maxTries` run out. For tests and devnet tools; real miners get their nonces from training.
 */
export function grindNonce(
  chainId: string,
  block: Block,
  maxTries = 1_000_000,
  start = 0n,
): Block | undefined {
  const header = { ...block.header, nonce: new Uint8Array(32) };
  const view = new DataView(header.nonce.buffer);
  for (let i = 0n; i < BigInt(maxTries); i++) {
    const n = start + i;
    view.setBigUint64(0, n & 0xffffffffffffffffn, true);
    view.setBigUint64(8, n >> 64n, true);
    if (meetsTarget(blockHash(chainId, header), header.bits)) return { ...block, header };
  }
  return undefined;
}

/** Encoded size of a block, for callers that budget bytes. */
export function blockSize(block: Block): number {
  return BlockCodec.encode(block).length;
}

/**
 * Mempool: transactions admitted by full validation against the finalized tip, waiting for a block.
 * Policy (not consensus): only confirmed outputs may be spent (no unconfirmed chains, so eviction
 * never orphans descendants); the first seen of two conflicting transactions stays unless the
 * newcomer pays a strictly higher fee than everything it replaces and a higher fee rate; the pool is
 * bounded in bytes and evicts the lowest fee rate first; mined ids are remembered so replays of a
 * mined transaction are rejected by name.
 */
import { bytesToHex } from '../bytes.ts';
import { LedgerError } from '../errors.ts';
import { outpointKey } from './ids.ts';
import type { BlockDiff, Ledger } from './ledger.ts';
import type { Transaction } from './types.ts';
import { type CheckedTx, verifiedKey } from './validate-tx.ts';

export interface MempoolEntry {
  checked: CheckedTx;
  size: number;
  fee: bigint;
  /** Fee per byte scaled by 1000 (milli-units per byte), for ordering without floats. */
  feeRate: bigint;
  /** Admission sequence, to break fee-rate ties first-seen-first. */
  seq: number;
}

export interface MempoolOptions {
  /** Total encoded bytes held at most. */
  maxBytes: number;
  /** How many mined transaction ids to remember for replay rejection. */
  rememberMined?: number;
}

export class Mempool {
  private readonly entries = new Map<string, MempoolEntry>();
  /** outpoint key → id of the entry spending it. */
  private readonly spentBy = new Map<string, string>();
  private readonly mined = new Set<string>();
  private bytes = 0;
  private seq = 0;
  /** Signatures checked at admission; the ledger skips re-verifying them when the block arrives. */
  readonly verifiedSignatures = new Set<string>();

  constructor(
    private ledger: Ledger,
    private readonly opts: MempoolOptions,
  ) {}

  get size(): number {
    return this.entries.size;
  }
  get totalBytes(): number {
    return this.bytes;
  }
  has(idHex: string): boolean {
    return this.entries.has(idHex);
  }
  get(idHex: string): MempoolEntry | undefined {
    return this.entries.get(idHex);
  }

  /** Validates and admits `tx`; throws a LedgerError whose code and verdict say why not. */
  async add(tx: Transaction): Promise<MempoolEntry> {
    const checked = await this.ledger.checkTransaction(tx);
    const id = checked.idHex;
    if (this.entries.has(id)) throw new LedgerError('MEMPOOL_DUPLICATE', 'already in the mempool', 'IGNORE');
    if (this.mined.has(id))
      throw new LedgerError('MEMPOOL_ALREADY_MINED', 'transaction is already in a finalized block');
    const size = checked.encodedSize;
    const feeRate = (checked.fee * 1000n) / BigInt(size);
    if (checked.fee < this.ledger.params.minFeePerByte * BigInt(size)) {
      throw new LedgerError(
        'MEMPOOL_FEE_TOO_LOW',
        `fee ${checked.fee} is below ${this.ledger.params.minFeePerByte}/byte`,
      );
    }
    const conflicts = new Set<string>();
    for (const input of tx.body.inputs) {
      const other = this.spentBy.get(outpointKey(input));
      if (other !== undefined) conflicts.add(other);
    }
    if (conflicts.size > 0) {
      let conflictFee = 0n;
      let maxRate = 0n;
      for (const c of conflicts) {
        const e = this.entries.get(c)!;
        conflictFee += e.fee;
        if (e.feeRate > maxRate) maxRate = e.feeRate;
      }
      if (checked.fee <= conflictFee || feeRate <= maxRate) {
        throw new LedgerError(
          'MEMPOOL_CONFLICT',
          'spends an output an earlier transaction spends, without paying more',
          'IGNORE',
        );
      }
    }
    const entry: MempoolEntry = { checked, size, fee: checked.fee, feeRate, seq: this.seq++ };
    // Would it be evicted straight away? Then refuse before touching anything.
    if (this.bytes + size > this.opts.maxBytes) {
      const freed = [...conflicts].reduce((n, c) => n + this.entries.get(c)!.size, 0);
      let room = this.opts.maxBytes - (this.bytes - freed);
      for (const e of this.byFeeRateAscending()) {
        if (room >= size) break;
        if (conflicts.has(e.checked.idHex)) continue;
        if (e.feeRate >= feeRate)
          throw new LedgerError('MEMPOOL_FULL', 'mempool is full of higher fee-rate transactions', 'IGNORE');
        room += e.size;
      }
      if (room < size)
        throw new LedgerError('MEMPOOL_FULL', 'transaction is larger than the mempool', 'IGNORE');
    }
    for (const c of conflicts) this.remove(c);
    this.insert(entry);
    while (this.bytes > this.opts.maxBytes) {
      const lowest = this.byFeeRateAscending()[0];
      if (lowest === undefined || lowest === entry) break;
      this.remove(lowest.checked.idHex);
    }
    return entry;
  }

  private insert(e: MempoolEntry): void {
    const id = e.checked.idHex;
    this.entries.set(id, e);
    this.bytes += e.size;
    for (const input of e.checked.tx.body.inputs) this.spentBy.set(outpointKey(input), id);
    this.verifiedSignatures.add(verifiedKey(e.checked));
  }

  remove(idHex: string): boolean {
    const e = this.entries.get(idHex);
    if (e === undefined) return false;
    this.entries.delete(idHex);
    this.bytes -= e.size;
    for (const input of e.checked.tx.body.inputs) this.spentBy.delete(outpointKey(input));
    this.verifiedSignatures.delete(verifiedKey(e.checked));
    return true;
  }

  private byFeeRateAscending(): MempoolEntry[] {
    return [...this.entries.values()].sort((a, b) =>
      a.feeRate === b.feeRate ? b.seq - a.seq : a.feeRate < b.feeRate ? -1 : 1,
    );
  }

  /** Highest fee rate first (first seen first among equals): the order templates fill blocks in. */
  byFeeRateDescending(): MempoolEntry[] {
    return [...this.entries.values()].sort((a, b) =>
      a.feeRate === b.feeRate ? a.seq - b.seq : a.feeRate > b.feeRate ? -1 : 1,
    );
  }

  /**
   * After a finalized block: forget what it mined, drop entries that now conflict with it, remember
   * mined ids for replay rejection, and validate against the new ledger tip from now on.
   */
  onBlock(diff: BlockDiff, ledger: Ledger = this.ledger): void {
    this.ledger = ledger;
    for (const id of diff.txIds) {
      const hex = bytesToHex(id);
      this.remove(hex);
      this.mined.add(hex);
    }
    for (const s of diff.spent) {
      const other = this.spentBy.get(outpointKey(s.outpoint));
      if (other !== undefined) this.remove(other);
    }
    const limit = this.opts.rememberMined ?? 100_000;
    if (this.mined.size > limit) {
      const drop = this.mined.size - limit;
      let i = 0;
      for (const id of this.mined) {
        if (i++ >= drop) break;
        this.mined.delete(id);
      }
    }
  }
}

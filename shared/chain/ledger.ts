/**
 * The ledger state machine: UTXO set + its authenticated commitment + tip, advanced one finalized
 * block at a time (no reorganisations: the committee's certificate decides each height).
 * Pure: the caller supplies the clock reading, signature verifiers and the state tree.
 */
import { bytesToHex, equalBytes } from '../bytes.ts';
import { isPouwError, LedgerError } from '../errors.ts';
import type { StateProof } from '../state/state-tree.ts';
import { verifyCertificate } from './certificate.ts';
import { blockHash, merkleRoot, outpointKey, stateKey, stateValue, txId, wtxId } from './ids.ts';
import { blockSubsidy, meetsTarget, nextBits } from './pow.ts';
import {
  type Block,
  Block as BlockCodec,
  type BlockHeader,
  type ChainParams,
  type Committee,
  type FinalityCertificate,
  LockKind,
  type OutPoint,
  TxKind,
  type TxOut,
} from './types.ts';
import { UtxoSet } from './utxo-set.ts';
import {
  type CheckedTx,
  type SignatureVerifiers,
  type TxContext,
  validateTxBasic,
  validateTxInputs,
} from './validate-tx.ts';

export const BLOCK_VERSION = 1;
/** Median-time-past window, as Bitcoin. */
export const MTP_WINDOW = 11;

/** The authenticated map behind stateRoot (shared/state/state-tree.ts implements it). */
export interface StateCommitment {
  update(changes: Iterable<readonly [Uint8Array, Uint8Array | null]>): void;
  root(): Uint8Array;
  fork(): StateCommitment;
  /** Inclusion proof for a present key, absence proof otherwise. */
  prove(key: Uint8Array): StateProof;
  /** On a fork: folds it into its parent (which then holds the fork's state). */
  merge(): StateCommitment;
}

export interface ChainTip {
  height: bigint;
  hash: Uint8Array;
  header: BlockHeader;
}

export interface Supply {
  genesis: bigint;
  /** Sum of all block subsidies minted so far. */
  subsidies: bigint;
}

/** Everything a store needs to persist a block's effect atomically. */
export interface BlockDiff {
  height: bigint;
  hash: Uint8Array;
  block: Block;
  txIds: Uint8Array[];
  spent: { outpoint: OutPoint; out: TxOut }[];
  created: { outpoint: OutPoint; out: TxOut }[];
  fees: bigint;
  subsidy: bigint;
  stateRoot: Uint8Array;
}

export interface ApplyOptions {
  /** The validator's clock (ms); omit when replaying finalized history. */
  now?: bigint;
}

export class Ledger {
  /** The tree fork each diff was validated on: committing merges it instead of hashing again. */
  private readonly validatedTrees = new WeakMap<BlockDiff, StateCommitment>();

  private constructor(
    readonly chainId: string,
    readonly params: ChainParams,
    readonly committee: Committee,
    readonly genesisHash: Uint8Array,
    private utxos: UtxoSet,
    private tree: StateCommitment,
    private tipState: ChainTip,
    /** height → time (ms) for the last retarget window + MTP window blocks. */
    private times: Map<bigint, bigint>,
    private supplyState: Supply,
    private readonly verifiers: SignatureVerifiers,
  ) {}

  /** Builds the state after the genesis block. */
  static fromGenesisBlock(args: {
    chainId: string;
    params: ChainParams;
    committee: Committee;
    block: Block;
    tree: StateCommitment;
    verifiers: SignatureVerifiers;
  }): Ledger {
    const { chainId, params, committee, block, tree, verifiers } = args;
    const hash = blockHash(chainId, block.header);
    const utxos = new UtxoSet();
    let genesisTotal = 0n;
    const changes: [Uint8Array, Uint8Array][] = [];
    for (const tx of block.transactions) {
      const id = txId(chainId, tx.body);
      tx.body.outputs.forEach((out, index) => {
        const op = { txId: id, index };
        utxos.set(outpointKey(op), out);
        changes.push([stateKey(chainId, op), stateValue(chainId, out)]);
        genesisTotal += out.value;
      });
    }
    tree.update(changes);
    if (!equalBytes(tree.root(), block.header.stateRoot)) {
      throw new LedgerError('GENESIS_INVALID', 'genesis stateRoot does not match its allocations');
    }
    const tip = { height: block.header.height, hash, header: block.header };
    const times = new Map([[block.header.height, block.header.time]]);
    return new Ledger(
      chainId,
      params,
      committee,
      hash,
      utxos,
      tree,
      tip,
      times,
      { genesis: genesisTotal, subsidies: 0n },
      verifiers,
    );
  }

  /** Restores a ledger from persisted parts (the store rebuilds utxos and tree). */
  static restore(args: {
    chainId: string;
    params: ChainParams;
    committee: Committee;
    genesisHash: Uint8Array;
    utxos: UtxoSet;
    tree: StateCommitment;
    tip: ChainTip;
    times: Map<bigint, bigint>;
    supply: Supply;
    verifiers: SignatureVerifiers;
  }): Ledger {
    const a = args;
    if (!equalBytes(a.tree.root(), a.tip.header.stateRoot)) {
      throw new LedgerError('STORE_CORRUPT', 'restored state tree does not match the tip stateRoot');
    }
    return new Ledger(
      a.chainId,
      a.params,
      a.committee,
      a.genesisHash,
      a.utxos,
      a.tree,
      a.tip,
      a.times,
      a.supply,
      a.verifiers,
    );
  }

  get tip(): ChainTip {
    return this.tipState;
  }
  get supply(): Supply {
    return { ...this.supplyState };
  }
  get utxoCount(): number {
    return this.utxos.size;
  }
  get stateRoot(): Uint8Array {
    return this.tree.root();
  }
  /** Recent block times (height → ms), as needed for retargeting and MTP; for persistence. */
  get recentTimes(): Map<bigint, bigint> {
    return new Map(this.times);
  }

  getUtxo(op: OutPoint): TxOut | undefined {
    return this.utxos.get(outpointKey(op));
  }

  /** Proof that `op` is unspent (with its output) or absent, against the tip's stateRoot. */
  proveUtxo(op: OutPoint): { height: bigint; out: TxOut | undefined; proof: StateProof } {
    return {
      height: this.tipState.height,
      out: this.getUtxo(op),
      proof: this.tree.prove(stateKey(this.chainId, op)),
    };
  }

  *unspent(): IterableIterator<{ key: string; out: TxOut }> {
    for (const [key, out] of this.utxos.entries()) yield { key, out };
  }

  txContext(verifiedSignatures?: Set<string>): TxContext {
    return {
      chainId: this.chainId,
      params: this.params,
      verifiers: this.verifiers,
      ...(verifiedSignatures ? { verifiedSignatures } : {}),
    };
  }

  /** Bits the next block must carry. */
  nextBits(): number {
    const height = this.tipState.height + 1n;
    return nextBits(this.params, height, this.tipState.header.bits, (h) => {
      const t = this.times.get(h);
      if (t === undefined) throw new LedgerError('STORE_CORRUPT', `no recorded time for height ${h}`);
      return t;
    });
  }

  /** Median time of the last 11 blocks: a new block's time must be above it. */
  medianTimePast(): bigint {
    const ts: bigint[] = [];
    for (let h = this.tipState.height; h >= 0n && ts.length < MTP_WINDOW; h--) {
      const t = this.times.get(h);
      if (t === undefined) break;
      ts.push(t);
    }
    ts.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return ts[Math.floor(ts.length / 2)] ?? 0n;
  }

  /** Validates a transaction for inclusion in the next block (mempool admission uses this). */
  async checkTransaction(
    tx: Block['transactions'][number],
    verifiedSignatures?: Set<string>,
  ): Promise<CheckedTx> {
    const basic = await validateTxBasic(tx, this.txContext(verifiedSignatures));
    return validateTxInputs(
      basic,
      this.utxos,
      this.tipState.height + 1n,
      this.committee.groupPublicKey,
      this.txContext(verifiedSignatures),
    );
  }

  /**
   * Validates `block` as the next block and returns its diff without changing this ledger.
   * Checks every header, transaction and commitment rule; certificates are checked by `applyFinalized`.
   */
  async validateBlock(
    block: Block,
    opts: ApplyOptions = {},
    verifiedSignatures?: Set<string>,
  ): Promise<BlockDiff> {
    const { header } = block;
    const { chainId, params } = this;
    const size = BlockCodec.encode(block).length;
    if (size > params.maxBlockBytes)
      throw new LedgerError('BLOCK_TOO_LARGE', `block is ${size} bytes, limit ${params.maxBlockBytes}`);
    if (header.version !== BLOCK_VERSION)
      throw new LedgerError('BLOCK_BAD_VERSION', `version ${header.version}`);
    const height = this.tipState.height + 1n;
    if (header.height !== height) {
      throw new LedgerError(
        'BLOCK_BAD_HEIGHT',
        `height ${header.height}, expected ${height}`,
        header.height < height ? 'IGNORE' : 'REJECT',
      );
    }
    if (!equalBytes(header.prevHash, this.tipState.hash))
      throw new LedgerError('BLOCK_BAD_PREV_HASH', 'does not build on the finalized tip');
    const expectedBits = this.nextBits();
    if (header.bits !== expectedBits) {
      throw new LedgerError(
        'BLOCK_BAD_BITS',
        `bits 0x${header.bits.toString(16)}, expected 0x${expectedBits.toString(16)}`,
      );
    }
    const hash = blockHash(chainId, header);
    if (!meetsTarget(hash, header.bits))
      throw new LedgerError('BLOCK_POW_ABOVE_TARGET', 'block hash is above the target');
    if (header.time <= this.medianTimePast())
      throw new LedgerError('BLOCK_TIME_TOO_OLD', 'time is not after the median time past');
    if (opts.now !== undefined && header.time > opts.now + params.maxFutureMs) {
      throw new LedgerError('BLOCK_TIME_TOO_NEW', 'time is too far in the future', 'IGNORE');
    }
    const txs = block.transactions;
    const coinbase = txs[0];
    if (coinbase === undefined || coinbase.body.kind !== TxKind.COINBASE)
      throw new LedgerError('BLOCK_NO_COINBASE', 'first transaction must be the coinbase');
    const wtx = txs.map((t) => wtxId(chainId, t));
    if (!equalBytes(merkleRoot(chainId, wtx), header.merkleRoot))
      throw new LedgerError('BLOCK_BAD_MERKLE_ROOT', 'merkleRoot does not match the transactions');

    const ctx = this.txContext(verifiedSignatures);
    const view = this.utxos.fork();
    const spentInBlock = new Set<string>();
    const spent: BlockDiff['spent'] = [];
    // Insertion-ordered; an output created and spent within this block is removed from it and never
    // listed as spent, so it reaches neither the UTXO set nor the state tree.
    const createdInBlock = new Map<string, BlockDiff['created'][number]>();
    const txIds: Uint8Array[] = [];
    let fees = 0n;

    const cbBasic = await wrapTx(0, () => validateTxBasic(coinbase, ctx));
    const cbPayload = cbBasic.payload.kind === TxKind.COINBASE ? cbBasic.payload.value : undefined;
    if (cbPayload?.height !== height)
      throw new LedgerError('BLOCK_BAD_COINBASE', 'coinbase height does not match the block');

    // Signatures are independent of order: verify all transactions' basics concurrently.
    const basics = await Promise.all(
      txs.slice(1).map((tx, i) => wrapTx(i + 1, () => validateTxBasic(tx, ctx))),
    );
    for (const [i, basic] of basics.entries()) {
      if (basic.kind === TxKind.COINBASE)
        throw new LedgerError('BLOCK_BAD_COINBASE', `transaction ${i + 1} is a second coinbase`);
      for (const input of basic.tx.body.inputs) {
        if (spentInBlock.has(outpointKey(input))) {
          throw new LedgerError(
            'BLOCK_DOUBLE_SPEND',
            `transaction ${i + 1} spends an output already spent in this block`,
            'REJECT',
            { tx: i + 1 },
          );
        }
      }
      const checked = await wrapTx(i + 1, async () =>
        validateTxInputs(basic, view, height, this.committee.groupPublicKey, ctx),
      );
      fees += checked.fee;
      basic.tx.body.inputs.forEach((input, j) => {
        const key = outpointKey(input);
        spentInBlock.add(key);
        view.delete(key);
        if (!createdInBlock.delete(key)) spent.push({ outpoint: input, out: checked.spent[j]! });
      });
      basic.tx.body.outputs.forEach((out, index) => {
        const op = { txId: basic.id, index };
        const key = outpointKey(op);
        view.set(key, out);
        createdInBlock.set(key, { outpoint: op, out });
      });
      txIds.push(basic.id);
    }

    const subsidy = blockSubsidy(params, height);
    if (cbBasic.outputTotal !== subsidy + fees) {
      throw new LedgerError(
        'BLOCK_COINBASE_AMOUNT',
        `coinbase pays ${cbBasic.outputTotal}, must be subsidy ${subsidy} + fees ${fees}`,
      );
    }
    const created = [
      ...coinbase.body.outputs.map((out, index) => ({ outpoint: { txId: cbBasic.id, index }, out })),
      ...createdInBlock.values(),
    ];
    txIds.unshift(cbBasic.id);

    const tree = this.tree.fork();
    tree.update(diffChanges(chainId, spent, created));
    const stateRoot = tree.root();
    if (!equalBytes(stateRoot, header.stateRoot))
      throw new LedgerError('BLOCK_BAD_STATE_ROOT', 'stateRoot does not match the state after the block');
    return { height, hash, block, txIds, spent, created, fees, subsidy, stateRoot };
  }

  /** State root after spending `spent` and creating `created` on top of the tip (block templates). */
  stateRootAfter(
    spent: readonly { outpoint: OutPoint }[],
    created: readonly { outpoint: OutPoint; out: TxOut }[],
  ): Uint8Array {
    const tree = this.tree.fork();
    tree.update(diffChanges(this.chainId, spent, created));
    return tree.root();
  }

  /** Validates the certificate for `block` against the committee key in chain state. */
  checkCertificate(block: Block, certificate: FinalityCertificate | undefined): void {
    if (certificate === undefined)
      throw new LedgerError('CERT_MISSING', 'a block is applied only with its finality certificate');
    verifyCertificate(certificate, {
      chainId: this.chainId,
      height: block.header.height,
      blockHash: blockHash(this.chainId, block.header),
      groupPublicKey: this.committee.groupPublicKey,
      blsVerify: this.verifiers.blsVerify,
    });
  }

  /** Validates and applies the next finalized block. Nothing changes unless every rule holds. */
  async applyFinalized(
    block: Block,
    certificate: FinalityCertificate | undefined,
    opts: ApplyOptions = {},
    verifiedSignatures?: Set<string>,
  ): Promise<BlockDiff> {
    this.checkCertificate(block, certificate);
    const diff = await this.validateBlock(block, opts, verifiedSignatures);
    this.commit(diff);
    return diff;
  }

  /** Applies a diff produced by `validateBlock` on this ledger's current tip. */
  commit(diff: BlockDiff): void {
    if (diff.height !== this.tipState.height + 1n)
      throw new LedgerError('BLOCK_BAD_HEIGHT', 'diff is not for the next height');
    for (const s of diff.spent) this.utxos.delete(outpointKey(s.outpoint));
    for (const c of diff.created) this.utxos.set(outpointKey(c.outpoint), c.out);
    const validated = this.validatedTrees.get(diff);
    this.validatedTrees.delete(diff);
    let merged = false;
    if (validated !== undefined) {
      try {
        validated.merge();
        merged = true;
      } catch (e) {
        // The base changed since validation (a stale fork): fall back to applying the changes.
        if (!isPouwError(e)) throw e;
      }
    }
    if (!merged) this.tree.update(diffChanges(this.chainId, diff.spent, diff.created));
    const header = diff.block.header;
    this.tipState = { height: diff.height, hash: diff.hash, header };
    this.times.set(diff.height, header.time);
    const keep = BigInt(this.params.retargetWindow + MTP_WINDOW + 1);
    for (const h of this.times.keys()) if (h + keep < diff.height) this.times.delete(h);
    this.supplyState = { ...this.supplyState, subsidies: this.supplyState.subsidies + diff.subsidy };
  }

  /** Totals by lock kind; the value invariant is free + staked + escrowed = genesis + subsidies. */
  totals(): { free: bigint; staked: bigint; escrowed: bigint } {
    let free = 0n;
    let staked = 0n;
    let escrowed = 0n;
    for (const [, out] of this.utxos.entries()) {
      if (out.lockKind === LockKind.STAKE) staked += out.value;
      else if (out.lockKind === LockKind.ESCROW) escrowed += out.value;
      else free += out.value;
    }
    return { free, staked, escrowed };
  }

  /** Fork for speculative work (block templates): shares structure, never changes this ledger. */
  fork(): Ledger {
    return new Ledger(
      this.chainId,
      this.params,
      this.committee,
      this.genesisHash,
      this.utxos.fork(),
      this.tree.fork(),
      this.tipState,
      new Map(this.times),
      { ...this.supplyState },
      this.verifiers,
    );
  }
}

/** State-tree changes for a block: spent outputs deleted, created ones inserted. */
export function diffChanges(
  chainId: string,
  spent: readonly { outpoint: OutPoint }[],
  created: readonly { outpoint: OutPoint; out: TxOut }[],
): [Uint8Array, Uint8Array | null][] {
  const changes = new Map<string, [Uint8Array, Uint8Array | null]>();
  for (const s of spent) {
    const k = stateKey(chainId, s.outpoint);
    changes.set(bytesToHex(k), [k, null]);
  }
  for (const c of created) {
    const k = stateKey(chainId, c.outpoint);
    changes.set(bytesToHex(k), [k, stateValue(chainId, c.out)]);
  }
  return [...changes.values()];
}

/** Re-labels a transaction's rejection as a block rejection that names the transaction. */
async function wrapTx<T>(index: number, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (isPouwError(e) && e.name === 'LedgerError') {
      throw new LedgerError(e.code as never, `transaction ${index}: ${e.message}`, e.verdict, {
        ...e.detail,
        tx: index,
      });
    }
    throw e;
  }
}

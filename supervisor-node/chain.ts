/**
 * The chain application behind consensus (`DriverApp`): which value a supervisor proposes, whether
 * a proposed value is valid, and what a decision does to the chain.
 *
 * - Value at height h: `(blockHash, historyRoot)` of a mined block for h that passed full ledger
 *   validation (`Ledger.validateBlock`, against the finalized tip) and the useful-work check of the
 *   configured `CandidateVerifier`. The payload carries the block itself (SSZ), so every member can
 *   validate and apply it and a commit is self-contained for catch-up.
 * - Candidates come from miners (`submitCandidate`, the candidate protocol); the proposer proposes
 *   the best verified one (lowest block hash: the most work), others validate on `validate-value`,
 *   fetching the candidate's proof bundle from the other members when their verifier needs it.
 * - A decision: the t precommit partials combine into the finality certificate (checked against
 *   the group key), the block is applied to the Ledger and written with it to the ChainStore in one
 *   synced batch, and the block is published with its certificate (the driver then keeps the
 *   commit for catch-up and drops the height from its log).
 */

import type { ChainStore } from '../node-common/chain-store.ts';
import { bytesToHex, equalBytes, utf8 } from '../shared/bytes.ts';
import { blockHash } from '../shared/chain/ids.ts';
import type { BlockDiff, Ledger } from '../shared/chain/ledger.ts';
import { Mempool } from '../shared/chain/mempool.ts';
import { Block, type Committee, type FinalityCertificate } from '../shared/chain/types.ts';
import {
  assembleCertificate,
  type ConsensusValue,
  MAX_VALUE_PAYLOAD,
  VoteType,
  valueId,
} from '../shared/consensus/index.ts';
import { combine } from '../shared/crypto/threshold-bls.ts';
import { isPouwError, LedgerError, NetError, WorkError } from '../shared/errors.ts';
import { ConsensusPayload } from '../shared/net/messages.ts';
import type { BlockCandidate } from '../shared/pouw/candidate.ts';
import type { Decision, DriverApp, DriverLog } from './driver.ts';
import type { HistorySource } from './tasks.ts';
import type { CandidateVerifier } from './verifier.ts';

/** Candidates kept per height (the best ones; more are refused as IGNORE). */
const MAX_CANDIDATES = 64;
/** Validity verdicts remembered. */
const MAX_VERDICTS = 256;

interface PoolEntry {
  hashHex: string;
  block: Block;
  candidate: BlockCandidate | undefined;
  diff: BlockDiff;
}

export interface ChainAppOptions {
  chainId: string;
  committee: Committee;
  ledger: Ledger;
  store: ChainStore;
  verifier: CandidateVerifier;
  /** ms since the Unix epoch (block times are checked against it). */
  clock: () => bigint;
  /** The message history the value's ids and root come from. */
  history: HistorySource;
  /** Asks the other members for a candidate's proof bundle (validators whose verifier needs it). */
  fetchCandidate: (blockHash: Uint8Array) => Promise<BlockCandidate | undefined>;
  /** Publishes a finalized block with its certificate. */
  publishBlock: (block: Block, certificate: FinalityCertificate) => void;
  log?: DriverLog;
  mempoolBytes?: number;
}

/** Payload bytes kept for the history id list beside the block (4 KiB ids at least). */
const MIN_HISTORY_BYTES = 4096 * 32 + 64;

export class ChainApp implements DriverApp {
  readonly mempool: Mempool;
  readonly #o: ChainAppOptions & { log: DriverLog };
  /** Verified candidates for the next height, by block hash (hex). */
  #pool = new Map<string, PoolEntry>();
  /** valid(v) verdicts by `${height}/${blockHash}/${historyRoot}`, and the diff of each valid one. */
  #verdicts = new Map<string, { valid: boolean; diff?: BlockDiff }>();
  #inflight = new Map<string, Promise<boolean>>();
  readonly stats = { candidates: 0, refused: 0, proposed: 0, validated: 0, applied: 0, transactions: 0 };
  /** Wall time each height was applied (bench). */
  onApplied: ((height: bigint, txs: number) => void) | undefined;

  constructor(opts: ChainAppOptions) {
    this.#o = { ...opts, log: opts.log ?? (() => {}) };
    this.mempool = new Mempool(opts.ledger, { maxBytes: opts.mempoolBytes ?? 16 * 1024 * 1024 });
  }

  get ledger(): Ledger {
    return this.#o.ledger;
  }

  storedHeight(): bigint {
    return this.#o.ledger.tip.height;
  }

  // -- candidates ------------------------------------------------------------------------------

  /**
   * Checks a miner's candidate (ledger rules against the finalized tip, then the verifier) and
   * keeps it for proposing. Resolves with the block hash; throws the typed error of the failed check.
   */
  async submitCandidate(candidate: BlockCandidate): Promise<Uint8Array> {
    const { chainId, ledger } = this.#o;
    const block = candidate.block;
    const hash = blockHash(chainId, block.header);
    const hashHex = bytesToHex(hash);
    if (this.#pool.has(hashHex)) return hash;
    const next = ledger.tip.height + 1n;
    if (block.header.height !== next) {
      throw new LedgerError(
        'BLOCK_BAD_HEIGHT',
        `candidate for height ${block.header.height}, the next height is ${next}`,
        'IGNORE',
      );
    }
    if (Block.encode(block).length > MAX_VALUE_PAYLOAD - MIN_HISTORY_BYTES)
      throw new LedgerError(
        'BLOCK_TOO_LARGE',
        `a proposed block is at most ${MAX_VALUE_PAYLOAD - MIN_HISTORY_BYTES} bytes (it rides in the consensus payload)`,
      );
    if (this.#pool.size >= MAX_CANDIDATES && !this.#betterThanWorst(hashHex))
      throw new NetError('NET_UNAVAILABLE', 'enough better candidates for this height', 'IGNORE');
    this.stats.candidates++;
    let diff: BlockDiff;
    try {
      diff = await ledger.validateBlock(block, { now: this.#o.clock() }, this.mempool.verifiedSignatures);
      // The bundle's IT_RES are the miner's own signed messages: the history audits and records
      // them like gossip (the verifier reads the miner's past iterations from it).
      if (this.#o.verifier.needsCandidate)
        await this.#o.history.offer([candidate.znbSource, ...candidate.segment]);
      await this.#o.verifier.verify(chainId, block, candidate);
    } catch (e) {
      this.stats.refused++;
      this.#o.log('candidate-refused', { height: String(next), code: isPouwError(e) ? e.code : String(e) });
      throw e;
    }
    if (ledger.tip.height + 1n !== next) {
      throw new LedgerError(
        'BLOCK_BAD_HEIGHT',
        'the height was decided while the candidate was checked',
        'IGNORE',
      );
    }
    this.#pool.set(hashHex, { hashHex, block, candidate, diff });
    if (this.#pool.size > MAX_CANDIDATES) this.#pool.delete(this.#worst()!);
    return hash;
  }

  /** A kept candidate by block hash (other members fetch proof bundles with it). */
  candidate(hash: Uint8Array): BlockCandidate | undefined {
    return this.#pool.get(bytesToHex(hash))?.candidate;
  }

  #worst(): string | undefined {
    let worst: string | undefined;
    for (const k of this.#pool.keys()) if (worst === undefined || k > worst) worst = k;
    return worst;
  }

  #betterThanWorst(hashHex: string): boolean {
    const worst = this.#worst();
    return worst === undefined || hashHex < worst;
  }

  #best(): PoolEntry | undefined {
    let best: PoolEntry | undefined;
    for (const e of this.#pool.values()) if (!best || e.hashHex < best.hashHex) best = e;
    return best;
  }

  // -- DriverApp ------------------------------------------------------------------------------

  async proposeValue(height: bigint): Promise<ConsensusValue | undefined> {
    if (height !== this.#o.ledger.tip.height + 1n) return undefined;
    const best = this.#best();
    if (!best) return undefined;
    const blockBytes = Block.encode(best.block).length;
    const history = this.#o.history.proposal(Math.floor((MAX_VALUE_PAYLOAD - blockBytes - 64) / 32));
    const value: ConsensusValue = {
      blockHash: blockHash(this.#o.chainId, best.block.header),
      historyRoot: history.root,
      payload: ConsensusPayload.encode({ block: best.block, history: history.ids }),
    };
    this.#remember(this.#key(height, value), { valid: true, diff: best.diff });
    this.stats.proposed++;
    return value;
  }

  validateValue(height: bigint, value: ConsensusValue, committed: boolean): Promise<boolean> {
    const key = this.#key(height, value);
    const known = this.#verdicts.get(key);
    if (known) return Promise.resolve(known.valid);
    let run = this.#inflight.get(key);
    if (!run) {
      run = this.#validate(height, value, committed, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, run);
    }
    return run;
  }

  async #validate(height: bigint, value: ConsensusValue, committed: boolean, key: string): Promise<boolean> {
    const { chainId, ledger } = this.#o;
    this.stats.validated++;
    const refuse = (code: string): boolean => {
      this.#o.log('value-invalid', { height: String(height), code, committed });
      this.#remember(key, { valid: false });
      return false;
    };
    if (height !== ledger.tip.height + 1n) return false; // not ours to judge yet; the core re-asks per height
    let payload: ConsensusPayload;
    try {
      payload = ConsensusPayload.decode(value.payload);
    } catch (e) {
      return refuse(isPouwError(e) ? e.code : 'DECODE');
    }
    const block = payload.block;
    if (!equalBytes(blockHash(chainId, block.header), value.blockHash)) return refuse('BLOCK_HASH');
    // 2f+1 members signed a committed value: a member whose history lags takes their root without
    // waiting to fetch the ids (seconds to tens of seconds on a busy network); the decided list
    // then joins its history's backlog and is fetched in the background (tasks.ts).
    if (!committed)
      try {
        const root = await this.#o.history.rootWith(payload.history);
        if (!equalBytes(root, value.historyRoot)) return refuse('HISTORY_ROOT');
      } catch (e) {
        if (isPouwError(e) && e.verdict === 'IGNORE') {
          this.#o.log('value-not-valid-now', { height: String(height), code: e.code });
          return false;
        }
        return refuse(isPouwError(e) ? e.code : String(e));
      }
    const pooled = this.#pool.get(bytesToHex(value.blockHash));
    try {
      const diff =
        pooled?.diff ??
        (await ledger.validateBlock(
          block,
          committed ? {} : { now: this.#o.clock() },
          this.mempool.verifiedSignatures,
        ));
      if (!committed && !pooled) {
        let candidate: BlockCandidate | undefined;
        if (this.#o.verifier.needsCandidate) {
          candidate = await this.#o.fetchCandidate(value.blockHash);
          if (!candidate) {
            this.#o.log('value-not-valid-now', { height: String(height), code: 'VERIFY_CANDIDATE_MISSING' });
            return false;
          }
          await this.#o.history.offer([candidate.znbSource, ...candidate.segment]);
        }
        await this.#o.verifier.verify(chainId, block, candidate);
      }
      if (height !== ledger.tip.height + 1n) return false;
      this.#remember(key, { valid: true, diff });
      return true;
    } catch (e) {
      if (isPouwError(e) && e.verdict === 'IGNORE' && !(e instanceof WorkError)) {
        // Not provably invalid (e.g. a time slightly ahead of our clock): not valid for us now.
        this.#o.log('value-not-valid-now', { height: String(height), code: e.code });
        return false;
      }
      return refuse(isPouwError(e) ? e.code : String(e));
    }
  }

  async applyDecision(d: Decision): Promise<void> {
    const { ledger, store } = this.#o;
    if (d.height !== ledger.tip.height + 1n) {
      if (d.height <= ledger.tip.height) return; // already stored (a re-applied log record)
      throw new LedgerError('BLOCK_BAD_HEIGHT', `decision for ${d.height}, tip is ${ledger.tip.height}`);
    }
    const payload = ConsensusPayload.decode(d.value.payload);
    const block = payload.block;
    const certificate = this.#certificate(d, block);
    const cached = this.#verdicts.get(this.#key(d.height, d.value))?.diff;
    const diff = cached ?? (await ledger.validateBlock(block, {}, this.mempool.verifiedSignatures));
    ledger.commit(diff);
    await store.commitBlock(diff, certificate);
    this.mempool.onBlock(diff, ledger);
    this.#o.history.adopt(payload.history, block);
    this.#pool.clear();
    for (const k of [...this.#verdicts.keys()]) if (k.startsWith(`${d.height}/`)) this.#verdicts.delete(k);
    this.stats.applied++;
    this.stats.transactions += block.transactions.length;
    this.onApplied?.(d.height, block.transactions.length);
    this.#o.publishBlock(block, certificate);
  }

  /**
   * The finality certificate from the commit's partials. They were each checked at the boundary
   * (validateMessage), so t of them are interpolated unchecked and only the result is verified
   * against the group key (one pairing check instead of a batch check plus one); should that fail,
   * `assembleCertificate` checks every partial and names the bad ones.
   */
  #certificate(d: Decision, block: Block): FinalityCertificate {
    const { chainId, ledger, committee } = this.#o;
    const message = valueId(chainId, d.height, d.value);
    const partials = d.commit
      .filter(
        (c) =>
          c.vote.type === VoteType.precommit &&
          c.blsPartial.length === 96 &&
          equalBytes(c.vote.valueId, message),
      )
      .map((c) => ({ index: c.vote.validator + 1, signature: c.blsPartial }));
    try {
      const certificate: FinalityCertificate = {
        chainId: utf8(chainId),
        height: d.height,
        blockHash: d.value.blockHash,
        historyRoot: d.value.historyRoot,
        groupSignature: combine(partials, committee.threshold),
      };
      ledger.checkCertificate(block, certificate);
      return certificate;
    } catch (e) {
      this.#o.log('certificate-fallback', {
        height: String(d.height),
        code: isPouwError(e) ? e.code : String(e),
      });
      const { certificate, bad } = assembleCertificate(chainId, d.height, d.value, d.commit, committee);
      if (bad.length > 0) this.#o.log('bad-partials', { height: String(d.height), members: bad });
      ledger.checkCertificate(block, certificate);
      return certificate;
    }
  }

  #key(height: bigint, value: ConsensusValue): string {
    return `${height}/${bytesToHex(value.blockHash)}/${bytesToHex(value.historyRoot)}`;
  }

  #remember(key: string, v: { valid: boolean; diff?: BlockDiff }): void {
    this.#verdicts.set(key, v);
    if (this.#verdicts.size > MAX_VERDICTS) this.#verdicts.delete(this.#verdicts.keys().next().value!);
  }
}

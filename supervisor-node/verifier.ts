/**
 * How a supervisor decides that a mined block's useful work counts (DESIGN §4.5), behind one
 * interface so the consensus cost can be measured alone:
 * - `realVerifier`: shared/pouw/verify.ts `verifyCandidate`, which replays the lucky iteration
 *   from the start of its residual segment against the message history the supervisor recorded;
 * - `fastVerifier`: the header checks only (the block names a task, its hash meets its target);
 *   for consensus-cost benchmarks and tests that are about consensus, never for a real network.
 * Ledger validation (`Ledger.validateBlock`) runs before either, in the chain app.
 * Both throw a typed error (WorkError VERIFY_*) naming the failed check.
 */
import { equalBytes } from '../shared/bytes.ts';
import { blockHash } from '../shared/chain/ids.ts';
import { meetsTarget } from '../shared/chain/pow.ts';
import type { Block } from '../shared/chain/types.ts';
import { WorkError } from '../shared/errors.ts';
import type { BlockCandidate } from '../shared/pouw/candidate.ts';
import { type VerifyContext, type VerifyReport, verifyCandidate } from '../shared/pouw/verify.ts';

export type VerifierKind = 'fast' | 'real';

export interface CandidateVerifier {
  readonly kind: VerifierKind;
  /** Whether `verify` needs the candidate's IT_RES bundle (else the block alone will do). */
  readonly needsCandidate: boolean;
  /** Resolves when the work behind `block` counts; throws a typed error otherwise. */
  verify(chainId: string, block: Block, candidate: BlockCandidate | undefined): Promise<VerifyReport | null>;
}

function checkHeader(chainId: string, block: Block, candidate: BlockCandidate | undefined): void {
  if (candidate && !equalBytes(blockHash(chainId, candidate.block.header), blockHash(chainId, block.header)))
    throw new WorkError('VERIFY_CANDIDATE', 'the candidate carries another block');
  if (!meetsTarget(blockHash(chainId, block.header), block.header.bits))
    throw new WorkError('VERIFY_POW', 'the block hash does not meet its target', 'REJECT', {
      bits: block.header.bits,
    });
}

/** Header and proof-of-work only: the stand-in that measures consensus cost alone. */
export const fastVerifier: CandidateVerifier = Object.freeze({
  kind: 'fast' as const,
  needsCandidate: false,
  async verify(chainId: string, block: Block, candidate: BlockCandidate | undefined) {
    checkHeader(chainId, block, candidate);
    return null;
  },
});

/**
 * The real verifier: `contextFor(taskId)` gives the verification context of the task the block
 * names (its definition, miners, training data, engine and the recorded message history), or
 * undefined for a task this supervisor does not supervise (VERIFY_MEMBERSHIP, IGNORE).
 */
export function realVerifier(
  contextFor: (taskId: Uint8Array) => VerifyContext | undefined,
): CandidateVerifier {
  return {
    kind: 'real',
    needsCandidate: true,
    async verify(chainId: string, block: Block, candidate: BlockCandidate | undefined) {
      if (!candidate) throw new WorkError('VERIFY_CANDIDATE', 'no proof bundle for this block', 'IGNORE');
      checkHeader(chainId, block, candidate);
      const ctx = contextFor(block.header.taskId);
      if (!ctx)
        throw new WorkError('VERIFY_MEMBERSHIP', 'the block names a task not supervised here', 'IGNORE');
      return verifyCandidate(candidate, ctx);
    },
  };
}

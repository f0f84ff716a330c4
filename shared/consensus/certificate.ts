/**
 * From a decision to a FinalityCertificate: the BLS partials that non-nil precommits carry are
 * partial signatures over the value id, which is the finality message, so any t of them combine
 * (Lagrange interpolation, threshold-bls `combineRobust`) into the one group signature that plain
 * BLS `verify` accepts against the committee's group key. Bad partials are named and skipped.
 */
import { equalBytes, utf8 } from '../bytes.ts';
import type { Committee, FinalityCertificate } from '../chain/types.ts';
import type { RandomBytes } from '../crypto/bls.ts';
import { combineRobust } from '../crypto/threshold-bls.ts';
import { isPouwError } from '../errors.ts';
import { quorum } from './committee.ts';
import { ConsensusError } from './errors.ts';
import { type ConsensusVerifier, validateMessage, valueId } from './messages.ts';
import { type ConsensusValue, type SignedVote, VoteType } from './types.ts';

export interface AssembledCertificate {
  certificate: FinalityCertificate;
  /** Validators whose partials were combined. */
  used: number[];
  /** Validators whose partials were bad (attributable: their precommits are Ed25519-signed). */
  bad: number[];
}

/** Throws CONSENSUS_NOT_ENOUGH_PARTIALS when fewer than `committee.threshold` partials are good. */
export function assembleCertificate(
  chainId: string,
  height: bigint,
  value: ConsensusValue,
  commit: readonly SignedVote[],
  committee: Committee,
  options: { randomBytes?: RandomBytes } = {},
): AssembledCertificate {
  const message = valueId(chainId, height, value);
  const partials = commit
    .filter(
      (c) =>
        c.vote.type === VoteType.precommit &&
        equalBytes(c.vote.valueId, message) &&
        c.blsPartial.length === 96,
    )
    .map((c) => ({ index: c.vote.validator + 1, signature: c.blsPartial }));
  const publicShares = committee.members.map((m) => m.blsPublicShare);
  try {
    const r = combineRobust(partials, committee.threshold, {
      publicShares,
      message,
      ...(options.randomBytes ? { randomBytes: options.randomBytes } : {}),
    });
    return {
      certificate: {
        chainId: utf8(chainId),
        height,
        blockHash: value.blockHash,
        historyRoot: value.historyRoot,
        groupSignature: r.signature,
      },
      used: r.used.map((i) => i - 1),
      bad: r.bad.map((i) => i - 1),
    };
  } catch (e) {
    if (isPouwError(e) && e.code === 'CRYPTO_NOT_ENOUGH_SHARES') {
      throw new ConsensusError('CONSENSUS_NOT_ENOUGH_PARTIALS', e.message, 'IGNORE', { ...e.detail });
    }
    throw e;
  }
}

/**
 * Checks a commit from first principles (catch-up, audits): at least 2f+1 distinct members'
 * Ed25519-signed precommits for id(value) at one height and round. Returns the round.
 */
export function verifyCommit(
  chainId: string,
  committee: Pick<Committee, 'members'>,
  height: bigint,
  value: ConsensusValue,
  commit: readonly SignedVote[],
  verifier: ConsensusVerifier,
): number {
  const id = valueId(chainId, height, value);
  const n = committee.members.length;
  const signers = new Set<number>();
  let round: number | undefined;
  for (const c of commit) {
    const v = c.vote;
    if (v.type !== VoteType.precommit || v.height !== height || !equalBytes(v.valueId, id)) {
      throw new ConsensusError(
        'CONSENSUS_MALFORMED',
        'commit holds a vote that is not a precommit for the value',
      );
    }
    if (round !== undefined && v.round !== round) {
      throw new ConsensusError('CONSENSUS_MALFORMED', 'commit mixes rounds');
    }
    round = v.round;
    validateMessage({ kind: 'vote', signed: c }, { chainId, committee, checkPartials: false }, verifier);
    signers.add(v.validator);
  }
  if (round === undefined || signers.size < quorum(n)) {
    throw new ConsensusError(
      'CONSENSUS_NOT_ENOUGH_PARTIALS',
      `commit has ${signers.size} of ${quorum(n)} signers`,
    );
  }
  return round;
}

/**
 * Committee arithmetic shared by the state machine, the boundary checks and the simulator. Every
 * member has one vote (weighted voting is not needed: supervisors are drawn by ticket lottery).
 */
import { ConsensusError } from './errors.ts';
import { MAX_VALIDATORS } from './types.ts';

/** f: the most Byzantine members the protocol tolerates, ⌊(n − 1) / 3⌋. */
export function maxFaulty(n: number): number {
  return Math.floor((n - 1) / 3);
}

/** The 2f+1 threshold (for any n: more than two thirds), ⌊2n / 3⌋ + 1. */
export function quorum(n: number): number {
  return Math.floor((2 * n) / 3) + 1;
}

/** The f+1 threshold: at least one honest member among this many. */
export function weakQuorum(n: number): number {
  return maxFaulty(n) + 1;
}

/** Round-robin proposer: (height + round) mod n, so consecutive heights start with different members. */
export function proposerIndex(n: number, height: bigint, round: number): number {
  return Number((height + BigInt(round)) % BigInt(n));
}

export function assertCommitteeSize(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_VALIDATORS) {
    throw new ConsensusError('CONSENSUS_BAD_PARAMS', `committee size ${n} out of range`, 'REJECT', { n });
  }
}

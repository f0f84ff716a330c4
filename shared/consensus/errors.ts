/**
 * Consensus rejections. Stateless boundary checks throw these with a verdict for the sending peer:
 * REJECT for input that is invalid whoever relays it (bad encoding, signature, membership, round
 * bounds), IGNORE for input that is valid but not useful now (old or future height, a round too far
 * ahead, a duplicate). The second half of an equivocation is neither: it is kept and reported as
 * evidence (`checkAgainstState`), since the peer relaying it may be honest.
 * (Kept beside the consensus code rather than in shared/errors.ts so this module can land on its
 * own; the class follows the same PouwError convention and compares by name and code.)
 */
import { PouwError, type Verdict } from '../errors.ts';

export type ConsensusErrorCode =
  // stateless, REJECT
  | 'CONSENSUS_MALFORMED'
  | 'CONSENSUS_UNKNOWN_VALIDATOR'
  | 'CONSENSUS_WRONG_PROPOSER'
  | 'CONSENSUS_BAD_ROUND'
  | 'CONSENSUS_BAD_SIGNATURE'
  | 'CONSENSUS_BAD_PARTIAL'
  // relative to the local view, IGNORE
  | 'CONSENSUS_OLD_HEIGHT'
  | 'CONSENSUS_FUTURE_HEIGHT'
  | 'CONSENSUS_ROUND_TOO_FAR'
  | 'CONSENSUS_DUPLICATE'
  // evidence, certificates, parameters, the write-ahead log
  | 'CONSENSUS_BAD_EVIDENCE'
  | 'CONSENSUS_NOT_ENOUGH_PARTIALS'
  | 'CONSENSUS_BAD_PARAMS'
  | 'CONSENSUS_BAD_WAL';

export class ConsensusError extends PouwError<ConsensusErrorCode> {
  constructor(
    code: ConsensusErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('ConsensusError', code, message, verdict, detail);
  }
}

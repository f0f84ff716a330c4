/**
 * Typed errors of the relay. They extend the project's `PouwError` (stable `code`, a verdict for the
 * peer that caused them) and stay here because only the relay raises them: a bad config or key file
 * at start, and the limits it enforces on peers at run time.
 */
import { PouwError, type Verdict } from '../shared/errors.ts';

export type RelayErrorCode =
  /** A config field (file or flag) has the wrong type or is out of range; `detail.field` names it. */
  | 'RELAY_CONFIG_INVALID'
  /** The config file cannot be read or is not JSON. */
  | 'RELAY_CONFIG_UNREADABLE'
  /** The node key file exists but does not hold a private key. */
  | 'RELAY_KEY_INVALID'
  /** A peer went over one of its per-peer rates or bounds; `detail.reason` is the drop reason. */
  | 'RELAY_LIMITED';

export class RelayError extends PouwError<RelayErrorCode> {
  constructor(
    code: RelayErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('RelayError', code, message, verdict, detail);
  }
}

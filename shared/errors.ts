/**
 * Typed protocol errors. Every rejection carries a stable `code` (what rule failed) and a `verdict`
 * for the peer that sent the input, following the gossip convention:
 * - REJECT: the input is invalid; penalise the sender.
 * - IGNORE: the input is not useful now (duplicate, too early, too late); drop it without penalty.
 * - ACCEPT: used only by validators that return verdicts rather than throw.
 * `name` is set explicitly (not taken from the constructor) so it survives minifiers and structured
 * cloning across Web Workers, where `instanceof` does not.
 */
export type Verdict = 'ACCEPT' | 'IGNORE' | 'REJECT';

export class PouwError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly verdict: Verdict;
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(
    name: string,
    code: Code,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super(`${code}: ${message}`);
    this.name = name;
    this.code = code;
    this.verdict = verdict;
    this.detail = detail;
  }
}

export type DecodeErrorCode =
  | 'DECODE_OVERSIZED'
  | 'DECODE_UNDERSIZED'
  | 'DECODE_NON_CANONICAL'
  | 'DECODE_MALFORMED'
  | 'DECODE_WRONG_TYPE';

/** Bytes that do not decode to a canonical value of the expected type. Always REJECT. */
export class DecodeError extends PouwError<DecodeErrorCode> {
  constructor(code: DecodeErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super('DecodeError', code, message, 'REJECT', detail);
  }
}

export type CryptoErrorCode =
  | 'CRYPTO_BAD_LENGTH'
  | 'CRYPTO_BAD_KEY'
  | 'CRYPTO_BAD_SIGNATURE'
  | 'CRYPTO_BAD_PROOF'
  | 'CRYPTO_BAD_PARTIAL'
  | 'CRYPTO_NOT_ENOUGH_SHARES'
  | 'CRYPTO_DUPLICATE_SHARE'
  | 'CRYPTO_BAD_INDEX'
  | 'CRYPTO_BAD_MNEMONIC'
  | 'CRYPTO_BAD_ADDRESS'
  | 'CRYPTO_BAD_PARAMETER'
  | 'CRYPTO_UNAVAILABLE';

/** Invalid keys, signatures, proofs, shares or parameters. */
export class CryptoError extends PouwError<CryptoErrorCode> {
  constructor(code: CryptoErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super('CryptoError', code, message, 'REJECT', detail);
  }
}

export type DkgErrorCode =
  | 'DKG_BAD_PARAMETERS'
  | 'DKG_UNKNOWN_PARTY'
  | 'DKG_WRONG_PHASE'
  | 'DKG_DUPLICATE_MESSAGE'
  | 'DKG_BAD_MESSAGE'
  | 'DKG_NOT_ENOUGH_QUALIFIED'
  // the networked run (supervisor-node/dkg)
  | 'DKG_WRONG_SESSION'
  | 'DKG_BAD_SIGNATURE'
  | 'DKG_EQUIVOCATION'
  | 'DKG_NOT_A_MEMBER'
  | 'DKG_TIMEOUT'
  | 'DKG_NO_AGREEMENT'
  | 'DKG_ABORTED';

/** Protocol violations in the distributed key generation. */
export class DkgError extends PouwError<DkgErrorCode> {
  constructor(
    code: DkgErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('DkgError', code, message, verdict, detail);
  }
}

/** Errors compare by name and code, never by class identity (workers, bundles). */
export function isPouwError(e: unknown): e is PouwError {
  return (
    e instanceof Error &&
    typeof (e as Partial<PouwError>).code === 'string' &&
    typeof (e as Partial<PouwError>).verdict === 'string'
  );
}

export type LedgerErrorCode =
  // transactions, stateless
  | 'TX_BAD_VERSION'
  | 'TX_UNKNOWN_KIND'
  | 'TX_NO_INPUTS'
  | 'TX_UNEXPECTED_INPUTS'
  | 'TX_NO_OUTPUTS'
  | 'TX_DUPLICATE_INPUT'
  | 'TX_ZERO_OUTPUT'
  | 'TX_VALUE_OVERFLOW'
  | 'TX_BAD_PAYLOAD'
  | 'TX_BAD_OUTPUT_LOCK'
  | 'TX_BAD_WITNESS_COUNT'
  | 'TX_BAD_SIGNATURE'
  | 'TX_UNEXPECTED_WITNESS'
  | 'TX_MISSING_COMMITTEE_SIGNATURE'
  | 'TX_UNEXPECTED_COMMITTEE_SIGNATURE'
  | 'TX_TOO_LARGE'
  // transactions, against state
  | 'TX_MISSING_INPUT'
  | 'TX_WITNESS_MISMATCH'
  | 'TX_OVERSPEND'
  | 'TX_LOCKED_INPUT'
  | 'TX_BAD_STAKE'
  | 'TX_BAD_ESCROW'
  | 'TX_BAD_COMMITTEE_SIGNATURE'
  | 'TX_EXPIRED'
  | 'TX_COINBASE_NOT_ALLOWED'
  // blocks
  | 'BLOCK_BAD_VERSION'
  | 'BLOCK_BAD_HEIGHT'
  | 'BLOCK_BAD_PREV_HASH'
  | 'BLOCK_BAD_BITS'
  | 'BLOCK_POW_ABOVE_TARGET'
  | 'BLOCK_TIME_TOO_OLD'
  | 'BLOCK_TIME_TOO_NEW'
  | 'BLOCK_BAD_MERKLE_ROOT'
  | 'BLOCK_BAD_STATE_ROOT'
  | 'BLOCK_NO_COINBASE'
  | 'BLOCK_BAD_COINBASE'
  | 'BLOCK_COINBASE_AMOUNT'
  | 'BLOCK_DOUBLE_SPEND'
  | 'BLOCK_TOO_LARGE'
  | 'BLOCK_BAD_TX'
  // finality
  | 'CERT_MISSING'
  | 'CERT_BAD_CHAIN'
  | 'CERT_BAD_HEIGHT'
  | 'CERT_BAD_BLOCK_HASH'
  | 'CERT_BAD_SIGNATURE'
  // mempool
  | 'MEMPOOL_DUPLICATE'
  | 'MEMPOOL_CONFLICT'
  | 'MEMPOOL_FEE_TOO_LOW'
  | 'MEMPOOL_FULL'
  | 'MEMPOOL_ALREADY_MINED'
  // genesis and storage
  | 'GENESIS_INVALID'
  | 'STORE_CORRUPT'
  | 'STORE_CLOSED'
  | 'STORE_MISUSE';

/** A transaction, block, certificate or genesis that breaks a ledger rule; `code` names the rule. */
export class LedgerError extends PouwError<LedgerErrorCode> {
  constructor(
    code: LedgerErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('LedgerError', code, message, verdict, detail);
  }
}

export type WorkErrorCode =
  // task definitions
  | 'TASK_INVALID'
  // update maps and messages
  | 'MAP_NOT_SORTED'
  | 'MAP_OUT_OF_RANGE'
  | 'MAP_TOO_LARGE'
  | 'ITRES_BAD_SIGNATURE'
  | 'ITRES_MALFORMED'
  // verification (each names the failed check of DESIGN §4.5)
  | 'VERIFY_POW'
  | 'VERIFY_ZNB'
  | 'VERIFY_NONCE_RANGE'
  | 'VERIFY_MODEL_HASH'
  | 'VERIFY_BATCH'
  | 'VERIFY_MAP'
  | 'VERIFY_LOSS'
  | 'VERIFY_REPLAYED'
  | 'VERIFY_DUPLICATE_ITERATION'
  | 'VERIFY_PEER_UPDATES'
  | 'VERIFY_HISTORY'
  | 'VERIFY_SIGNATURE'
  | 'VERIFY_MEMBERSHIP'
  | 'VERIFY_CANDIDATE'
  // training runtime
  | 'BACKEND_UNAVAILABLE';

/** Useful-work rejections: bad task definitions, malformed maps and messages, failed replays. */
export class WorkError extends PouwError<WorkErrorCode> {
  constructor(
    code: WorkErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('WorkError', code, message, verdict, detail);
  }
}

export type NetErrorCode =
  // frames and bodies at the boundary (the sending peer's fault)
  | 'NET_OVERSIZED'
  | 'NET_MALFORMED'
  | 'NET_BAD_REQUEST'
  | 'NET_UNKNOWN_TOPIC'
  // the exchange itself
  | 'NET_TIMEOUT'
  | 'NET_CLOSED'
  | 'NET_NOT_FOUND'
  | 'NET_UNAVAILABLE'
  | 'NET_RATE_LIMITED'
  | 'NET_REMOTE_ERROR'
  | 'NET_BAD_CONFIG';

/**
 * Request/response and gossip failures at the network edge: oversized or malformed frames (REJECT:
 * count against the peer), timeouts, closed streams, missing data and busy servers (IGNORE).
 */
export class NetError extends PouwError<NetErrorCode> {
  constructor(
    code: NetErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('NetError', code, message, verdict, detail);
  }
}

export type HistoryErrorCode =
  // one IT_RES offered to a task's message history
  | 'HISTORY_DUPLICATE'
  | 'HISTORY_QUEUE_FULL'
  | 'HISTORY_FULL'
  // id lists in proposals and decisions
  | 'HISTORY_MISSING'
  | 'HISTORY_BAD_IDS'
  // the history's LevelDB store (node-common/history-store.ts)
  | 'HISTORY_STORE_CORRUPT'
  | 'HISTORY_STORE_CLOSED';

/**
 * The supervisors' message history (shared/pouw/history.ts): a message seen before or one that finds
 * its queue or the history full (IGNORE: drop, no penalty); an id list that names messages not
 * recorded here (IGNORE: fetch them first) or that no honest history could produce (REJECT). Its
 * store reports a damaged record, or one that does not rebuild the history, as HISTORY_STORE_CORRUPT,
 * and a write after close or after a failed write as HISTORY_STORE_CLOSED.
 */
export class HistoryError extends PouwError<HistoryErrorCode> {
  constructor(
    code: HistoryErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('HistoryError', code, message, verdict, detail);
  }
}

export type VolunteerErrorCode =
  // a keystore record that does not decode or does not match itself (corrupt or tampered storage)
  | 'KEYSTORE_CORRUPT'
  // training data that does not match the task's dataset commitment or shape
  | 'DATASET_MISMATCH'
  // a call the volunteer's state does not allow (start before init, init twice), or a setting it refuses
  | 'VOLUNTEER_MISUSE';

/** The volunteer's own failures (browser tab or edge): keys at rest, training data, life cycle. */
export class VolunteerError extends PouwError<VolunteerErrorCode> {
  constructor(
    code: VolunteerErrorCode,
    message: string,
    verdict: Verdict = 'REJECT',
    detail: Record<string, unknown> = {},
  ) {
    super('VolunteerError', code, message, verdict, detail);
  }
}

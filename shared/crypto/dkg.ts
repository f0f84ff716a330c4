/**
 * Joint-Feldman DKG (Pedersen's JF-DKG as analysed by Gennaro, Jarecki, Krawczyk and Rabin) for the
 * threshold BLS keys of `threshold-bls.ts`, as a pure message-in/message-out state machine: no
 * network, no timers, no clock. The driver that runs it over the network delivers messages, decides
 * when a phase is over and must give every honest party the same set of broadcast messages (reliable
 * broadcast); from that set every honest party computes the same QUAL, group key and public shares.
 *
 * Parties are 1..n; the threshold is t (2f+1 of n = 3f+1 in production; any 1 ≤ t ≤ n works). Every
 * party is also a dealer.
 *
 * 1. deal (`deal()`): dealer d picks f_d of degree t−1 with random coefficients a_{d,k}, broadcasts
 *    the Feldman commitments C_{d,k} = g1^{a_{d,k}} (t compressed G1 points) in a `DkgDeal` and sends
 *    each party j its share f_d(j) privately in a `DkgShare`.
 * 2. ack (`ack()`): party i checks g1^{f_d(i)} == Σ_k C_{d,k}·i^k for every dealer and broadcasts one
 *    `DkgAck` listing, per dealer, the hash of the commitment vector it received (empty when none
 *    arrived) and the dealers it complains against: missing or malformed commitments, missing,
 *    malformed or wrong share.
 * 3. reveal (`reveal()`): a dealer answers every complaint against it by broadcasting the disputed
 *    shares f_d(j) in a `DkgReveal` (a complainer then uses the revealed share).
 * 4. QUAL (`finalize()`): dealer d is disqualified when
 *    - some ack reports no commitments from d (NO_DEAL: d did not deal to everyone),
 *    - the acks report different commitment hashes for d (EQUIVOCATION: d sent different vectors
 *      to different parties),
 *    - its commitment vector is malformed (MALFORMED_COMMITMENTS: wrong length or bad point),
 *    - a complaint against it has no revealed share (UNANSWERED_COMPLAINT), or a revealed share does
 *      not verify against its commitments (BAD_REVEAL).
 *    Everything in these rules is broadcast data, so parties with the same messages agree on QUAL.
 * 5. derive: x_i = Σ_{d∈QUAL} f_d(i); group key Y = Σ_{d∈QUAL} C_{d,0}; public share of party j is
 *    Σ_{d∈QUAL} Σ_k C_{d,k}·j^k. Fewer than t qualified dealers → DKG_NOT_ENOUGH_QUALIFIED.
 *
 * With `reliableBroadcast` (the networked driver, supervisor-node/dkg, delivers deals, acks and
 * reveals by Bracha reliable broadcast, so two honest parties never hold different commitments from
 * one dealer), NO_DEAL means "no commitments delivered by finalize" and the EQUIVOCATION rule and
 * the ack-hash NO_DEAL rule are off: a Byzantine acker's false or empty hash can then only make the
 * dealer reveal that acker's share, never disqualify an honest dealer.
 *
 * `DkgShare` carries a secret share in the clear: the driver must send it over a confidential,
 * authenticated point-to-point channel (e.g. the libp2p Noise connection to that peer).
 *
 * Handlers validate everything (unknown party, wrong phase, duplicates, malformed fields) and throw
 * `DkgError` with a verdict for the sender: REJECT for invalid or conflicting input, IGNORE for
 * harmless repeats and late messages. A malformed commitment vector or share is still recorded (so
 * this party complains about it) before the error is thrown.
 *
 * Known limits, by design of JF-DKG: a rushing adversary can bias (not choose) the group key by
 * getting its own dealers disqualified (harmless for threshold BLS per Gennaro et al. 2007); a
 * Byzantine party can report a false commitment hash in its ack and so exclude an honest dealer from
 * QUAL (the driver should authenticate messages so such reports can be attributed and punished;
 * QUAL still needs t dealers, so at least one honest dealer always contributes).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, isBytes, utf8 } from '../bytes.ts';
import { DkgError, type Verdict } from '../errors.ts';
import {
  CURVE_ORDER,
  defaultRandomBytes,
  encodePublicKey,
  G1,
  type G1Point,
  PUBLIC_KEY_LENGTH,
  type RandomBytes,
  randomScalar,
  SECRET_KEY_LENGTH,
  scalarFromBytesModOrder,
  scalarToBytes,
  scalarToSecretKey,
} from './bls.ts';
import {
  assertThresholdParameters,
  evaluateCommitments,
  evaluatePolynomial,
  type KeyShare,
  MAX_PARTIES,
} from './threshold-bls.ts';

// ---------------------------------------------------------------------------------------------
// Messages: plain objects with byte fields (uint16 party indices, fixed-size byte strings).

/** Broadcast by dealer `dealer`: t compressed G1 commitments C_k = g1^{a_k}. */
export interface DkgDeal {
  type: 'deal';
  dealer: number;
  commitments: Uint8Array[];
}

/** Sent privately by `dealer` to `recipient`: f_dealer(recipient), 32 bytes big-endian. */
export interface DkgShare {
  type: 'share';
  dealer: number;
  recipient: number;
  share: Uint8Array;
}

/**
 * Broadcast by every party after the deal phase. commitmentHashes[d − 1] is the 32-byte
 * `commitmentHash` of the vector received from dealer d (0 bytes when none arrived); complaints are
 * the dealers complained against, strictly ascending.
 */
export interface DkgAck {
  type: 'ack';
  from: number;
  commitmentHashes: Uint8Array[];
  complaints: number[];
}

/** Broadcast by a dealer with complaints: the disputed shares, recipients strictly ascending. */
export interface DkgReveal {
  type: 'reveal';
  dealer: number;
  shares: { recipient: number; share: Uint8Array }[];
}

export type DkgMessage = DkgDeal | DkgShare | DkgAck | DkgReveal;

export type DkgPhase = 'deal' | 'ack' | 'reveal' | 'done';

export type DisqualificationReason =
  | 'NO_DEAL'
  | 'EQUIVOCATION'
  | 'MALFORMED_COMMITMENTS'
  | 'UNANSWERED_COMPLAINT'
  | 'BAD_REVEAL';

export interface DkgParameters {
  n: number;
  t: number;
  /** This party's index, 1..n. */
  index: number;
  /** Binds commitment hashes to one DKG run (e.g. chain id ‖ epoch). Default: empty. */
  sessionId?: Uint8Array;
  randomBytes?: RandomBytes;
  /**
   * The driver delivers deals, acks and reveals through a reliable broadcast (every honest party
   * that gets a dealer's commitments gets the same ones: supervisor-node/dkg). Then a deal is
   * accepted until `finalize` (a party that acked before it arrived still learns the commitments
   * its revealed share is checked against), and QUAL ignores the commitment hashes in acks: they
   * can no longer expose an equivocation, only let a Byzantine acker disqualify an honest dealer.
   * Default false: the hash rules of the module comment apply.
   */
  reliableBroadcast?: boolean;
}

export interface DkgResult {
  n: number;
  t: number;
  index: number;
  /** QUAL, ascending. */
  qualified: number[];
  disqualified: { dealer: number; reason: DisqualificationReason }[];
  /** Σ_{d∈QUAL} C_{d,0}, 48 bytes. */
  groupPublicKey: Uint8Array;
  /** publicShares[j − 1] = g1^{x_j}, 48 bytes each. */
  publicShares: Uint8Array[];
  /** This party's x_i, ready for `partialSign`. */
  secretShare: KeyShare;
}

/** What this party still waits for (for the driver's timeouts and retransmissions). */
export interface DkgMissing {
  deals: number[];
  shares: number[];
  acks: number[];
  /** Dealers with complaints against them whose reveal has not arrived. */
  reveals: number[];
}

export interface DkgOutgoing {
  /** To broadcast to every party. */
  broadcast: DkgDeal;
  /** One private message per other party. */
  direct: DkgShare[];
}

const HASH_TAG = utf8('pouw/dkg/v1/commitments');

function u16(x: number): Uint8Array {
  return Uint8Array.of(x >> 8, x & 0xff);
}

function u32(x: number): Uint8Array {
  return Uint8Array.of(x >>> 24, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff);
}

/**
 * SHA-256(tag ‖ u32 |sessionId| ‖ sessionId ‖ u16 dealer ‖ u16 count ‖ (u16 |C_k| ‖ C_k)…) over the
 * commitment bytes exactly as received (also for malformed vectors, so those compare too).
 */
export function commitmentHash(
  sessionId: Uint8Array,
  dealer: number,
  commitments: readonly Uint8Array[],
): Uint8Array {
  const h = sha256.create().update(HASH_TAG).update(u32(sessionId.length)).update(sessionId);
  h.update(u16(dealer)).update(u16(commitments.length));
  for (const c of commitments) h.update(u16(c.length)).update(c);
  return h.digest();
}

/** Strict G1 decoding for commitments: canonical compressed, subgroup; the identity is allowed. */
function decodeCommitment(b: Uint8Array): G1Point {
  if (b.length !== PUBLIC_KEY_LENGTH || ((b[0] ?? 0) & 0x80) === 0)
    throw new Error('not a compressed G1 point');
  const p = G1.fromBytes(b);
  if (!equalBytes(p.toBytes(true), b)) throw new Error('non-canonical G1 point');
  return p;
}

/** g1^s for a secret scalar (constant-time multiply; 0 maps to the identity). */
function baseMul(s: bigint): G1Point {
  return s === 0n ? G1.ZERO : G1.BASE.multiply(s);
}

function scalarOrNull(b: unknown): bigint | null {
  if (!isBytes(b) || b.length !== SECRET_KEY_LENGTH) return null;
  let x = 0n;
  for (const byte of b) x = (x << 8n) | BigInt(byte);
  return x < CURVE_ORDER ? x : null;
}

function err(
  code:
    | 'DKG_BAD_PARAMETERS'
    | 'DKG_UNKNOWN_PARTY'
    | 'DKG_WRONG_PHASE'
    | 'DKG_DUPLICATE_MESSAGE'
    | 'DKG_BAD_MESSAGE',
  message: string,
  verdict: Verdict,
  detail: Record<string, unknown> = {},
): DkgError {
  return new DkgError(code, message, verdict, detail);
}

interface ReceivedDeal {
  raw: Uint8Array[];
  hash: Uint8Array;
  /** Decoded commitments, or null when the vector is malformed. */
  points: G1Point[] | null;
}

interface ReceivedShare {
  raw: Uint8Array;
  /** The scalar, or null when malformed. */
  value: bigint | null;
}

const PHASE_ORDER: Record<DkgPhase, number> = { deal: 0, ack: 1, reveal: 2, done: 3 };

/** One party's view of a JF-DKG run. */
export class JointFeldmanDkg {
  readonly n: number;
  readonly t: number;
  readonly index: number;
  readonly sessionId: Uint8Array;
  private readonly randomBytes: RandomBytes;
  private readonly reliableBroadcast: boolean;
  private phaseValue: DkgPhase = 'deal';
  private coefficients: bigint[] | null = null;
  private readonly deals = new Map<number, ReceivedDeal>();
  private readonly shares = new Map<number, ReceivedShare>();
  private readonly acks = new Map<number, DkgAck>();
  private readonly reveals = new Map<number, DkgReveal>();
  /** Dealers whose private share verified when this party acked. */
  private readonly verifiedShares = new Map<number, bigint>();
  private result: DkgResult | null = null;
  private failure: DkgError | null = null;

  constructor(params: DkgParameters) {
    const { n, t, index } = params;
    try {
      assertThresholdParameters(n, t);
    } catch (e) {
      throw err('DKG_BAD_PARAMETERS', (e as Error).message, 'REJECT', { n, t });
    }
    if (!Number.isSafeInteger(index) || index < 1 || index > n) {
      throw err('DKG_BAD_PARAMETERS', 'index must be an integer in [1, n]', 'REJECT', { n, index });
    }
    const sessionId = params.sessionId ?? new Uint8Array(0);
    if (!isBytes(sessionId) || sessionId.length > 1024) {
      throw err('DKG_BAD_PARAMETERS', 'sessionId must be at most 1024 bytes', 'REJECT');
    }
    this.n = n;
    this.t = t;
    this.index = index;
    this.sessionId = sessionId;
    this.randomBytes = params.randomBytes ?? defaultRandomBytes;
    this.reliableBroadcast = params.reliableBroadcast === true;
  }

  get phase(): DkgPhase {
    return this.phaseValue;
  }

  // ------------------------------------------------------------------------------------------
  // Phase 1: deal

  /** Creates this party's polynomial; returns the broadcast commitments and the private shares. */
  deal(): DkgOutgoing {
    this.requirePhase('deal', 'deal');
    if (this.coefficients !== null) throw err('DKG_WRONG_PHASE', 'already dealt', 'IGNORE');
    const coefficients: bigint[] = [randomScalar(this.randomBytes)];
    for (let k = 1; k < this.t; k++) coefficients.push(scalarFromBytesModOrder(this.randomBytes(48)));
    this.coefficients = coefficients;
    const points = coefficients.map((a) => G1.BASE.multiply(a));
    const commitments = points.map((p) => encodePublicKey(p));
    this.deals.set(this.index, {
      raw: commitments,
      hash: commitmentHash(this.sessionId, this.index, commitments),
      points,
    });
    const direct: DkgShare[] = [];
    for (let j = 1; j <= this.n; j++) {
      const s = evaluatePolynomial(coefficients, BigInt(j));
      if (j === this.index) {
        this.shares.set(j, { raw: scalarToBytes(s), value: s });
        this.verifiedShares.set(j, s);
      } else {
        direct.push({ type: 'share', dealer: this.index, recipient: j, share: scalarToBytes(s) });
      }
    }
    return {
      broadcast: { type: 'deal', dealer: this.index, commitments: commitments.map((c) => c.slice()) },
      direct,
    };
  }

  /** A dealer's broadcast commitments. Accepted until this party acks (finalizes, with reliableBroadcast). */
  handleDeal(msg: DkgDeal): void {
    this.requireShape(msg, 'deal');
    const dealer = this.party(msg.dealer, 'dealer');
    this.requirePhase(this.reliableBroadcast ? 'reveal' : 'deal', 'deal message');
    const { commitments } = msg;
    if (
      !Array.isArray(commitments) ||
      commitments.length > MAX_PARTIES ||
      !commitments.every((c) => isBytes(c) && c.length <= 0xffff)
    ) {
      throw err('DKG_BAD_MESSAGE', 'commitments must be a list of byte strings', 'REJECT', { dealer });
    }
    const hash = commitmentHash(this.sessionId, dealer, commitments);
    const previous = this.deals.get(dealer);
    if (previous !== undefined) {
      const same = equalBytes(previous.hash, hash);
      throw err('DKG_DUPLICATE_MESSAGE', `second deal from ${dealer}`, same ? 'IGNORE' : 'REJECT', {
        dealer,
        conflicting: !same,
      });
    }
    const raw = commitments.map((c) => c.slice());
    let points: G1Point[] | null = null;
    let problem: string | null = null;
    if (raw.length !== this.t) {
      problem = `expected ${this.t} commitments, got ${raw.length}`;
    } else {
      try {
        points = raw.map(decodeCommitment);
      } catch (e) {
        problem = (e as Error).message;
      }
    }
    this.deals.set(dealer, { raw, hash, points });
    if (problem !== null) {
      throw err('DKG_BAD_MESSAGE', `malformed commitments from ${dealer}: ${problem}`, 'REJECT', {
        dealer,
        recorded: true,
      });
    }
  }

  /** A dealer's private share for this party. Accepted until this party acks. */
  handleShare(msg: DkgShare): void {
    this.requireShape(msg, 'share');
    const dealer = this.party(msg.dealer, 'dealer');
    const recipient = this.party(msg.recipient, 'recipient');
    this.requirePhase('deal', 'share message');
    if (recipient !== this.index) {
      throw err('DKG_BAD_MESSAGE', `share addressed to ${recipient}, not ${this.index}`, 'IGNORE', {
        dealer,
      });
    }
    if (!isBytes(msg.share)) throw err('DKG_BAD_MESSAGE', 'share must be bytes', 'REJECT', { dealer });
    const previous = this.shares.get(dealer);
    if (previous !== undefined) {
      const same = equalBytes(previous.raw, msg.share);
      throw err('DKG_DUPLICATE_MESSAGE', `second share from ${dealer}`, same ? 'IGNORE' : 'REJECT', {
        dealer,
        conflicting: !same,
      });
    }
    const value = scalarOrNull(msg.share);
    this.shares.set(dealer, { raw: msg.share.slice(), value });
    if (value === null) {
      throw err('DKG_BAD_MESSAGE', `malformed share from ${dealer}`, 'REJECT', { dealer, recorded: true });
    }
  }

  // ------------------------------------------------------------------------------------------
  // Phase 2: ack (verify shares, complain)

  /** Ends the deal phase: verifies every share and returns this party's broadcast ack. */
  ack(): DkgAck {
    this.requirePhase('deal', 'ack');
    if (this.coefficients === null) throw err('DKG_WRONG_PHASE', 'deal() before ack()', 'IGNORE');
    const commitmentHashes: Uint8Array[] = [];
    const complaints: number[] = [];
    for (let d = 1; d <= this.n; d++) {
      const deal = this.deals.get(d);
      commitmentHashes.push(deal === undefined ? new Uint8Array(0) : deal.hash.slice());
      if (d === this.index) continue;
      const share = this.shares.get(d);
      const ok =
        deal?.points != null &&
        share?.value != null &&
        baseMul(share.value).equals(evaluateCommitments(deal.points, BigInt(this.index)));
      if (ok) this.verifiedShares.set(d, share.value!);
      else complaints.push(d);
    }
    const ack: DkgAck = { type: 'ack', from: this.index, commitmentHashes, complaints };
    this.acks.set(this.index, ack);
    this.phaseValue = 'ack';
    return {
      ...ack,
      commitmentHashes: commitmentHashes.map((h) => h.slice()),
      complaints: complaints.slice(),
    };
  }

  /** Another party's ack. Accepted until this party reveals. */
  handleAck(msg: DkgAck): void {
    this.requireShape(msg, 'ack');
    const from = this.party(msg.from, 'sender');
    this.requirePhase('ack', 'ack message');
    const { commitmentHashes, complaints } = msg;
    if (
      !Array.isArray(commitmentHashes) ||
      commitmentHashes.length !== this.n ||
      !commitmentHashes.every((h) => isBytes(h) && (h.length === 0 || h.length === 32))
    ) {
      throw err('DKG_BAD_MESSAGE', `ack needs ${this.n} hashes of 0 or 32 bytes`, 'REJECT', { from });
    }
    if (!Array.isArray(complaints) || complaints.length > this.n) {
      throw err('DKG_BAD_MESSAGE', 'complaints must be a list of dealers', 'REJECT', { from });
    }
    let last = 0;
    for (const d of complaints) {
      if (!Number.isSafeInteger(d) || d <= last || d > this.n || d === from) {
        throw err(
          'DKG_BAD_MESSAGE',
          'complaints must be strictly ascending dealers other than the sender',
          'REJECT',
          {
            from,
            dealer: d,
          },
        );
      }
      last = d;
    }
    commitmentHashes.forEach((h, k) => {
      if (h.length === 0 && k + 1 !== from && !complaints.includes(k + 1)) {
        throw err('DKG_BAD_MESSAGE', `no commitments from ${k + 1} but no complaint`, 'REJECT', { from });
      }
    });
    const previous = this.acks.get(from);
    if (previous !== undefined) {
      const same = sameAck(previous, msg);
      throw err('DKG_DUPLICATE_MESSAGE', `second ack from ${from}`, same ? 'IGNORE' : 'REJECT', {
        from,
        conflicting: !same,
      });
    }
    this.acks.set(from, {
      type: 'ack',
      from,
      commitmentHashes: commitmentHashes.map((h) => h.slice()),
      complaints: complaints.slice(),
    });
  }

  // ------------------------------------------------------------------------------------------
  // Phase 3: reveal (answer complaints)

  /**
   * Ends the ack phase: returns the reveal answering every complaint against this dealer, or null
   * when there is none.
   */
  reveal(): DkgReveal | null {
    this.requirePhase('ack', 'reveal');
    this.phaseValue = 'reveal';
    const coefficients = this.coefficients!;
    const shares: { recipient: number; share: Uint8Array }[] = [];
    for (const [from, ack] of [...this.acks].sort((a, b) => a[0] - b[0])) {
      if (ack.complaints.includes(this.index)) {
        shares.push({
          recipient: from,
          share: scalarToBytes(evaluatePolynomial(coefficients, BigInt(from))),
        });
      }
    }
    if (shares.length === 0) return null;
    const msg: DkgReveal = { type: 'reveal', dealer: this.index, shares };
    this.reveals.set(this.index, msg);
    return { ...msg, shares: shares.map((s) => ({ recipient: s.recipient, share: s.share.slice() })) };
  }

  /** A dealer's reveal. Accepted until this party finalizes; checked against commitments then. */
  handleReveal(msg: DkgReveal): void {
    this.requireShape(msg, 'reveal');
    const dealer = this.party(msg.dealer, 'dealer');
    this.requirePhase('reveal', 'reveal message');
    const { shares } = msg;
    if (!Array.isArray(shares) || shares.length === 0 || shares.length > this.n) {
      throw err('DKG_BAD_MESSAGE', 'reveal must list 1..n shares', 'REJECT', { dealer });
    }
    let last = 0;
    for (const s of shares) {
      const r = (s as { recipient?: unknown } | null)?.recipient;
      if (typeof r !== 'number' || !Number.isSafeInteger(r) || r <= last || r > this.n || r === dealer) {
        throw err(
          'DKG_BAD_MESSAGE',
          'revealed recipients must be strictly ascending other parties',
          'REJECT',
          {
            dealer,
          },
        );
      }
      if (scalarOrNull(s.share) === null) {
        throw err('DKG_BAD_MESSAGE', `revealed share for ${r} is not a scalar`, 'REJECT', {
          dealer,
          recipient: r,
        });
      }
      last = r;
    }
    const previous = this.reveals.get(dealer);
    if (previous !== undefined) {
      const same =
        previous.shares.length === shares.length &&
        previous.shares.every(
          (p, k) => p.recipient === shares[k]!.recipient && equalBytes(p.share, shares[k]!.share),
        );
      throw err('DKG_DUPLICATE_MESSAGE', `second reveal from ${dealer}`, same ? 'IGNORE' : 'REJECT', {
        dealer,
        conflicting: !same,
      });
    }
    this.reveals.set(dealer, {
      type: 'reveal',
      dealer,
      shares: shares.map((s) => ({ recipient: s.recipient, share: s.share.slice() })),
    });
  }

  /** Dispatches any DKG message to its handler. */
  handle(msg: DkgMessage): void {
    switch ((msg as { type?: unknown } | null)?.type) {
      case 'deal':
        this.handleDeal(msg as DkgDeal);
        return;
      case 'share':
        this.handleShare(msg as DkgShare);
        return;
      case 'ack':
        this.handleAck(msg as DkgAck);
        return;
      case 'reveal':
        this.handleReveal(msg as DkgReveal);
        return;
      default:
        throw err('DKG_BAD_MESSAGE', 'unknown DKG message type', 'REJECT');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Phases 4 and 5: QUAL and key derivation

  /**
   * Ends the run: computes QUAL from the broadcast messages, then this party's share, the group
   * key and every public share. Idempotent (repeats the result or the error). Throws
   * DKG_NOT_ENOUGH_QUALIFIED (detail.qualified, detail.disqualified) when fewer than t dealers
   * qualify.
   */
  finalize(): DkgResult {
    if (this.result !== null) return this.result;
    if (this.failure !== null) throw this.failure;
    this.requirePhase('reveal', 'finalize', true);
    const qualified: number[] = [];
    const disqualified: { dealer: number; reason: DisqualificationReason }[] = [];
    const myShares = new Map<number, bigint>();
    for (let d = 1; d <= this.n; d++) {
      const verdict = this.judge(d);
      if (typeof verdict === 'string') disqualified.push({ dealer: d, reason: verdict });
      else {
        qualified.push(d);
        myShares.set(d, verdict);
      }
    }
    if (qualified.length < this.t) {
      this.phaseValue = 'done';
      this.failure = new DkgError(
        'DKG_NOT_ENOUGH_QUALIFIED',
        `only ${qualified.length} of ${this.n} dealers qualified, need ${this.t}`,
        'IGNORE',
        { qualified, disqualified },
      );
      throw this.failure;
    }
    // A_k = Σ_{d∈QUAL} C_{d,k}; public share of j = Σ_k A_k·j^k; group key = A_0.
    const sums: G1Point[] = [];
    for (let k = 0; k < this.t; k++) {
      let acc = G1.ZERO;
      for (const d of qualified) acc = acc.add(this.deals.get(d)!.points![k]!);
      sums.push(acc);
    }
    let x = 0n;
    for (const s of myShares.values()) x = (x + s) % CURVE_ORDER;
    const publicSharePoints: G1Point[] = [];
    for (let j = 1; j <= this.n; j++) publicSharePoints.push(evaluateCommitments(sums, BigInt(j)));
    const mine = publicSharePoints[this.index - 1]!;
    if (x === 0n || !baseMul(x).equals(mine) || sums[0]!.is0() || publicSharePoints.some((p) => p.is0())) {
      // Unreachable unless a share is zero (probability ~n/r) or a bug: refuse to produce a bad key.
      throw new DkgError('DKG_NOT_ENOUGH_QUALIFIED', 'derived key material is degenerate', 'IGNORE', {
        qualified,
      });
    }
    this.phaseValue = 'done';
    this.result = {
      n: this.n,
      t: this.t,
      index: this.index,
      qualified,
      disqualified,
      groupPublicKey: encodePublicKey(sums[0]!),
      publicShares: publicSharePoints.map((p) => encodePublicKey(p)),
      secretShare: { index: this.index, secretKey: scalarToSecretKey(x) },
    };
    return this.result;
  }

  /** Messages still missing for the current phase and the ones before it. */
  missing(): DkgMissing {
    const out: DkgMissing = { deals: [], shares: [], acks: [], reveals: [] };
    for (let j = 1; j <= this.n; j++) {
      if (!this.deals.has(j)) out.deals.push(j);
      if (!this.shares.has(j)) out.shares.push(j);
      if (!this.acks.has(j)) out.acks.push(j);
      if (this.complainersAgainst(j).length > 0 && !this.reveals.has(j)) out.reveals.push(j);
    }
    return out;
  }

  /** The QUAL verdict for dealer d: this party's share from d, or why d is out. */
  private judge(d: number): bigint | DisqualificationReason {
    const deal = this.deals.get(d);
    if (this.reliableBroadcast) {
      // The broadcast already made the commitments one vector for everyone; a party that missed
      // them complained, so the reveal rules below decide.
      if (deal === undefined) return 'NO_DEAL';
    } else {
      // Every ack (this party's included) must report one and the same non-empty hash.
      const hashes = [...this.acks.values()].map((a) => a.commitmentHashes[d - 1]!);
      if (deal === undefined || hashes.some((h) => h.length === 0)) return 'NO_DEAL';
      if (hashes.some((h) => !equalBytes(h, deal.hash))) return 'EQUIVOCATION';
    }
    if (deal.points === null) return 'MALFORMED_COMMITMENTS';
    const reveal = this.reveals.get(d);
    let mine = this.verifiedShares.get(d);
    for (const j of this.complainersAgainst(d)) {
      const revealed = reveal?.shares.find((s) => s.recipient === j);
      if (revealed === undefined) return 'UNANSWERED_COMPLAINT';
      const s = scalarOrNull(revealed.share)!;
      const lhs = s === 0n ? G1.ZERO : G1.BASE.multiplyUnsafe(s);
      if (!lhs.equals(evaluateCommitments(deal.points, BigInt(j)))) return 'BAD_REVEAL';
      if (j === this.index) mine = s;
    }
    if (mine === undefined) {
      // Only reachable when this party's own ack is missing from the set (it always acks itself).
      return 'UNANSWERED_COMPLAINT';
    }
    return mine;
  }

  private complainersAgainst(d: number): number[] {
    const out: number[] = [];
    for (const [from, ack] of this.acks) if (ack.complaints.includes(d)) out.push(from);
    return out.sort((a, b) => a - b);
  }

  private party(x: unknown, role: string): number {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1 || x > this.n) {
      throw err('DKG_UNKNOWN_PARTY', `unknown ${role} ${String(x)}`, 'REJECT', { [role]: x });
    }
    return x;
  }

  private requireShape(msg: unknown, type: DkgMessage['type']): void {
    if (typeof msg !== 'object' || msg === null || (msg as { type?: unknown }).type !== type) {
      throw err('DKG_BAD_MESSAGE', `expected a ${type} message`, 'REJECT');
    }
  }

  /**
   * Messages for phase `upTo` are accepted while this party is at or before it (early arrivals are
   * stored); later ones are IGNOREd as too late. `exact` requires the phase itself.
   */
  private requirePhase(upTo: DkgPhase, what: string, exact = false): void {
    const now = PHASE_ORDER[this.phaseValue];
    const limit = PHASE_ORDER[upTo];
    if (now > limit || (exact && now !== limit)) {
      throw err('DKG_WRONG_PHASE', `${what} not allowed in phase ${this.phaseValue}`, 'IGNORE', {
        phase: this.phaseValue,
      });
    }
  }
}

function sameAck(a: DkgAck, b: DkgAck): boolean {
  return (
    a.complaints.length === b.complaints.length &&
    a.complaints.every((d, k) => d === b.complaints[k]) &&
    a.commitmentHashes.every((h, k) => equalBytes(h, b.commitmentHashes[k]!))
  );
}

/**
 * Runs a complete DKG with all n parties honest and in memory (devnets, benches): every broadcast
 * is delivered to every other party, every share to its recipient. Returns the results by index.
 */
export function runLocalDkg(
  n: number,
  t: number,
  options: { sessionId?: Uint8Array; randomBytes?: RandomBytes } = {},
): DkgResult[] {
  const parties: JointFeldmanDkg[] = [];
  for (let i = 1; i <= n; i++) {
    const params: DkgParameters = { n, t, index: i };
    if (options.sessionId !== undefined) params.sessionId = options.sessionId;
    if (options.randomBytes !== undefined) params.randomBytes = options.randomBytes;
    parties.push(new JointFeldmanDkg(params));
  }
  const broadcast = (from: number, msg: DkgMessage) => {
    for (const p of parties) if (p.index !== from) p.handle(msg);
  };
  for (const p of parties) {
    const out = p.deal();
    broadcast(p.index, out.broadcast);
    for (const s of out.direct) parties[s.recipient - 1]!.handle(s);
  }
  for (const [k, a] of parties.map((p) => p.ack()).entries()) broadcast(k + 1, a);
  for (const p of parties) {
    const r = p.reveal();
    if (r !== null) broadcast(p.index, r);
  }
  return parties.map((p) => p.finalize());
}

/**
 * Consensus messages at the boundary: value ids, what is signed, the gossip encoding, signing, and
 * the stateless validation every received message passes before the state machine sees it
 * (decode → structure → membership → local view → signatures, cheapest first). Signature checks go
 * through an injected verifier so the simulator can use a fast stand-in; `pinnedVerifier` is the
 * real one (Ed25519 under the pinned rule, BLS partials against the member's public share).
 */
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js';
import { bytesToHex, equalBytes, isBytes } from '../bytes.ts';
import { finalityMessage } from '../chain/certificate.ts';
import type { Committee } from '../chain/types.ts';
import { signingMessage } from '../codec/domain.ts';
import { type Ed25519, signatureFailure } from '../crypto/ed25519.ts';
import { type KeyShare, partialSign, verifyPartial } from '../crypto/threshold-bls.ts';
import { DecodeError } from '../errors.ts';
import { proposerIndex, quorum } from './committee.ts';
import { ConsensusError } from './errors.ts';
import {
  Commit,
  type ConsensusMessage,
  type ConsensusValue,
  type Evidence,
  MAX_ROUND,
  MessageKind,
  NIL_ROUND,
  Proposal,
  SignedProposal,
  SignedVote,
  Vote,
  VoteType,
} from './types.ts';

/** id(v) at a height: the finality message the committee signs for (blockHash, historyRoot). */
export function valueId(chainId: string, height: bigint, value: ConsensusValue): Uint8Array {
  return finalityMessage(chainId, height, value.blockHash, value.historyRoot);
}

export function proposalSigningBytes(chainId: string, proposal: Proposal): Uint8Array {
  return signingMessage('pouw/proposal/v1', chainId, Proposal, proposal);
}

export function voteSigningBytes(chainId: string, vote: Vote): Uint8Array {
  const tag = vote.type === VoteType.prevote ? 'pouw/prevote/v1' : 'pouw/precommit/v1';
  return signingMessage(tag, chainId, Vote, vote);
}

export function isNilVote(vote: Vote): boolean {
  return vote.valueId.length === 0;
}

/** The paper's −1 for "no valid round". */
export function polRoundOf(p: Proposal): number {
  return p.polRound === NIL_ROUND ? -1 : p.polRound;
}

// ---------------------------------------------------------------------------------------------
// Gossip encoding: one kind byte, then the SSZ body.

export function encodeMessage(m: ConsensusMessage): Uint8Array {
  const body =
    m.kind === 'proposal'
      ? SignedProposal.encode(m.signed)
      : m.kind === 'vote'
        ? SignedVote.encode(m.signed)
        : Commit.encode(m.commit);
  const out = new Uint8Array(body.length + 1);
  out[0] = MessageKind[m.kind];
  out.set(body, 1);
  return out;
}

/** Throws DecodeError (REJECT) for anything but a canonical encoding. */
export function decodeMessage(bytes: Uint8Array): ConsensusMessage {
  if (!isBytes(bytes))
    throw new DecodeError('DECODE_WRONG_TYPE', 'ConsensusMessage: input is not a Uint8Array');
  if (bytes.length < 1) throw new DecodeError('DECODE_UNDERSIZED', 'ConsensusMessage: empty');
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case MessageKind.proposal:
      return { kind: 'proposal', signed: SignedProposal.decode(body) };
    case MessageKind.vote:
      return { kind: 'vote', signed: SignedVote.decode(body) };
    case MessageKind.commit:
      return { kind: 'commit', commit: Commit.decode(body) };
    default:
      throw new DecodeError('DECODE_MALFORMED', `ConsensusMessage: unknown kind ${bytes[0]}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Signing own messages. The state machine emits unsigned messages; the driver signs exactly those
// (after the write-ahead log holds them) and feeds the signed copy back as an input.

export type UnsignedMessage = { kind: 'proposal'; proposal: Proposal } | { kind: 'vote'; vote: Vote };

/** A validator's keys, synchronous (noble Ed25519, or the simulator's stand-in). */
export interface SyncSigningKeys {
  /** Ed25519 (64 bytes) over a signing message. */
  sign(message: Uint8Array): Uint8Array;
  /** BLS partial (96 bytes) over a value id with this member's share. */
  partialSign(message: Uint8Array): Uint8Array;
}

/** The same keys behind an async Ed25519 (WebCrypto / node:crypto) for the networked driver. */
export interface SigningKeys {
  sign(message: Uint8Array): Promise<Uint8Array>;
  partialSign(message: Uint8Array): Uint8Array;
}

/** Real keys, synchronous: RFC 8032 signing with noble, BLS with the member's threshold share. */
export function syncSigningKeys(ed25519Seed: Uint8Array, blsShare: KeyShare): SyncSigningKeys {
  return {
    sign: (m) => nobleCurve.sign(m, ed25519Seed),
    partialSign: (m) => partialSign(blsShare, m).signature,
  };
}

/** Real keys through an injected Ed25519 implementation (async). */
export function signingKeys(ed: Ed25519, ed25519Seed: Uint8Array, blsShare: KeyShare): SigningKeys {
  return {
    sign: (m) => ed.sign(ed25519Seed, m),
    partialSign: (m) => partialSign(blsShare, m).signature,
  };
}

function partialFor(keys: { partialSign(m: Uint8Array): Uint8Array }, vote: Vote): Uint8Array {
  return vote.type === VoteType.precommit && !isNilVote(vote)
    ? keys.partialSign(vote.valueId)
    : new Uint8Array(0);
}

export function signMessageSync(
  keys: SyncSigningKeys,
  chainId: string,
  m: UnsignedMessage,
): ConsensusMessage {
  if (m.kind === 'proposal') {
    const signature = keys.sign(proposalSigningBytes(chainId, m.proposal));
    return { kind: 'proposal', signed: { proposal: m.proposal, signature } };
  }
  const signature = keys.sign(voteSigningBytes(chainId, m.vote));
  return { kind: 'vote', signed: { vote: m.vote, signature, blsPartial: partialFor(keys, m.vote) } };
}

export async function signMessage(
  keys: SigningKeys,
  chainId: string,
  m: UnsignedMessage,
): Promise<ConsensusMessage> {
  if (m.kind === 'proposal') {
    const signature = await keys.sign(proposalSigningBytes(chainId, m.proposal));
    return { kind: 'proposal', signed: { proposal: m.proposal, signature } };
  }
  const signature = await keys.sign(voteSigningBytes(chainId, m.vote));
  return { kind: 'vote', signed: { vote: m.vote, signature, blsPartial: partialFor(keys, m.vote) } };
}

// ---------------------------------------------------------------------------------------------
// Stateless validation.

export interface ConsensusVerifier {
  ed25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  blsPartial(publicShare: Uint8Array, message: Uint8Array, partial: Uint8Array): boolean;
}

export interface AsyncConsensusVerifier {
  ed25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean | Promise<boolean>;
  blsPartial(publicShare: Uint8Array, message: Uint8Array, partial: Uint8Array): boolean | Promise<boolean>;
}

/** The real checks, synchronous: the pinned Ed25519 rule (pure JS) and a BLS partial pairing check. */
export const pinnedVerifier: ConsensusVerifier = Object.freeze({
  ed25519: (pk: Uint8Array, m: Uint8Array, s: Uint8Array) => signatureFailure(pk, m, s) === null,
  blsPartial: (share: Uint8Array, m: Uint8Array, p: Uint8Array) => verifyPartial(share, m, p),
});

/** The real checks with a platform Ed25519 (WebCrypto / node:crypto enforce the same pinned rule). */
export function asyncVerifier(ed: Ed25519): AsyncConsensusVerifier {
  return { ed25519: (pk, m, s) => ed.verify(pk, m, s), blsPartial: pinnedVerifier.blsPartial };
}

/**
 * Remembers verification results (bounded, oldest forgotten first): a commit repeats precommits
 * already checked one by one, and gossip repeats everything. Keyed by key, message and signature.
 */
export function memoizeVerifier(verifier: ConsensusVerifier, max = 8192): ConsensusVerifier {
  const seen = new Map<string, boolean>();
  const memo = (
    kind: string,
    pk: Uint8Array,
    m: Uint8Array,
    sig: Uint8Array,
    check: () => boolean,
  ): boolean => {
    const key = `${kind}${bytesToHex(pk)}${bytesToHex(m)}${bytesToHex(sig)}`;
    let ok = seen.get(key);
    if (ok === undefined) {
      ok = check();
      if (seen.size >= max) seen.delete(seen.keys().next().value as string);
      seen.set(key, ok);
    }
    return ok;
  };
  return {
    ed25519: (pk, m, s) => memo('e', pk, m, s, () => verifier.ed25519(pk, m, s)),
    blsPartial: (pk, m, s) => memo('b', pk, m, s, () => verifier.blsPartial(pk, m, s)),
  };
}

/** The receiver's position: messages are judged against it (heights other than `height` are IGNOREd). */
export interface LocalView {
  height: bigint;
  round: number;
  /** Messages for rounds above round + roundWindow are IGNOREd (bounds memory per height). */
  roundWindow: number;
}

export interface ValidationContext {
  chainId: string;
  committee: Pick<Committee, 'members'>;
  /** Without a view, heights and rounds are not judged (catch-up, evidence, buffering). */
  view?: LocalView;
  /** Verify BLS partials here (default true); a driver may defer them to certificate assembly. */
  checkPartials?: boolean;
}

/** One signature check the message needs. */
interface SignatureCheck {
  kind: 'ed25519' | 'bls';
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

function malformed(message: string, detail: Record<string, unknown> = {}): ConsensusError {
  return new ConsensusError('CONSENSUS_MALFORMED', message, 'REJECT', detail);
}

/**
 * Structure and membership (REJECT on failure), independent of any local state. A commit must hold
 * its proposal and precommits for id(value) in the proposal's round from 2f+1 distinct members.
 */
export function checkStructure(m: ConsensusMessage, n: number, chainId?: string): void {
  if (m.kind === 'commit') {
    const { proposal, precommits } = m.commit;
    checkStructure({ kind: 'proposal', signed: proposal }, n);
    const p = proposal.proposal;
    const id = chainId === undefined ? undefined : valueId(chainId, p.height, p.value);
    const signers = new Set<number>();
    for (const c of precommits) {
      checkStructure({ kind: 'vote', signed: c }, n);
      const v = c.vote;
      if (
        v.type !== VoteType.precommit ||
        v.height !== p.height ||
        v.round !== p.round ||
        v.valueId.length !== 32
      ) {
        throw malformed("a commit holds only non-nil precommits of its proposal's height and round");
      }
      if (id !== undefined && !equalBytes(v.valueId, id))
        throw malformed('a commit precommit names another value');
      if (signers.has(v.validator)) throw malformed('a commit holds two precommits of one member');
      signers.add(v.validator);
    }
    if (signers.size < quorum(n))
      throw malformed(`a commit needs ${quorum(n)} precommits, has ${signers.size}`);
    return;
  }
  if (m.kind === 'proposal') {
    const p = m.signed.proposal;
    if (p.round >= MAX_ROUND)
      throw new ConsensusError('CONSENSUS_BAD_ROUND', `round ${p.round} out of range`);
    if (p.polRound !== NIL_ROUND && p.polRound >= p.round) {
      throw new ConsensusError('CONSENSUS_BAD_ROUND', `polRound ${p.polRound} is not below round ${p.round}`);
    }
    if (p.proposer >= n) {
      throw new ConsensusError(
        'CONSENSUS_UNKNOWN_VALIDATOR',
        `proposer ${p.proposer} not in a committee of ${n}`,
      );
    }
    const expected = proposerIndex(n, p.height, p.round);
    if (p.proposer !== expected) {
      throw new ConsensusError(
        'CONSENSUS_WRONG_PROPOSER',
        `proposer of ${p.height}/${p.round} is ${expected}`,
        'REJECT',
        {
          proposer: p.proposer,
          expected,
        },
      );
    }
    return;
  }
  const { vote, blsPartial } = m.signed;
  if (vote.type !== VoteType.prevote && vote.type !== VoteType.precommit)
    throw malformed(`vote type ${vote.type}`);
  if (vote.round >= MAX_ROUND)
    throw new ConsensusError('CONSENSUS_BAD_ROUND', `round ${vote.round} out of range`);
  if (vote.validator >= n) {
    throw new ConsensusError(
      'CONSENSUS_UNKNOWN_VALIDATOR',
      `validator ${vote.validator} not in a committee of ${n}`,
    );
  }
  if (vote.valueId.length !== 0 && vote.valueId.length !== 32)
    throw malformed('value id must be empty or 32 bytes');
  const wantsPartial = vote.type === VoteType.precommit && vote.valueId.length === 32;
  if (blsPartial.length !== (wantsPartial ? 96 : 0)) {
    throw malformed(wantsPartial ? 'a precommit for a value needs a BLS partial' : 'unexpected BLS partial');
  }
}

export function heightRound(m: ConsensusMessage): { height: bigint; round: number } {
  const x =
    m.kind === 'proposal'
      ? m.signed.proposal
      : m.kind === 'vote'
        ? m.signed.vote
        : m.commit.proposal.proposal;
  return { height: x.height, round: x.round };
}

/** The member who signed the message (for a commit: its proposer). */
export function senderOf(m: ConsensusMessage): number {
  return m.kind === 'proposal'
    ? m.signed.proposal.proposer
    : m.kind === 'vote'
      ? m.signed.vote.validator
      : m.commit.proposal.proposal.proposer;
}

/** Height and round against the local view (IGNORE: valid elsewhere, not useful here now). */
export function checkView(m: ConsensusMessage, view: LocalView): void {
  const { height, round } = heightRound(m);
  if (height < view.height) {
    throw new ConsensusError('CONSENSUS_OLD_HEIGHT', `height ${height} < ${view.height}`, 'IGNORE', {
      height,
    });
  }
  if (height > view.height) {
    throw new ConsensusError('CONSENSUS_FUTURE_HEIGHT', `height ${height} > ${view.height}`, 'IGNORE', {
      height,
    });
  }
  // A commit is self-certifying: its round may be anything.
  if (m.kind !== 'commit' && round > view.round + view.roundWindow) {
    throw new ConsensusError(
      'CONSENSUS_ROUND_TOO_FAR',
      `round ${round} beyond ${view.round}+${view.roundWindow}`,
      'IGNORE',
      {
        round,
      },
    );
  }
}

function signatureChecks(m: ConsensusMessage, ctx: ValidationContext): SignatureCheck[] {
  const members = ctx.committee.members;
  if (m.kind === 'commit') {
    return [
      ...signatureChecks({ kind: 'proposal', signed: m.commit.proposal }, ctx),
      ...m.commit.precommits.flatMap((signed) => signatureChecks({ kind: 'vote', signed }, ctx)),
    ];
  }
  if (m.kind === 'proposal') {
    const member = members[m.signed.proposal.proposer]!;
    return [
      {
        kind: 'ed25519',
        publicKey: member.nodeKey,
        message: proposalSigningBytes(ctx.chainId, m.signed.proposal),
        signature: m.signed.signature,
      },
    ];
  }
  const { vote, signature, blsPartial } = m.signed;
  const member = members[vote.validator]!;
  const checks: SignatureCheck[] = [
    { kind: 'ed25519', publicKey: member.nodeKey, message: voteSigningBytes(ctx.chainId, vote), signature },
  ];
  if (blsPartial.length > 0 && ctx.checkPartials !== false) {
    checks.push({
      kind: 'bls',
      publicKey: member.blsPublicShare,
      message: vote.valueId,
      signature: blsPartial,
    });
  }
  return checks;
}

function prepare(
  bytesOrMessage: Uint8Array | ConsensusMessage,
  ctx: ValidationContext,
): {
  message: ConsensusMessage;
  checks: SignatureCheck[];
} {
  const message = isBytes(bytesOrMessage) ? decodeMessage(bytesOrMessage) : bytesOrMessage;
  checkStructure(message, ctx.committee.members.length, ctx.chainId);
  if (ctx.view !== undefined) checkView(message, ctx.view);
  return { message, checks: signatureChecks(message, ctx) };
}

function signatureError(c: SignatureCheck, m: ConsensusMessage): ConsensusError {
  const detail = { sender: senderOf(m) };
  return c.kind === 'ed25519'
    ? new ConsensusError('CONSENSUS_BAD_SIGNATURE', 'Ed25519 signature does not verify', 'REJECT', detail)
    : new ConsensusError('CONSENSUS_BAD_PARTIAL', 'BLS partial does not verify', 'REJECT', detail);
}

/**
 * Decodes (if given bytes) and checks a message statelessly; returns it or throws a typed error
 * (DecodeError or ConsensusError) whose verdict tells the driver how to treat the sending peer.
 */
export function validateMessage(
  input: Uint8Array | ConsensusMessage,
  ctx: ValidationContext,
  verifier: ConsensusVerifier,
): ConsensusMessage {
  const { message, checks } = prepare(input, ctx);
  for (const c of checks) {
    const ok =
      c.kind === 'ed25519'
        ? verifier.ed25519(c.publicKey, c.message, c.signature)
        : verifier.blsPartial(c.publicKey, c.message, c.signature);
    if (!ok) throw signatureError(c, message);
  }
  return message;
}

export async function validateMessageAsync(
  input: Uint8Array | ConsensusMessage,
  ctx: ValidationContext,
  verifier: AsyncConsensusVerifier,
): Promise<ConsensusMessage> {
  const { message, checks } = prepare(input, ctx);
  for (const c of checks) {
    const ok =
      c.kind === 'ed25519'
        ? await verifier.ed25519(c.publicKey, c.message, c.signature)
        : await verifier.blsPartial(c.publicKey, c.message, c.signature);
    if (!ok) throw signatureError(c, message);
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// Evidence

export interface EvidenceFacts {
  offender: number;
  height: bigint;
  round: number;
}

function badEvidence(message: string): ConsensusError {
  return new ConsensusError('CONSENSUS_BAD_EVIDENCE', message);
}

/** Same content (signatures aside: a Byzantine signer may sign one proposal twice with different nonces). */
export function sameProposal(a: Proposal, b: Proposal): boolean {
  return (
    a.height === b.height &&
    a.round === b.round &&
    a.polRound === b.polRound &&
    a.proposer === b.proposer &&
    equalBytes(a.value.blockHash, b.value.blockHash) &&
    equalBytes(a.value.historyRoot, b.value.historyRoot) &&
    equalBytes(a.value.payload, b.value.payload)
  );
}

/**
 * Checks equivocation evidence from first principles (both halves signed by the offender, same
 * height/round/kind, different content) and returns who and where; throws CONSENSUS_BAD_EVIDENCE.
 */
export function verifyEvidence(
  evidence: Evidence,
  ctx: Pick<ValidationContext, 'chainId' | 'committee'>,
  verifier: ConsensusVerifier,
): EvidenceFacts {
  const check = (m: ConsensusMessage) => {
    try {
      validateMessage(m, { ...ctx, checkPartials: false }, verifier);
    } catch (e) {
      throw badEvidence(`a half does not verify: ${(e as Error).message}`);
    }
  };
  if (evidence.kind === 'conflicting-votes') {
    const { first, second } = evidence.votes;
    const a = first.vote;
    const b = second.vote;
    if (a.validator !== b.validator || a.height !== b.height || a.round !== b.round || a.type !== b.type) {
      throw badEvidence('votes are not for one validator, height, round and type');
    }
    if (equalBytes(a.valueId, b.valueId)) throw badEvidence('votes name the same value');
    check({ kind: 'vote', signed: first });
    check({ kind: 'vote', signed: second });
    return { offender: a.validator, height: a.height, round: a.round };
  }
  const { first, second } = evidence.proposals;
  const a = first.proposal;
  const b = second.proposal;
  if (a.height !== b.height || a.round !== b.round)
    throw badEvidence('proposals are not for one height and round');
  if (sameProposal(a, b)) throw badEvidence('proposals are the same');
  check({ kind: 'proposal', signed: first });
  check({ kind: 'proposal', signed: second });
  return { offender: a.proposer, height: a.height, round: a.round };
}

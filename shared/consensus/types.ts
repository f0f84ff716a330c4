/**
 * Consensus wire types (SSZ, canonical decoding): the value decided at a height, proposals, votes,
 * their signed envelopes, the one-byte-tagged gossip message, and equivocation evidence.
 *
 * A value is `(blockHash, historyRoot)` plus an opaque payload that carries the block (or the
 * message-id list) to the peers that do not have it yet. The payload is delivery data only: the id
 * of a value — what votes name and what the committee signs — is the finality message
 * `finalityMessage(chainId, height, blockHash, historyRoot)`, so a non-nil precommit's BLS partial
 * is a partial signature over the vote's own `valueId`, and any t of them combine into the
 * FinalityCertificate. Validity must therefore be a function of (blockHash, historyRoot).
 */
import { ByteListType, ContainerType, ListCompositeType } from '@chainsafe/ssz';
import { MAX_COMMITTEE } from '../chain/types.ts';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { bytes32, bytes64, uint8, uint16, uint32, uint64 } from '../codec/ssz.ts';

/** Largest payload a proposal may carry (the block or the message-id list; bigger data is fetched). */
export const MAX_VALUE_PAYLOAD = 256 * 1024;
/** `polRound` on the wire when the proposer has no valid round (the paper's −1). */
export const NIL_ROUND = 0xffff_ffff;
/** Rounds at or above this are malformed (keeps NIL_ROUND out of range and round + 1 exact). */
export const MAX_ROUND = 0x7fff_ffff;
/** Committees are at most MAX_COMMITTEE members (chain rule); indices travel as uint16. */
export const MAX_VALIDATORS = MAX_COMMITTEE;

export const VoteType = { prevote: 1, precommit: 2 } as const;
export type VoteType = (typeof VoteType)[keyof typeof VoteType];

export const ConsensusValue = defineCodec(
  'ConsensusValue',
  new ContainerType({
    blockHash: bytes32,
    historyRoot: bytes32,
    payload: new ByteListType(MAX_VALUE_PAYLOAD),
  }),
);
export type ConsensusValue = CodecValue<typeof ConsensusValue>;

export const Proposal = defineCodec(
  'Proposal',
  new ContainerType({
    height: uint64,
    round: uint32,
    /** The proposer's validRound, NIL_ROUND for none. */
    polRound: uint32,
    proposer: uint16,
    value: ConsensusValue.ssz,
  }),
);
export type Proposal = CodecValue<typeof Proposal>;

export const Vote = defineCodec(
  'Vote',
  new ContainerType({
    /** VoteType: 1 prevote, 2 precommit. */
    type: uint8,
    height: uint64,
    round: uint32,
    validator: uint16,
    /** Empty for nil, else the 32-byte value id (the finality message). */
    valueId: new ByteListType(32),
  }),
);
export type Vote = CodecValue<typeof Vote>;

export const SignedProposal = defineCodec(
  'SignedProposal',
  new ContainerType({ proposal: Proposal.ssz, signature: bytes64 }),
);
export type SignedProposal = CodecValue<typeof SignedProposal>;

export const SignedVote = defineCodec(
  'SignedVote',
  new ContainerType({
    vote: Vote.ssz,
    /** Ed25519 over the tagged vote. */
    signature: bytes64,
    /** BLS partial over `valueId` for a non-nil precommit (96 bytes), empty otherwise. */
    blsPartial: new ByteListType(96),
  }),
);
export type SignedVote = CodecValue<typeof SignedVote>;

/**
 * A decision, self-certifying: the proposal and 2f+1 precommits for its value in its round. Sent to
 * validators that lag behind (catch-up) and fetched by syncing nodes.
 */
export const Commit = defineCodec(
  'Commit',
  new ContainerType({
    proposal: SignedProposal.ssz,
    precommits: new ListCompositeType(SignedVote.ssz, MAX_COMMITTEE),
  }),
);
export type Commit = CodecValue<typeof Commit>;

/** Two signed votes by one validator for one (height, round, type) naming different values. */
export const ConflictingVotes = defineCodec(
  'ConflictingVotes',
  new ContainerType({ first: SignedVote.ssz, second: SignedVote.ssz }),
);
export type ConflictingVotes = CodecValue<typeof ConflictingVotes>;

/** Two different signed proposals by one proposer for one (height, round). */
export const ConflictingProposals = defineCodec(
  'ConflictingProposals',
  new ContainerType({ first: SignedProposal.ssz, second: SignedProposal.ssz }),
);
export type ConflictingProposals = CodecValue<typeof ConflictingProposals>;

/** Equivocation evidence: self-verifying (both halves carry the offender's signature), for SLASH. */
export type Evidence =
  | { kind: 'conflicting-votes'; votes: ConflictingVotes }
  | { kind: 'conflicting-proposals'; proposals: ConflictingProposals };

/** A gossip message: a signed proposal, a signed vote, or a commit. */
export type ConsensusMessage =
  | { kind: 'proposal'; signed: SignedProposal }
  | { kind: 'vote'; signed: SignedVote }
  | { kind: 'commit'; commit: Commit };

/** First byte of an encoded ConsensusMessage. */
export const MessageKind = { proposal: 1, vote: 2, commit: 3 } as const;

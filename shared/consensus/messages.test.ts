import { sha256 } from '@noble/hashes/sha2.js';
import { assert, describe, it } from '#test';
import { utf8 } from '../bytes.ts';
import { nobleEd25519 } from '../crypto/ed25519.ts';
import { partialSign } from '../crypto/threshold-bls.ts';
import { proposerIndex } from './committee.ts';
import {
  asyncVerifier,
  decodeMessage,
  encodeMessage,
  pinnedVerifier,
  signingKeys,
  signMessage,
  signMessageSync,
  type UnsignedMessage,
  type ValidationContext,
  validateMessage,
  validateMessageAsync,
  valueId,
  verifyEvidence,
} from './messages.ts';
import { realCommittee, TEST_CHAIN, testValue } from './testkit.ts';
import {
  Commit,
  ConflictingVotes,
  type ConsensusMessage,
  MAX_VALUE_PAYLOAD,
  NIL_ROUND,
  type SignedProposal,
  type SignedVote,
  type Vote,
  VoteType,
} from './types.ts';

const real = realCommittee(4);
const ctx: ValidationContext = { chainId: TEST_CHAIN, committee: real.committee, checkPartials: false };
const A = testValue(1);
const B = testValue(2);
const idA = valueId(TEST_CHAIN, 5n, A);
const idB = valueId(TEST_CHAIN, 5n, B);

function sign(signer: number, m: UnsignedMessage): ConsensusMessage {
  return signMessageSync(real.keys[signer]!, TEST_CHAIN, m);
}

function prevote(validator: number, id: Uint8Array, signer = validator, round = 1): ConsensusMessage {
  const vote: Vote = { type: VoteType.prevote, height: 5n, round, validator, valueId: id };
  return sign(signer, { kind: 'vote', vote });
}

function proposalBy(proposer: number, round = 1, polRound = NIL_ROUND): ConsensusMessage {
  return sign(proposer, { kind: 'proposal', proposal: { height: 5n, round, polRound, proposer, value: A } });
}

const proposer51 = proposerIndex(4, 5n, 1);

describe('consensus messages: encoding', () => {
  it('round-trips proposals, votes and commits, and rejects bytes that are not a canonical message', () => {
    const messages = [proposalBy(proposer51), prevote(0, idA), prevote(1, new Uint8Array(0))];
    for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m);
    const good = encodeMessage(messages[1]!);
    assert.throws(() => decodeMessage(new Uint8Array(0)), {
      name: 'DecodeError',
      code: 'DECODE_UNDERSIZED',
      verdict: 'REJECT',
    });
    assert.throws(() => decodeMessage(Uint8Array.of(9, ...good.subarray(1))), { code: 'DECODE_MALFORMED' });
    assert.throws(() => decodeMessage(good.subarray(0, good.length - 1)), { name: 'DecodeError' });
    // A trailing byte lands in the last variable-size field: a different, malformed vote.
    assert.throws(() => validateMessage(Uint8Array.of(...good, 0), ctx, pinnedVerifier), {
      verdict: 'REJECT',
    });
    const huge = new Uint8Array(MAX_VALUE_PAYLOAD + 4096);
    huge[0] = 1;
    assert.throws(() => decodeMessage(huge), { code: 'DECODE_OVERSIZED' });
  });
});

describe('consensus messages: stateless validation with real Ed25519', () => {
  it('accepts a correctly signed vote and proposal; rejects forged, misattributed and malformed ones', () => {
    assert.deepEqual(validateMessage(encodeMessage(prevote(2, idA)), ctx, pinnedVerifier), prevote(2, idA));
    validateMessage(proposalBy(proposer51), ctx, pinnedVerifier);
    const forged = prevote(2, idA) as Extract<ConsensusMessage, { kind: 'vote' }>;
    const sig = forged.signed.signature.slice();
    sig[3]! ^= 1;
    const bad: ConsensusMessage = { kind: 'vote', signed: { ...forged.signed, signature: sig } };
    assert.throws(() => validateMessage(bad, ctx, pinnedVerifier), {
      code: 'CONSENSUS_BAD_SIGNATURE',
      verdict: 'REJECT',
    });
    // Member 3 signs a vote that claims to be member 2's.
    assert.throws(() => validateMessage(prevote(2, idA, 3), ctx, pinnedVerifier), {
      code: 'CONSENSUS_BAD_SIGNATURE',
    });
    assert.throws(() => validateMessage(prevote(7, idA, 0), ctx, pinnedVerifier), {
      code: 'CONSENSUS_UNKNOWN_VALIDATOR',
    });
    const wrong = (proposer51 + 1) % 4;
    assert.throws(() => validateMessage(proposalBy(wrong), ctx, pinnedVerifier), {
      code: 'CONSENSUS_WRONG_PROPOSER',
    });
    assert.throws(() => validateMessage(proposalBy(proposer51, 1, 1), ctx, pinnedVerifier), {
      code: 'CONSENSUS_BAD_ROUND',
    });
    assert.throws(() => validateMessage(prevote(1, new Uint8Array(5)), ctx, pinnedVerifier), {
      code: 'CONSENSUS_MALFORMED',
    });
    const nilWithPartial: ConsensusMessage = {
      kind: 'vote',
      signed: {
        ...(prevote(1, new Uint8Array(0)) as Extract<ConsensusMessage, { kind: 'vote' }>).signed,
        blsPartial: new Uint8Array(96),
      },
    };
    assert.throws(() => validateMessage(nilWithPartial, ctx, pinnedVerifier), {
      code: 'CONSENSUS_MALFORMED',
    });
  });

  it('judges height and round against the local view with IGNORE', () => {
    const view = (height: bigint, round: number) => ({ ...ctx, view: { height, round, roundWindow: 4 } });
    validateMessage(prevote(0, idA), view(5n, 0), pinnedVerifier);
    assert.throws(() => validateMessage(prevote(0, idA), view(6n, 0), pinnedVerifier), {
      code: 'CONSENSUS_OLD_HEIGHT',
      verdict: 'IGNORE',
    });
    assert.throws(() => validateMessage(prevote(0, idA), view(4n, 0), pinnedVerifier), {
      code: 'CONSENSUS_FUTURE_HEIGHT',
      verdict: 'IGNORE',
    });
    assert.throws(() => validateMessage(prevote(0, idA, 0, 9), view(5n, 0), pinnedVerifier), {
      code: 'CONSENSUS_ROUND_TOO_FAR',
      verdict: 'IGNORE',
    });
  });

  it("checks a precommit's BLS partial against the member's public share", () => {
    const vote: Vote = { type: VoteType.precommit, height: 5n, round: 1, validator: 1, valueId: idA };
    const good = sign(1, { kind: 'vote', vote }) as Extract<ConsensusMessage, { kind: 'vote' }>;
    assert.equal(good.signed.blsPartial.length, 96);
    validateMessage(good, { ...ctx, checkPartials: true }, pinnedVerifier);
    // Member 2's partial on member 1's precommit (Ed25519 re-signed, so only the partial is wrong).
    const stolen = partialSign(real.dealt.shares[2]!, idA).signature;
    const bad: ConsensusMessage = { kind: 'vote', signed: { ...good.signed, blsPartial: stolen } };
    assert.throws(() => validateMessage(bad, { ...ctx, checkPartials: true }, pinnedVerifier), {
      code: 'CONSENSUS_BAD_PARTIAL',
      verdict: 'REJECT',
    });
  });

  it("validates a commit as a whole: 2f+1 distinct members' precommits for the proposal's value and round", () => {
    const p = proposalBy(proposer51) as Extract<ConsensusMessage, { kind: 'proposal' }>;
    const pc = (i: number, id = idA, round = 1): SignedVote =>
      (
        sign(i, {
          kind: 'vote',
          vote: { type: VoteType.precommit, height: 5n, round, validator: i, valueId: id },
        }) as Extract<ConsensusMessage, { kind: 'vote' }>
      ).signed;
    const commit = (precommits: SignedVote[], proposal: SignedProposal = p.signed): ConsensusMessage => ({
      kind: 'commit',
      commit: { proposal, precommits },
    });
    const [c0, c1, c3] = [pc(0), pc(1), pc(3)];
    const ok = commit([c0, c1, c3]);
    assert.deepEqual(decodeMessage(encodeMessage(ok)), ok);
    assert.deepEqual(
      Commit.decode(Commit.encode((ok as Extract<ConsensusMessage, { kind: 'commit' }>).commit)),
      (ok as Extract<ConsensusMessage, { kind: 'commit' }>).commit,
    );
    validateMessage(ok, ctx, pinnedVerifier);
    assert.throws(() => validateMessage(commit([c0, c1]), ctx, pinnedVerifier), {
      code: 'CONSENSUS_MALFORMED',
    });
    assert.throws(() => validateMessage(commit([c0, c1, c1]), ctx, pinnedVerifier), {
      code: 'CONSENSUS_MALFORMED',
    });
    assert.throws(() => validateMessage(commit([c0, c1, pc(3, idB)]), ctx, pinnedVerifier), {
      code: 'CONSENSUS_MALFORMED',
    });
    assert.throws(() => validateMessage(commit([c0, c1, pc(3, idA, 2)]), ctx, pinnedVerifier), {
      code: 'CONSENSUS_MALFORMED',
    });
  });

  it("signs and verifies the same through an async Ed25519 (the networked driver's path)", async () => {
    const asyncKeys = signingKeys(nobleEd25519, realSeed(1), real.dealt.shares[1]!);
    const vote: Vote = { type: VoteType.prevote, height: 5n, round: 1, validator: 1, valueId: idA };
    const viaAsync = await signMessage(asyncKeys, TEST_CHAIN, { kind: 'vote', vote });
    assert.deepEqual(viaAsync, sign(1, { kind: 'vote', vote }));
    const verifier = asyncVerifier(nobleEd25519);
    await validateMessageAsync(encodeMessage(viaAsync), ctx, verifier);
    await assert.rejects(() => validateMessageAsync(prevote(2, idA, 3), ctx, verifier), {
      code: 'CONSENSUS_BAD_SIGNATURE',
    });
  });
});

function realSeed(i: number): Uint8Array {
  // Mirrors realCommittee's derivation: the seed is never exposed by the committee fixture itself.
  return sha256(utf8(`pouw-consensus-test/ed25519/${i}`));
}

describe('consensus evidence', () => {
  it('verifies two conflicting signed votes as evidence against their signer, and nothing less', () => {
    const a = (prevote(2, idA) as Extract<ConsensusMessage, { kind: 'vote' }>).signed;
    const b = (prevote(2, idB) as Extract<ConsensusMessage, { kind: 'vote' }>).signed;
    const votes = { first: a, second: b };
    assert.deepEqual(ConflictingVotes.decode(ConflictingVotes.encode(votes)), votes);
    assert.deepEqual(verifyEvidence({ kind: 'conflicting-votes', votes }, ctx, pinnedVerifier), {
      offender: 2,
      height: 5n,
      round: 1,
    });
    assert.throws(
      () =>
        verifyEvidence({ kind: 'conflicting-votes', votes: { first: a, second: a } }, ctx, pinnedVerifier),
      {
        code: 'CONSENSUS_BAD_EVIDENCE',
      },
    );
    const framed = (prevote(2, idB, 3) as Extract<ConsensusMessage, { kind: 'vote' }>).signed;
    assert.throws(
      () =>
        verifyEvidence(
          { kind: 'conflicting-votes', votes: { first: a, second: framed } },
          ctx,
          pinnedVerifier,
        ),
      {
        code: 'CONSENSUS_BAD_EVIDENCE',
      },
    );
    const other = (prevote(1, idB) as Extract<ConsensusMessage, { kind: 'vote' }>).signed;
    assert.throws(
      () =>
        verifyEvidence(
          { kind: 'conflicting-votes', votes: { first: a, second: other } },
          ctx,
          pinnedVerifier,
        ),
      {
        code: 'CONSENSUS_BAD_EVIDENCE',
      },
    );
    const p1 = (proposalBy(proposer51) as Extract<ConsensusMessage, { kind: 'proposal' }>).signed;
    const p2 = (
      sign(proposer51, { kind: 'proposal', proposal: { ...p1.proposal, value: B } }) as Extract<
        ConsensusMessage,
        { kind: 'proposal' }
      >
    ).signed;
    assert.equal(
      verifyEvidence(
        { kind: 'conflicting-proposals', proposals: { first: p1, second: p2 } },
        ctx,
        pinnedVerifier,
      ).offender,
      proposer51,
    );
  });
});

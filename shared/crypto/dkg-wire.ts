/**
 * Wire format of the networked Joint-Feldman DKG (supervisor-node/dkg): SSZ bodies for the five
 * authored messages (deal, share, ack, reveal, confirm), the signed envelope that carries them, the
 * frames of the reliable broadcast (send, echo, ready, direct), and the transcript that the
 * parties confirm. One codec per type, canonical decoding, domain tag `pouw/dkg/v1`.
 *
 * Every authored message is signed with its author's Ed25519 node key over
 * `taggedHash('pouw/dkg/v1', chainId, kind ‖ body)` (its *digest*), so a transcript is attributable:
 * a dealer's bad share, a false hash in an ack or a second, different deal is provable from the
 * signed messages alone. The digest covers the body only, never the signature, so it also names the
 * message's content in the broadcast's echoes and readies (an author who signs one body twice with
 * different nonces still has one content). Each body carries the 32-byte session tag, so a message
 * from another run is told apart (IGNORE) from a forgery (REJECT).
 */
import {
  ByteListType,
  ByteVectorType,
  ContainerType,
  ListBasicType,
  ListCompositeType,
} from '@chainsafe/ssz';
import { concatBytes, isBytes } from '../bytes.ts';
import { MAX_COMMITTEE } from '../chain/types.ts';
import { type Codec, type CodecValue, defineCodec } from '../codec/codec.ts';
import { taggedHash } from '../codec/domain.ts';
import { bytes32, bytes64, uint8, uint16 } from '../codec/ssz.ts';
import { DecodeError, DkgError } from '../errors.ts';
import type { DkgAck, DkgDeal, DkgMessage, DkgReveal, DkgShare } from './dkg.ts';
import type { Ed25519 } from './ed25519.ts';

const bytes48 = new ByteVectorType(48);

export const DkgDealBody = defineCodec(
  'DkgDealBody',
  new ContainerType({
    session: bytes32,
    dealer: uint16,
    /** Feldman commitments C_k, compressed G1 (validity is the state machine's call). */
    commitments: new ListCompositeType(bytes48, MAX_COMMITTEE),
  }),
);
export type DkgDealBody = CodecValue<typeof DkgDealBody>;

export const DkgShareBody = defineCodec(
  'DkgShareBody',
  new ContainerType({ session: bytes32, dealer: uint16, recipient: uint16, share: bytes32 }),
);
export type DkgShareBody = CodecValue<typeof DkgShareBody>;

export const DkgAckBody = defineCodec(
  'DkgAckBody',
  new ContainerType({
    session: bytes32,
    from: uint16,
    /** Per dealer: the commitment hash received (32 bytes) or empty. */
    commitmentHashes: new ListCompositeType(new ByteListType(32), MAX_COMMITTEE),
    complaints: new ListBasicType(uint16, MAX_COMMITTEE),
  }),
);
export type DkgAckBody = CodecValue<typeof DkgAckBody>;

export const DkgRevealBody = defineCodec(
  'DkgRevealBody',
  new ContainerType({
    session: bytes32,
    dealer: uint16,
    shares: new ListCompositeType(new ContainerType({ recipient: uint16, share: bytes32 }), MAX_COMMITTEE),
  }),
);
export type DkgRevealBody = CodecValue<typeof DkgRevealBody>;

export const DkgConfirmBody = defineCodec(
  'DkgConfirmBody',
  new ContainerType({ session: bytes32, from: uint16, transcriptHash: bytes32 }),
);
export type DkgConfirmBody = CodecValue<typeof DkgConfirmBody>;

/** A party's statement of the outcome it derived; t matching ones make the run's result final. */
export interface DkgConfirm {
  type: 'confirm';
  from: number;
  transcriptHash: Uint8Array;
}

export type DkgWireMessage = DkgMessage | DkgConfirm;
export type DkgWireType = DkgWireMessage['type'];

/** Kind byte of each authored message (also the first byte hashed into its digest). */
export const DkgKind = { deal: 1, share: 2, ack: 3, reveal: 4, confirm: 5 } as const;
/** Purpose bytes of the other hashes under the same tag, disjoint from DkgKind. */
const SESSION_PURPOSE = 0;
const TRANSCRIPT_PURPOSE = 6;

const BODY_CODECS = [DkgDealBody, DkgShareBody, DkgAckBody, DkgRevealBody, DkgConfirmBody];
export const MAX_DKG_BODY = Math.max(...BODY_CODECS.map((c) => c.maxSize));

export const SignedDkgMessage = defineCodec(
  'SignedDkgMessage',
  new ContainerType({ kind: uint8, body: new ByteListType(MAX_DKG_BODY), signature: bytes64 }),
);
export type SignedDkgMessage = CodecValue<typeof SignedDkgMessage>;

/** Bracha READY: "I will deliver `digest` as the `kind` message of `author`". */
export const DkgReady = defineCodec(
  'DkgReady',
  new ContainerType({ session: bytes32, kind: uint8, author: uint16, digest: bytes32 }),
);
export type DkgReady = CodecValue<typeof DkgReady>;

/**
 * What the parties confirm: the outcome, not the raw message log (two honest parties may have seen
 * a late, irrelevant message differently and still hold the same key). QUAL's commitment hashes
 * fix the group key, every public share and (with each party's own check) every secret share.
 */
export const DkgTranscript = defineCodec(
  'DkgTranscript',
  new ContainerType({
    session: bytes32,
    n: uint16,
    t: uint16,
    committee: new ListCompositeType(bytes32, MAX_COMMITTEE),
    qualified: new ListBasicType(uint16, MAX_COMMITTEE),
    commitmentHashes: new ListCompositeType(bytes32, MAX_COMMITTEE),
    groupPublicKey: bytes48,
  }),
);
export type DkgTranscript = CodecValue<typeof DkgTranscript>;

/** Frame kinds on the DKG channel. */
export const DkgFrameKind = { send: 1, echo: 2, ready: 3, direct: 4 } as const;

export type DkgFrame =
  | { kind: 'send' | 'echo' | 'direct'; signed: SignedDkgMessage }
  | { kind: 'ready'; ready: DkgReady };

/** Largest frame a DKG channel accepts (the length prefix is checked against it first). */
export const MAX_DKG_FRAME = 1 + Math.max(SignedDkgMessage.maxSize, DkgReady.maxSize);

/** The 32-byte tag every body of one run carries: binds messages to (chain, session id). */
export function dkgSessionTag(chainId: string, sessionId: Uint8Array): Uint8Array {
  return taggedHash('pouw/dkg/v1', chainId, concatBytes(Uint8Array.of(SESSION_PURPOSE), sessionId));
}

/** What an author signs, and the content id in echoes and readies. */
export function dkgDigest(chainId: string, kind: number, body: Uint8Array): Uint8Array {
  return taggedHash('pouw/dkg/v1', chainId, concatBytes(Uint8Array.of(kind), body));
}

export function dkgTranscriptHash(chainId: string, transcript: DkgTranscript): Uint8Array {
  return taggedHash(
    'pouw/dkg/v1',
    chainId,
    concatBytes(Uint8Array.of(TRANSCRIPT_PURPOSE), DkgTranscript.encode(transcript)),
  );
}

/** The author of a message: the dealer of a deal, share or reveal, the sender of an ack or confirm. */
export function authorOf(msg: DkgWireMessage): number {
  return msg.type === 'ack' || msg.type === 'confirm' ? msg.from : msg.dealer;
}

/**
 * Encodes and decodes back: the SSZ library writes out-of-range values (a 47-byte "Bytes48", an
 * index past uint16) without complaint, and such bytes must never be signed.
 */
function exact<T>(codec: Codec<T>, value: T): Uint8Array {
  const bytes = codec.encode(value);
  if (!codec.equals(codec.decode(bytes), value)) throw new Error(`${codec.typeName}: value out of range`);
  return bytes;
}

/** SSZ body of a message. Throws DkgError(DKG_BAD_MESSAGE) for values the wire cannot carry. */
export function encodeDkgBody(session: Uint8Array, msg: DkgWireMessage): { kind: number; body: Uint8Array } {
  try {
    switch (msg.type) {
      case 'deal':
        return {
          kind: DkgKind.deal,
          body: exact(DkgDealBody, { session, dealer: msg.dealer, commitments: msg.commitments }),
        };
      case 'share':
        return {
          kind: DkgKind.share,
          body: exact(DkgShareBody, {
            session,
            dealer: msg.dealer,
            recipient: msg.recipient,
            share: msg.share,
          }),
        };
      case 'ack':
        return {
          kind: DkgKind.ack,
          body: exact(DkgAckBody, {
            session,
            from: msg.from,
            commitmentHashes: msg.commitmentHashes,
            complaints: msg.complaints,
          }),
        };
      case 'reveal':
        return {
          kind: DkgKind.reveal,
          body: exact(DkgRevealBody, { session, dealer: msg.dealer, shares: msg.shares }),
        };
      case 'confirm':
        return {
          kind: DkgKind.confirm,
          body: exact(DkgConfirmBody, { session, from: msg.from, transcriptHash: msg.transcriptHash }),
        };
    }
  } catch (e) {
    throw new DkgError('DKG_BAD_MESSAGE', `cannot encode ${msg.type}: ${String(e)}`, 'REJECT');
  }
}

/** Decodes a body of `kind`; throws DecodeError (REJECT) for an unknown kind or non-canonical bytes. */
export function decodeDkgBody(
  kind: number,
  body: Uint8Array,
): { session: Uint8Array; message: DkgWireMessage } {
  switch (kind) {
    case DkgKind.deal: {
      const v = DkgDealBody.decode(body);
      const message: DkgDeal = { type: 'deal', dealer: v.dealer, commitments: v.commitments };
      return { session: v.session, message };
    }
    case DkgKind.share: {
      const v = DkgShareBody.decode(body);
      const message: DkgShare = { type: 'share', dealer: v.dealer, recipient: v.recipient, share: v.share };
      return { session: v.session, message };
    }
    case DkgKind.ack: {
      const v = DkgAckBody.decode(body);
      const message: DkgAck = {
        type: 'ack',
        from: v.from,
        commitmentHashes: v.commitmentHashes,
        complaints: v.complaints,
      };
      return { session: v.session, message };
    }
    case DkgKind.reveal: {
      const v = DkgRevealBody.decode(body);
      const message: DkgReveal = { type: 'reveal', dealer: v.dealer, shares: v.shares };
      return { session: v.session, message };
    }
    case DkgKind.confirm: {
      const v = DkgConfirmBody.decode(body);
      const message: DkgConfirm = { type: 'confirm', from: v.from, transcriptHash: v.transcriptHash };
      return { session: v.session, message };
    }
    default:
      throw new DecodeError('DECODE_MALFORMED', `DkgMessage: unknown kind ${kind}`);
  }
}

/** A signed message, decoded but not yet checked against its author's key. */
export interface OpenedDkgMessage {
  signed: SignedDkgMessage;
  message: DkgWireMessage;
  author: number;
  session: Uint8Array;
  /** dkgDigest of the body: what the signature covers, and the content id. */
  digest: Uint8Array;
}

/** Decodes the body of a signed message (no signature check: see verifyDkgMessage). */
export function openDkgMessage(chainId: string, signed: SignedDkgMessage): OpenedDkgMessage {
  const { session, message } = decodeDkgBody(signed.kind, signed.body);
  return {
    signed,
    message,
    author: authorOf(message),
    session,
    digest: dkgDigest(chainId, signed.kind, signed.body),
  };
}

/** Signs `msg` with the author's node key seed. */
export async function signDkgMessage(
  ed25519: Ed25519,
  nodeKeySeed: Uint8Array,
  chainId: string,
  session: Uint8Array,
  msg: DkgWireMessage,
): Promise<OpenedDkgMessage> {
  const { kind, body } = encodeDkgBody(session, msg);
  const digest = dkgDigest(chainId, kind, body);
  const signed: SignedDkgMessage = { kind, body, signature: await ed25519.sign(nodeKeySeed, digest) };
  return { signed, message: msg, author: authorOf(msg), session, digest };
}

/** The pinned Ed25519 rule over the digest; false for anything invalid. */
export function verifyDkgMessage(
  ed25519: Ed25519,
  authorNodeKey: Uint8Array,
  opened: OpenedDkgMessage,
): Promise<boolean> {
  return ed25519.verify(authorNodeKey, opened.digest, opened.signed.signature);
}

export function encodeDkgFrame(frame: DkgFrame): Uint8Array {
  const body = frame.kind === 'ready' ? DkgReady.encode(frame.ready) : SignedDkgMessage.encode(frame.signed);
  const out = new Uint8Array(body.length + 1);
  out[0] = DkgFrameKind[frame.kind];
  out.set(body, 1);
  return out;
}

/** Throws DecodeError (REJECT) for anything but a canonical frame. */
export function decodeDkgFrame(bytes: Uint8Array): DkgFrame {
  if (!isBytes(bytes)) throw new DecodeError('DECODE_WRONG_TYPE', 'DkgFrame: input is not a Uint8Array');
  if (bytes.length < 1) throw new DecodeError('DECODE_UNDERSIZED', 'DkgFrame: empty');
  if (bytes.length > MAX_DKG_FRAME) {
    throw new DecodeError('DECODE_OVERSIZED', `DkgFrame: ${bytes.length} bytes exceeds ${MAX_DKG_FRAME}`);
  }
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case DkgFrameKind.send:
      return { kind: 'send', signed: SignedDkgMessage.decode(body) };
    case DkgFrameKind.echo:
      return { kind: 'echo', signed: SignedDkgMessage.decode(body) };
    case DkgFrameKind.direct:
      return { kind: 'direct', signed: SignedDkgMessage.decode(body) };
    case DkgFrameKind.ready:
      return { kind: 'ready', ready: DkgReady.decode(body) };
    default:
      throw new DecodeError('DECODE_MALFORMED', `DkgFrame: unknown kind ${bytes[0]}`);
  }
}

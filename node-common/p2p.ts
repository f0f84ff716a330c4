/**
 * The libp2p node for Node processes (supervisors, the relay, edge volunteers): TCP and WebSockets
 * listeners, Noise, Yamux, identify, ping and gossipsub, with the node's Ed25519 key as its libp2p
 * identity, so the peer id of a supervisor IS its committee node key and Noise authenticates it.
 *
 * On top of libp2p it adds the two shapes our protocols use (DESIGN §4.9):
 * - gossip with typed validators: `subscribe(topic, validate, deliver)`. The validator decodes and
 *   checks a message statelessly before anything touches state; a PouwError's verdict becomes
 *   gossipsub's (REJECT → reject and count against the forwarding peer, IGNORE → ignore), and the
 *   decoded value is handed to `deliver` so nothing is decoded twice;
 * - one-request-one-response streams: `serve(name, handler)` and `request(peer, name, body)`. Each
 *   side writes exactly one length-prefixed frame; a frame's declared length is checked against the
 *   protocol's limit (`requestLimit`, MAX_RESPONSE_BYTES) before a byte of it is buffered, and the
 *   answer is a `ResponseEnvelope` (shared/net/messages.ts).
 *
 * Every invalid frame or message is counted per peer (`peerStats`), and a peer whose count passes
 * `maxBadFrames` is disconnected and refused for a while (a simple ban: scores proper come later).
 */

import { keys } from '@libp2p/crypto';
import { type GossipSub, gossipsub, TopicValidatorResult } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import * as lp from 'it-length-prefixed';
import { createLibp2p, type Libp2p } from 'libp2p';
import { isPouwError, NetError } from '../shared/errors.ts';
import { envelopeForError, okEnvelope, openEnvelope, requestLimit } from '../shared/net/messages.ts';
import {
  MAX_GOSSIP_BYTES,
  MAX_RESPONSE_BYTES,
  PROTOCOLS,
  type ProtocolName,
} from '../shared/net/protocols.ts';

/** Peer id of an Ed25519 node key (32 raw bytes): how a committee member is addressed. */
export function peerIdOfNodeKey(nodeKey: Uint8Array): PeerId {
  return peerIdFromPublicKey(keys.publicKeyFromRaw(nodeKey));
}

/** The raw Ed25519 key behind a peer id (undefined for other key types). */
export function nodeKeyOfPeer(peer: PeerId): Uint8Array | undefined {
  return peer.type === 'Ed25519' ? peer.publicKey.raw : undefined;
}

export type { Multiaddr, PeerId };
export { multiaddr, peerIdFromString };

export interface PeerStats {
  /** Frames or messages that failed a boundary check (REJECT verdicts). */
  bad: number;
  /** Last few reasons (typed codes), newest last. */
  reasons: string[];
  /** Requests served and gossip accepted. */
  good: number;
}

export interface NodeOptions {
  /** 32-byte Ed25519 seed of the node key. */
  nodeKeySeed: Uint8Array;
  /** Multiaddrs to listen on, e.g. /ip4/127.0.0.1/tcp/0 and /ip4/127.0.0.1/tcp/0/ws. */
  listen: readonly string[];
  /** Peers gossipsub keeps direct links with (the other supervisors), with their addresses. */
  directPeers?: readonly { peerId: PeerId; addrs: readonly Multiaddr[] }[];
  maxConnections?: number;
  /** Bad frames from one peer before it is disconnected and refused for `banMs`. */
  maxBadFrames?: number;
  banMs?: number;
  /** Gossipsub heartbeat (ms); short heartbeats make meshes form fast on small test networks. */
  heartbeatMs?: number;
  /** Structured log sink (JSON lines in processes). */
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export type RequestHandler = (body: Uint8Array, peer: PeerId) => Promise<Uint8Array>;

export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface PouwNode {
  readonly libp2p: Libp2p<{ pubsub: GossipSub }>;
  readonly peerId: PeerId;
  readonly pubsub: GossipSub;
  multiaddrs(): Multiaddr[];
  /**
   * Subscribes with a stateless validator: `validate` returns the decoded message or throws a typed
   * error (its verdict decides reject / ignore); `deliver` gets what `validate` returned.
   */
  subscribe<T>(
    topic: string,
    validate: (data: Uint8Array, from: PeerId) => T | Promise<T>,
    deliver: (value: T, from: PeerId) => void,
  ): void;
  publish(topic: string, data: Uint8Array): Promise<number>;
  /** Serves a protocol: the handler gets the request body and returns the response body. */
  serve(name: ProtocolName, handler: RequestHandler): Promise<void>;
  /** Sends one request and returns the response body (throws NetError for error answers). */
  request(
    peer: PeerId | Multiaddr,
    name: ProtocolName,
    body: Uint8Array,
    opts?: RequestOptions,
  ): Promise<Uint8Array>;
  /** Records a bad frame or message from `peer` (disconnects and bans past the limit). */
  penalize(peer: PeerId, reason: string): void;
  peerStats(peer: PeerId): PeerStats;
  isBanned(peer: PeerId): boolean;
  stop(): Promise<void>;
}

const DEFAULT_MAX_BAD_FRAMES = 64;
const DEFAULT_BAN_MS = 60_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const MAX_VARINT_BYTES = 5;

/** Creates and starts a node. */
export async function createNode(opts: NodeOptions): Promise<PouwNode> {
  if (opts.nodeKeySeed.length !== 32) throw new NetError('NET_BAD_CONFIG', 'node key seed must be 32 bytes');
  const privateKey = await keys.generateKeyPairFromSeed('Ed25519', opts.nodeKeySeed);
  const maxBadFrames = opts.maxBadFrames ?? DEFAULT_MAX_BAD_FRAMES;
  const banMs = opts.banMs ?? DEFAULT_BAN_MS;
  const log = opts.log ?? (() => {});
  const stats = new Map<string, PeerStats>();
  const bannedUntil = new Map<string, number>();
  const isBanned = (peer: PeerId): boolean => {
    const until = bannedUntil.get(peer.toString());
    if (until === undefined) return false;
    if (Date.now() >= until) {
      bannedUntil.delete(peer.toString());
      return false;
    }
    return true;
  };

  const libp2p = await createLibp2p({
    privateKey,
    addresses: { listen: [...opts.listen] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: opts.maxConnections ?? 256 },
    connectionGater: {
      // A banned peer is refused at the handshake (its id is known once Noise completes).
      denyInboundEncryptedConnection: (peer: PeerId) => isBanned(peer),
      denyOutboundEncryptedConnection: (peer: PeerId) => isBanned(peer),
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        emitSelf: false,
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        maxInboundDataLength: MAX_GOSSIP_BYTES,
        directPeers: (opts.directPeers ?? []).map((p) => ({ id: p.peerId, addrs: [...p.addrs] })),
        directConnectTicks: 5,
        heartbeatInterval: opts.heartbeatMs ?? 700,
        fallbackToFloodsub: false,
      }),
    },
  });

  const statsOf = (peer: PeerId): PeerStats => {
    const key = peer.toString();
    let s = stats.get(key);
    if (s === undefined) {
      s = { bad: 0, reasons: [], good: 0 };
      stats.set(key, s);
    }
    return s;
  };

  const penalize = (peer: PeerId, reason: string): void => {
    const s = statsOf(peer);
    s.bad++;
    s.reasons.push(reason);
    if (s.reasons.length > 8) s.reasons.shift();
    log('peer-penalized', { peer: peer.toString(), reason, bad: s.bad });
    if (s.bad >= maxBadFrames && !isBanned(peer)) {
      bannedUntil.set(peer.toString(), Date.now() + banMs);
      log('peer-banned', { peer: peer.toString(), bad: s.bad, banMs });
      libp2p.hangUp(peer).catch(() => {});
    }
  };

  const pubsub = libp2p.services.pubsub;
  const decoded = new WeakMap<object, unknown>();
  const deliverers = new Map<string, (value: unknown, from: PeerId) => void>();
  pubsub.addEventListener('message', (evt) => {
    const msg = evt.detail;
    const deliver = deliverers.get(msg.topic);
    if (!deliver || !decoded.has(msg)) return;
    const value = decoded.get(msg);
    decoded.delete(msg);
    const from = msg.type === 'signed' ? msg.from : undefined;
    if (from) deliver(value, from);
  });

  const node: PouwNode = {
    libp2p,
    peerId: libp2p.peerId,
    pubsub,
    multiaddrs: () => libp2p.getMultiaddrs(),
    subscribe<T>(
      topic: string,
      validate: (data: Uint8Array, from: PeerId) => T | Promise<T>,
      deliver: (value: T, from: PeerId) => void,
    ): void {
      pubsub.topicValidators.set(topic, async (propagationSource, msg) => {
        if (msg.type !== 'signed') {
          penalize(propagationSource, 'NET_MALFORMED');
          return TopicValidatorResult.Reject;
        }
        if (msg.data.length > MAX_GOSSIP_BYTES) {
          penalize(propagationSource, 'NET_OVERSIZED');
          return TopicValidatorResult.Reject;
        }
        try {
          decoded.set(msg, await validate(msg.data, msg.from));
          statsOf(propagationSource).good++;
          return TopicValidatorResult.Accept;
        } catch (e) {
          if (isPouwError(e) && e.verdict !== 'REJECT') return TopicValidatorResult.Ignore;
          penalize(propagationSource, isPouwError(e) ? e.code : 'UNTYPED');
          if (!isPouwError(e)) log('validator-bug', { topic, error: String(e) });
          return TopicValidatorResult.Reject;
        }
      });
      deliverers.set(topic, deliver as (value: unknown, from: PeerId) => void);
      pubsub.subscribe(topic);
    },
    async publish(topic: string, data: Uint8Array): Promise<number> {
      const r = await pubsub.publish(topic, data);
      return r.recipients.length;
    },
    async serve(name: ProtocolName, handler: RequestHandler): Promise<void> {
      const limit = requestLimit(name);
      await libp2p.handle(
        PROTOCOLS[name],
        async (stream: Stream, connection: Connection) => {
          const peer = connection.remotePeer;
          let answer: Uint8Array;
          try {
            const body = await readFrame(stream, limit, AbortSignal.timeout(DEFAULT_REQUEST_TIMEOUT_MS));
            answer = okEnvelope(await handler(body, peer));
            statsOf(peer).good++;
          } catch (e) {
            if (isPouwError(e) && e.verdict === 'REJECT') penalize(peer, e.code);
            if (isPouwError(e) && (e.code === 'NET_CLOSED' || e.code === 'NET_TIMEOUT')) {
              stream.abort(e);
              return;
            }
            if (!isPouwError(e)) log('handler-error', { protocol: name, error: String(e) });
            answer = envelopeForError(e);
          }
          try {
            await writeFrame(stream, answer);
            await stream.close();
          } catch (e) {
            stream.abort(e instanceof Error ? e : new Error(String(e)));
          }
        },
        { maxInboundStreams: 64, maxOutboundStreams: 64 },
      );
    },
    async request(
      peer: PeerId | Multiaddr,
      name: ProtocolName,
      body: Uint8Array,
      ropts: RequestOptions = {},
    ): Promise<Uint8Array> {
      const timeout = AbortSignal.timeout(ropts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
      const signal = ropts.signal ? AbortSignal.any([timeout, ropts.signal]) : timeout;
      let stream: Stream;
      try {
        stream = await libp2p.dialProtocol(peer, PROTOCOLS[name], { signal });
      } catch (e) {
        throw new NetError('NET_UNAVAILABLE', `dial ${name}: ${(e as Error).message}`, 'IGNORE');
      }
      try {
        await writeFrame(stream, body);
        await stream.close({ signal });
        const answer = await readFrame(stream, MAX_RESPONSE_BYTES, signal);
        return openEnvelope(answer);
      } catch (e) {
        stream.abort(e instanceof Error ? e : new Error(String(e)));
        if (isPouwError(e)) throw e;
        throw new NetError('NET_CLOSED', `${name}: ${(e as Error).message}`, 'IGNORE');
      }
    },
    penalize,
    peerStats: (peer) => ({ ...statsOf(peer) }),
    isBanned,
    async stop(): Promise<void> {
      await libp2p.stop();
    },
  };
  return node;
}

/** Writes one length-prefixed frame, waiting for the stream to drain if its buffer is full. */
export async function writeFrame(stream: Stream, body: Uint8Array): Promise<void> {
  if (!stream.send(lp.encode.single(body))) await stream.onDrain();
}

/**
 * Reads exactly one length-prefixed frame. The declared length is checked against `limit` before
 * the body is buffered (NET_OVERSIZED, REJECT); a stream that ends early is NET_CLOSED, a
 * malformed prefix NET_MALFORMED, and the deadline NET_TIMEOUT.
 */
export async function readFrame(stream: Stream, limit: number, signal: AbortSignal): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let buffered = 0;
  let length = -1;
  let headerBytes = 0;
  const iterator = stream[Symbol.asyncIterator]();
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(new NetError('NET_TIMEOUT', 'no complete frame before the deadline', 'IGNORE'));
    if (signal.aborted) fail();
    signal.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => {});
  try {
    for (;;) {
      if (length < 0) {
        const parsed = parseVarint(chunks, buffered);
        if (parsed === 'malformed') throw new NetError('NET_MALFORMED', 'bad length prefix');
        if (parsed !== undefined) {
          length = parsed.value;
          headerBytes = parsed.bytes;
          if (length > limit)
            throw new NetError('NET_OVERSIZED', `frame of ${length} bytes exceeds ${limit}`, 'REJECT', {
              length,
              limit,
            });
        }
      }
      if (length >= 0 && buffered >= headerBytes + length) {
        const all = concat(chunks, buffered);
        return all.slice(headerBytes, headerBytes + length);
      }
      const next = await Promise.race([iterator.next(), aborted]);
      if (next.done) throw new NetError('NET_CLOSED', 'stream ended before a complete frame', 'IGNORE');
      const chunk = next.value instanceof Uint8Array ? next.value : next.value.subarray();
      chunks.push(chunk);
      buffered += chunk.length;
    }
  } finally {
    // Not awaited: an async generator's return() waits for a pending next(), which a peer that
    // never writes again would hold forever. Listeners are removed once it settles.
    iterator.return?.().catch(() => {});
  }
}

function parseVarint(
  chunks: readonly Uint8Array[],
  buffered: number,
): { value: number; bytes: number } | 'malformed' | undefined {
  let value = 0;
  let shift = 0;
  let i = 0;
  for (const c of chunks) {
    for (const b of c) {
      value += (b & 0x7f) * 2 ** shift;
      i++;
      if ((b & 0x80) === 0) {
        // Non-minimal encodings (a trailing zero byte) are malformed: one frame, one encoding.
        if (i > 1 && b === 0) return 'malformed';
        return { value, bytes: i };
      }
      shift += 7;
      if (i >= MAX_VARINT_BYTES) return 'malformed';
    }
  }
  return buffered >= MAX_VARINT_BYTES ? 'malformed' : undefined;
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

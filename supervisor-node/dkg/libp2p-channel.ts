/**
 * DkgChannel over js-libp2p v3: one long-lived outbound stream per member on PROTOCOLS.dkg carrying
 * length-prefixed DKG frames, and a handler that reads the members' streams into the incoming queue.
 *
 * Authentication: each supervisor's libp2p identity is its Ed25519 node key, so after the Noise
 * handshake `connection.remotePeer` proves which key the remote holds. A stream from a peer that is
 * not in the committee is aborted (DKG_NOT_A_MEMBER) before a byte is read; a frame longer than
 * MAX_DKG_FRAME aborts its stream (the length prefix is checked before buffering).
 *
 * Delivery: `send` appends to the member's outbox (append-only for the channel's lifetime) and wakes
 * its writer. The writer dials with exponential backoff and jitter while the member is not up yet
 * and writes the outbox in order. When a stream closes or breaks for any reason (even a clean
 * close can drop frames still in its write buffer), the writer redials, with backoff, and writes
 * the whole outbox again: the DKG ignores repeats, so nothing written into a dying stream is lost.
 * A member that finished and left is redialed until this channel closes too.
 *
 * Written against libp2p's public types only, so it runs on any node (node-common/p2p.ts's factory
 * or a bare `createLibp2p`) that has TCP or WebSockets, Noise and Yamux.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import type { Multiaddr } from '@multiformats/multiaddr';
import * as lp from 'it-length-prefixed';
import { MAX_DKG_FRAME } from '../../shared/crypto/dkg-wire.ts';
import { DkgError } from '../../shared/errors.ts';
import { PROTOCOLS } from '../../shared/net/protocols.ts';
import { DEFAULT_MAX_QUEUED_PER_SENDER, type DkgChannel, IncomingQueue } from './channel.ts';

export interface Libp2pDkgChannelOptions {
  libp2p: Libp2p;
  /** Node public keys (Ed25519, 32 bytes); member i is committee[i − 1]. */
  committee: readonly Uint8Array[];
  /** This node's committee index; its libp2p peer id must be committee[self − 1]'s. */
  self: number;
  /** Addresses of other members to add to the peer store (members found otherwise need none). */
  addresses?: ReadonlyMap<number, readonly Multiaddr[]>;
  protocol?: string;
  /** Redial backoff: doubles from `initialMs` up to `maxMs`, ±20 % jitter. */
  backoff?: { initialMs: number; maxMs: number };
  dialTimeoutMs?: number;
  maxQueuedPerSender?: number;
  /** Frames kept per member for resends; past it, sends to that member are dropped (counted). */
  maxOutboxFrames?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface Libp2pDkgChannel extends DkgChannel {
  /** Waits up to `flushMs` (default 2000) for connected members to receive what is queued, then closes. */
  close(options?: { flushMs?: number }): Promise<void>;
  /** Per member: frames queued, frames dropped at the outbox cap, dial attempts that failed. */
  linkStats(): ReadonlyMap<number, { queued: number; dropped: number; failedDials: number }>;
}

const DEFAULT_BACKOFF = { initialMs: 100, maxMs: 1000 };
const DEFAULT_DIAL_TIMEOUT_MS = 5000;
const DEFAULT_MAX_OUTBOX_FRAMES = 65_536;
const STABLE_LINK_MS = 1000;

/** Peer id of a committee node key. */
export function peerIdOfNodeKey(nodeKey: Uint8Array): PeerId {
  return peerIdFromPublicKey(publicKeyFromRaw(nodeKey));
}

interface Link {
  index: number;
  peer: PeerId;
  outbox: Uint8Array[];
  /** Index of the next outbox frame to write on the current (or next) stream. */
  next: number;
  stream: Stream | null;
  /** When the current stream came up; a link that stayed up STABLE_LINK_MS resets the backoff. */
  upSince: number;
  /** Consecutive failures (dials or short-lived streams), for the backoff. */
  attempt: number;
  /** No dial before this time (ms since the epoch). */
  redialAt: number;
  dropped: number;
  failedDials: number;
  wake: (() => void) | null;
}

export async function createLibp2pDkgChannel(o: Libp2pDkgChannelOptions): Promise<Libp2pDkgChannel> {
  const n = o.committee.length;
  const protocol = o.protocol ?? PROTOCOLS.dkg;
  const backoff = o.backoff ?? DEFAULT_BACKOFF;
  const dialTimeoutMs = o.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const maxOutbox = o.maxOutboxFrames ?? DEFAULT_MAX_OUTBOX_FRAMES;
  const log = o.log ?? (() => {});
  if (!Number.isInteger(o.self) || o.self < 1 || o.self > n) {
    throw new DkgError('DKG_BAD_PARAMETERS', `self must be in [1, ${n}]`, 'REJECT');
  }
  const peers = o.committee.map((k) => peerIdOfNodeKey(k));
  if (!peers[o.self - 1]!.equals(o.libp2p.peerId)) {
    throw new DkgError('DKG_BAD_PARAMETERS', 'the libp2p identity is not this member’s node key', 'REJECT');
  }
  const indexOf = new Map(peers.map((p, i) => [p.toString(), i + 1]));
  for (const [index, addrs] of o.addresses ?? []) {
    if (index !== o.self && index >= 1 && index <= n) {
      await o.libp2p.peerStore.merge(peers[index - 1]!, { multiaddrs: [...addrs] });
    }
  }

  const queue = new IncomingQueue(o.maxQueuedPerSender ?? DEFAULT_MAX_QUEUED_PER_SENDER);
  const stop = new AbortController();
  const inbound = new Set<Stream>();
  const links = new Map<number, Link>();
  const loops: Promise<void>[] = [];
  let closing: Promise<void> | null = null;

  const onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const from = indexOf.get(connection.remotePeer.toString());
    if (from === undefined || from === o.self || stop.signal.aborted) {
      abortQuietly(stream, new DkgError('DKG_NOT_A_MEMBER', 'not a member of this DKG committee', 'REJECT'));
      return;
    }
    inbound.add(stream);
    try {
      for await (const frame of lp.decode(stream, { maxDataLength: MAX_DKG_FRAME })) {
        queue.push({ fromIndex: from, bytes: frame.subarray() });
      }
    } catch (e) {
      if (!stop.signal.aborted) log('dkg-inbound-error', { from, error: String(e) });
      abortQuietly(stream, e);
    } finally {
      inbound.delete(stream);
    }
  };
  await o.libp2p.handle(protocol, onStream, { maxInboundStreams: 8, force: true });

  const wait = (link: Link): Promise<void> =>
    new Promise((resolve) => {
      link.wake = resolve;
    });
  const wakeUp = (link: Link): void => {
    const w = link.wake;
    link.wake = null;
    w?.();
  };

  /** A stream broke or closed: anything written into it may be lost, so the next one starts over. */
  const lose = (link: Link, stream: Stream, reason: string): void => {
    if (link.stream !== stream) return;
    log('dkg-link-down', { to: link.index, reason });
    link.stream = null;
    link.next = 0;
    if (Date.now() - link.upSince >= STABLE_LINK_MS) link.attempt = 0;
    link.redialAt = Date.now() + delay(backoff, link.attempt++);
    wakeUp(link);
  };

  const attach = (link: Link, stream: Stream): void => {
    link.stream = stream;
    link.upSince = Date.now();
    log('dkg-link-up', { to: link.index, frames: link.outbox.length });
    stream.addEventListener('close', (evt) => {
      lose(link, stream, evt.error === undefined ? 'closed' : String(evt.error));
    });
  };

  const runLink = async (link: Link): Promise<void> => {
    while (!stop.signal.aborted) {
      if (link.next >= link.outbox.length) {
        await wait(link);
        continue;
      }
      let stream = link.stream;
      if (stream === null) {
        const pause = link.redialAt - Date.now();
        if (pause > 0) {
          await sleep(pause, stop.signal);
          continue;
        }
        try {
          stream = await o.libp2p.dialProtocol(link.peer, protocol, {
            signal: AbortSignal.any([stop.signal, AbortSignal.timeout(dialTimeoutMs)]),
          });
        } catch (e) {
          if (stop.signal.aborted) return;
          link.failedDials++;
          if (link.failedDials === 1 || link.failedDials % 20 === 0) {
            log('dkg-dial-retry', { to: link.index, failures: link.failedDials, error: String(e) });
          }
          link.redialAt = Date.now() + delay(backoff, link.attempt++);
          continue;
        }
        if (stop.signal.aborted) {
          abortQuietly(stream, new Error('channel closed'));
          return;
        }
        attach(link, stream);
      }
      try {
        while (link.stream === stream && link.next < link.outbox.length) {
          const ok = stream.send(link.outbox[link.next]!);
          link.next++;
          if (!ok) await stream.onDrain({ signal: stop.signal });
        }
      } catch (e) {
        if (stop.signal.aborted) return;
        lose(link, stream, String(e));
        abortQuietly(stream, e);
      }
    }
  };

  for (let i = 1; i <= n; i++) {
    if (i === o.self) continue;
    const link: Link = {
      index: i,
      peer: peers[i - 1]!,
      outbox: [],
      next: 0,
      stream: null,
      upSince: 0,
      attempt: 0,
      redialAt: 0,
      dropped: 0,
      failedDials: 0,
      wake: null,
    };
    links.set(i, link);
    loops.push(runLink(link));
  }

  const close = async (options: { flushMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      const flushMs = options.flushMs ?? 2000;
      const until = Date.now() + flushMs;
      const behind = () => [...links.values()].some((l) => l.stream !== null && l.next < l.outbox.length);
      while (behind() && Date.now() < until) await sleep(20, stop.signal);
      stop.abort();
      for (const link of links.values()) wakeUp(link);
      await Promise.allSettled(
        [...links.values()].map(async (link) => {
          const s = link.stream;
          link.stream = null;
          if (s === null) return;
          try {
            await s.close({ signal: AbortSignal.timeout(Math.max(1, until - Date.now())) });
          } catch (e) {
            abortQuietly(s, e);
          }
        }),
      );
      for (const s of inbound) abortQuietly(s, new Error('DKG channel closed'));
      queue.close();
      await Promise.allSettled(loops);
      try {
        await o.libp2p.unhandle(protocol);
      } catch {
        // The node may already be stopping; its handlers go with it.
      }
    })();
    return closing;
  };

  return {
    self: o.self,
    n,
    send(to: number, bytes: Uint8Array): void {
      const link = links.get(to);
      if (link === undefined) throw new RangeError(`member ${o.self} cannot send to ${to}`);
      if (stop.signal.aborted) return;
      if (link.outbox.length >= maxOutbox) {
        link.dropped++;
        return;
      }
      link.outbox.push(lp.encode.single(bytes).subarray());
      wakeUp(link);
    },
    incoming: queue,
    dropped: () => queue.dropped(),
    close,
    linkStats: () =>
      new Map(
        [...links].map(([i, l]) => [
          i,
          { queued: l.outbox.length, dropped: l.dropped, failedDials: l.failedDials },
        ]),
      ),
  };
}

/** Aborts a stream that may already be closed (aborting a closed stream throws). */
function abortQuietly(stream: Stream, e: unknown): void {
  try {
    stream.abort(e instanceof Error ? e : new Error(String(e)));
  } catch {
    // Already closed or reset: nothing left to release.
  }
}

function delay(b: { initialMs: number; maxMs: number }, attempt: number): number {
  const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(attempt, 20));
  return base * (0.8 + 0.4 * Math.random());
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

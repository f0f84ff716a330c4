/**
 * One request, one answer, from the volunteer's libp2p node (browser main thread or edge process):
 * the client half of the supervisors' request/response protocols (shared/net/messages.ts). The
 * request is one length-prefixed frame; the answer is one length-prefixed `ResponseEnvelope`
 * whose declared length is checked against MAX_RESPONSE_BYTES before its body is buffered.
 *
 * The server half lives in node-common/p2p.ts, which this folder may not import (it must bundle for
 * browsers); both follow the framing written down in shared/net/messages.ts.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import * as lp from 'it-length-prefixed';
import { isPouwError, NetError } from '../shared/errors.ts';
import { openEnvelope } from '../shared/net/messages.ts';
import { MAX_RESPONSE_BYTES, PROTOCOLS, type ProtocolName } from '../shared/net/protocols.ts';

export interface RequestOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Sends `body` on protocol `name` to `peer` and returns the answer's body. Throws NetError: a
 * dial that fails is NET_UNAVAILABLE (IGNORE), a deadline NET_TIMEOUT, a stream that ends early
 * NET_CLOSED, an answer over the limit NET_OVERSIZED (REJECT: the server's fault), and an error
 * envelope the code openEnvelope maps it to; a malformed envelope is a DecodeError (REJECT).
 */
export async function requestOnce(
  node: Libp2p,
  peer: PeerId | Multiaddr | Multiaddr[],
  name: ProtocolName,
  body: Uint8Array,
  opts: RequestOptions,
): Promise<Uint8Array> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal === undefined ? timeout : AbortSignal.any([timeout, opts.signal]);
  let stream: Stream;
  try {
    stream = await node.dialProtocol(peer, PROTOCOLS[name], { signal });
  } catch (e) {
    throw new NetError('NET_UNAVAILABLE', `dial ${name}: ${(e as Error).message}`, 'IGNORE');
  }
  try {
    if (!stream.send(lp.encode.single(body))) await stream.onDrain({ signal });
    await stream.close({ signal });
    return openEnvelope(await readOneFrame(stream, MAX_RESPONSE_BYTES, signal));
  } catch (e) {
    stream.abort(e instanceof Error ? e : new Error(String(e)));
    if (isPouwError(e)) throw e;
    if (signal.aborted)
      throw new NetError('NET_TIMEOUT', `${name}: no answer in ${opts.timeoutMs} ms`, 'IGNORE');
    throw new NetError('NET_CLOSED', `${name}: ${(e as Error).message}`, 'IGNORE');
  }
}

/** Reads exactly one length-prefixed frame of at most `limit` bytes. */
async function readOneFrame(stream: Stream, limit: number, signal: AbortSignal): Promise<Uint8Array> {
  const frames = lp.decode(stream, { maxDataLength: limit });
  const aborted = new Promise<never>((_, reject) => {
    const fail = () =>
      reject(new NetError('NET_TIMEOUT', 'no complete answer before the deadline', 'IGNORE'));
    if (signal.aborted) fail();
    signal.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => {});
  try {
    const next = await Promise.race([frames.next(), aborted]);
    if (next.done) throw new NetError('NET_CLOSED', 'the stream ended before an answer', 'IGNORE');
    return next.value.subarray();
  } catch (e) {
    if (isPouwError(e)) throw e;
    const code = (e as { name?: string }).name;
    if (code === 'InvalidDataLengthError')
      throw new NetError('NET_OVERSIZED', `an answer over ${limit} bytes`, 'REJECT', { limit });
    if (code === 'InvalidMessageLengthError' || code === 'InvalidDataLengthLengthError')
      throw new NetError('NET_MALFORMED', 'a bad length prefix');
    if (code === 'UnexpectedEOFError')
      throw new NetError('NET_CLOSED', 'the stream ended inside an answer', 'IGNORE');
    throw e;
  } finally {
    // Not awaited: a generator's return() waits for a pending next() that may never settle.
    frames.return(undefined).catch(() => {});
  }
}

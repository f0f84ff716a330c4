/**
 * The DKG over real libp2p nodes in this process (TCP on 127.0.0.1, Noise, Yamux, identify): the
 * channel's authentication and resend behaviour, then whole DKG runs (all start together; one
 * member starts 1.5 s late, before it even listens) ending in a threshold signature that verifies
 * under the agreed group key.
 */
import { createServer } from 'node:net';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { identify } from '@libp2p/identify';
import type { Libp2p, Stream } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@libp2p/yamux';
import type { Multiaddr } from '@multiformats/multiaddr';
import { sha256 } from '@noble/hashes/sha2.js';
import * as lp from 'it-length-prefixed';
import { createLibp2p } from 'libp2p';
import { after, assert, describe, it } from '#test';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { bytesToHex, utf8 } from '../../shared/bytes.ts';
import { MAX_DKG_FRAME } from '../../shared/crypto/dkg-wire.ts';
import { PROTOCOLS } from '../../shared/net/protocols.ts';
import type { DkgIncoming } from './channel.ts';
import { createLibp2pDkgChannel, type Libp2pDkgChannel } from './libp2p-channel.ts';
import { type NetworkDkgResult, runNetworkDkg } from './run.ts';
import { CHAIN_ID, checkHonestAgreement, type Member, makeCommittee } from './testkit.ts';

const started: Libp2p[] = [];

after(async () => {
  await Promise.allSettled(started.map((n) => n.stop()));
});

async function startNode(seed: Uint8Array, port = 0): Promise<Libp2p> {
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', seed),
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  });
  started.push(node);
  return node;
}

/** A port that was free a moment ago (for a member that must be addressable before it starts). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function addressesOf(nodes: Map<number, Multiaddr[]>): ReadonlyMap<number, readonly Multiaddr[]> {
  return nodes;
}

async function collect(channel: Libp2pDkgChannel, count: number, ms: number): Promise<DkgIncoming[]> {
  const got: DkgIncoming[] = [];
  const iterator = channel.incoming[Symbol.asyncIterator]();
  const deadline = Date.now() + ms;
  while (got.length < count && Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      iterator.next(),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), deadline - Date.now());
      }),
    ]);
    clearTimeout(timer);
    if (r === 'timeout' || r.done) break;
    got.push(r.value);
  }
  await iterator.return?.();
  return got;
}

/** Writes if the stream is still open (the far end may already have aborted it). */
function trySend(stream: Stream, data: Parameters<Stream['send']>[0]): void {
  try {
    stream.send(data);
  } catch {
    // Refused before the write: exactly what the test is checking.
  }
}

async function channelsFor(members: Member[], nodes: Libp2p[]): Promise<Libp2pDkgChannel[]> {
  const addresses = new Map(nodes.map((n, k) => [k + 1, n.getMultiaddrs()]));
  return Promise.all(
    members.map((m, k) =>
      createLibp2pDkgChannel({
        libp2p: nodes[k]!,
        committee: members.map((x) => x.nodeKey),
        self: m.index,
        addresses: addressesOf(addresses),
      }),
    ),
  );
}

describe('DKG channel over libp2p', () => {
  it('delivers between members attributed by peer id; refuses non-members and oversized frames', async () => {
    const members = makeCommittee(3, 'chan');
    const nodes = await Promise.all(members.map((m) => startNode(m.seed)));
    const [c1, c2, c3] = await channelsFor(members, nodes);
    try {
      c2!.send(1, utf8('from two'));
      c3!.send(1, utf8('from three'));
      const got = await collect(c1!, 2, 10_000);
      assert.deepEqual(got.map((m) => `${m.fromIndex}:${new TextDecoder().decode(m.bytes)}`).sort(), [
        '2:from two',
        '3:from three',
      ]);

      // A node outside the committee: its stream is aborted, its frame never arrives.
      const outsider = await startNode(sha256(utf8('outsider')));
      const stream = await outsider.dialProtocol(nodes[0]!.getMultiaddrs(), PROTOCOLS.dkg);
      trySend(stream, lp.encode.single(utf8('let me in')));
      // A member that sends a frame longer than the limit: that stream is aborted too.
      const rogue = await nodes[2]!.dialProtocol(nodes[0]!.peerId, PROTOCOLS.dkg);
      trySend(rogue, lp.encode.single(new Uint8Array(MAX_DKG_FRAME + 1)));
      c2!.send(1, utf8('still here'));
      const next = await collect(c1!, 2, 1500);
      assert.deepEqual(
        next.map((m) => `${m.fromIndex}:${new TextDecoder().decode(m.bytes)}`),
        ['2:still here'],
      );
      assert.ok(stream.status !== 'open', `the outsider's stream is ${stream.status}`);
      assert.ok(rogue.status !== 'open', `the oversized stream is ${rogue.status}`);
    } finally {
      await Promise.all([c1!.close(), c2!.close(), c3!.close()]);
    }
  });

  it('keeps dialing a member that is not up yet, and resends after the connection is cut', async () => {
    const members = makeCommittee(2, 'resend');
    const port = await freePort();
    const n1 = await startNode(members[0]!.seed);
    const addr2 = (await import('@multiformats/multiaddr')).multiaddr(`/ip4/127.0.0.1/tcp/${port}`);
    const c1 = await createLibp2pDkgChannel({
      libp2p: n1,
      committee: members.map((m) => m.nodeKey),
      self: 1,
      addresses: new Map([[2, [addr2]]]),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    c1.send(2, utf8('a'));
    c1.send(2, utf8('b'));
    await new Promise((r) => setTimeout(r, 700));
    const failedDials = c1.linkStats().get(2)!.failedDials;
    assert.ok(failedDials >= 2, `dials failed while member 2 was down (${failedDials})`);
    const n2 = await startNode(members[1]!.seed, port);
    const c2 = await createLibp2pDkgChannel({
      libp2p: n2,
      committee: members.map((m) => m.nodeKey),
      self: 2,
    });
    try {
      const first = await collect(c2, 2, 10_000);
      assert.deepEqual(
        first.map((m) => new TextDecoder().decode(m.bytes)),
        ['a', 'b'],
      );
      await n2.hangUp(n1.peerId);
      c1.send(2, utf8('c'));
      // The new stream starts over from the first frame (repeats are harmless), then brings 'c'.
      const rest = await collect(c2, 3, 10_000);
      assert.deepEqual(
        rest.map((m) => new TextDecoder().decode(m.bytes)),
        ['a', 'b', 'c'],
      );
    } finally {
      await Promise.all([c1.close(), c2.close()]);
    }
  });
});

async function runAll(
  members: Member[],
  channels: Promise<Libp2pDkgChannel>[],
  sessionId: string,
): Promise<Map<number, NetworkDkgResult>> {
  const results = new Map<number, NetworkDkgResult>();
  await Promise.all(
    members.map(async (m, k) => {
      const channel = await channels[k]!;
      try {
        results.set(
          m.index,
          await runNetworkDkg({
            chainId: CHAIN_ID,
            self: { index: m.index, nodeKeySeed: m.seed },
            committee: members.map((x) => x.nodeKey),
            threshold: 3,
            sessionId: utf8(sessionId),
            channel,
            ed25519: nodeCryptoEd25519,
            timeouts: { deal: 20_000, ack: 8000, reveal: 8000, confirm: 8000, linger: 3000 },
          }),
        );
      } finally {
        await channel.close();
      }
    }),
  );
  return results;
}

describe('networked DKG over libp2p: 4 members on 127.0.0.1', () => {
  it('all start together: same group key; 3 shares combine into a signature that verifies', async () => {
    const members = makeCommittee(4, 'p2p-together');
    const nodes = await Promise.all(members.map((m) => startNode(m.seed)));
    const t0 = performance.now();
    const results = await runAll(
      members,
      (await channelsFor(members, nodes)).map((c) => Promise.resolve(c)),
      'together',
    );
    const r = checkHonestAgreement(results, [1, 2, 3, 4], [1, 3, 4]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    console.log(`# 4-member DKG over libp2p: ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it('one member starts 1.5 s late (not even listening): the others wait for it and all agree', async () => {
    const members = makeCommittee(4, 'p2p-late');
    const port = await freePort();
    const early = await Promise.all(members.slice(0, 3).map((m) => startNode(m.seed)));
    const { multiaddr } = await import('@multiformats/multiaddr');
    const addresses = new Map<number, Multiaddr[]>(early.map((n, k) => [k + 1, n.getMultiaddrs()]));
    addresses.set(4, [multiaddr(`/ip4/127.0.0.1/tcp/${port}`)]);
    const channel = (node: Libp2p, self: number) =>
      createLibp2pDkgChannel({ libp2p: node, committee: members.map((m) => m.nodeKey), self, addresses });
    const late = (async () => {
      await new Promise((r) => setTimeout(r, 1500));
      return channel(await startNode(members[3]!.seed, port), 4);
    })();
    const t0 = performance.now();
    const results = await runAll(members, [...early.map((n, k) => channel(n, k + 1)), late], 'late');
    const r = checkHonestAgreement(results, [1, 2, 3, 4], [2, 3, 4]);
    assert.deepEqual(r.qualified, [1, 2, 3, 4]);
    assert.ok(performance.now() - t0 >= 1500);
    assert.equal(new Set([...results.values()].map((x) => bytesToHex(x.groupPublicKey))).size, 1);
    console.log(`# 4-member DKG over libp2p, one 1.5 s late: ${(performance.now() - t0).toFixed(0)} ms`);
  });
});

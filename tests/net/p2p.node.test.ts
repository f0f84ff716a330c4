/**
 * node-common/p2p.ts over real sockets on 127.0.0.1: request/response framing and envelopes, the
 * frame limits checked before decoding (with the bad frame counted against the peer), timeouts,
 * the node key as the libp2p identity, and gossip validators mapping typed verdicts.
 */
import { randomBytes } from 'node:crypto';
import * as lp from 'it-length-prefixed';
import { after, assert, describe, it } from '#test';
import { createNode, type PouwNode, peerIdOfNodeKey, readFrame } from '../../node-common/p2p.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { DecodeError, NetError } from '../../shared/errors.ts';
import { BlockRequest, FinalizedBlock, StatusRequest, StatusResponse } from '../../shared/net/messages.ts';
import { MAX_REQUEST_BYTES, PROTOCOLS } from '../../shared/net/protocols.ts';

const nodes: PouwNode[] = [];
async function node(): Promise<{ node: PouwNode; seed: Uint8Array }> {
  const seed = randomBytes(32);
  const n = await createNode({
    nodeKeySeed: seed,
    listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'],
    maxBadFrames: 3,
  });
  nodes.push(n);
  return { node: n, seed };
}

after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

function status(height: bigint): Uint8Array {
  return StatusResponse.encode({
    chainId: new TextEncoder().encode('pouw-test'),
    genesisHash: new Uint8Array(32),
    role: 0,
    tipHeight: height,
    tipHash: new Uint8Array(32).fill(1),
    consensusHeight: height + 1n,
    consensusRound: 0,
    committeeSize: 4,
    threshold: 3,
    groupPublicKey: new Uint8Array(48),
    memberIndex: 0,
  });
}

describe('p2p node (real libp2p on loopback)', () => {
  it('uses the Ed25519 node key as its peer id', async () => {
    const { node: a, seed } = await node();
    const pk = await nobleEd25519.getPublicKey(seed);
    assert.equal(a.peerId.toString(), peerIdOfNodeKey(pk).toString());
  });

  it('answers one request with one enveloped response, over TCP and over WebSockets', async () => {
    const { node: server } = await node();
    const { node: client } = await node();
    await server.serve('status', async (body) => {
      const req = StatusRequest.decode(body);
      assert.equal(new TextDecoder().decode(req.chainId), 'pouw-test');
      return status(7n);
    });
    await server.serve('block', async (body) => {
      const req = BlockRequest.decode(body);
      throw new NetError('NET_NOT_FOUND', `no block at ${req.height}`, 'IGNORE');
    });
    const ws = server.multiaddrs().find((m) => m.toString().includes('/ws'))!;
    const tcpAddr = server.multiaddrs().find((m) => !m.toString().includes('/ws'))!;
    for (const addr of [tcpAddr, ws]) {
      const body = await client.request(
        addr,
        'status',
        StatusRequest.encode({ chainId: new TextEncoder().encode('pouw-test') }),
      );
      assert.equal(StatusResponse.decode(body).tipHeight, 7n);
    }
    await assert.rejects(
      () =>
        client.request(server.peerId, 'block', BlockRequest.encode({ height: 9n, hash: new Uint8Array(0) })),
      { name: 'NetError', code: 'NET_NOT_FOUND' },
    );
    // A request that does not decode comes back `invalid` with the decoder's code, and counts.
    await assert.rejects(() => client.request(server.peerId, 'status', new Uint8Array([1, 2, 3, 4, 5, 6])), {
      code: 'NET_BAD_REQUEST',
    });
    assert.equal(server.peerStats(client.peerId).bad, 1);
    assert.ok(
      server.peerStats(client.peerId).reasons.includes('DECODE_MALFORMED') ||
        server.peerStats(client.peerId).reasons.some((r) => r.startsWith('DECODE_')),
    );
  });

  it('drops an oversized frame before reading it, counts it, and bans past the limit', async () => {
    const { node: server } = await node();
    const { node: client } = await node();
    let handled = 0;
    await server.serve('status', async () => {
      handled++;
      return status(1n);
    });
    await client.libp2p.dial(server.multiaddrs()[0]!);
    for (let i = 0; i < 3; i++) {
      await assert.rejects(() =>
        client.request(server.peerId, 'status', new Uint8Array(MAX_REQUEST_BYTES + 1)),
      );
    }
    assert.equal(handled, 0, 'the handler never saw an oversized request');
    assert.equal(server.peerStats(client.peerId).bad, 3);
    assert.ok(server.isBanned(client.peerId), 'three bad frames ban the peer (maxBadFrames = 3)');
    await assert.rejects(() =>
      client.request(server.multiaddrs()[0]!, 'status', StatusRequest.encode({ chainId: new Uint8Array(0) })),
    );
  });

  it('times out a server that never answers', async () => {
    const { node: server } = await node();
    const { node: client } = await node();
    await server.libp2p.handle(PROTOCOLS.status, () => {
      // Accepts the stream and never writes.
    });
    const started = Date.now();
    await assert.rejects(
      () =>
        client.request(
          server.multiaddrs()[0]!,
          'status',
          StatusRequest.encode({ chainId: new Uint8Array(0) }),
          {
            timeoutMs: 300,
          },
        ),
      { name: 'NetError', code: 'NET_TIMEOUT' },
    );
    assert.ok(Date.now() - started >= 250, 'it waited for the deadline');
  });

  it('reads frames split across chunks and refuses a non-minimal length prefix', async () => {
    const { node: server } = await node();
    const { node: client } = await node();
    const got: Uint8Array[] = [];
    const errors: string[] = [];
    await server.libp2p.handle(PROTOCOLS.history, async (stream) => {
      try {
        got.push(await readFrame(stream, 1024, AbortSignal.timeout(2000)));
      } catch (e) {
        errors.push((e as NetError).code);
      }
      await stream.close();
    });
    await client.libp2p.dial(server.multiaddrs()[0]!);
    const s1 = await client.libp2p.dialProtocol(server.peerId, PROTOCOLS.history);
    const framed = lp.encode.single(new Uint8Array(300).fill(9)).subarray();
    s1.send(framed.subarray(0, 1));
    await new Promise((r) => setTimeout(r, 20));
    s1.send(framed.subarray(1, 100));
    await new Promise((r) => setTimeout(r, 20));
    s1.send(framed.subarray(100));
    await s1.close();
    const s2 = await client.libp2p.dialProtocol(server.peerId, PROTOCOLS.history);
    s2.send(new Uint8Array([0x85, 0x00, 1, 2, 3, 4, 5])); // length 5 written in two bytes
    await s2.close();
    for (let i = 0; i < 50 && got.length + errors.length < 2; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.length, 300);
    assert.deepEqual(errors, ['NET_MALFORMED']);
  });

  it('gossip: a typed REJECT is dropped and counted, IGNORE is dropped without penalty, valid is delivered', async () => {
    const { node: a } = await node();
    const { node: b } = await node();
    const topic = '/pouw/pouw-test/blocks/1';
    const delivered: bigint[] = [];
    b.subscribe(
      topic,
      (data) => {
        if (data[0] === 0xee) throw new NetError('NET_NOT_FOUND', 'not useful now', 'IGNORE');
        return FinalizedBlock.decode(data);
      },
      (v) => delivered.push(v.block.header.height),
    );
    a.subscribe(
      topic,
      (d) => d,
      () => {},
    );
    await a.libp2p.dial(b.multiaddrs()[0]!);
    for (let i = 0; i < 100 && b.pubsub.getSubscribers(topic).length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 100 && a.pubsub.getSubscribers(topic).length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    const good = FinalizedBlock.defaultValue();
    good.block.header.height = 5n;
    await a.publish(topic, new Uint8Array([0xee]));
    await a.publish(topic, new Uint8Array([1, 2, 3]));
    await a.publish(topic, FinalizedBlock.encode(good));
    for (let i = 0; i < 100 && delivered.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(delivered, [5n]);
    const s = b.peerStats(a.peerId);
    assert.equal(s.bad, 1, 'only the undecodable message counts');
    assert.ok(s.reasons[0]!.startsWith('DECODE_'));
    assert.ok(new DecodeError('DECODE_MALFORMED', 'x').verdict === 'REJECT');
  });
});

/**
 * The relay's per-peer limits on a virtual clock (token buckets, strikes, bans, drop counts), the
 * connection gater's IP and peer accounting against stand-in raw connections, and the gossip topic
 * shapes against the builders in shared/net/protocols.ts.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { MultiaddrConnection, PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { assert, describe, it } from '#test';
import { topics } from '../shared/net/protocols.ts';
import { DEFAULT_CONFIG, parseConfig } from './config.ts';
import { isRelayedTopic } from './gossip.ts';
import { type GuardCounters, RelayGuard } from './guard.ts';
import { type DropReason, PeerLimiter, type RateLimits, TokenBucket } from './limits.ts';
import { jsonLogger } from './log.ts';

const LIMITS: RateLimits = {
  streamsPerSecond: 10,
  streamBurst: 20,
  gossipMessagesPerSecond: 5,
  gossipMessageBurst: 10,
  gossipBytesPerSecond: 1000,
  gossipBytesBurst: 4000,
  strikesBeforeDisconnect: 5,
  strikeDecayPerSecond: 1,
  banMs: 10_000,
};

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('token bucket', () => {
  it('allows the burst, then the rate', () => {
    const b = new TokenBucket(5, 2, 0);
    for (let i = 0; i < 5; i++) assert.ok(b.take(0));
    assert.ok(!b.take(0), 'burst spent');
    assert.ok(!b.take(400), '0.8 tokens after 400 ms');
    assert.ok(b.take(500), 'one token after 500 ms');
    assert.ok(b.take(10_000, 5) && !b.take(10_000), 'refills to capacity, never above');
    assert.ok(!b.take(20_000, 6), 'more than the capacity never passes');
  });
});

describe('peer limiter', () => {
  it('a flooding peer empties only its own bucket; strikes lead to a ban that expires', () => {
    const c = clock();
    const l = new PeerLimiter(LIMITS, c.now);
    let admitted = 0;
    let action = 'none';
    for (let i = 0; i < 100 && action === 'none'; i++) {
      const reason = l.admitStream('flooder');
      if (reason === undefined) admitted++;
      else action = l.record('flooder', reason);
    }
    assert.equal(admitted, LIMITS.streamBurst);
    assert.equal(action, 'disconnect', 'five strikes');
    assert.ok(l.isBanned('flooder'));
    assert.equal(l.admitStream('polite'), undefined, 'another peer is unaffected');
    assert.equal(l.strikes('polite'), 0);
    assert.deepEqual(l.dropTotals(), { stream_rate: 5 });
    assert.equal(l.disconnects(), 1);
    c.advance(LIMITS.banMs - 1);
    assert.ok(l.isBanned('flooder'));
    c.advance(1);
    assert.ok(!l.isBanned('flooder'), 'the ban expires');
    assert.equal(l.bannedPeerCount(), 0);
  });

  it('strikes decay, so an occasional drop never disconnects', () => {
    const c = clock();
    const l = new PeerLimiter(LIMITS, c.now);
    for (let i = 0; i < 50; i++) {
      assert.equal(l.record('peer', 'gossip_rate'), 'none');
      c.advance(1500);
    }
    assert.equal(l.limitedPeerCount(), 0, 'all forgiven');
  });

  it('capacity refusals are counted but add no strike', () => {
    const l = new PeerLimiter(LIMITS, clock().now);
    l.admitStream('peer');
    for (let i = 0; i < 20; i++) assert.equal(l.record('peer', 'reservations_total'), 'none');
    assert.equal(l.strikes('peer'), 0);
    assert.equal(l.record(undefined, 'connections_total'), 'none');
    assert.deepEqual(l.dropTotals(), { reservations_total: 20, connections_total: 1 });
  });

  it('gossip: message and byte rates; a refused message spends nothing', () => {
    const c = clock();
    const l = new PeerLimiter(LIMITS, c.now);
    assert.equal(l.admitGossip('p', 3000), undefined);
    assert.equal(l.admitGossip('p', 3000), 'gossip_bytes_rate', '1000 bytes left');
    for (let i = 0; i < 9; i++) assert.equal(l.admitGossip('p', 10), undefined);
    assert.equal(l.admitGossip('p', 10), 'gossip_rate', 'ten messages in the burst');
    c.advance(1000);
    assert.equal(l.admitGossip('p', 1900), undefined, 'bytes and messages refilled');
  });

  it('reports the top offenders, connected and departed, and keeps a bounded history', () => {
    const l = new PeerLimiter(LIMITS, clock().now);
    const reasons: DropReason[] = ['stream_rate', 'gossip_oversized'];
    for (let p = 0; p < 100; p++) {
      l.admitStream(`p${p}`);
      for (let i = 0; i <= p % 3; i++) l.record(`p${p}`, reasons[i % 2]!);
      l.forget(`p${p}`);
    }
    l.admitStream('live');
    l.record('live', 'gossip_rate');
    const top = l.topOffenders(200);
    assert.ok(top.length <= 65, `bounded (${top.length})`);
    assert.equal(top[0]!.total, 3);
    assert.deepEqual(top[0]!.drops, { stream_rate: 2, gossip_oversized: 1 });
    assert.ok(top.some((r) => r.peer === 'live' && r.connected));
    assert.ok(top.some((r) => r.peer === 'p98' && !r.connected));
  });
});

/** A stand-in raw connection: what the gater reads (status, remote address, 'close'). */
function rawConnection(addr: string): MultiaddrConnection & { close(): void } {
  const target = new EventTarget();
  const conn = Object.assign(target, {
    status: 'open',
    remoteAddr: multiaddr(addr),
    close: () => target.dispatchEvent(new Event('close')),
  });
  return conn as unknown as MultiaddrConnection & { close(): void };
}

async function newPeer(): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
}

describe('connection gater', () => {
  function guard() {
    const config = parseConfig({ connections: { max: 3, perIp: 2, perPeer: 1 } });
    const counted: DropReason[] = [];
    const counters: GuardCounters = {
      drop: (r) => counted.push(r),
      disconnect: () => undefined,
      relayedBytes: () => undefined,
      circuitOpened: () => undefined,
    };
    const g = new RelayGuard(
      config,
      new PeerLimiter(config.rateLimits, () => 0),
      counters,
      jsonLogger('error'),
    );
    return { g, gater: g.gater(), counted };
  }

  it('caps connections per IP and in total, and frees a slot when a connection closes', async () => {
    const { g, gater, counted } = guard();
    const a1 = rawConnection('/ip4/10.0.0.1/tcp/1');
    const a2 = rawConnection('/ip4/10.0.0.1/tcp/2');
    assert.equal(await gater.denyInboundConnection!(a1), false);
    assert.equal(await gater.denyInboundConnection!(a2), false);
    assert.equal(await gater.denyInboundConnection!(rawConnection('/ip4/10.0.0.1/tcp/3')), true);
    assert.deepEqual(counted, ['connections_per_ip']);
    assert.equal(await gater.denyInboundConnection!(rawConnection('/ip6/::2/tcp/1')), false);
    assert.equal(await gater.denyInboundConnection!(rawConnection('/ip4/10.0.0.3/tcp/1')), true);
    assert.deepEqual(counted, ['connections_per_ip', 'connections_total']);
    a1.close();
    a1.close();
    assert.equal(g.inboundConnectionCount(), 2, 'a double close releases once');
    assert.equal(await gater.denyInboundConnection!(rawConnection('/ip4/10.0.0.1/tcp/4')), false);
  });

  it('caps connections per peer and refuses banned peers', async () => {
    const { g, gater, counted } = guard();
    const peer = await newPeer();
    const c1 = rawConnection('/ip4/10.0.0.1/tcp/1');
    const c2 = rawConnection('/ip4/10.0.0.2/tcp/1');
    await gater.denyInboundConnection!(c1);
    await gater.denyInboundConnection!(c2);
    assert.equal(await gater.denyInboundEncryptedConnection!(peer, c1), false);
    assert.equal(await gater.denyInboundEncryptedConnection!(peer, c2), true);
    assert.deepEqual(counted, ['connections_per_peer']);
    c1.close();
    assert.equal(await gater.denyInboundEncryptedConnection!(peer, c2), false, 'the first one left');

    const flooder = await newPeer();
    g.limiter.admitStream(flooder.toString());
    for (let i = 0; i < g.limiter.limits.strikesBeforeDisconnect; i++) g.drop(flooder, 'stream_rate');
    const c3 = rawConnection('/ip4/10.0.0.3/tcp/1');
    await gater.denyInboundConnection!(c3);
    assert.equal(await gater.denyInboundEncryptedConnection!(flooder, c3), true);
    assert.equal(counted.at(-1), 'banned');
    assert.equal(
      await gater.denyDialMultiaddr!(multiaddr('/ip4/127.0.0.1/tcp/1')),
      true,
      'the relay never dials',
    );
  });
});

describe('gossip topics the relay follows', () => {
  it('matches the shapes built by shared/net/protocols.ts, and only those', () => {
    const task = new Uint8Array(32).fill(7);
    assert.ok(isRelayedTopic(topics.itres('pouw-devnet-1', task), null));
    assert.ok(isRelayedTopic(topics.blocks('pouw-devnet-1'), null));
    assert.ok(isRelayedTopic(topics.transactions('pouw-devnet-1'), 'pouw-devnet-1'));
    assert.ok(!isRelayedTopic(topics.blocks('pouw-devnet-1'), 'other-chain'), 'another chain');
    assert.ok(
      !isRelayedTopic(topics.consensus('pouw-devnet-1'), null),
      'consensus stays between supervisors',
    );
    assert.ok(!isRelayedTopic(`${topics.blocks('pouw-devnet-1')}/x`, null));
    assert.ok(
      !isRelayedTopic('/pouw/pouw-devnet-1/task/abcd/itres/1', null),
      'a task id of the wrong length',
    );
    assert.equal(DEFAULT_CONFIG.chainId, null);
  });
});

/**
 * The relay's caps with real connections on loopback: with small limits in its config, the
 * connection, reservation and circuit past each limit is refused, the refusal is counted by reason on
 * /health and /metrics, and what was admitted keeps working.
 */
import { rmSync } from 'node:fs';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { after, assert, before, describe, it } from '#test';
import {
  type Client,
  ECHO,
  echo,
  metric,
  type RelayProcess,
  serveEcho,
  spawnRelay,
  startClient,
  tempDir,
  waitFor,
} from './test-support.ts';

const MAX_CONNECTIONS = 4;

describe('relay caps', { timeout: 120_000 }, () => {
  let dir: string;
  let relay: RelayProcess;
  const clients: Client[] = [];

  async function client(options: Parameters<typeof startClient>[0] = {}): Promise<Client> {
    const c = await startClient(options);
    clients.push(c);
    return c;
  }

  async function stopAll(): Promise<void> {
    await Promise.allSettled(clients.splice(0).map((c) => c.stop()));
    await waitFor(async () => (await relay.health()).connections.open === 0, 10_000, 'all clients to leave');
  }

  async function drops(reason: string): Promise<number> {
    return metric(await relay.metrics(), 'pouw_relay_drops_total', { reason });
  }

  before(async () => {
    dir = tempDir('relay-caps');
    relay = await spawnRelay(dir, {
      dataDir: `${dir}/data`,
      listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'],
      http: { host: '127.0.0.1', port: 0 },
      connections: { max: MAX_CONNECTIONS, perPeer: 1, inboundPerSecondPerIp: 1000 },
      relay: { maxReservations: 2, circuitsPerPeer: 1 },
    });
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.stop()));
    relay?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the connection past connections.max, and admits again once one leaves', async () => {
    const admitted: Client[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const c = await client();
      await c.dial(multiaddr(relay.tcpAddr), { signal: AbortSignal.timeout(5_000) });
      admitted.push(c);
    }
    assert.equal((await relay.health()).connections.open, MAX_CONNECTIONS);
    const extra = await client();
    await assert.rejects(() => extra.dial(multiaddr(relay.wsAddr), { signal: AbortSignal.timeout(5_000) }));
    assert.equal(await drops('connections_total'), 1);
    // The admitted ones keep working.
    for (const c of admitted) await c.services.ping.ping(peerIdFromString(relay.peerId));

    await admitted[0]!.stop();
    await waitFor(
      async () => (await relay.health()).connections.inboundAdmitted < MAX_CONNECTIONS,
      5_000,
      'a free slot',
    );
    await extra.dial(multiaddr(relay.wsAddr), { signal: AbortSignal.timeout(5_000) });
    await stopAll();
  });

  it('refuses a second connection from the same peer (connections.perPeer = 1)', async () => {
    const c = await client();
    await c.dial(multiaddr(relay.tcpAddr), { signal: AbortSignal.timeout(5_000) });
    // force: a new connection even though one is open (e.g. a tab opening WebSocket and TCP).
    await c
      .dial(multiaddr(relay.wsAddr), { force: true, signal: AbortSignal.timeout(5_000) })
      .catch(() => undefined);
    await waitFor(
      async () => (await drops('connections_per_peer')) === 1,
      5_000,
      'the refusal to be counted',
    );
    await waitFor(
      () => c.getConnections().filter((x) => x.status === 'open').length === 1,
      5_000,
      'only the first connection to stay',
    );
    const h = await relay.health();
    assert.equal(h.connections.open, 1);
    assert.equal(h.topOffenders.find((o) => o.peer === c.peerId.toString())?.drops.connections_per_peer, 1);
    await stopAll();
  });

  it('refuses reservations past relay.maxReservations and circuits past relay.circuitsPerPeer', async () => {
    const r1 = await client({ reserveOn: relay.tcpAddr });
    const r2 = await client({ reserveOn: relay.tcpAddr });
    const circuitOf = (c: Client) =>
      waitFor(
        () => c.getMultiaddrs().find((m) => m.toString().includes('/p2p-circuit')),
        10_000,
        'a reservation',
      );
    const addr1 = await circuitOf(r1);
    const addr2 = await circuitOf(r2);
    await serveEcho(r1);
    await serveEcho(r2);
    assert.equal((await relay.health()).reservations, 2);

    // The third reservation is refused: the client ends up with no relayed address.
    const r3 = await startClient({ reserveOn: relay.tcpAddr }).then(
      (c) => {
        clients.push(c);
        return c;
      },
      () => undefined,
    );
    await waitFor(async () => (await drops('reservations_total')) >= 1, 10_000, 'the refused reservation');
    assert.ok(!r3?.getMultiaddrs().some((m) => m.toString().includes('/p2p-circuit')));
    assert.equal((await relay.health()).reservations, 2);
    assert.equal(metric(await relay.metrics(), 'pouw_relay_reservations'), 2);
    await r3?.stop();

    // One circuit per peer: b's second circuit is refused, its first keeps working.
    const b = await client();
    const first = await b.dial(addr1, { signal: AbortSignal.timeout(10_000) });
    await assert.rejects(() => b.dial(addr2, { signal: AbortSignal.timeout(10_000) }));
    assert.equal(await drops('circuits_per_peer'), 1);
    const payload = new Uint8Array(200 * 1024).fill(5);
    const back = await echo(await first.newStream(ECHO, { runOnLimitedConnection: true }), payload, 10_000);
    assert.equal(back.byteLength, payload.byteLength);

    // r1 is the destination of one circuit already: a circuit from c to r1 is refused too.
    const c = await client();
    await assert.rejects(() => c.dial(addr1, { signal: AbortSignal.timeout(10_000) }));
    assert.equal(await drops('circuits_destination_full'), 1);
    const h = await relay.health();
    assert.equal(h.circuits, 1);
    assert.equal(h.drops.circuits_per_peer, 1);
    assert.equal(h.drops.circuits_destination_full, 1);
    await stopAll();
  });
});

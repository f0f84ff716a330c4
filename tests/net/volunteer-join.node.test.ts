/**
 * Task membership and the volunteer's libp2p node, with real sockets on 127.0.0.1: the relay as a
 * real process (relay/main.ts), four supervisor libp2p nodes (node-common/p2p.ts) each serving
 * the join protocol (supervisor-node/join.ts), and Node volunteers (web-worker-node/net-libp2p.ts
 * with TCP/WebSockets passed in, WebRTC on loopback). It proves:
 * - two volunteers, one talking only to the task's lead and one only to another member, get the
 *   same miner set signed by the lead; every member learns it; with the lead down the others serve
 *   it; the lead restarted serves the set it wrote and signs nothing new; a tampered set on disk
 *   stops a member from starting;
 * - a third volunteer finds the task full; a join with a forged signature is refused (typed) and
 *   counted against its sender;
 * - the two miners connect to each other over a direct WebRTC connection signalled through the
 *   relay, an IT_RES one publishes reaches the other through gossip, and a forged IT_RES is
 *   dropped with its typed code and counted against the peer that sent it;
 * - the relay killed: the miners' WebRTC link stays up (it never ran through the relay); the relay
 *   restarted on the same addresses: both volunteers reconnect to it (backoff).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { after, assert, describe, it } from '#test';
import { defaultNodeEd25519 } from '../../node-common/ed25519-node.ts';
import { createNode, multiaddr, type PouwNode } from '../../node-common/p2p.ts';
import { type RelayProcess, spawnRelay } from '../../relay/test-support.ts';
import { bytesToHex, equalBytes } from '../../shared/bytes.ts';
import type { Committee } from '../../shared/chain/types.ts';
import * as bls from '../../shared/crypto/bls.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import type { PouwError } from '../../shared/errors.ts';
import {
  checkMinerSet,
  JoinRequest,
  JoinResponse,
  leadIndex,
  minerSetMessage,
  signJoin,
} from '../../shared/net/join.ts';
import { topics } from '../../shared/net/protocols.ts';
import { ItRes, type ItResBody, signItRes } from '../../shared/pouw/itres.ts';
import { taskId as taskIdOf } from '../../shared/pouw/task.ts';
import { type JoinableTask, JoinService } from '../../supervisor-node/join.ts';
import { tinyMnistTask } from '../../web-worker-node/demo.ts';
import { Libp2pVolunteerNetwork } from '../../web-worker-node/net-libp2p.ts';
import { freePort, waitFor } from './cluster.ts';

const CHAIN = 'pouw-join-test';
const dir = mkdtempSync(join(tmpdir(), 'pouw-volunteer-join-'));
let relay: RelayProcess | undefined;
const nodes: PouwNode[] = [];
const services: JoinService[] = [];
const volunteers: Libp2pVolunteerNetwork[] = [];
const seeds = new Map<Libp2pVolunteerNetwork, Uint8Array>();

after(async () => {
  await Promise.allSettled(volunteers.map((v) => v.close()));
  await Promise.allSettled(services.map((s) => s.stop()));
  await Promise.allSettled(nodes.map((n) => n.stop()));
  relay?.kill();
  // node-datachannel (Node's WebRTC) may keep a native handle per peer connection: release them so
  // this process can exit.
  const ndc = await import('node-datachannel');
  ndc.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function seed(i: number): Uint8Array {
  return new Uint8Array(32).fill(0x40 + i);
}

async function volunteer(
  n: number,
  supervisors: string[],
  relayAddr: string,
  committee: Committee,
  taskId: Uint8Array,
): Promise<Libp2pVolunteerNetwork> {
  const secretKey = crypto.getRandomValues(new Uint8Array(32));
  const v = await Libp2pVolunteerNetwork.create({
    chainId: CHAIN,
    committee,
    nodeKey: { secretKey, publicKey: await nobleEd25519.getPublicKey(secretKey) },
    relay: relayAddr,
    supervisors,
    taskId,
    transports: [tcp(), webSockets()],
    rtcConfiguration: { iceServers: [], bindAddress: '127.0.0.1' } as RTCConfiguration,
    allowPrivateDials: true,
    backoff: { initialMs: 200, maxMs: 2000 },
    joinPollMs: 200,
    log: (event, fields) => {
      if (process.env['POUW_TEST_LOG']) console.log(`v${n}`, event, JSON.stringify(fields));
    },
  });
  volunteers.push(v);
  seeds.set(v, secretKey);
  return v;
}

function keyOf(v: Libp2pVolunteerNetwork): Uint8Array {
  return v.libp2p.peerId.publicKey!.raw;
}

describe('task membership and the volunteer libp2p node', { timeout: 90_000 }, () => {
  it('joins through the lead, meets over WebRTC, gossips IT_RES, refuses bad input, survives a relay restart', async () => {
    const ed = await defaultNodeEd25519();
    const relayPorts = [await freePort(), await freePort()];
    const relayConfig = {
      dataDir: join(dir, 'relay'),
      listen: [`/ip4/127.0.0.1/tcp/${relayPorts[0]}`, `/ip4/127.0.0.1/tcp/${relayPorts[1]}/ws`],
      http: { host: '127.0.0.1', port: 0 },
      chainId: CHAIN,
      connections: { inboundPerSecondPerIp: 1000 },
    };
    relay = await spawnRelay(dir, relayConfig);

    // The committee: four node keys (the BLS shares play no part in membership).
    const nodeKeys = await Promise.all([0, 1, 2, 3].map((i) => nobleEd25519.getPublicKey(seed(i))));
    const committee: Committee = {
      groupPublicKey: bls.getPublicKey(new Uint8Array(32).fill(9)),
      threshold: 3,
      members: nodeKeys.map((nodeKey, i) => ({
        nodeKey,
        blsPublicShare: bls.getPublicKey(new Uint8Array(32).fill(10 + i)),
      })),
    };
    const definition = tinyMnistTask(new Uint8Array(32).fill(1));
    const taskId = taskIdOf(CHAIN, definition);
    const task: JoinableTask = {
      taskId,
      definition,
      minerSlots: 2,
      dataset: { url: 'data/mnist-10k.u8.gz', segments: 10, testSegments: [8, 9] },
    };
    const lead = leadIndex(taskId, 4);
    const other = (lead + 1) % 4;

    for (let i = 0; i < 4; i++)
      nodes.push(
        await createNode({
          nodeKeySeed: seed(i),
          listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'],
          heartbeatMs: 200,
        }),
      );
    // Members know each other's addresses (the supervisors' config does this).
    for (const a of nodes)
      for (const b of nodes) if (a !== b) await a.libp2p.dial(b.multiaddrs()).catch(() => {});
    const learned: string[][] = [[], [], [], []];
    const start = (i: number) =>
      JoinService.start({
        node: nodes[i]!,
        chainId: CHAIN,
        committee,
        self: i,
        nodeKeySeed: seed(i),
        ed,
        dir: join(dir, `member-${i}`),
        tasks: () => [task],
        onMinerSet: (_t, miners) => learned[i]!.push(miners.map((k) => bytesToHex(k)).join(',')),
        pollMs: 200,
      });
    for (let i = 0; i < 4; i++) services.push(await start(i));

    const addrOf = (i: number) =>
      nodes[i]!.multiaddrs()
        .find((m) => !m.toString().includes('/ws'))!
        .toString();
    const relayAddr = relay.wsAddr;
    const a = await volunteer(1, [addrOf(lead)], relayAddr, committee, taskId);
    const b = await volunteer(2, [addrOf(other)], relayAddr, committee, taskId);
    const payout = new Uint8Array(20).fill(3);

    // A join with a forged signature is refused and counted against its sender.
    const rogueSeed = new Uint8Array(32).fill(0x77);
    const rogue = await createNode({ nodeKeySeed: rogueSeed, listen: ['/ip4/127.0.0.1/tcp/0'] });
    nodes.push(rogue);
    const forged = await signJoin(
      CHAIN,
      { taskId, minerKey: await nobleEd25519.getPublicKey(rogueSeed), payout },
      rogueSeed,
      nobleEd25519,
    );
    forged.signature[0]! ^= 1;
    const refused = await assert.rejects(
      () =>
        rogue.request(multiaddr(addrOf(other)), 'join', JoinRequest.encode({ taskId, join: forged }), {
          timeoutMs: 5000,
        }),
      { code: 'NET_BAD_REQUEST', verdict: 'REJECT' },
    );
    assert.equal((refused as PouwError).detail['remoteCode'], 'CRYPTO_BAD_SIGNATURE');
    assert.ok(nodes[other]!.peerStats(rogue.peerId).reasons.includes('CRYPTO_BAD_SIGNATURE'));

    const t0 = performance.now();
    const [ja, jb] = await Promise.all([
      a.joinTask({ minerKey: keyOf(a), payout }),
      b.joinTask({ minerKey: keyOf(b), payout }),
    ]);
    const joinMs = performance.now() - t0;
    const expected = [keyOf(a), keyOf(b)].map((k) => bytesToHex(k)).sort();
    assert.deepEqual(
      ja.miners.map((k) => bytesToHex(k)),
      expected,
      'A got both miners, ascending',
    );
    assert.deepEqual(
      jb.miners.map((k) => bytesToHex(k)),
      expected,
      'B got the same set',
    );
    assert.ok(equalBytes(taskIdOf(CHAIN, ja.task), taskId));
    assert.deepEqual(ja.dataset, { url: 'data/mnist-10k.u8.gz', segments: 10, testSegments: [8, 9] });
    // Every member learns the set (the lead signed it; the others adopt its signature).
    await waitFor(() => learned.every((l) => l.length === 1), 10_000, 'every member to learn the set');
    for (const l of learned) assert.deepEqual(l, [expected.join(',')]);
    for (const s of services)
      assert.deepEqual(
        s.miners(taskId)?.map((k) => bytesToHex(k)),
        expected,
      );
    assert.equal(services[lead]!.stats.signed, 1, 'the lead signed once');
    for (const [i, s] of services.entries()) if (i !== lead) assert.equal(s.stats.signed, 0);

    // A third volunteer: the slots are taken.
    const c = await volunteer(3, [addrOf(other)], relayAddr, committee, taskId);
    const full = await assert.rejects(() => c.joinTask({ minerKey: keyOf(c), payout }), {
      code: 'NET_UNAVAILABLE',
    });
    assert.equal((full as PouwError).detail['reason'], 'TASK_FULL');
    await c.close();

    // The lead goes down: the others still serve its signed set.
    await services[lead]!.stop();
    await nodes[lead]!.stop();
    const queried = JoinResponse.decode(
      await rogue.request(multiaddr(addrOf(other)), 'join', JoinRequest.encode({ taskId, join: null }), {
        timeoutMs: 5000,
      }),
    );
    assert.ok(queried.minerSet !== null, 'a non-lead serves the lead’s set');
    await checkMinerSet(CHAIN, nodeKeys, queried.minerSet, nobleEd25519, taskId);
    assert.ok(
      await nobleEd25519.verify(
        nodeKeys[lead]!,
        minerSetMessage(CHAIN, queried.minerSet.body),
        queried.minerSet.signature,
      ),
    );
    // The lead restarts from its disk: it serves the set it wrote and signs nothing new.
    const restarted = await createNode({ nodeKeySeed: seed(lead), listen: ['/ip4/127.0.0.1/tcp/0'] });
    nodes.push(restarted);
    learned[lead] = [];
    const again = await JoinService.start({
      node: restarted,
      chainId: CHAIN,
      committee,
      self: lead,
      nodeKeySeed: seed(lead),
      ed,
      dir: join(dir, `member-${lead}`),
      tasks: () => [task],
      onMinerSet: (_t, miners) => learned[lead]!.push(miners.map((k) => bytesToHex(k)).join(',')),
    });
    services.push(again);
    assert.deepEqual(learned[lead], [expected.join(',')], 'the restarted lead reports the set from disk');
    assert.equal(again.stats.signed, 0, 'and signs nothing');
    // A set on disk that does not verify stops a member from starting (never replaced silently).
    const file = join(dir, `member-${other}`, `miner-set-${bytesToHex(taskId)}.ssz`);
    const tampered = readFileSync(file);
    tampered[tampered.length - 1]! ^= 1;
    mkdirSync(join(dir, 'tampered'));
    writeFileSync(join(dir, 'tampered', `miner-set-${bytesToHex(taskId)}.ssz`), tampered);
    await assert.rejects(
      () =>
        JoinService.start({
          node: rogue,
          chainId: CHAIN,
          committee,
          self: other,
          nodeKeySeed: seed(other),
          ed,
          dir: join(dir, 'tampered'),
          tasks: () => [task],
        }),
      { code: 'NET_BAD_CONFIG' },
    );

    // Miners meet over direct WebRTC (signalled through the relay).
    const linked = (v: Libp2pVolunteerNetwork) =>
      v.minerLinks().length === 1 && v.minerLinks().every((l) => l.webrtc);
    await waitFor(() => linked(a) && linked(b), 20_000, 'a direct WebRTC link between the miners');
    const webrtcMs = Object.values({ ...a.stats.webrtcDialMs, ...b.stats.webrtcDialMs })[0];
    assert.ok(
      a.connections().some((f) => f.peer === b.peerId && f.path === 'webrtc' && !f.limited),
      'the miners are linked directly, not through the relay',
    );

    // IT_RES through gossip: B receives A's; a forged copy is dropped with its code.
    const received: ItRes[] = [];
    b.onItRes((m) => received.push(m));
    const bodyOf = (iteration: number): ItResBody => ({
      ...ItRes.defaultValue().body,
      taskId,
      miner: keyOf(a),
      iteration,
      map: [],
    });
    let iteration = 0;
    const aSeed = seeds.get(a)!;
    await waitFor(
      async () => {
        const msg = await signItRes(CHAIN, bodyOf(iteration++), aSeed, nobleEd25519);
        await a.publishItRes(msg);
        return received.length > 0;
      },
      20_000,
      'B to receive an IT_RES of A',
      300,
    );
    assert.equal(bytesToHex(received[0]!.body.miner), bytesToHex(keyOf(a)));
    const forgedItRes = await signItRes(CHAIN, bodyOf(9999), aSeed, nobleEd25519);
    forgedItRes.signature[5]! ^= 1;
    await a.libp2p.services.pubsub.publish(topics.itres(CHAIN, taskId), ItRes.encode(forgedItRes));
    await waitFor(() => b.stats.itres.rejected > 0, 10_000, 'B to reject the forged IT_RES');
    const reasons = Object.values(b.stats.badInput).flatMap((r) => Object.keys(r));
    assert.ok(reasons.includes('ITRES_BAD_SIGNATURE'), `typed reason recorded: ${reasons.join(',')}`);
    assert.ok(!received.some((m) => m.body.iteration === 9999), 'the forged IT_RES never reached the miner');

    // The relay dies and comes back on the same addresses: both volunteers reconnect.
    relay.kill();
    await relay.exit;
    await waitFor(
      () =>
        !a.connections().some((f) => f.role === 'relay') && !b.connections().some((f) => f.role === 'relay'),
      10_000,
      'the relay connections to drop',
    );
    assert.ok(linked(a) && linked(b), 'the direct WebRTC link outlives the relay');
    relay = await spawnRelay(dir, relayConfig);
    await waitFor(
      () =>
        a.stats.reconnects > 0 && b.stats.reconnects > 0 && a.connections().some((f) => f.role === 'relay'),
      20_000,
      'both volunteers to reconnect to the relay',
    );
    console.log(
      JSON.stringify({
        joinMs: Math.round(joinMs),
        webrtcDialMs: webrtcMs === undefined ? null : Math.round(webrtcMs),
        reconnects: [a.stats.reconnects, b.stats.reconnects],
      }),
    );
  });
});

/**
 * Edge volunteers on the real network, every component a real process or a real node on 127.0.0.1:
 * the relay (relay/main.ts), four supervisors (supervisor-node/main.ts, real verifier) supervising
 * a joinable MNIST task with two miner slots, one edge volunteer started with the CLI
 * (`scripts/worker.ts`, what `npm run worker` runs) and one started in this process
 * (startEdgeVolunteer + Libp2pVolunteerNetwork with Node transports). It proves:
 * - both join through the join protocol (one via a member that is not the task's lead) and get the
 *   same miner set, signed by the lead;
 * - the two connect to each other over a direct WebRTC connection signalled through the relay;
 * - they train on the task and exchange IT_RES through gossip (each applies the other's);
 * - a block one of them mined is verified by replay and finalized, and that volunteer's balance,
 *   checked by its light client against the genesis committee key, rises above zero;
 * - the CLI stops cleanly on SIGTERM (exit 0).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { after, assert, describe, it } from '#test';
import { type RelayProcess, spawnRelay } from '../../relay/test-support.ts';
import { bytesToHex } from '../../shared/bytes.ts';
import { parseGenesis } from '../../shared/chain/genesis.ts';
import { MemoryLightClientStore } from '../../shared/chain/light-client.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { leadIndex } from '../../shared/net/join.ts';
import { type BalanceView, WalletBalance } from '../../web-worker-node/balance.ts';
import { Libp2pVolunteerNetwork } from '../../web-worker-node/net-libp2p.ts';
import type { Volunteer } from '../../web-worker-node/volunteer-client.ts';
import { startEdgeVolunteer } from '../../web-worker-node/volunteer-edge.ts';
import {
  type ClusterMember,
  makeCluster,
  maxOf,
  type SupervisorProcess,
  spawnSupervisor,
  stopSupervisor,
  waitFor,
} from './cluster.ts';
import { writeJoinableMnistTask } from './volunteer-task.ts';

const TIMEOUT = { baseMs: 1000, deltaMs: 500 };
const dir = mkdtempSync(join(tmpdir(), 'pouw-volunteers-'));
const spawned: SupervisorProcess[] = [];
let relay: RelayProcess | undefined;
let cli: ChildProcess | undefined;
let network: Libp2pVolunteerNetwork | undefined;
let volunteer: Volunteer | undefined;

after(async () => {
  await volunteer?.close().catch(() => {});
  await network?.close().catch(() => {});
  // Only what this test spawned, each by its own handle.
  if (cli && cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
  for (const p of spawned)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(spawned.map((p) => p.exit));
  relay?.kill();
  // node-datachannel (Node's WebRTC) can hold a native handle for a peer connection whose remote
  // died first (the CLI here); release them so this process can exit.
  const ndc = await import('node-datachannel');
  ndc.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

interface CliLine {
  t: number;
  event: string;
  [k: string]: unknown;
}

function spawnCli(args: string[]): {
  child: ChildProcess;
  lines: CliLine[];
  stderr: string[];
  exit: Promise<number | null>;
} {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, '..', '..', 'scripts', 'worker.ts'), ...args],
    {
      cwd: join(import.meta.dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: CliLine[] = [];
  const stderr: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      try {
        lines.push(JSON.parse(buf.slice(0, nl)) as CliLine);
      } catch {
        stderr.push(buf.slice(0, nl));
      }
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr.push(c);
    if (stderr.length > 100) stderr.shift();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, stderr, exit };
}

const p2pAddr = (m: ClusterMember) => `${m.tcp}/p2p/${m.peerId}`;

/** Candidates the supervisors refused, by typed code (all members together). */
function refusedByCode(procs: readonly SupervisorProcess[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of procs)
    for (const l of p.logs)
      if (l.event === 'candidate-refused') out[l['code'] as string] = (out[l['code'] as string] ?? 0) + 1;
  return out;
}

describe('edge volunteers on the real network', { timeout: 180_000 }, () => {
  it('join, meet over WebRTC, exchange IT_RES, and one gets a block finalized and its verified balance', async () => {
    const chainId = 'pouw-net-test';
    const task = writeJoinableMnistTask(dir, chainId, 2);
    const cluster = await makeCluster(dir, 4, {
      timeouts: { propose: TIMEOUT, prevote: TIMEOUT, precommit: TIMEOUT },
      gossipMs: 500,
      verifier: 'real',
      tasks: [task.file],
    });
    const genesisFile = join(cluster.devnet.dir, 'genesis.json');
    const genesis = parseGenesis(JSON.parse(readFileSync(genesisFile, 'utf8')));
    relay = await spawnRelay(dir, {
      dataDir: join(dir, 'relay'),
      listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'],
      http: { host: '127.0.0.1', port: 0 },
      chainId,
      connections: { inboundPerSecondPerIp: 1000 },
    });
    const procs = await Promise.all(cluster.members.map((m) => spawnSupervisor(m)));
    spawned.push(...procs);
    const lead = leadIndex(task.taskId, cluster.members.length);
    const notLead = cluster.members[(lead + 1) % cluster.members.length]!;

    // Volunteer 1: the CLI, talking to a member that is not the task's lead.
    const w1 = spawnCli([
      '--relay',
      relay.tcpAddr,
      '--supervisor',
      p2pAddr(notLead),
      '--genesis',
      genesisFile,
      '--data-dir',
      join(dir, 'worker-1'),
      '--backend',
      'wasm',
      '--webrtc-bind',
      '127.0.0.1',
    ]);
    cli = w1.child;

    // Volunteer 2: in this process, talking to every member.
    const secretKey = crypto.getRandomValues(new Uint8Array(32));
    const publicKey = await nobleEd25519.getPublicKey(secretKey);
    const payout = new Uint8Array(20).fill(0x22);
    network = await Libp2pVolunteerNetwork.create({
      chainId,
      committee: genesis.committee,
      nodeKey: { secretKey, publicKey },
      relay: relay.wsAddr,
      supervisors: cluster.members.map(p2pAddr),
      transports: [tcp(), webSockets()],
      rtcConfiguration: { iceServers: [], bindAddress: '127.0.0.1' } as RTCConfiguration,
      allowPrivateDials: true,
    });
    const joinStarted = performance.now();
    volunteer = await startEdgeVolunteer({
      network: network.view(),
      identity: { secretKey, publicKey },
      payout,
      backend: { force: 'wasm' },
      heldOut: { every: 0, examples: 0 },
    });
    const launchMs = performance.now() - joinStarted;
    const joined = await waitFor(
      () => w1.lines.find((l) => l.event === 'joined'),
      60_000,
      `the CLI volunteer to join (${JSON.stringify(w1.lines.slice(-3))} ${w1.stderr.join('').slice(-500)})`,
    );
    const cliKey = w1.lines.find((l) => l.event === 'started')!['nodeKey'] as string;
    const ownTask = volunteer.report!.taskId;
    assert.equal(ownTask, bytesToHex(task.taskId));
    assert.equal(joined['task'], bytesToHex(task.taskId), 'both joined the same task');
    assert.deepEqual(
      procs[lead]!.logs.filter((l) => l.event === 'miner-set').map((l) =>
        (l['miners'] as string[]).join(','),
      ),
      [[cliKey, bytesToHex(publicKey)].sort().join(',')],
      'the lead signed one set with both miners',
    );

    // A direct WebRTC link between the two volunteers.
    await waitFor(
      () => network!.minerLinks().some((l) => l.webrtc),
      30_000,
      `a WebRTC link to the CLI volunteer (${JSON.stringify(network!.connections())})`,
    );
    const webrtcMs = Object.values(network.stats.webrtcDialMs)[0];

    // IT_RES both ways, through gossip.
    await waitFor(
      async () => (await volunteer!.status()).itres.received > 0,
      60_000,
      'an IT_RES from the CLI volunteer',
    );
    await waitFor(
      () => w1.lines.some((l) => l.event === 'iteration' && (l['itresReceived'] as number) > 0),
      60_000,
      'the CLI volunteer to apply an IT_RES of ours',
    );

    // A block is finalized; its miner's verified balance rises.
    await waitFor(
      () => procs.every((p) => maxOf(p.decided()) >= 1n),
      90_000,
      'every supervisor to finalize height 1',
    );
    const wallet = new WalletBalance(
      network.view(),
      { chainId, groupPublicKey: genesis.committee.groupPublicKey },
      new MemoryLightClientStore(),
      payout,
    );
    let ours: BalanceView | undefined;
    const rose = await waitFor(
      async () => {
        const cliBalance = w1.lines.find(
          (l) => l.event === 'balance' && l['status'] === 'verified' && BigInt(l['spendable'] as string) > 0n,
        );
        if (cliBalance) return { who: 'cli', height: BigInt(cliBalance['height'] as string) };
        ours = await wallet.sync();
        if (ours.status === 'verified' && ours.spendable > 0n)
          return { who: 'in-process', height: ours.height };
        return undefined;
      },
      60_000,
      'a volunteer’s verified balance to rise',
      1000,
    );
    assert.ok(rose.height >= 1n);

    // The CLI stops cleanly.
    w1.child.kill('SIGTERM');
    assert.equal(await w1.exit, 0, 'the CLI exits 0 on SIGTERM');
    assert.ok(w1.lines.some((l) => l.event === 'stopped'));

    console.log(
      JSON.stringify({
        launchToTrainingMs: Math.round(launchMs),
        joinMs: network.stats.joinMs === undefined ? null : Math.round(network.stats.joinMs),
        cliJoinMs: joined['joinMs'],
        webrtcDialMs: webrtcMs === undefined ? null : Math.round(webrtcMs),
        balanceRoseFor: rose.who,
        finalizedHeight: String(rose.height),
        candidatesRefused: refusedByCode(procs),
      }),
    );
    await Promise.all(procs.map((p) => stopSupervisor(p)));
  });
});

/**
 * Real processes (issue #5): the committee's BLS key comes from the Joint-Feldman DKG run by four
 * processes over libp2p (supervisor-node/dkg, via scripts/devnet.ts in network mode); then four
 * `supervisor-node/main.ts` processes over libp2p on 127.0.0.1
 * (TCP, Noise, Yamux, gossipsub) finalize blocks from a miner loop; one of them is SIGKILLed in the
 * middle of a height, right after a write-ahead-log append, while the other three go on; it is
 * restarted from its LevelDB log and chain store, catches up over the consensus protocol and keeps
 * finalizing. At the end every supervisor's chain store holds the same block hash at every height,
 * every certificate verifies against the genesis group key with plain BLS, and no member ever
 * signed two different messages for one (height, round, kind), across the restart included.
 *
 * The miner is the header miner of tests/net/cluster.ts with the fast verifier (header and PoW
 * checks plus full ledger validation): this test is about consensus, the network and durability;
 * the useful-work replay is tested with real processes in tests/net/real-verifier.node.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { createNode, type PouwNode } from '../../node-common/p2p.ts';
import { hexToBytes } from '../../shared/bytes.ts';
import { verifyCertificate } from '../../shared/chain/certificate.ts';
import * as bls from '../../shared/crypto/bls.ts';
import {
  blockOf,
  type Cluster,
  clusterState,
  dumpLogs,
  HeaderMiner,
  makeCluster,
  maxOf,
  minOf,
  readChain,
  type SupervisorProcess,
  spawnSupervisor,
  statusOf,
  stopSupervisor,
  waitFor,
} from './cluster.ts';

const TIMEOUT = { baseMs: 1000, deltaMs: 500 };
const spawned: SupervisorProcess[] = [];
let miner: HeaderMiner | undefined;
let client: PouwNode | undefined;
let dir: string | undefined;

after(async () => {
  dumpLogs('supervisors', spawned);
  await miner?.stop().catch(() => {});
  await client?.stop().catch(() => {});
  // Only the PIDs this test spawned, each by its own handle.
  for (const p of spawned)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(spawned.map((p) => p.exit));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function maxDecided(p: SupervisorProcess): bigint {
  return maxOf(p.decided());
}

/** (height/round/kind) → values signed, over every incarnation's logs. */
function doubleSigns(procs: readonly SupervisorProcess[]): string[] {
  const out: string[] = [];
  const byMember = new Map<number, Map<string, string>>();
  for (const p of procs) {
    let seen = byMember.get(p.member.index);
    if (!seen) {
      seen = new Map();
      byMember.set(p.member.index, seen);
    }
    for (const l of p.logs) {
      if (l.event !== 'signed') continue;
      const key = `${l['height']}/${l['round']}/${l['kind']}`;
      const prev = seen.get(key);
      if (prev !== undefined && prev !== l['value'])
        out.push(`member ${p.member.index} signed two ${l['kind']}s at ${l['height']}/${l['round']}`);
      seen.set(key, l['value'] as string);
    }
  }
  return out;
}

describe('four supervisor processes over libp2p', () => {
  it('finalize identical chains through a SIGKILL and restart of one member', {
    timeout: 170_000,
  }, async () => {
    dir = mkdtempSync(join(tmpdir(), 'pouw-supervisors-'));
    const cluster: Cluster = await makeCluster(dir, 4, {
      timeouts: { propose: TIMEOUT, prevote: TIMEOUT, precommit: TIMEOUT },
      gossipMs: 500,
      verifier: 'fast',
      dkg: 'network',
    });
    assert.ok(cluster.devnet.network, 'the committee key came from a DKG run by 4 processes over libp2p');
    const chainId = cluster.devnet.genesis.chainId;
    const procs = await Promise.all(cluster.members.map((m) => spawnSupervisor(m)));
    spawned.push(...procs);
    miner = await HeaderMiner.start(cluster);

    await waitFor(
      () => procs.every((p) => maxDecided(p) >= 2n),
      40_000,
      () => `every member deciding height 2\n${clusterState(procs)}`,
    );

    // SIGKILL member 3 right after a log append for a height it has not decided: mid-height.
    const victim = procs[3]!;
    const logsBefore = victim.logs.length;
    // The first vote it logs from now on for a height it has not decided yet.
    const trigger = await waitFor(
      () =>
        victim.logs
          .slice(logsBefore)
          .find(
            (l) =>
              l.event === 'wal' &&
              (l['records'] as string[]).some((r) => r.startsWith('vote')) &&
              BigInt(l['height'] as string) > maxDecided(victim),
          ),
      20_000,
      'member 3 logging a vote for an undecided height',
      1,
    );
    const killHeight = BigInt(trigger['height'] as string);
    victim.child.kill('SIGKILL');
    const killed = await victim.exit;
    assert.equal(killed.signal, 'SIGKILL', 'the fault fired: member 3 died by SIGKILL');
    // (Whether it died before or just after its decision record, the restart below must use the log.)

    // Three of four are a quorum: they keep finalizing without it.
    const others = procs.slice(0, 3);
    await waitFor(
      () => others.every((p) => maxDecided(p) >= killHeight + 2n),
      40_000,
      () => `members 0-2 deciding height ${killHeight + 2n} without member 3\n${clusterState(others)}`,
    );

    // Restart from the same data directory: it resumes from its log and catches up.
    const restarted = await spawnSupervisor(cluster.members[3]!);
    spawned.push(restarted);
    const start = restarted.logs.find((l) => l.event === 'consensus-start')!;
    assert.ok(start, 'the restarted member logged where it resumed');
    // It resumed from what the log held for the height it died in: its own messages, or a
    // decision the block store had not received yet.
    assert.ok(
      (start['recovered'] as number) > 0 || restarted.logs.some((l) => l.event === 'reapply-decision'),
      `the restart used the write-ahead log (${JSON.stringify(start)})`,
    );
    const target = maxDecided(procs[0]!) + 2n;
    await waitFor(
      () => [...others, restarted].every((p) => maxDecided(p) >= target),
      60_000,
      () => `all four deciding height ${target} after the restart\n${clusterState([...others, restarted])}`,
    );
    assert.ok(
      restarted.logs.some((l) => l.event === 'catchup' || l.event === 'decided'),
      'the restarted member caught up',
    );

    // Finalized blocks and certificates are served over the block protocol too.
    client = await createNode({ nodeKeySeed: new Uint8Array(32).fill(9), listen: ['/ip4/127.0.0.1/tcp/0'] });
    const status = await statusOf(client, cluster.members[3]!);
    assert.ok(status.tipHeight >= target, 'status reports the restarted member at the tip');
    const served = await blockOf(client, cluster.members[3]!, killHeight);
    assert.ok(served.certificate, 'the block protocol serves the certificate with the block');

    await miner.stop();
    miner = undefined;
    for (const p of [...others, restarted]) {
      const r = await stopSupervisor(p, 'SIGTERM');
      assert.equal(r.code, 0, `member ${p.member.index} shut down cleanly on SIGTERM`);
    }

    assert.deepEqual(
      doubleSigns([...procs, restarted]),
      [],
      'no member signed two values at one height/round',
    );

    const groupPublicKey = cluster.devnet.genesis.committee.groupPublicKey;
    assert.ok(hexToBytes(cluster.devnet.supervisors[0]!.groupPublicKey).length === 48);
    const chains = await Promise.all(cluster.members.map((m) => readChain(m, chainId)));
    const common = minOf(chains.map((c) => c.tip));
    assert.ok(common >= target, `every store holds height ${target} (lowest tip ${common})`);
    for (let h = 0; h <= Number(common); h++) {
      const hashes = new Set(chains.map((c) => c.hashes[h]));
      assert.equal(hashes.size, 1, `one block at height ${h} across the four stores`);
    }
    for (const [i, c] of chains.entries()) {
      for (const [k, cert] of c.certificates.entries()) {
        const h = BigInt(k + 1);
        verifyCertificate(cert, {
          chainId,
          height: h,
          blockHash: hexToBytes(c.hashes[k + 1]!),
          groupPublicKey,
          blsVerify: bls.verify,
        });
        assert.equal(cert.height, h, `member ${i} certificate ${h}`);
      }
    }
  });
});

/**
 * Real processes with the real verifier: four supervisor processes supervise the smallest task,
 * record its IT_RES from gossip into their message histories, replay every candidate's lucky
 * iteration (shared/pouw/verify.ts) before proposing or prevoting it, and finalize blocks mined by
 * an honest PoUW miner (tests/net/real-miner.ts). The decided values carry the history: the
 * templates' hashMsgHist moves from the empty root to the decided one, and every member holds the
 * same history root. A candidate whose lucky IT_RES was altered is refused over the candidate
 * protocol with the verifier's typed code. Chains are identical and certificates verify.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { createNode, type PouwNode } from '../../node-common/p2p.ts';
import { bytesToHex, equalBytes, hexToBytes } from '../../shared/bytes.ts';
import { verifyCertificate } from '../../shared/chain/certificate.ts';
import { merkleRoot } from '../../shared/chain/ids.ts';
import * as bls from '../../shared/crypto/bls.ts';
import type { NetError } from '../../shared/errors.ts';
import { CandidateRequest, HistoryRequest, HistoryResponse } from '../../shared/net/messages.ts';
import type { BlockCandidate as BlockCandidateValue } from '../../shared/pouw/candidate.ts';
import {
  addrOf,
  clusterState,
  dumpLogs,
  makeCluster,
  maxOf,
  minOf,
  readChain,
  type SupervisorProcess,
  sleep,
  spawnSupervisor,
  stopSupervisor,
  waitFor,
} from './cluster.ts';
import { RealMiner, writeTinyTask } from './real-miner.ts';

const TIMEOUT = { baseMs: 1000, deltaMs: 500 };
const spawned: SupervisorProcess[] = [];
let miner: RealMiner | undefined;
let client: PouwNode | undefined;
let dir: string | undefined;

after(async () => {
  dumpLogs('real-verifier', spawned);
  await miner?.stop().catch(() => {});
  await client?.stop().catch(() => {});
  for (const p of spawned)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(spawned.map((p) => p.exit));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const maxDecided = (p: SupervisorProcess) => maxOf(p.decided());

describe('four supervisor processes with the real verifier', () => {
  it('finalize blocks of an honest PoUW miner and refuse a forged candidate', {
    timeout: 150_000,
  }, async () => {
    dir = mkdtempSync(join(tmpdir(), 'pouw-real-verifier-'));
    const chainId = 'pouw-net-test';
    const task = writeTinyTask(dir, chainId);
    const cluster = await makeCluster(dir, 4, {
      timeouts: { propose: TIMEOUT, prevote: TIMEOUT, precommit: TIMEOUT },
      gossipMs: 500,
      verifier: 'real',
      tasks: [task.file],
    });
    const procs = await Promise.all(cluster.members.map((m) => spawnSupervisor(m)));
    spawned.push(...procs);
    miner = await RealMiner.start(cluster, task);
    await waitFor(
      () => procs.every((p) => maxDecided(p) >= 4n),
      90_000,
      () => `every member deciding height 4\n${clusterState(procs)}`,
    );

    // Hold the miner's candidates so the next height stays open, take a real one for it, and send
    // a forged copy (its lucky IT_RES claims another loss): the verifier refuses it. The genuine
    // one is then accepted and the chain goes on.
    miner.holdCandidates = true;
    client = await createNode({ nodeKeySeed: new Uint8Array(32).fill(8), listen: ['/ip4/127.0.0.1/tcp/0'] });
    // A candidate already on its way may still decide one more height: wait for the tip to rest,
    // take the held candidate for the next height, and send its forged copy. If the chain moved
    // meanwhile anyway, the copy is refused for its height (BLOCK_BAD_HEIGHT, before any replay):
    // then rest and try again with a fresh candidate, a bounded number of times.
    let tip = 0n;
    let real: BlockCandidateValue | undefined;
    let refused: NetError | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      tip = maxOf(procs.map(maxDecided));
      await waitFor(
        async () => {
          await sleep(2000);
          const now = maxOf(procs.map(maxDecided));
          const rested = now === tip;
          tip = now;
          return rested;
        },
        30_000,
        'the tip to stop moving',
      );
      const next = tip + 1n;
      real = await waitFor(
        () => (miner!.held && miner!.held.block.header.height === next ? miner!.held : undefined),
        30_000,
        `a held candidate for height ${next}`,
      );
      const lucky = { ...real.lucky, body: { ...real.lucky.body, loss: real.lucky.body.loss ^ 1 } };
      const forged = { ...real, lucky, segment: [...real.segment.slice(0, -1), lucky] };
      refused = await client
        .request(
          addrOf(cluster.members[1]!),
          'candidate',
          CandidateRequest.encode({ candidate: forged, blockHash: new Uint8Array(0) }),
          { timeoutMs: 10_000 },
        )
        .then(
          () => undefined,
          (e: unknown) => e as NetError,
        );
      if (refused?.detail['remoteCode'] !== 'BLOCK_BAD_HEIGHT') break;
    }
    assert.ok(refused, 'the forged candidate is refused');
    assert.equal(refused.code, 'NET_BAD_REQUEST', refused.message);
    const remote = String(refused.detail['remoteCode']);
    assert.ok(
      remote.startsWith('VERIFY_') || remote.startsWith('ITRES_'),
      `refused by the verifier: ${remote}`,
    );
    await client.request(
      addrOf(cluster.members[1]!),
      'candidate',
      CandidateRequest.encode({ candidate: real!, blockHash: new Uint8Array(0) }),
      { timeoutMs: 10_000 },
    );
    miner.holdCandidates = false;
    await waitFor(
      () => procs.every((p) => maxDecided(p) >= tip + 2n),
      60_000,
      () => `height ${tip + 2n}\n${clusterState(procs)}`,
    );

    // Every member recorded the task's history and agrees on its decided part.
    const roots = new Set<string>();
    for (const m of cluster.members) {
      const body = await client.request(
        addrOf(m),
        'history',
        HistoryRequest.encode({
          ids: [],
          fromIndex: 0n,
          count: 16,
          miner: new Uint8Array(0),
          fromIteration: 0,
        }),
        { timeoutMs: 5000 },
      );
      const h = HistoryResponse.decode(body);
      assert.ok(h.total > 0n, `member ${m.index} recorded IT_RES`);
      roots.add(bytesToHex(h.ids[0] ?? new Uint8Array(0)));
    }
    assert.equal(roots.size, 1, 'the first decided id is the same everywhere');

    await miner.stop();
    miner = undefined;
    for (const p of procs) assert.equal((await stopSupervisor(p)).code, 0);

    const chains = await Promise.all(cluster.members.map((m) => readChain(m, chainId)));
    const common = minOf(chains.map((c) => c.tip));
    assert.ok(common >= 4n);
    const empty = merkleRoot(chainId, []);
    for (let h = 1; h <= Number(common); h++) {
      assert.equal(new Set(chains.map((c) => c.hashes[h])).size, 1, `one block at height ${h}`);
      const header = chains[0]!.blocks[h]!.header;
      assert.ok(equalBytes(header.taskId, task.taskId), `block ${h} names the task`);
      const cert = chains[0]!.certificates[h - 1]!;
      verifyCertificate(cert, {
        chainId,
        height: BigInt(h),
        blockHash: hexToBytes(chains[0]!.hashes[h]!),
        groupPublicKey: cluster.devnet.genesis.committee.groupPublicKey,
        blsVerify: bls.verify,
      });
      if (h === 1) assert.ok(equalBytes(header.hashMsgHist, empty), 'block 1 builds on the empty history');
    }
    const last = chains[0]!.blocks[Number(common)]!.header;
    assert.ok(!equalBytes(last.hashMsgHist, empty), 'later templates carry the decided history root');
    assert.ok(
      chains[0]!.certificates.some((c) => !equalBytes(c.historyRoot, empty)),
      'certificates sign non-empty history roots',
    );
  });
});

/**
 * The network devnet: 4 real `cli.ts` processes run the DKG over libp2p on 127.0.0.1, each derives
 * the genesis from the shared template and its result, and the files agree byte for byte
 * (ensureDevnet checks that and installs genesis.json). Bounded by ensureDevnet's timeout; it kills
 * only the children it spawned.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { assert, describe, it } from '#test';
import { ensureDevnet, shareOf } from '../../scripts/devnet.ts';
import { bytesToHex, hexToBytes, utf8 } from '../../shared/bytes.ts';
import * as bls from '../../shared/crypto/bls.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { combine, partialSign } from '../../shared/crypto/threshold-bls.ts';
import { parseDkgCliConfig } from './cli.ts';

const run = promisify(execFile);
const cli = join(import.meta.dirname, 'cli.ts');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('DKG processes (network devnet)', () => {
  it('4 processes agree: one genesis, each share matches it, 3 shares sign under the group key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pouw-dkg-net-'));
    try {
      const devnet = await ensureDevnet(dir, 4, 'pouw-dkg-net', { dkg: 'network', timeoutMs: 90_000 });
      const report = devnet.network;
      assert.ok(report !== undefined, 'the DKG ran over the network');
      assert.equal(new Set(report.pids).size, 4, 'four distinct processes');
      assert.ok(!report.pids.includes(process.pid));
      for (const pid of report.pids) assert.ok(!alive(pid), `process ${pid} has exited`);
      assert.ok(!existsSync(join(dir, 'dkg')), 'working files are removed after success');
      console.log(`# 4-process network DKG: ${report.elapsedMs} ms (process start included)`);

      const { genesis } = devnet;
      assert.equal(genesis.committee.members.length, 4);
      assert.equal(genesis.committee.threshold, 3);
      for (const k of devnet.supervisors) {
        const member = genesis.committee.members[k.index - 1]!;
        assert.equal(
          bytesToHex(member.nodeKey),
          bytesToHex(await nobleEd25519.getPublicKey(hexToBytes(k.nodeKeySeed))),
        );
        assert.equal(bytesToHex(bls.getPublicKey(shareOf(k).secretKey)), bytesToHex(member.blsPublicShare));
        assert.equal(k.groupPublicKey, bytesToHex(genesis.committee.groupPublicKey));
        assert.equal(statSync(join(dir, 'supervisors', `supervisor-${k.index}.json`)).mode & 0o077, 0);
      }
      const message = utf8('finality over the network-made key');
      const signature = combine(
        devnet.supervisors.slice(1).map((k) => partialSign(shareOf(k), message)),
        3,
        { publicShares: genesis.committee.members.map((m) => m.blsPublicShare), message },
      );
      assert.ok(bls.verify(genesis.committee.groupPublicKey, message, signature));

      // Idempotent: the existing devnet comes back unchanged, no DKG runs.
      const again = await ensureDevnet(dir, 4, 'pouw-dkg-net', { dkg: 'network' });
      assert.equal(again.network, undefined);
      assert.equal(
        bytesToHex(again.genesis.committee.groupPublicKey),
        bytesToHex(genesis.committee.groupPublicKey),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a process with a bad config exits 1 with the typed error on stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pouw-dkg-bad-'));
    try {
      const path = join(dir, 'config.json');
      writeFileSync(path, JSON.stringify({ chainId: 'pouw-x', index: 9 }));
      const failure = await run(process.execPath, ['--import', 'tsx', cli, '--config', path], {
        timeout: 60_000,
      }).then(
        () => null,
        (e: { code?: number; stderr?: string }) => e,
      );
      assert.ok(failure !== null, 'the process failed');
      assert.equal(failure.code, 1);
      assert.ok(failure.stderr?.includes('"code":"DKG_BAD_PARAMETERS"'), failure.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('config validation names the field', () => {
    const good = {
      chainId: 'pouw-x',
      index: 1,
      nodeKeySeed: '11'.repeat(32),
      committee: [{ nodeKey: '22'.repeat(32), addrs: ['/ip4/127.0.0.1/tcp/1'] }],
      threshold: 1,
      sessionId: 's',
      listen: ['/ip4/127.0.0.1/tcp/1'],
      resultPath: '/tmp/r.json',
    };
    assert.equal(parseDkgCliConfig(good).index, 1);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, index: 2 }, /index/],
      [{ ...good, threshold: 0 }, /threshold/],
      [{ ...good, nodeKeySeed: 'AB' }, /nodeKeySeed/],
      [{ ...good, committee: [{ nodeKey: '22'.repeat(32) }] }, /committee\[0\]\.addrs/],
      [{ ...good, extra: 1 }, /unknown field extra/],
      [{ ...good, timeouts: { deal: -1 } }, /timeouts\.deal/],
      [{ ...good, genesisTemplate: {} }, /go together/],
    ];
    for (const [config, message] of cases) {
      assert.throws(() => parseDkgCliConfig(config), { code: 'DKG_BAD_PARAMETERS', message });
    }
  });
});

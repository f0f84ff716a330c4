/**
 * The supervisor's config file (supervisor-node/config.ts): a valid file parses with defaults and
 * resolved paths; every bad field is refused with NET_BAD_CONFIG naming it; and the process entry
 * point exits 1 with that code and field on its JSON log instead of starting.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { parseConfig } from '../../supervisor-node/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'pouw-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const good = {
  dataDir: 'data',
  chainId: 'pouw-devnet',
  genesisFile: 'genesis.json',
  keyFile: 'supervisors/supervisor-1.json',
  listen: ['/ip4/127.0.0.1/tcp/9101', '/ip4/127.0.0.1/tcp/9201/ws'],
  peers: [
    { peerId: '12D3KooWRxXX5Te5j6Qgh7nActFx7J8pXnXaGZ418pt4D7fHwnUD', addrs: ['/ip4/127.0.0.1/tcp/9102'] },
  ],
  timeouts: { propose: { baseMs: 2000, deltaMs: 250 } },
  verifier: 'fast',
};

describe('supervisor config', () => {
  it('parses a valid file, fills defaults and resolves paths against the file', () => {
    const c = parseConfig(good, '/etc/pouw');
    assert.equal(c.dataDir, '/etc/pouw/data');
    assert.equal(c.keyFile, '/etc/pouw/supervisors/supervisor-1.json');
    assert.equal(c.timeouts.propose.baseMs, 2000);
    assert.equal(c.timeouts.prevote.baseMs, 1000, 'unset steps keep the defaults');
    assert.equal(c.gossipMs, 1000);
    assert.equal(c.verifier, 'fast');
    assert.deepEqual(c.tasks, []);
    assert.equal(parseConfig({ ...good, verifier: undefined }, '/x').verifier, 'real');
  });

  it('names the bad field', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...good, chainId: 'Bad Chain!' }, 'chainId'],
      [{ ...good, listen: [] }, 'listen'],
      [{ ...good, listen: ['not-a-multiaddr'] }, 'listen[0]'],
      [{ ...good, peers: [{ peerId: 'xyz', addrs: [] }] }, 'peers[0].peerId'],
      [{ ...good, peers: [{ ...good.peers[0], addrs: ['/nope'] }] }, 'peers[0].addrs[0]'],
      [{ ...good, timeouts: { propose: { baseMs: 0, deltaMs: 1 } } }, 'timeouts.propose.baseMs'],
      [{ ...good, timeouts: { commit: {} } }, 'timeouts.commit'],
      [{ ...good, gossipMs: 1.5 }, 'gossipMs'],
      [{ ...good, verifier: 'slow' }, 'verifier'],
      [{ ...good, dataDir: '' }, 'dataDir'],
      [{ ...good, extra: true }, 'extra'],
      [{ ...good, tasks: 'task.json' }, 'tasks'],
    ];
    for (const [json, field] of cases) {
      const e = assert.throws(() => parseConfig(json, '/x'), { name: 'NetError', code: 'NET_BAD_CONFIG' });
      assert.equal((e as unknown as { detail: { field: string } }).detail.field, field, e.message);
    }
  });

  it('the process refuses to start on a bad config and says which field', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ ...good, gossipMs: -5 }));
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, '..', '..', 'supervisor-node', 'main.ts'),
        '--config',
        file,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 1);
    const line = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(line['event'], 'start-failed');
    assert.equal(line['code'], 'NET_BAD_CONFIG');
    assert.equal(line['field'], 'gossipMs');
  });
});

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { assert, describe, it } from '#test';
import { parseGenesis } from '../shared/chain/genesis.ts';

const run = promisify(execFile);
const script = join(import.meta.dirname, 'start.ts');

describe('npm start (real process, fresh data directory)', () => {
  it('creates the devnet, loads the chain, passes the committee check, and reuses it on restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pouw-start-'));
    try {
      const first = await run(process.execPath, ['--import', 'tsx', script, '--data-dir', dir], {
        timeout: 120_000,
      });
      assert.ok(first.stdout.includes('threshold signature    : ok'), first.stdout);
      const genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')));
      assert.equal(genesis.committee.members.length, 4);
      assert.equal(genesis.committee.threshold, 3);
      assert.equal(
        statSync(join(dir, 'supervisors', 'supervisor-1.json')).mode & 0o077,
        0,
        'secret shares are private',
      );
      const tipLine = (out: string) => out.split('\n').find((l) => l.includes('finalized tip'));
      const second = await run(process.execPath, ['--import', 'tsx', script, '--data-dir', dir], {
        timeout: 120_000,
      });
      assert.equal(tipLine(second.stdout), tipLine(first.stdout), 'the same chain comes back');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

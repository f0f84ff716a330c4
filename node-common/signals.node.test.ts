/**
 * SignalGate with real processes: a SIGTERM sent while the child is still starting is held and
 * handled once it is ready (exit 0, its stop ran); without the gate the same signal kills it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { assert, describe, it } from '#test';

const child = join(import.meta.dirname, '..', 'tests', 'harness', 'signal-child.ts');

async function signalDuringStartup(args: string[]) {
  const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout!.setEncoding('utf8');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    p.once('exit', (code, signal) => r({ code, signal })),
  );
  p.stdout!.on('data', (chunk: string) => {
    const first = out === '';
    out += chunk;
    if (first && out.startsWith('listening')) p.kill('SIGTERM');
  });
  const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
  const r = await exited;
  clearTimeout(timer);
  return { ...r, out };
}

describe('signals during start-up', () => {
  it('are held by the gate and handled once the process is ready; without it they kill', async () => {
    const gated = await signalDuringStartup([]);
    assert.deepEqual({ code: gated.code, signal: gated.signal }, { code: 0, signal: null }, gated.out);
    assert.ok(gated.out.includes('stopping SIGTERM'), gated.out);
    const bare = await signalDuringStartup(['--no-gate']);
    assert.equal(bare.signal, 'SIGTERM', 'the control dies by the signal');
    assert.ok(!bare.out.includes('stopping'));
  });
});

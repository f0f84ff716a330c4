/**
 * Process entry point: `npm run supervisor -- --config path/to/supervisor.json`.
 * Logs JSON lines on stdout; SIGINT/SIGTERM stop libp2p, the driver and the LevelDB stores, then exit.
 */
import { SignalGate } from '../node-common/signals.ts';
import { isPouwError } from '../shared/errors.ts';
import { loadConfig } from './config.ts';
import { startSupervisor } from './supervisor.ts';

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(
    `${JSON.stringify({ t: Date.now(), event, ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
  );
}

const args = process.argv.slice(2);
const at = args.indexOf('--config');
const file = at >= 0 ? args[at + 1] : undefined;
if (!file) {
  process.stderr.write('usage: npm run supervisor -- --config <file.json>\n');
  process.exit(2);
}

// Listening from here on: a signal during start-up waits for it instead of killing the process.
const signals = new SignalGate();
try {
  const config = loadConfig(file);
  const supervisor = await startSupervisor({ config, log, trace: process.env['POUW_TRACE'] === '1' });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('shutdown', { signal });
    supervisor
      .stop()
      .then(() => {
        log('stopped');
        process.exit(0);
      })
      .catch((e: unknown) => {
        log('stop-failed', { error: String(e) });
        process.exit(1);
      });
  };
  signals.ready(shutdown);
} catch (e) {
  log('start-failed', {
    code: isPouwError(e) ? e.code : undefined,
    field: isPouwError(e) ? e.detail['field'] : undefined,
    error: e instanceof Error ? e.message : String(e),
  });
  process.exit(1);
}

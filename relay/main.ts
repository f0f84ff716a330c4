/**
 * `npm run relay -- --config relay.json` (or flags: --data-dir, --listen, --announce, --http-host,
 * --http-port, --chain-id, --log-level). Starts the relay and its HTTP endpoint, logs one JSON line
 * `relay started` with the peer id, multiaddrs, endpoint URL and limits, and stops cleanly on
 * SIGINT/SIGTERM (libp2p stopped, HTTP closed, exit 0). A bad config exits 2 naming the field.
 */
import { SignalGate } from '../node-common/signals.ts';
import { isPouwError } from '../shared/errors.ts';
import { configFromArgs } from './config.ts';
import { startHttp } from './http.ts';
import { jsonLogger } from './log.ts';
import { startRelay } from './node.ts';

/** A stop that hangs past this exits 1 instead of lingering. */
const STOP_TIMEOUT_MS = 10_000;
// Listening from the first line: a signal during start-up waits for it instead of killing the process.
const signals = new SignalGate();

async function main(): Promise<void> {
  let options: ReturnType<typeof configFromArgs>;
  try {
    options = configFromArgs(process.argv.slice(2));
  } catch (e) {
    if (!isPouwError(e)) throw e;
    jsonLogger('error', (l) => process.stderr.write(l)).error('invalid configuration', {
      code: e.code,
      field: e.detail['field'],
      error: e.message,
    });
    process.exit(2);
  }
  const { config, configPath } = options;
  const log = jsonLogger(config.logLevel);
  process.on('unhandledRejection', (e) => log.error('unhandled rejection', { error: e }));

  const relay = await startRelay(config, log);
  const http = await startHttp(relay, config.http.host, config.http.port, log);
  log.notice('relay started', {
    peerId: relay.peerId,
    multiaddrs: relay.multiaddrs(),
    http: http.url,
    dataDir: config.dataDir,
    config: configPath ?? null,
    keyCreated: relay.keyCreated,
    limits: relay.limits,
  });

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn('second signal while stopping: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.notice('stopping', { signal });
    const timer = setTimeout(() => {
      log.error('stop timed out', { timeoutMs: STOP_TIMEOUT_MS });
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    timer.unref();
    Promise.all([relay.stop(), http.close()]).then(
      () => {
        log.notice('stopped', { signal });
        process.exit(0);
      },
      (e: unknown) => {
        log.error('stop failed', { error: e });
        process.exit(1);
      },
    );
  };
  signals.ready(shutdown);
}

await main();

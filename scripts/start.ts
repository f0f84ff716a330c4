/**
 * `npm start [-- --data-dir DIR --host H --edge-miners N --miner-slots N --verifier real|fast --free-ports]`:
 * the whole local network (scripts/network.ts): one relay, four supervisors (their DKG runs on the
 * first start), edge volunteers, the default MNIST task funded by the faucet, and the page server.
 * Prints the page's URL once every process is ready. Ctrl-C (SIGINT) or SIGTERM stops every child
 * (SIGTERM, SIGKILL after a bound), waits for them and exits 0; a second signal kills what is left
 * and exits 1. State stays in the data directory (default `.data/`) for the next start.
 */
import { join, resolve } from 'node:path';
import { bytesToHex } from '../shared/bytes.ts';
import { type RunningNetwork, startNetwork } from './network.ts';

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: npm start [-- --data-dir DIR] [--host ADDRESS] [--edge-miners N] [--miner-slots N] ` +
      '[--verifier real|fast] [--free-ports]\n',
  );
  process.exit(2);
}

interface Options {
  dataDir: string;
  host: string;
  edgeMiners: number;
  minerSlots: number | undefined;
  verifier: 'real' | 'fast';
  freePorts: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    dataDir: join(import.meta.dirname, '..', '.data'),
    host: '127.0.0.1',
    edgeMiners: 1,
    minerSlots: undefined,
    verifier: 'real',
    freePorts: false,
  };
  const count = (flag: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > 64) usage(`${flag}: an integer from ${min} to 64`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--free-ports') {
      o.freePorts = true;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) usage(`${flag} needs a value`);
    i++;
    switch (flag) {
      case '--data-dir':
        o.dataDir = resolve(value);
        break;
      case '--host':
        o.host = value;
        break;
      case '--edge-miners':
        o.edgeMiners = count(flag, value, 0);
        break;
      case '--miner-slots':
        o.minerSlots = count(flag, value, 1);
        break;
      case '--verifier':
        if (value !== 'real' && value !== 'fast') usage('--verifier: real or fast');
        o.verifier = value;
        break;
      default:
        usage(`unknown option ${flag}`);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const say = (line: string) => process.stdout.write(`${line}\n`);
let network: RunningNetwork | undefined;
const pids: number[] = [];
let stopping = false;

const shutdown = (signal: string) => {
  if (stopping) {
    say(`second ${signal}: killing what is left`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    process.exit(1);
  }
  stopping = true;
  say(`${signal}: stopping the network…`);
  if (network === undefined) {
    // Still starting: stop what is up; startNetwork then fails, stops the rest, and we exit below.
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    return;
  }
  network.stop().then(
    (exits) => {
      for (const e of exits) say(`  ${e.name.padEnd(14)} exited ${e.code ?? e.signal}`);
      say('stopped');
      process.exit(0);
    },
    (e: unknown) => {
      say(`stop failed: ${String(e)}`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
// Children run in their own process groups: if this process ends any other way (a crash), take
// down those still running rather than leave them behind.
process.on('exit', () => {
  for (const p of network?.processes.values() ?? []) if (p.running()) p.child.kill('SIGKILL');
});

say(`PoUW local network (data: ${opts.dataDir})`);
try {
  network = await startNetwork({
    dataDir: opts.dataDir,
    host: opts.host,
    ...(opts.freePorts ? { ports: 'free' as const } : {}),
    edgeMiners: opts.edgeMiners,
    ...(opts.minerSlots === undefined ? {} : { minerSlots: opts.minerSlots }),
    verifier: opts.verifier,
    log: (line) => {
      say(`  ${line}`);
    },
    onProcess: ({ name, pid }) => {
      pids.push(pid);
      say(`  started ${name} (pid ${pid})`);
    },
  });
} catch (e) {
  if (stopping) {
    say('stopped while starting');
    process.exit(0);
  }
  say(`start failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
if (stopping) {
  // The signal came as the last process became ready: stop now that the handle exists.
  stopping = false;
  shutdown('SIGINT');
} else {
  const n = network;
  say('');
  say(`chain ${n.chainId}, task ${bytesToHex(n.task.taskId)} (${n.task.minerSlots} miner slots)`);
  say(`task funding: ${n.funding}`);
  say(`relay      ${n.relay.ws}`);
  say(`           health and metrics: ${n.relay.http}/health, ${n.relay.http}/metrics`);
  for (const s of n.supervisors) say(`supervisor ${s.member + 1}  ${s.tcp}`);
  say(`logs       ${join(n.dataDir, 'logs')}`);
  say('');
  say(`Open the Contribute page: ${n.uiUrl}`);
  say('Ctrl-C stops every process.');
}

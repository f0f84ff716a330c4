/**
 * The edge volunteer: `npm run worker -- --relay <multiaddr> [--supervisor <multiaddr>]… [options]`.
 * The browser volunteer's worker code on a Node worker thread (web-worker-node/volunteer-edge.ts)
 * over the real network (web-worker-node/net-libp2p.ts, with TCP and WebSockets from Node): it joins
 * a task, trains and mines, and logs JSON lines on stdout (`started`, `joined`, progress, block
 * verdicts, and the wallet balance as the light client verified it after every finalized block).
 *
 * Options:
 *   --relay MULTIADDR        the relay, ending in /p2p/<peer id> (required)
 *   --supervisor MULTIADDR   a supervisor, ending in /p2p/<committee member's peer id> (repeatable, ≥ 1)
 *   --genesis FILE           the chain's genesis (default .data/devnet/genesis.json): chain id,
 *                            committee node keys and group key are taken from it, never from the network
 *   --data-dir DIR           keys live in DIR/worker-keys.json (default .data/worker)
 *   --task HEX               the task to join (default: the first the supervisors list)
 *   --backend wasm|cpu       pin the TF.js backend (default: wasm, then cpu)
 *   --max-iterations N       stop training after N iterations (then keep following the chain)
 *   --duty-cycle X           share of time spent working, (0, 1]
 *   --webrtc-bind IP         the address WebRTC binds to (ICE host candidate); default all interfaces
 * SIGINT/SIGTERM stop the volunteer and the node and exit 0 (a stop hanging for 10 s exits 1).
 * A bad option exits 2; a failure to start or join exits 1.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { multiaddr } from '@multiformats/multiaddr';
import { writeFileDurable } from '../node-common/durable-file.ts';
import { SignalGate } from '../node-common/signals.ts';
import { bytesToHex, hexToBytes } from '../shared/bytes.ts';
import { parseGenesis } from '../shared/chain/genesis.ts';
import { MemoryLightClientStore } from '../shared/chain/light-client.ts';
import { decodeAddress } from '../shared/crypto/address.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { assertMnemonic, generateMnemonic, walletFromMnemonic } from '../shared/crypto/mnemonic.ts';
import { isPouwError, VolunteerError } from '../shared/errors.ts';
import { WalletBalance } from '../web-worker-node/balance.ts';
import { Libp2pVolunteerNetwork } from '../web-worker-node/net-libp2p.ts';
import { errorInfo } from '../web-worker-node/progress.ts';
import type { Volunteer } from '../web-worker-node/volunteer-client.ts';
import { startEdgeVolunteer } from '../web-worker-node/volunteer-edge.ts';

const root = join(import.meta.dirname, '..');
const STOP_TIMEOUT_MS = 10_000;

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(
    `${JSON.stringify({ t: Date.now(), event, ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
  );
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: npm run worker -- --relay <multiaddr> --supervisor <multiaddr> [--supervisor …] ` +
      '[--genesis FILE] [--data-dir DIR] [--task HEX] [--backend wasm|cpu] [--max-iterations N] ' +
      '[--duty-cycle X] [--webrtc-bind IP]\n',
  );
  process.exit(2);
}

interface Options {
  relay: string;
  supervisors: string[];
  genesis: string;
  dataDir: string;
  task: Uint8Array | undefined;
  backend: 'wasm' | 'cpu' | undefined;
  maxIterations: number | undefined;
  dutyCycle: number | undefined;
  webrtcBind: string | undefined;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    relay: '',
    supervisors: [],
    genesis: join(root, '.data', 'devnet', 'genesis.json'),
    dataDir: join(root, '.data', 'worker'),
    task: undefined,
    backend: undefined,
    maxIterations: undefined,
    dutyCycle: undefined,
    webrtcBind: undefined,
  };
  const addr = (flag: string, v: string): string => {
    try {
      multiaddr(v);
    } catch {
      usage(`${flag}: not a multiaddr: ${v}`);
    }
    if (!v.includes('/p2p/')) usage(`${flag}: must end in /p2p/<peer id>: ${v}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) usage(`${flag} needs a value`);
    i++;
    switch (flag) {
      case '--relay':
        o.relay = addr(flag, value);
        break;
      case '--supervisor':
        o.supervisors.push(addr(flag, value));
        break;
      case '--genesis':
        o.genesis = value;
        break;
      case '--data-dir':
        o.dataDir = value;
        break;
      case '--task':
        if (!/^[0-9a-f]{64}$/.test(value)) usage('--task: 32 bytes of lowercase hex');
        o.task = hexToBytes(value);
        break;
      case '--backend':
        if (value !== 'wasm' && value !== 'cpu') usage('--backend: wasm or cpu');
        o.backend = value;
        break;
      case '--max-iterations': {
        const n = Number(value);
        if (!Number.isSafeInteger(n) || n < 1) usage('--max-iterations: a positive integer');
        o.maxIterations = n;
        break;
      }
      case '--duty-cycle': {
        const x = Number(value);
        if (!(x > 0 && x <= 1)) usage('--duty-cycle: a number in (0, 1]');
        o.dutyCycle = x;
        break;
      }
      case '--webrtc-bind':
        o.webrtcBind = value;
        break;
      default:
        usage(`unknown option ${flag}`);
    }
  }
  if (o.relay === '') usage('--relay is required');
  if (o.supervisors.length === 0) usage('at least one --supervisor is required');
  return o;
}

interface WorkerKeys {
  nodeKey: { secretKey: Uint8Array; publicKey: Uint8Array };
  address: string;
  payout: Uint8Array;
}

/**
 * The worker's keys, in DIR/worker-keys.json (mode 0600, written with fsync and rename): the node
 * key seed (libp2p identity, IT_RES signatures) and the wallet's mnemonic (rewards). Created on
 * first start; a file that does not check out is an error, never replaced.
 */
async function loadOrCreateKeys(dir: string): Promise<{ keys: WorkerKeys; created: boolean }> {
  const file = join(dir, 'worker-keys.json');
  let created = false;
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const json = {
      version: 1,
      nodeKeySeed: bytesToHex(crypto.getRandomValues(new Uint8Array(32))),
      mnemonic: generateMnemonic(),
    };
    await writeFileDurable(file, `${JSON.stringify(json, null, 2)}\n`);
    created = true;
  }
  const corrupt = (why: string): never => {
    throw new VolunteerError('KEYSTORE_CORRUPT', `${file}: ${why}`, 'REJECT', { record: 'worker-keys' });
  };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return corrupt(`not JSON (${(e as Error).message})`);
  }
  if (json['version'] !== 1) corrupt(`unknown version ${String(json['version'])}`);
  const seedHex = json['nodeKeySeed'];
  if (typeof seedHex !== 'string' || !/^[0-9a-f]{64}$/.test(seedHex))
    corrupt('nodeKeySeed is not 32 bytes of hex');
  let mnemonic: string;
  try {
    mnemonic = assertMnemonic(String(json['mnemonic']));
  } catch (e) {
    return corrupt(`mnemonic does not validate (${(e as Error).message})`);
  }
  const secretKey = hexToBytes(seedHex as string);
  const { primary } = await walletFromMnemonic(mnemonic);
  return {
    keys: {
      nodeKey: { secretKey, publicKey: await nobleEd25519.getPublicKey(secretKey) },
      address: primary.address,
      payout: decodeAddress(primary.address),
    },
    created,
  };
}

// Listening from the first line: a signal during start-up waits for it instead of killing the process.
const signals = new SignalGate();

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const genesis = parseGenesis(JSON.parse(readFileSync(opts.genesis, 'utf8')));
  const { keys, created } = await loadOrCreateKeys(opts.dataDir);
  const network = await Libp2pVolunteerNetwork.create({
    chainId: genesis.chainId,
    committee: genesis.committee,
    nodeKey: keys.nodeKey,
    relay: opts.relay,
    supervisors: opts.supervisors,
    ...(opts.task === undefined ? {} : { taskId: opts.task }),
    transports: [tcp(), webSockets()],
    // No public STUN servers: peers meet on the addresses they have.
    rtcConfiguration: {
      iceServers: [],
      ...(opts.webrtcBind === undefined ? {} : { bindAddress: opts.webrtcBind }),
    } as RTCConfiguration,
    allowPrivateDials: true,
    log: (event, fields) => log(`net-${event}`, fields),
  });
  log('started', {
    peerId: network.peerId,
    nodeKey: bytesToHex(keys.nodeKey.publicKey),
    address: keys.address,
    keysCreated: created,
    chainId: genesis.chainId,
    dataDir: opts.dataDir,
  });

  let volunteer: Volunteer | undefined;
  let stopping = false;
  const anchor = { chainId: genesis.chainId, groupPublicKey: genesis.committee.groupPublicKey };
  const wallet = new WalletBalance(network.view(), anchor, new MemoryLightClientStore(), keys.payout);
  let balanceTimer: ReturnType<typeof setTimeout> | undefined;
  const syncBalance = () => {
    wallet.sync().then(
      (view) =>
        log(
          'balance',
          view.status === 'verified' ? { ...view } : { status: view.status, reason: view.reason },
        ),
      (e: unknown) => log('balance', { status: 'unverified', reason: errorInfo(e).message }),
    );
  };
  network.onFinalized((f) => {
    log('finalized', { height: f.header.height });
    clearTimeout(balanceTimer);
    balanceTimer = setTimeout(syncBalance, 300);
  });

  const shutdown = (signal: string) => {
    if (stopping) {
      log('second signal while stopping: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log('stopping', { signal });
    clearTimeout(balanceTimer);
    setTimeout(() => {
      log('stop timed out', { timeoutMs: STOP_TIMEOUT_MS });
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    (async () => {
      await volunteer?.close();
      await network.close();
    })().then(
      () => {
        log('stopped', { signal, status: network.stats });
        process.exit(0);
      },
      (e: unknown) => {
        log('stop failed', { error: errorInfo(e) });
        process.exit(1);
      },
    );
  };
  signals.ready(shutdown);

  try {
    volunteer = await startEdgeVolunteer({
      network: network.view(),
      identity: keys.nodeKey,
      payout: keys.payout,
      ...(opts.backend === undefined ? {} : { backend: { force: opts.backend } }),
      ...(opts.maxIterations === undefined ? {} : { maxIterations: opts.maxIterations }),
      ...(opts.dutyCycle === undefined ? {} : { dutyCycle: opts.dutyCycle }),
      onEvent: (e) => {
        if (e.type === 'iteration') {
          if (e.iteration % 25 === 0)
            log('iteration', {
              iteration: e.iteration,
              loss: e.loss,
              accuracy: e.accuracy,
              itresSent: e.itresSent,
              itresReceived: e.itresReceived,
              noncesTried: e.noncesTried,
            });
        } else if (
          e.type === 'phase' ||
          e.type === 'candidate' ||
          e.type === 'verdict' ||
          e.type === 'backend'
        ) {
          log(e.type, { ...e });
        } else if (e.type === 'heldout' || e.type === 'error') {
          log(e.type, { ...e });
        }
      },
    });
  } catch (e) {
    if (stopping) return;
    log('start-failed', { error: errorInfo(e) });
    await network.close().catch(() => {});
    process.exit(1);
  }
  if (stopping) return;
  const joined = network.stats.joinMs;
  log('joined', {
    task: volunteer.report?.taskId,
    backend: volunteer.report?.backend.backend,
    joinMs: joined === undefined ? null : Math.round(joined),
    miners: network.minerLinks().length + 1,
  });
  syncBalance();
  // Who this volunteer is linked to, now and then (tests read it; operators see WebRTC vs relay).
  const links = setInterval(() => log('links', { miners: network.minerLinks() }), 5000);
  links.unref();
}

main().catch((e: unknown) => {
  log('start-failed', { error: errorInfo(e), code: isPouwError(e) ? e.code : undefined });
  process.exit(1);
});

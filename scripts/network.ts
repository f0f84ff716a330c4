/**
 * The whole local network as real processes (issue #6, `npm start`; also the end-to-end test and
 * `bench/network.ts`): one relay (relay/main.ts), four supervisors (supervisor-node/main.ts) whose
 * committee key comes from a DKG the four run among themselves over libp2p on first start
 * (scripts/devnet.ts, network mode), `edgeMiners` edge volunteers (scripts/worker.ts), the default
 * MNIST task (scripts/task-file.ts) funded by the faucet, and the page server (scripts/serve-ui.ts)
 * for the built UI with its `config.json` and `genesis.json`.
 *
 * Everything lives in the data directory and is reused on the next start (keys, chain, task):
 *   devnet/                 genesis.json, supervisors/supervisor-<i>.json, faucet.json (scripts/devnet.ts)
 *   task/                   task.json + train.bin (written once)
 *   relay/ relay.json       the relay's node key; its config (rewritten each start)
 *   supervisor-<i>/ supervisor-<i>.json    chain store, write-ahead log, signed miner sets; config
 *   worker-<j>/             an edge volunteer's keys (node key, wallet mnemonic)
 *   logs/<name>.log         every child's stdout and stderr (appended)
 *
 * Children are started with `node --import tsx <entry>` directly (npm would swallow SIGTERM), each
 * in its own process group so a terminal's Ctrl-C reaches only the launcher, which then stops them
 * by PID: SIGTERM, SIGKILL after `STOP_TIMEOUT_MS`, and waits for every exit. Every wait is bounded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createNode, multiaddr, peerIdOfNodeKey } from '../node-common/p2p.ts';
import { bytesToHex, hexToBytes } from '../shared/bytes.ts';
import { outpointKey } from '../shared/chain/ids.ts';
import type { ChainParams } from '../shared/chain/types.ts';
import { DEFAULT_TIMEOUTS } from '../shared/consensus/tendermint.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { isPouwError } from '../shared/errors.ts';
import { leadIndex } from '../shared/net/join.ts';
import { ProofRequest, ProofResponse, SubmitTxRequest } from '../shared/net/messages.ts';
import { ensureDevnet, freePorts, loadDevnet } from './devnet.ts';
import { serveUi, type UiServer } from './serve-ui.ts';
import { ensureNetworkTask, type NetworkTask, taskFundingTx } from './task-file.ts';

const root = join(import.meta.dirname, '..');
const CHAIN_ID = 'pouw-devnet';
const SUPERVISORS = 4;
/** SIGTERM → SIGKILL grace per child (the relay and the worker give up on their own after 10 s). */
export const STOP_TIMEOUT_MS = 12_000;
/** How long one child may take to log that it is ready. */
const READY_TIMEOUT_MS = 90_000;
const UI_BUILD_TIMEOUT_MS = 300_000;
/** Lines of each child's output kept in memory (the log file has all of them). */
const KEPT_LINES = 2000;

export interface NetworkPorts {
  relayTcp: number;
  relayWs: number;
  relayHttp: number;
  /** One per supervisor. */
  supervisors: { tcp: number; ws: number }[];
  ui: number;
}

/** What `npm start` listens on unless told otherwise. */
export const DEFAULT_PORTS: NetworkPorts = {
  relayTcp: 4001,
  relayWs: 4002,
  relayHttp: 9464,
  supervisors: [0, 1, 2, 3].map((i) => ({ tcp: 9101 + i, ws: 9201 + i })),
  ui: 5173,
};

export interface NetworkOptions {
  dataDir: string;
  /** Address every listener binds to (default 127.0.0.1). */
  host?: string;
  /**
   * Address the page server binds to (default `host`). Browsers give pages WebCrypto only in a
   * secure context (https, or http on localhost/127.0.0.1), and the volunteer needs it: a network
   * bound to another address serves its page from 127.0.0.1 (the end-to-end test does, inside its
   * network namespace) or from behind an https proxy.
   */
  uiHost?: string;
  /** Fixed ports, or 'free': ports the OS has free now (tests). Default DEFAULT_PORTS. */
  ports?: NetworkPorts | 'free';
  /** Edge volunteers started here (default 1). */
  edgeMiners?: number;
  /** Miner slots of the task when it is first written (default edgeMiners + 1: room for one page). */
  minerSlots?: number;
  /** Training epochs of the task when it is first written (default 500). */
  epochs?: number;
  /** How supervisors check candidates (default 'real': replay of the lucky iteration). */
  verifier?: 'real' | 'fast';
  /** Extra arguments for every edge volunteer (e.g. `--backend cpu`). */
  workerArgs?: string[];
  /** Human-readable progress lines. */
  log?: (line: string) => void;
  /** Every child right after it is spawned (callers that must be able to kill by PID). */
  onProcess?: (p: { name: string; pid: number }) => void;
}

export interface LogLine {
  [field: string]: unknown;
}

/** One child process of the network. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Its last KEPT_LINES JSON lines (non-JSON output is in the log file only). */
  readonly lines: LogLine[];
  readonly logFile: string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** Calls `fn` for every JSON line from now on; returns an unsubscribe. */
  onLine(fn: (line: LogLine) => void): () => void;
}

export interface SupervisorInfo {
  member: number;
  peerId: string;
  /** TCP and WebSocket multiaddrs, each ending in /p2p/<peer id>. */
  tcp: string;
  ws: string;
  dataDir: string;
  configFile: string;
}

export interface RunningNetwork {
  dataDir: string;
  chainId: string;
  genesisFile: string;
  task: NetworkTask;
  /** Committee index of the task's lead (ADR 0012). */
  lead: number;
  relay: { peerId: string; tcp: string; ws: string; http: string };
  supervisors: SupervisorInfo[];
  /** The page server's origin and the URL to open (relay and hash route included). */
  uiOrigin: string;
  uiUrl: string;
  /** 'funded' (escrow on chain), 'submitted' (waiting for the next block), or why not. */
  funding: string;
  processes: Map<string, ManagedProcess>;
  /** Restarts a stopped or killed child with the same arguments; resolves once it is ready again. */
  restart(name: string): Promise<ManagedProcess>;
  /** Stops every child (SIGTERM, then SIGKILL after the bound) and the page server. */
  stop(): Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }[]>;
}

interface ProcessSpec {
  name: string;
  args: string[];
  ready: (l: LogLine) => boolean;
  failed: (l: LogLine) => boolean;
}

async function resolvePorts(ports: NetworkOptions['ports'], host: string): Promise<NetworkPorts> {
  if (ports !== 'free') {
    const p = ports ?? DEFAULT_PORTS;
    if (p.supervisors.length !== SUPERVISORS)
      throw new Error(`ports.supervisors needs ${SUPERVISORS} entries`);
    return p;
  }
  const f = await freePorts(4 + 2 * SUPERVISORS, host);
  return {
    relayTcp: f[0]!,
    relayWs: f[1]!,
    relayHttp: f[2]!,
    ui: f[3]!,
    supervisors: Array.from({ length: SUPERVISORS }, (_, i) => ({ tcp: f[4 + 2 * i]!, ws: f[5 + 2 * i]! })),
  };
}

function ip(host: string): string {
  return host.includes(':') ? `/ip6/${host}` : `/ip4/${host}`;
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function spawnManaged(spec: ProcessSpec, logDir: string): ManagedProcess {
  const logFile = join(logDir, `${spec.name}.log`);
  appendFileSync(logFile, `--- ${new Date().toISOString()} start ${spec.args.join(' ')}\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', ...spec.args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a terminal's Ctrl-C reaches the launcher only, which stops it by PID.
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`could not start ${spec.name}`);
  const lines: LogLine[] = [];
  const listeners = new Set<(l: LogLine) => void>();
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    appendFileSync(logFile, chunk);
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      if (typeof line !== 'object' || line === null) continue;
      lines.push(line);
      if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
      for (const fn of listeners) fn(line);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => appendFileSync(logFile, chunk));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      appendFileSync(logFile, `--- ${new Date().toISOString()} exit ${code ?? signal}\n`);
      resolve({ code, signal });
    }),
  );
  return {
    name: spec.name,
    pid: child.pid,
    child,
    lines,
    logFile,
    exit,
    running: () => running(child),
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

/** Resolves with the first line `spec.ready` accepts; rejects on a failure line, an exit or the bound. */
function whenReady(p: ManagedProcess, spec: ProcessSpec, timeoutMs: number): Promise<LogLine> {
  return new Promise((resolve, reject) => {
    let off = () => {};
    const tail = () => {
      try {
        return readFileSync(p.logFile, 'utf8').slice(-1500);
      } catch {
        return '';
      }
    };
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${p.name} did not become ready in ${timeoutMs} ms; log ${p.logFile}:\n${tail()}`));
    }, timeoutMs);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      off();
      fn();
    };
    const check = (l: LogLine) => {
      if (spec.ready(l)) done(() => resolve(l));
      else if (spec.failed(l))
        done(() => reject(new Error(`${p.name} failed to start: ${JSON.stringify(l)}; log ${p.logFile}`)));
    };
    off = p.onLine(check);
    for (const l of p.lines) check(l);
    void p.exit.then(({ code, signal }) =>
      done(() => reject(new Error(`${p.name} exited (${code ?? signal}) before it was ready:\n${tail()}`))),
    );
  });
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves with how it exited. */
export async function stopProcess(
  p: ManagedProcess,
  timeoutMs = STOP_TIMEOUT_MS,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.running()) p.child.kill('SIGTERM');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'late'>((r) => {
    timer = setTimeout(() => r('late'), timeoutMs);
  });
  const r = await Promise.race([p.exit, late]);
  clearTimeout(timer);
  if (r !== 'late') return r;
  if (p.running()) p.child.kill('SIGKILL');
  return p.exit;
}

/**
 * The network's chain parameters over DEVNET_PARAMS, part of the genesis the DKG parties derive.
 * DEVNET_PARAMS' initial target (1 in 256 nonces) is met by almost every training iteration, so
 * each miner would send a block candidate per iteration: a browser tab trains ~100 iterations/s on
 * this machine (~20k nonces/s), and the supervisors drown in candidates. 1 in 65,536 gives a block
 * every few seconds with a tab or two, near the 3 s `blockIntervalMs` that retargeting then holds.
 */
export const NETWORK_PARAMS: Partial<ChainParams> = { initialBits: 0x1f010000 };

/**
 * The relay's gossip budget per sending peer. Its defaults (50 messages/s, burst 200) are sized for
 * a task whose iterations take tens of milliseconds at least; the default task here is one softmax
 * layer, and a browser tab trains it at ~100 iterations/s on this machine, one IT_RES each: at the
 * default the relay would ignore half of them and ban the tab for the strikes.
 */
const RELAY_RATE_LIMITS = {
  rateLimits: { gossipMessagesPerSecond: 400, gossipMessageBurst: 2000 },
};

// -- the UI build ----------------------------------------------------------------------------

const UI_SOURCES = ['ui', 'web-worker-node', 'shared', 'public', 'vite.config.ts', 'package.json'];

function newestMtime(path: string): number {
  const s = statSync(path, { throwIfNoEntry: false });
  if (s === undefined) return 0;
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = s.mtimeMs;
  for (const name of readdirSync(path)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    newest = Math.max(newest, newestMtime(join(path, name)));
  }
  return newest;
}

/** Whether dist/ui is missing or older than any file it is built from. */
export function uiBuildStale(): boolean {
  const index = statSync(join(root, 'dist', 'ui', 'index.html'), { throwIfNoEntry: false });
  if (index === undefined) return true;
  return UI_SOURCES.some((p) => newestMtime(join(root, p)) > index.mtimeMs);
}

/** `vite build` into dist/ui when it is missing or stale; a child process, bounded and stoppable. */
async function ensureUiBuilt(
  log: (line: string) => void,
  track: (child: ChildProcess | undefined) => void,
): Promise<void> {
  if (!uiBuildStale()) return;
  log('building the UI (vite build → dist/ui)…');
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  track(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    output = (output + c).slice(-4000);
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    output = (output + c).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), UI_BUILD_TIMEOUT_MS);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  track(undefined);
  if (code !== 0) throw new Error(`vite build failed (${code}):\n${output}`);
  log(`UI built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

// -- funding ---------------------------------------------------------------------------------

/**
 * Makes sure the task's PAY_FOR_TASK is on chain or on its way: asks supervisor 1 for the escrow
 * outpoint and the faucet's genesis output at its finalized tip, and submits the (deterministic)
 * transaction to every supervisor while the escrow is missing and the input unspent.
 */
async function fundTask(
  devnet: Awaited<ReturnType<typeof ensureDevnet>>,
  task: NetworkTask,
  supervisors: SupervisorInfo[],
  host: string,
): Promise<string> {
  const funding = await taskFundingTx(devnet.genesis, devnet.faucet.mnemonic, task);
  const node = await createNode({
    nodeKeySeed: crypto.getRandomValues(new Uint8Array(32)),
    listen: [`${ip(host)}/tcp/0`],
  });
  try {
    const body = await node.request(
      multiaddr(supervisors[0]!.tcp),
      'proof',
      ProofRequest.encode({ outpoints: [funding.escrow, funding.input], address: new Uint8Array(0) }),
      { timeoutMs: 10_000 },
    );
    const res = ProofResponse.decode(body);
    const present = new Set(
      res.entries.filter((e) => e.out !== null && e.out !== undefined).map((e) => outpointKey(e.outpoint)),
    );
    if (present.has(outpointKey(funding.escrow)))
      return `funded: escrow ${bytesToHex(funding.escrow.txId).slice(0, 16)}…:0 on chain (height ≤ ${res.header.height})`;
    if (!present.has(outpointKey(funding.input)))
      return 'not funded: the faucet’s genesis output was spent by another transaction';
    const tx = SubmitTxRequest.encode(funding.tx);
    const sent = await Promise.allSettled(
      supervisors.map((s) => node.request(multiaddr(s.tcp), 'submitTx', tx, { timeoutMs: 10_000 })),
    );
    const accepted = sent.filter((r) => r.status === 'fulfilled').length;
    if (accepted === 0) {
      const why = sent
        .map((r) =>
          r.status === 'rejected' ? (isPouwError(r.reason) ? r.reason.code : String(r.reason)) : '',
        )
        .join(', ');
      return `not funded: every supervisor refused the PAY_FOR_TASK (${why})`;
    }
    return `submitted: PAY_FOR_TASK ${bytesToHex(funding.escrow.txId).slice(0, 16)}… in ${accepted} mempools, on chain with the next block`;
  } finally {
    await node.stop();
  }
}

// -- the network -----------------------------------------------------------------------------

export async function startNetwork(opts: NetworkOptions): Promise<RunningNetwork> {
  const log = opts.log ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  const edgeMiners = opts.edgeMiners ?? 1;
  const dataDir = opts.dataDir;
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const processes = new Map<string, ManagedProcess>();
  const specs = new Map<string, ProcessSpec>();
  let building: ChildProcess | undefined;
  let ui: UiServer | undefined;
  let stopping = false;

  const launch = async (spec: ProcessSpec): Promise<ManagedProcess> => {
    if (stopping) throw new Error('the network is stopping');
    specs.set(spec.name, spec);
    const p = spawnManaged(spec, logDir);
    processes.set(spec.name, p);
    opts.onProcess?.({ name: spec.name, pid: p.pid });
    void p.exit.then(({ code, signal }) => {
      if (!stopping && processes.get(spec.name) === p)
        log(`${spec.name} (pid ${p.pid}) exited: ${code ?? signal}`);
    });
    await whenReady(p, spec, READY_TIMEOUT_MS);
    return p;
  };

  const stop = async () => {
    stopping = true;
    if (building !== undefined && running(building)) building.kill('SIGKILL');
    const all = [...processes.values()];
    // Volunteers first (they talk to the rest), then supervisors and the relay together.
    const workers = all.filter((p) => p.name.startsWith('worker-'));
    const rest = all.filter((p) => !p.name.startsWith('worker-'));
    const results: { name: string; code: number | null; signal: NodeJS.Signals | null }[] = [];
    for (const group of [workers, rest]) {
      const exits = await Promise.all(group.map((p) => stopProcess(p)));
      for (const [i, p] of group.entries()) results.push({ name: p.name, ...exits[i]! });
    }
    await ui?.close();
    return results;
  };

  try {
    // The UI builds while the committee runs its DKG.
    const uiBuilt = ensureUiBuilt(log, (c) => {
      building = c;
    });
    uiBuilt.catch(() => {});

    const devnetDir = join(dataDir, 'devnet');
    const fresh = !existsSync(join(devnetDir, 'genesis.json'));
    if (fresh) log('creating the devnet: the four supervisors run their DKG over libp2p…');
    const created = await ensureDevnet(devnetDir, SUPERVISORS, CHAIN_ID, {
      dkg: 'network',
      timeoutMs: 120_000,
      params: NETWORK_PARAMS,
    });
    const devnet = { ...loadDevnet(devnetDir), ...(created.network ? { network: created.network } : {}) };
    const chainId = devnet.genesis.chainId;
    const genesisFile = join(devnetDir, 'genesis.json');
    if (devnet.network)
      log(
        `devnet created: network DKG in ${devnet.network.elapsedMs} ms (transcript ${devnet.network.transcriptHash.slice(0, 16)}…)`,
      );
    else log(`devnet reused from ${devnetDir}`);

    const task = ensureNetworkTask(
      join(dataDir, 'task'),
      chainId,
      opts.minerSlots ?? edgeMiners + 1,
      opts.epochs ?? 500,
    );
    const lead = leadIndex(task.taskId, SUPERVISORS);
    log(
      `task ${bytesToHex(task.taskId).slice(0, 16)}… (${task.created ? 'created' : 'reused'}): MNIST, ${task.minerSlots} miner slots, ${task.definition.epochs} epochs, lead supervisor ${lead + 1}`,
    );

    const ports = await resolvePorts(opts.ports, host);

    // Relay.
    const relayConfig = join(dataDir, 'relay.json');
    writeFileSync(
      relayConfig,
      `${JSON.stringify(
        {
          dataDir: join(dataDir, 'relay'),
          listen: [`${ip(host)}/tcp/${ports.relayTcp}`, `${ip(host)}/tcp/${ports.relayWs}/ws`],
          http: { host, port: ports.relayHttp },
          chainId,
          // Every local volunteer comes from one address.
          connections: { inboundPerSecondPerIp: 200 },
          ...RELAY_RATE_LIMITS,
        },
        null,
        2,
      )}\n`,
    );
    await launch({
      name: 'relay',
      args: [join(root, 'relay', 'main.ts'), '--config', relayConfig],
      ready: (l) => l['msg'] === 'relay started',
      failed: (l) => l['msg'] === 'invalid configuration',
    });
    const started = processes.get('relay')!.lines.find((l) => l['msg'] === 'relay started')!;
    const relayAddrs = started['multiaddrs'] as string[];
    const relay = {
      peerId: started['peerId'] as string,
      tcp: relayAddrs.find((a) => !a.includes('/ws'))!,
      ws: relayAddrs.find((a) => a.includes('/ws'))!,
      http: started['http'] as string,
    };
    log(`relay ready: ${relay.ws}`);

    // Supervisors.
    const supervisors: SupervisorInfo[] = await Promise.all(
      devnet.supervisors.map(async (k, i) => {
        const peerId = peerIdOfNodeKey(await nobleEd25519.getPublicKey(hexToBytes(k.nodeKeySeed))).toString();
        const p = ports.supervisors[i]!;
        return {
          member: i,
          peerId,
          tcp: `${ip(host)}/tcp/${p.tcp}/p2p/${peerId}`,
          ws: `${ip(host)}/tcp/${p.ws}/ws/p2p/${peerId}`,
          dataDir: join(dataDir, `supervisor-${i + 1}`),
          configFile: join(dataDir, `supervisor-${i + 1}.json`),
        };
      }),
    );
    for (const s of supervisors) {
      const p = ports.supervisors[s.member]!;
      writeFileSync(
        s.configFile,
        `${JSON.stringify(
          {
            dataDir: s.dataDir,
            chainId,
            genesisFile,
            keyFile: join(devnetDir, 'supervisors', `supervisor-${s.member + 1}.json`),
            listen: [`${ip(host)}/tcp/${p.tcp}`, `${ip(host)}/tcp/${p.ws}/ws`],
            peers: supervisors
              .filter((o) => o !== s)
              .map((o) => ({ peerId: o.peerId, addrs: [o.tcp.slice(0, o.tcp.indexOf('/p2p/'))] })),
            // The core's defaults (propose 3 s + 0.5 s a round): a proposal is judged only after
            // its candidate's lucky iteration was replayed, which takes seconds on a busy machine,
            // and a shorter propose timeout failed round after round while the replay ran.
            timeouts: DEFAULT_TIMEOUTS,
            gossipMs: 500,
            verifier: opts.verifier ?? 'real',
            tasks: [task.file],
          },
          null,
          2,
        )}\n`,
      );
    }
    await Promise.all(
      supervisors.map((s) =>
        launch({
          name: `supervisor-${s.member + 1}`,
          args: [join(root, 'supervisor-node', 'main.ts'), '--config', s.configFile],
          ready: (l) => l['event'] === 'supervisor-started',
          failed: (l) => l['event'] === 'start-failed',
        }),
      ),
    );
    log(`supervisors ready: ${supervisors.map((s) => s.tcp).join(' ')}`);

    let funding: string;
    try {
      funding = await fundTask(devnet, task, supervisors, host);
    } catch (e) {
      funding = `not funded: ${isPouwError(e) ? e.code : String(e)}`;
    }
    log(`task funding: ${funding}`);

    // Edge volunteers.
    await Promise.all(
      Array.from({ length: edgeMiners }, (_, j) =>
        launch({
          name: `worker-${j + 1}`,
          args: [
            join(root, 'scripts', 'worker.ts'),
            '--relay',
            relay.tcp,
            ...supervisors.flatMap((s) => ['--supervisor', s.tcp]),
            '--genesis',
            genesisFile,
            '--data-dir',
            join(dataDir, `worker-${j + 1}`),
            '--task',
            bytesToHex(task.taskId),
            '--webrtc-bind',
            host,
            ...(opts.workerArgs ?? []),
          ],
          ready: (l) => l['event'] === 'started',
          failed: (l) => l['event'] === 'start-failed',
        }),
      ),
    );
    if (edgeMiners > 0) log(`edge volunteers ready: ${edgeMiners}`);

    // The page.
    await uiBuilt;
    const siteConfig = {
      genesis: 'genesis.json',
      supervisors: supervisors.map((s) => s.ws),
      task: bytesToHex(task.taskId),
    };
    ui = await serveUi({
      root: join(root, 'dist', 'ui'),
      host: opts.uiHost ?? host,
      port: ports.ui,
      generated: {
        'config.json': `${JSON.stringify(siteConfig, null, 2)}\n`,
        'genesis.json': readFileSync(genesisFile, 'utf8'),
      },
    });
    const uiUrl = `${ui.origin}/?relay=${encodeURIComponent(relay.ws)}#/contribute`;

    return {
      dataDir,
      chainId,
      genesisFile,
      task,
      lead,
      relay,
      supervisors,
      uiOrigin: ui.origin,
      uiUrl,
      funding,
      processes,
      async restart(name) {
        const spec = specs.get(name);
        const old = processes.get(name);
        if (spec === undefined || old === undefined) throw new Error(`no process named ${name}`);
        if (old.running()) throw new Error(`${name} is still running (pid ${old.pid})`);
        await old.exit;
        return launch(spec);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

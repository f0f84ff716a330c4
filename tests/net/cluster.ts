/**
 * Helpers for the multi-process supervisor test and the consensus benchmark: a devnet (keys from
 * scripts/devnet.ts) in a temp directory, one config file per supervisor on free loopback ports,
 * `supervisor-node/main.ts` spawned as real child processes (JSON-line logs parsed), a miner loop
 * that turns block templates into candidates, and readers of each supervisor's stores after
 * shutdown. Every wait is bounded; only spawned PIDs are ever signalled.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChainStore } from '../../node-common/chain-store.ts';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import {
  createNode,
  type Multiaddr,
  multiaddr,
  type PouwNode,
  peerIdOfNodeKey,
} from '../../node-common/p2p.ts';
import { type Devnet, ensureDevnet, freePorts } from '../../scripts/devnet.ts';
import { bytesToHex, hexToBytes } from '../../shared/bytes.ts';
import { genesisBlock } from '../../shared/chain/genesis.ts';
import { blockHash, outpointKey, txId } from '../../shared/chain/ids.ts';
import { grindNonce } from '../../shared/chain/template.ts';
import type { Block, FinalityCertificate } from '../../shared/chain/types.ts';
import { type OutPoint, type Transaction, TxKind, type TxOut } from '../../shared/chain/types.ts';
import { TX_VERSION } from '../../shared/chain/validate-tx.ts';
import type { TimeoutConfig } from '../../shared/consensus/tendermint.ts';
import { decodeAddress } from '../../shared/crypto/address.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { walletFromMnemonic } from '../../shared/crypto/mnemonic.ts';
import { isPouwError } from '../../shared/errors.ts';
import {
  BlockRequest,
  CandidateRequest,
  FinalizedBlock,
  MAX_PROOF_OUTPOINTS,
  ProofRequest,
  ProofResponse,
  StatusRequest,
  StatusResponse,
  SubmitTxRequest,
  TemplateRequest,
  TemplateResponse,
} from '../../shared/net/messages.ts';
import { ItRes } from '../../shared/pouw/itres.ts';
import { StateTree } from '../../shared/state/state-tree.ts';

const root = join(import.meta.dirname, '..', '..');

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  what: string | (() => string),
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ClusterMember {
  index: number;
  peerId: string;
  tcp: string;
  ws: string;
  configFile: string;
  dataDir: string;
}

/** A member's TCP address with its peer id: libp2p reuses the open connection instead of dialing again. */
export function addrOf(m: ClusterMember): Multiaddr {
  return multiaddr(`${m.tcp}/p2p/${m.peerId}`);
}

export interface Cluster {
  dir: string;
  devnet: Devnet;
  members: ClusterMember[];
}

export interface ClusterOptions {
  timeouts: Record<'propose' | 'prevote' | 'precommit', TimeoutConfig>;
  gossipMs: number;
  verifier: 'fast' | 'real';
  /** Rewrites genesis params before any node starts (benchmarks: no retarget within a run). */
  genesisParams?: Record<string, unknown>;
  /** Task files every supervisor supervises (supervisor-node/tasks.ts). */
  tasks?: string[];
  /**
   * Where the committee key comes from: 'network' runs the Joint-Feldman DKG in n processes over
   * libp2p (supervisor-node/dkg via scripts/devnet.ts); 'local' (default) runs it in this process.
   */
  dkg?: 'local' | 'network';
}

/** A devnet of n supervisors in `dir` with one config per member (ports chosen now, on 127.0.0.1). */
export async function makeCluster(dir: string, n: number, opts: ClusterOptions): Promise<Cluster> {
  const devnet = await ensureDevnet(join(dir, 'devnet'), n, 'pouw-net-test', {
    dkg: opts.dkg ?? 'local',
    timeoutMs: 90_000,
  });
  if (opts.genesisParams) {
    const file = join(devnet.dir, 'genesis.json');
    const { readFileSync } = await import('node:fs');
    const g = JSON.parse(readFileSync(file, 'utf8')) as { params: Record<string, unknown> };
    g.params = { ...g.params, ...opts.genesisParams };
    writeFileSync(file, `${JSON.stringify(g, null, 2)}\n`);
  }
  const members: ClusterMember[] = [];
  for (let i = 0; i < n; i++) {
    const key = devnet.supervisors[i]!;
    const pk = await nobleEd25519.getPublicKey(hexToBytes(key.nodeKeySeed));
    members.push({
      index: i,
      peerId: peerIdOfNodeKey(pk).toString(),
      tcp: `/ip4/127.0.0.1/tcp/${await freePort()}`,
      ws: `/ip4/127.0.0.1/tcp/${await freePort()}/ws`,
      configFile: join(dir, `supervisor-${i}.json`),
      dataDir: join(dir, `data-${i}`),
    });
  }
  for (const m of members) {
    const config = {
      dataDir: m.dataDir,
      chainId: devnet.genesis.chainId,
      genesisFile: join(devnet.dir, 'genesis.json'),
      keyFile: join(devnet.dir, 'supervisors', `supervisor-${m.index + 1}.json`),
      listen: [m.tcp, m.ws],
      peers: members.filter((o) => o !== m).map((o) => ({ peerId: o.peerId, addrs: [o.tcp] })),
      timeouts: opts.timeouts,
      gossipMs: opts.gossipMs,
      verifier: opts.verifier,
      ...(opts.tasks ? { tasks: opts.tasks } : {}),
    };
    writeFileSync(m.configFile, `${JSON.stringify(config, null, 2)}\n`);
  }
  return { dir, devnet, members };
}

export interface LogLine {
  t: number;
  event: string;
  [k: string]: unknown;
}

export interface SupervisorProcess {
  member: ClusterMember;
  child: ChildProcess;
  logs: LogLine[];
  stderr: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Heights this process logged as decided. */
  decided(): bigint[];
}

/** Spawns supervisor-node/main.ts for a member; resolves once it logged `supervisor-started`. */
export async function spawnSupervisor(member: ClusterMember, timeoutMs = 30_000): Promise<SupervisorProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'supervisor-node', 'main.ts'), '--config', member.configFile],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        stderr.push(line);
      }
      nl = buf.indexOf('\n');
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr.push(chunk);
    if (stderr.length > 200) stderr.shift();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const proc: SupervisorProcess = {
    member,
    child,
    logs,
    stderr,
    exit,
    decided: () => logs.filter((l) => l.event === 'decided').map((l) => BigInt(l['height'] as string)),
  };
  await Promise.race([
    waitFor(
      () => logs.some((l) => l.event === 'supervisor-started'),
      timeoutMs,
      `supervisor ${member.index} start`,
    ),
    exit.then(({ code, signal }) => {
      throw new Error(
        `supervisor ${member.index} exited (${code ?? signal}) before starting: ${JSON.stringify(logs.slice(-5))} ${stderr.join('').slice(-2000)}`,
      );
    }),
  ]);
  return proc;
}

/**
 * A few lines on where each spawned supervisor stands (exit, highest decided height, its last
 * log events), for the message of a failed wait.
 */
export function clusterState(procs: readonly SupervisorProcess[]): string {
  const brief = (l: LogLine) => {
    const { t: _t, event, ...rest } = l;
    return `${event}${Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest).slice(0, 160)}` : ''}`;
  };
  return procs
    .map((p) => {
      const exited = p.child.exitCode ?? p.child.signalCode;
      const decided = p.decided();
      const top = decided.length === 0 ? 'none' : String(maxOf(decided));
      const recent = p.logs
        .filter((l) => l.event !== 'wal' && l.event !== 'signed')
        .slice(-6)
        .map(brief);
      return `  supervisor ${p.member.index}${exited === null ? '' : ` exited ${exited}`}, decided ${top}: ${recent.join(' | ')}`;
    })
    .join('\n');
}

/**
 * Writes every spawned process's JSON log and stderr under `.tmp/test-logs/<label>/` so a failed
 * multi-process run can be read afterwards (CI keeps only the tail of the console).
 */
export function dumpLogs(label: string, procs: readonly SupervisorProcess[]): string {
  const out = join(root, '.tmp', 'test-logs', label);
  mkdirSync(out, { recursive: true });
  procs.forEach((p, i) => {
    const lines = p.logs.map((l) => JSON.stringify(l)).join('\n');
    writeFileSync(join(out, `supervisor-${p.member.index}-${i}.jsonl`), `${lines}\n`);
    writeFileSync(join(out, `supervisor-${p.member.index}-${i}.stderr`), p.stderr.join(''));
  });
  return out;
}

/** Sends `signal` to a spawned supervisor and waits (bounded) for it to exit. */
export async function stopSupervisor(
  p: SupervisorProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 15_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
  const r = await Promise.race([p.exit, timer]);
  if (r === 'timeout') {
    p.child.kill('SIGKILL');
    return p.exit;
  }
  return r;
}

export interface FinalizedChain {
  tip: bigint;
  hashes: string[];
  blocks: Block[];
  certificates: FinalityCertificate[];
}

/** Reads a stopped supervisor's chain store: block hash and certificate per height. */
export async function readChain(member: ClusterMember, chainId: string): Promise<FinalizedChain> {
  const store = await ChainStore.open(join(member.dataDir, 'chain'));
  try {
    const hashes: string[] = [];
    const blocks: Block[] = [];
    const certificates: FinalityCertificate[] = [];
    for (let h = 0n; ; h++) {
      const b = await store.getBlock(h);
      if (!b) break;
      blocks.push(b);
      hashes.push(bytesToHex(blockHash(chainId, b.header)));
      if (h > 0n) {
        const c = await store.getCertificate(h);
        if (!c) throw new Error(`member ${member.index}: no certificate at ${h}`);
        certificates.push(c);
      }
    }
    return { tip: BigInt(hashes.length - 1), hashes, blocks, certificates };
  } finally {
    await store.close();
  }
}

/**
 * The simplest honest miner for the fast verifier: asks a supervisor for a template, grinds a
 * nonce that meets the target and sends the candidate (a header-only proof bundle) to every
 * supervisor. Runs until stopped; never two candidates for one height from one template.
 */
export class HeaderMiner {
  readonly node: PouwNode;
  readonly cluster: Cluster;
  #stopped = false;
  #loop: Promise<void> | null = null;
  submitted = 0;
  accepted = 0;
  errors: Record<string, number> = {};
  /** Height → wall time the candidate was first accepted (for commit latency). */
  readonly submittedAt = new Map<bigint, number>();

  private constructor(node: PouwNode, cluster: Cluster) {
    this.node = node;
    this.cluster = cluster;
  }

  static async start(cluster: Cluster): Promise<HeaderMiner> {
    const node = await createNode({ nodeKeySeed: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'] });
    const m = new HeaderMiner(node, cluster);
    m.#loop = m.#run();
    return m;
  }

  #bump(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  async #run(): Promise<void> {
    const chainId = this.cluster.devnet.genesis.chainId;
    const payout = new Uint8Array(20).fill(7);
    let lastHeight = -1n;
    let source = 0;
    while (!this.#stopped) {
      const members = this.cluster.members;
      const from = members[source++ % members.length]!;
      let template: Block;
      try {
        const body = await this.node.request(
          addrOf(from),
          'template',
          TemplateRequest.encode({ payout, taskId: new Uint8Array(32), extra: new Uint8Array(0) }),
          { timeoutMs: 3000 },
        );
        template = TemplateResponse.decode(body).template;
      } catch (e) {
        this.#bump(isPouwError(e) ? e.code : 'ERROR');
        await sleep(100);
        continue;
      }
      if (template.header.height <= lastHeight) {
        await sleep(20);
        continue;
      }
      const mined = grindNonce(chainId, template, 5_000_000, BigInt(Math.floor(Math.random() * 2 ** 40)));
      if (!mined) continue;
      const candidate = {
        block: mined,
        lucky: ItRes.defaultValue(),
        znbSource: ItRes.defaultValue(),
        segment: [],
      };
      const body = CandidateRequest.encode({ candidate, blockHash: new Uint8Array(0) });
      this.submitted++;
      const results = await Promise.allSettled(
        members.map((m) => this.node.request(addrOf(m), 'candidate', body, { timeoutMs: 5000 })),
      );
      let ok = false;
      for (const r of results) {
        if (r.status === 'fulfilled') ok = true;
        else this.#bump(isPouwError(r.reason) ? r.reason.code : 'ERROR');
      }
      if (ok) {
        this.accepted++;
        lastHeight = template.header.height;
        if (!this.submittedAt.has(lastHeight)) this.submittedAt.set(lastHeight, Date.now());
      } else {
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await this.node.stop();
  }
}

/** Asks a member for its status (tip height) over the status protocol. */
export async function statusOf(node: PouwNode, member: ClusterMember): Promise<StatusResponse> {
  const body = await node.request(
    addrOf(member),
    'status',
    StatusRequest.encode({ chainId: new Uint8Array(0) }),
    {
      timeoutMs: 3000,
    },
  );
  return StatusResponse.decode(body);
}

/** Fetches a finalized block with its certificate over the block protocol. */
export async function blockOf(
  node: PouwNode,
  member: ClusterMember,
  height: bigint,
): Promise<FinalizedBlock> {
  const body = await node.request(
    addrOf(member),
    'block',
    BlockRequest.encode({ height, hash: new Uint8Array(0) }),
    {
      timeoutMs: 3000,
    },
  );
  return FinalizedBlock.decode(body);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Transfer load for the benchmark: splits the faucet's genesis output into `fanout` outputs, then
 * keeps spending every confirmed output again (one input, one output to the faucet, a fee), sending
 * each transaction to every supervisor over the submitTx protocol. Outputs come back to the pool
 * once a proof over the proof protocol shows them unspent at the finalized tip.
 */
export class TxLoad {
  readonly #node: PouwNode;
  readonly #cluster: Cluster;
  #stopped = false;
  #loop: Promise<void> | null = null;
  submitted = 0;
  rejected: Record<string, number> = {};
  lastError = '';

  private constructor(node: PouwNode, cluster: Cluster) {
    this.#node = node;
    this.#cluster = cluster;
  }

  static async start(cluster: Cluster, node: PouwNode, fanout = 200): Promise<TxLoad> {
    const load = new TxLoad(node, cluster);
    load.#loop = load.#run(fanout);
    return load;
  }

  async #submit(tx: Transaction): Promise<void> {
    const body = SubmitTxRequest.encode(tx);
    const rs = await Promise.allSettled(
      this.#cluster.members.map((m) => this.#node.request(addrOf(m), 'submitTx', body, { timeoutMs: 5000 })),
    );
    this.submitted++;
    for (const r of rs) {
      if (r.status === 'rejected') {
        const code = isPouwError(r.reason) ? String(r.reason.detail['remoteCode'] ?? r.reason.code) : 'ERROR';
        this.rejected[code] = (this.rejected[code] ?? 0) + 1;
        this.lastError = String(r.reason);
      }
    }
  }

  /** Outpoints among `ops` that are unspent at a member's finalized tip. */
  async #confirmed(ops: OutPoint[]): Promise<Set<string>> {
    const out = new Set<string>();
    const member = this.#cluster.members[0]!;
    for (let i = 0; i < ops.length; i += MAX_PROOF_OUTPOINTS) {
      const body = await this.#node.request(
        addrOf(member),
        'proof',
        ProofRequest.encode({ outpoints: ops.slice(i, i + MAX_PROOF_OUTPOINTS), address: new Uint8Array(0) }),
        { timeoutMs: 5000 },
      );
      for (const e of ProofResponse.decode(body).entries) if (e.out) out.add(outpointKey(e.outpoint));
    }
    return out;
  }

  async #run(fanout: number): Promise<void> {
    const { genesis, faucet } = this.#cluster.devnet;
    const chainId = genesis.chainId;
    const key = (await walletFromMnemonic(faucet.mnemonic)).primary;
    const owner = decodeAddress(key.address);
    const signer = { secretKey: key.secretKey, publicKey: key.publicKey };
    const sign = async (inputs: OutPoint[], outputs: TxOut[]): Promise<Transaction> => {
      const body = {
        version: TX_VERSION,
        kind: TxKind.TRANSFER,
        inputs,
        outputs,
        payload: new Uint8Array(0),
      };
      const id = txId(chainId, body);
      return {
        body,
        witnesses: [
          { publicKey: signer.publicKey, signature: await nodeCryptoEd25519.sign(signer.secretKey, id) },
        ],
        committeeSignature: new Uint8Array(0),
      };
    };
    const output = (value: bigint): TxOut => ({
      value,
      owner,
      lockKind: 0,
      lockUntil: 0n,
      lockTask: new Uint8Array(32),
    });
    const coinbase = genesisBlock(genesis, new StateTree()).transactions[0]!;
    const total = genesis.allocations[0]!.value;
    const each = 1_000_000_000n;
    const split = await sign(
      [{ txId: txId(chainId, coinbase.body), index: 0 }],
      [
        ...Array.from({ length: fanout }, () => output(each)),
        output(total - each * BigInt(fanout) - 100_000n),
      ],
    );
    const splitId = txId(chainId, split.body);
    const pending = new Map<string, { op: OutPoint; value: bigint }>();
    for (let i = 0; i < fanout; i++)
      pending.set(outpointKey({ txId: splitId, index: i }), { op: { txId: splitId, index: i }, value: each });
    await this.#submit(split);
    const fee = 1_000n;
    while (!this.#stopped) {
      let confirmed: Set<string>;
      try {
        confirmed = await this.#confirmed([...pending.values()].map((p) => p.op));
      } catch {
        await sleep(200);
        continue;
      }
      const ready = [...pending.entries()].filter(([k]) => confirmed.has(k));
      // Spend every confirmed output again, 50 submissions in flight at a time.
      for (let i = 0; i < ready.length && !this.#stopped; i += 50) {
        const txs = await Promise.all(
          ready.slice(i, i + 50).map(async ([k, p]) => {
            pending.delete(k);
            const tx = await sign([p.op], [output(p.value - fee)]);
            const id = txId(chainId, tx.body);
            pending.set(outpointKey({ txId: id, index: 0 }), {
              op: { txId: id, index: 0 },
              value: p.value - fee,
            });
            return tx;
          }),
        );
        await Promise.all(txs.map((tx) => this.#submit(tx)));
      }
      await sleep(ready.length === 0 ? 200 : 50);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/** The largest of some bigints (0n for none). */
export function maxOf(xs: Iterable<bigint>): bigint {
  let m = 0n;
  for (const x of xs) if (x > m) m = x;
  return m;
}

/** The smallest of some bigints. */
export function minOf(xs: Iterable<bigint>): bigint {
  let m: bigint | undefined;
  for (const x of xs) if (m === undefined || x < m) m = x;
  if (m === undefined) throw new RangeError('minOf: no values');
  return m;
}

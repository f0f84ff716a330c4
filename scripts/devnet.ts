/**
 * Devnet generator: a committee of supervisors that runs the Joint-Feldman DKG among itself, a
 * faucet wallet, and the genesis file that records the group key, public shares and allocations.
 * The genesis is `genesisFromDkg(template, outcome)`: a pure function of the template (chain id,
 * time, parameters, allocations) and the DKG's public outcome, so it does not matter who computes it.
 * Two ways to run the DKG:
 *   local   (default) all n parties in this process (runLocalDkg): fast, for tests and `npm start`;
 *   network n processes (supervisor-node/dkg/cli.ts) that run the DKG over libp2p on 127.0.0.1,
 *           each deriving its genesis; the files must be byte-identical, then one becomes genesis.json.
 * Files land in the data directory:
 *   genesis.json                    the chain's genesis (shared/chain/genesis.schema.json)
 *   supervisors/supervisor-<i>.json one supervisor's node key seed and secret BLS share (mode 0600)
 *   faucet.json                     the faucet wallet's mnemonic and address (mode 0600)
 * `node --import tsx scripts/devnet.ts [--data-dir DIR] [--supervisors N] [--dkg local|network]`;
 * idempotent: an existing genesis is kept.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { bytesToHex, hexToBytes, utf8 } from '../shared/bytes.ts';
import { DEVNET_PARAMS, type Genesis, genesisToJson, parseGenesis } from '../shared/chain/genesis.ts';
import type { ChainParams } from '../shared/chain/types.ts';
import { runLocalDkg } from '../shared/crypto/dkg.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { generateMnemonic, walletFromMnemonic } from '../shared/crypto/mnemonic.ts';
import type { DkgCliConfig, DkgResultFile } from '../supervisor-node/dkg/cli.ts';
import {
  type GenesisTemplate,
  genesisFromDkg,
  genesisTemplateToJson,
} from '../supervisor-node/dkg/genesis.ts';

export interface SupervisorKeyFile {
  index: number;
  /** Ed25519 seed of the node key (libp2p identity, message signing). */
  nodeKeySeed: string;
  /** This supervisor's secret share of the committee's BLS key (32 bytes, big-endian). */
  blsSecretShare: string;
  groupPublicKey: string;
  threshold: number;
}

export interface Devnet {
  dir: string;
  genesis: Genesis;
  supervisors: SupervisorKeyFile[];
  faucet: { mnemonic: string; address: string };
  /** Set when this call ran the DKG in network mode. */
  network?: NetworkDkgReport;
}

export interface DevnetOptions {
  /** Where the committee's DKG runs (default 'local'). */
  dkg?: 'local' | 'network';
  /** Network mode: bound on the whole run, processes included (default 120 s). */
  timeoutMs?: number;
  /** Chain parameters over DEVNET_PARAMS (they are in the genesis every DKG party derives). */
  params?: Partial<ChainParams>;
}

/** What a network-mode run reports besides the files (for tests and the log line). */
export interface NetworkDkgReport {
  pids: number[];
  transcriptHash: string;
  elapsedMs: number;
}

interface CommitteeKeys {
  results: { index: number; blsSecretShare: string }[];
  outcome: { committee: Uint8Array[]; t: number; groupPublicKey: Uint8Array; publicShares: Uint8Array[] };
  genesis: Genesis;
  network?: NetworkDkgReport;
}

export async function ensureDevnet(
  dir: string,
  supervisors = 4,
  chainId = 'pouw-devnet',
  options: DevnetOptions = {},
): Promise<Devnet> {
  const genesisPath = join(dir, 'genesis.json');
  if (existsSync(genesisPath)) return loadDevnet(dir);
  if (supervisors < 4 || (supervisors - 1) % 3 !== 0)
    throw new Error('supervisors must be 3f + 1 with f ≥ 1');
  const f = (supervisors - 1) / 3;
  const t = 2 * f + 1;
  mkdirSync(join(dir, 'supervisors'), { recursive: true });
  const seeds = Array.from({ length: supervisors }, () => new Uint8Array(randomBytes(32)));
  const nodeKeys = await Promise.all(seeds.map((s) => nobleEd25519.getPublicKey(s)));
  const mnemonic = generateMnemonic();
  const wallet = await walletFromMnemonic(mnemonic);
  const template: GenesisTemplate = {
    chainId,
    time: BigInt(Date.now()),
    params: { ...DEVNET_PARAMS, ...options.params },
    allocations: [{ address: wallet.primary.address, value: 21_000_000_0000_0000n }],
  };
  const sessionId = `${chainId}/committee/0/${template.time}`;
  const keys =
    options.dkg === 'network'
      ? await networkCommittee(dir, template, seeds, nodeKeys, t, sessionId, options.timeoutMs ?? 120_000)
      : localCommittee(template, nodeKeys, t, sessionId);
  for (const r of keys.results) {
    const k: SupervisorKeyFile = {
      index: r.index,
      nodeKeySeed: bytesToHex(seeds[r.index - 1]!),
      blsSecretShare: r.blsSecretShare,
      groupPublicKey: bytesToHex(keys.outcome.groupPublicKey),
      threshold: t,
    };
    writeFileSync(join(dir, 'supervisors', `supervisor-${k.index}.json`), `${JSON.stringify(k, null, 2)}\n`, {
      mode: 0o600,
    });
  }
  writeFileSync(
    join(dir, 'faucet.json'),
    `${JSON.stringify({ mnemonic, address: wallet.primary.address }, null, 2)}\n`,
    { mode: 0o600 },
  );
  writeFileSync(genesisPath, `${JSON.stringify(genesisToJson(keys.genesis), null, 2)}\n`);
  const devnet = loadDevnet(dir);
  return keys.network ? { ...devnet, network: keys.network } : devnet;
}

function localCommittee(
  template: GenesisTemplate,
  nodeKeys: Uint8Array[],
  t: number,
  sessionId: string,
): CommitteeKeys {
  const results = runLocalDkg(nodeKeys.length, t, { sessionId: utf8(sessionId) });
  const first = results[0]!;
  if (results.some((r) => bytesToHex(r.groupPublicKey) !== bytesToHex(first.groupPublicKey))) {
    throw new Error('DKG parties disagree on the group key');
  }
  const outcome = {
    committee: nodeKeys,
    t,
    groupPublicKey: first.groupPublicKey,
    publicShares: first.publicShares,
  };
  return {
    results: results.map((r) => ({ index: r.index, blsSecretShare: bytesToHex(r.secretShare.secretKey) })),
    outcome,
    genesis: genesisFromDkg(template, outcome),
  };
}

/** Ports free on `host` a moment ago, all held at once so they are distinct. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, host, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * n DKG processes on 127.0.0.1; each writes its result and genesis. Children that outlive
 * `timeoutMs` are killed (by their PIDs) and the run fails; the working files stay in `dkg/` then.
 */
async function networkCommittee(
  dir: string,
  template: GenesisTemplate,
  seeds: Uint8Array[],
  nodeKeys: Uint8Array[],
  t: number,
  sessionId: string,
  timeoutMs: number,
): Promise<CommitteeKeys> {
  const work = join(dir, 'dkg');
  mkdirSync(work, { recursive: true, mode: 0o700 });
  const ports = await freePorts(seeds.length);
  const committee = nodeKeys.map((k, i) => ({
    nodeKey: bytesToHex(k),
    addrs: [`/ip4/127.0.0.1/tcp/${ports[i]}`],
  }));
  const cli = join(import.meta.dirname, '..', 'supervisor-node', 'dkg', 'cli.ts');
  const started = performance.now();
  const children: ChildProcess[] = [];
  try {
    const exits = seeds.map((seed, k) => {
      const index = k + 1;
      const config: DkgCliConfig = {
        chainId: template.chainId,
        index,
        nodeKeySeed: bytesToHex(seed),
        committee,
        threshold: t,
        sessionId,
        listen: committee[k]!.addrs,
        genesisTemplate: genesisTemplateToJson(template),
        resultPath: join(work, `result-${index}.json`),
        genesisPath: join(work, `genesis-${index}.json`),
      };
      const configPath = join(work, `config-${index}.json`);
      writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      const logFd = openSync(join(work, `log-${index}.txt`), 'w', 0o600);
      const child = spawn(process.execPath, ['--import', 'tsx', cli, '--config', configPath], {
        cwd: join(import.meta.dirname, '..'),
        stdio: ['ignore', logFd, logFd],
      });
      closeSync(logFd);
      children.push(child);
      return new Promise<number>((resolve) => {
        child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
        child.once('error', () => resolve(127));
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const codes = await Promise.race([Promise.all(exits), deadline]);
    clearTimeout(timer);
    if (codes === 'timeout')
      throw new Error(`network DKG did not finish in ${timeoutMs} ms (logs in ${work})`);
    const failed = codes.map((c, k) => [k + 1, c] as const).filter(([, c]) => c !== 0);
    if (failed.length > 0)
      throw new Error(`DKG processes failed: ${JSON.stringify(failed)} (logs in ${work})`);
  } finally {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  const files = seeds.map(
    (_, k) => JSON.parse(readFileSync(join(work, `result-${k + 1}.json`), 'utf8')) as DkgResultFile,
  );
  const genesisTexts = seeds.map((_, k) => readFileSync(join(work, `genesis-${k + 1}.json`), 'utf8'));
  if (new Set(genesisTexts).size !== 1)
    throw new Error(`the DKG processes derived different genesis files (${work})`);
  if (new Set(files.map((f) => f.transcriptHash)).size !== 1) throw new Error('the DKG processes disagree');
  const genesis = parseGenesis(JSON.parse(genesisTexts[0]!));
  const first = files[0]!;
  rmSync(work, { recursive: true, force: true });
  return {
    results: files.map((f) => ({ index: f.index, blsSecretShare: f.blsSecretShare })),
    outcome: {
      committee: nodeKeys,
      t,
      groupPublicKey: hexToBytes(first.groupPublicKey),
      publicShares: first.publicShares.map(hexToBytes),
    },
    genesis,
    network: {
      pids: files.map((f) => f.pid),
      transcriptHash: first.transcriptHash,
      elapsedMs: Math.round(performance.now() - started),
    },
  };
}

export function loadDevnet(dir: string): Devnet {
  const genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')));
  const supervisors = genesis.committee.members.map(
    (_, i) =>
      JSON.parse(
        readFileSync(join(dir, 'supervisors', `supervisor-${i + 1}.json`), 'utf8'),
      ) as SupervisorKeyFile,
  );
  const faucet = JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8')) as Devnet['faucet'];
  return { dir, genesis, supervisors, faucet };
}

export function shareOf(k: SupervisorKeyFile): { index: number; secretKey: Uint8Array } {
  return { index: k.index, secretKey: hexToBytes(k.blsSecretShare) };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const opt = (n: string) => {
    const i = args.indexOf(`--${n}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const dir = opt('data-dir') ?? join(import.meta.dirname, '..', '.data', 'devnet');
  const mode = opt('dkg') ?? 'local';
  if (mode !== 'local' && mode !== 'network') throw new Error('--dkg must be local or network');
  const devnet = await ensureDevnet(dir, Number(opt('supervisors') ?? 4), 'pouw-devnet', { dkg: mode });
  const report = devnet.network;
  console.log(
    `devnet ${devnet.genesis.chainId} in ${dir}: ${devnet.supervisors.length} supervisors, faucet ${devnet.faucet.address}` +
      (report
        ? `, network DKG in ${report.elapsedMs} ms (transcript ${report.transcriptHash.slice(0, 16)}…)`
        : ''),
  );
}

/**
 * One committee member's DKG as a process:
 *   node --import tsx supervisor-node/dkg/cli.ts --config FILE
 * reads a JSON config (`DkgCliConfig`), starts a bare libp2p node with the member's node key as its
 * identity (TCP, Noise, Yamux, identify: the DKG needs nothing else), runs `runNetworkDkg` with the
 * other members, and writes its result file (mode 0600: it holds the secret share) and, given a
 * genesis template, the genesis it derives. Exit 0 on success; on failure one JSON line with the
 * typed error on stderr and exit 1. SIGTERM/SIGINT abort the run. Logs are JSON lines on stdout.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { identify } from '@libp2p/identify';
import { noise } from '@libp2p/noise';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@libp2p/yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { writeFileDurable } from '../../node-common/durable-file.ts';
import { defaultNodeEd25519 } from '../../node-common/ed25519-node.ts';
import { bytesToHex, hexToBytes, utf8 } from '../../shared/bytes.ts';
import { genesisToJson } from '../../shared/chain/genesis.ts';
import { DkgError, isPouwError } from '../../shared/errors.ts';
import { genesisFromDkg, parseGenesisTemplate } from './genesis.ts';
import { createLibp2pDkgChannel } from './libp2p-channel.ts';
import { type DkgTimeouts, runNetworkDkg } from './run.ts';

export interface DkgCliConfig {
  chainId: string;
  /** This member's committee index (1..n). */
  index: number;
  /** Hex Ed25519 seed of the node key (32 bytes). */
  nodeKeySeed: string;
  /** Every member in index order: hex node key and the addresses to dial it on. */
  committee: { nodeKey: string; addrs: string[] }[];
  threshold: number;
  /** UTF-8 session id, unique per run. */
  sessionId: string;
  /** Multiaddrs this member listens on (e.g. /ip4/127.0.0.1/tcp/40001). */
  listen: string[];
  timeouts?: Partial<DkgTimeouts>;
  /** A genesis file without `committee`; when given, the derived genesis is written to genesisPath. */
  genesisTemplate?: unknown;
  resultPath: string;
  genesisPath?: string;
}

/** What the process writes: the public outcome, its own secret share and how the run went. */
export interface DkgResultFile {
  pid: number;
  chainId: string;
  index: number;
  n: number;
  threshold: number;
  committee: string[];
  qualified: number[];
  disqualified: { dealer: number; reason: string }[];
  groupPublicKey: string;
  publicShares: string[];
  /** This member's secret share x_i (32 bytes hex). */
  blsSecretShare: string;
  transcriptHash: string;
  confirmedBy: number[];
  faults: { party: number; code: string; reason: string }[];
  elapsedMs: number;
}

function bad(message: string): DkgError {
  return new DkgError('DKG_BAD_PARAMETERS', `config: ${message}`, 'REJECT');
}

function hexOf(v: unknown, length: number, what: string): string {
  if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]{${2 * length}}$`).test(v))
    throw bad(`${what} must be ${length} bytes of lowercase hex`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
    throw bad(`${what} must be a list of strings`);
  return v;
}

/** Validates a parsed config file; throws DKG_BAD_PARAMETERS naming the field. */
export function parseDkgCliConfig(json: unknown): DkgCliConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('must be an object');
  const c = json as Record<string, unknown>;
  const allowed = [
    'chainId',
    'index',
    'nodeKeySeed',
    'committee',
    'threshold',
    'sessionId',
    'listen',
    'timeouts',
    'genesisTemplate',
    'resultPath',
    'genesisPath',
  ];
  for (const k of Object.keys(c)) if (!allowed.includes(k)) throw bad(`unknown field ${k}`);
  if (typeof c['chainId'] !== 'string') throw bad('chainId must be a string');
  if (!Array.isArray(c['committee']) || c['committee'].length === 0) throw bad('committee must be a list');
  const committee = c['committee'].map((m, i) => {
    if (typeof m !== 'object' || m === null) throw bad(`committee[${i}] must be an object`);
    const mo = m as Record<string, unknown>;
    return {
      nodeKey: hexOf(mo['nodeKey'], 32, `committee[${i}].nodeKey`),
      addrs: strings(mo['addrs'], `committee[${i}].addrs`),
    };
  });
  const int = (k: string, max: number) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
      throw bad(`${k} must be an integer in [1, ${max}]`);
    return v;
  };
  if (typeof c['sessionId'] !== 'string' || c['sessionId'].length === 0)
    throw bad('sessionId must be a string');
  if (typeof c['resultPath'] !== 'string') throw bad('resultPath must be a path');
  if (c['genesisPath'] !== undefined && typeof c['genesisPath'] !== 'string')
    throw bad('genesisPath must be a path');
  if ((c['genesisTemplate'] === undefined) !== (c['genesisPath'] === undefined))
    throw bad('genesisTemplate and genesisPath go together');
  const timeouts: Partial<DkgTimeouts> = {};
  if (c['timeouts'] !== undefined) {
    const t = c['timeouts'];
    if (typeof t !== 'object' || t === null) throw bad('timeouts must be an object');
    for (const [k, v] of Object.entries(t)) {
      if (!['deal', 'ack', 'reveal', 'confirm', 'linger'].includes(k)) throw bad(`unknown timeout ${k}`);
      if (typeof v !== 'number' || !(v > 0)) throw bad(`timeouts.${k} must be a positive number of ms`);
      timeouts[k as keyof DkgTimeouts] = v;
    }
  }
  const config: DkgCliConfig = {
    chainId: c['chainId'],
    index: int('index', committee.length),
    nodeKeySeed: hexOf(c['nodeKeySeed'], 32, 'nodeKeySeed'),
    committee,
    threshold: int('threshold', committee.length),
    sessionId: c['sessionId'],
    listen: strings(c['listen'], 'listen'),
    timeouts,
    resultPath: c['resultPath'],
  };
  if (c['genesisTemplate'] !== undefined) {
    config.genesisTemplate = c['genesisTemplate'];
    config.genesisPath = c['genesisPath'] as string;
  }
  return config;
}

/** Runs the DKG for one config; writes the result (and genesis) files and returns the result. */
export async function runDkgProcess(
  config: DkgCliConfig,
  options: { signal?: AbortSignal; log?: (event: string, fields?: Record<string, unknown>) => void } = {},
): Promise<DkgResultFile> {
  const template =
    config.genesisTemplate === undefined ? undefined : parseGenesisTemplate(config.genesisTemplate);
  if (template !== undefined && template.chainId !== config.chainId)
    throw bad('genesisTemplate.chainId differs from chainId');
  const seed = hexToBytes(config.nodeKeySeed);
  const committee = config.committee.map((m) => hexToBytes(m.nodeKey));
  const started = performance.now();
  const libp2p = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', seed),
    addresses: { listen: config.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  });
  try {
    const channel = await createLibp2pDkgChannel({
      libp2p,
      committee,
      self: config.index,
      addresses: new Map(config.committee.map((m, k) => [k + 1, m.addrs.map((a) => multiaddr(a))])),
      ...(options.log ? { log: options.log } : {}),
    });
    let result: Awaited<ReturnType<typeof runNetworkDkg>>;
    try {
      result = await runNetworkDkg({
        chainId: config.chainId,
        self: { index: config.index, nodeKeySeed: seed },
        committee,
        threshold: config.threshold,
        sessionId: utf8(config.sessionId),
        channel,
        ed25519: await defaultNodeEd25519(),
        ...(config.timeouts ? { timeouts: config.timeouts } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.log ? { log: options.log } : {}),
      });
    } finally {
      await channel.close();
    }
    const file: DkgResultFile = {
      pid: process.pid,
      chainId: config.chainId,
      index: config.index,
      n: result.n,
      threshold: result.t,
      committee: result.committee.map(bytesToHex),
      qualified: result.qualified,
      disqualified: result.disqualified,
      groupPublicKey: bytesToHex(result.groupPublicKey),
      publicShares: result.publicShares.map(bytesToHex),
      blsSecretShare: bytesToHex(result.secretShare.secretKey),
      transcriptHash: bytesToHex(result.transcriptHash),
      confirmedBy: result.confirmedBy,
      faults: result.faults,
      elapsedMs: Math.round(performance.now() - started),
    };
    await writeFileDurable(config.resultPath, `${JSON.stringify(file, null, 2)}\n`);
    if (template !== undefined && config.genesisPath !== undefined) {
      const genesis = genesisFromDkg(template, result);
      writeFileSync(config.genesisPath, `${JSON.stringify(genesisToJson(genesis), null, 2)}\n`);
    }
    return file;
  } finally {
    await libp2p.stop();
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--config');
  const path = at >= 0 ? args[at + 1] : undefined;
  const log = (event: string, fields: Record<string, unknown> = {}) =>
    process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
  const controller = new AbortController();
  process.once('SIGTERM', () => controller.abort());
  process.once('SIGINT', () => controller.abort());
  try {
    if (path === undefined) throw bad('usage: cli.ts --config FILE');
    const config = parseDkgCliConfig(JSON.parse(readFileSync(path, 'utf8')));
    const r = await runDkgProcess(config, { signal: controller.signal, log });
    log('dkg-result', {
      index: r.index,
      qualified: r.qualified,
      transcriptHash: r.transcriptHash,
      ms: r.elapsedMs,
    });
    process.exitCode = 0;
  } catch (e) {
    const error = isPouwError(e)
      ? { name: e.name, code: e.code, message: e.message }
      : { name: 'Error', message: String(e) };
    process.stderr.write(`${JSON.stringify({ event: 'dkg-failed', error })}\n`);
    process.exitCode = 1;
  }
}

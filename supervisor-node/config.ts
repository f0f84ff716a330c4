/**
 * The supervisor's config file (JSON). Every field is checked here, once; a bad one is reported as
 * NET_BAD_CONFIG naming the field (`detail.field`), and nothing starts.
 *
 * {
 *   "dataDir": "…",                      chain store (chain/), write-ahead log (wal/)
 *   "chainId": "pouw-devnet",
 *   "genesisFile": "…/genesis.json",
 *   "keyFile": "…/supervisors/supervisor-1.json",   node key seed and BLS share (scripts/devnet.ts)
 *   "listen": ["/ip4/127.0.0.1/tcp/9101", "/ip4/127.0.0.1/tcp/9201/ws"],
 *   "peers": [{ "peerId": "12D3…", "addrs": ["/ip4/127.0.0.1/tcp/9102"] }],
 *   "timeouts": { "propose": { "baseMs": 3000, "deltaMs": 500 }, "prevote": {…}, "precommit": {…} },
 *   "gossipMs": 1000,
 *   "verifier": "real" | "fast",
 *   "tasks": ["…/task.json"]              tasks this supervisor records and verifies (optional)
 * }
 * Relative paths are taken from the config file's directory.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { assertChainId } from '../shared/codec/domain.ts';
import { DEFAULT_TIMEOUTS, type Step, type TimeoutConfig } from '../shared/consensus/tendermint.ts';
import { NetError } from '../shared/errors.ts';
import type { VerifierKind } from './verifier.ts';

export interface PeerConfig {
  peerId: string;
  addrs: string[];
}

export interface SupervisorConfig {
  dataDir: string;
  chainId: string;
  genesisFile: string;
  keyFile: string;
  listen: string[];
  peers: PeerConfig[];
  timeouts: Record<Step, TimeoutConfig>;
  gossipMs: number;
  verifier: VerifierKind;
  tasks: string[];
}

function bad(field: string, message: string): never {
  throw new NetError('NET_BAD_CONFIG', `config.${field}: ${message}`, 'REJECT', { field });
}

type Json = Record<string, unknown>;

function object(v: unknown, field: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'must be an object');
  return v as Json;
}

function only(o: Json, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(field ? `${field}.${k}` : k, 'unknown field');
}

function string(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) bad(field, 'must be a non-empty string');
  return v;
}

function path(v: unknown, field: string, base: string): string {
  const s = string(v, field);
  return isAbsolute(s) ? s : resolve(base, s);
}

function addr(v: unknown, field: string): string {
  const s = string(v, field);
  try {
    multiaddr(s);
  } catch {
    bad(field, `is not a multiaddr: ${s}`);
  }
  return s;
}

function integer(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    bad(field, `must be an integer in [${min}, ${max}]`);
  return v;
}

const KEYS = [
  'dataDir',
  'chainId',
  'genesisFile',
  'keyFile',
  'listen',
  'peers',
  'timeouts',
  'gossipMs',
  'verifier',
  'tasks',
] as const;

/** Validates a parsed config; relative paths resolve against `base`. */
export function parseConfig(json: unknown, base: string): SupervisorConfig {
  const c = object(json, '(root)');
  only(c, KEYS, '');
  const chainId = string(c['chainId'], 'chainId');
  try {
    assertChainId(chainId);
  } catch (e) {
    bad('chainId', (e as Error).message);
  }
  if (!Array.isArray(c['listen']) || c['listen'].length === 0) bad('listen', 'must be a non-empty array');
  const listen = (c['listen'] as unknown[]).map((a, i) => addr(a, `listen[${i}]`));
  const peersIn = c['peers'] ?? [];
  if (!Array.isArray(peersIn)) bad('peers', 'must be an array');
  const peers = peersIn.map((p, i) => {
    const o = object(p, `peers[${i}]`);
    only(o, ['peerId', 'addrs'], `peers[${i}]`);
    const peerId = string(o['peerId'], `peers[${i}].peerId`);
    try {
      peerIdFromString(peerId);
    } catch {
      bad(`peers[${i}].peerId`, 'is not a peer id');
    }
    if (!Array.isArray(o['addrs'])) bad(`peers[${i}].addrs`, 'must be an array');
    return { peerId, addrs: (o['addrs'] as unknown[]).map((a, j) => addr(a, `peers[${i}].addrs[${j}]`)) };
  });
  const timeouts = { ...DEFAULT_TIMEOUTS };
  if (c['timeouts'] !== undefined) {
    const t = object(c['timeouts'], 'timeouts');
    only(t, ['propose', 'prevote', 'precommit'], 'timeouts');
    for (const step of ['propose', 'prevote', 'precommit'] as const) {
      if (t[step] === undefined) continue;
      const s = object(t[step], `timeouts.${step}`);
      only(s, ['baseMs', 'deltaMs'], `timeouts.${step}`);
      timeouts[step] = {
        baseMs: integer(s['baseMs'], `timeouts.${step}.baseMs`, 1, 600_000),
        deltaMs: integer(s['deltaMs'], `timeouts.${step}.deltaMs`, 0, 600_000),
      };
    }
  }
  const verifier = c['verifier'] ?? 'real';
  if (verifier !== 'real' && verifier !== 'fast') bad('verifier', 'must be "real" or "fast"');
  const tasksIn = c['tasks'] ?? [];
  if (!Array.isArray(tasksIn)) bad('tasks', 'must be an array');
  return {
    dataDir: path(c['dataDir'], 'dataDir', base),
    chainId,
    genesisFile: path(c['genesisFile'], 'genesisFile', base),
    keyFile: path(c['keyFile'], 'keyFile', base),
    listen,
    peers,
    timeouts,
    gossipMs: c['gossipMs'] === undefined ? 1000 : integer(c['gossipMs'], 'gossipMs', 10, 600_000),
    verifier,
    tasks: tasksIn.map((t, i) => path(t, `tasks[${i}]`, base)),
  };
}

/** Reads and validates a config file. */
export function loadConfig(file: string): SupervisorConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    bad('(file)', `cannot read ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    bad('(file)', `is not JSON: ${(e as Error).message}`);
  }
  return parseConfig(json, dirname(resolve(file)));
}

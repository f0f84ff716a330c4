/**
 * The relay's configuration: a JSON file (every field optional, defaults below and in README.md)
 * and command-line flags that override it. Parsing is strict: an unknown key, a wrong type or a
 * value out of range is a `RelayError('RELAY_CONFIG_INVALID')` whose `detail.field` names the field
 * (`relay.circuitDataBytes`, `--http-port`), and nothing starts.
 */
import { readFileSync } from 'node:fs';
import { multiaddr } from '@multiformats/multiaddr';
import { MAX_GOSSIP_BYTES } from '../shared/net/protocols.ts';
import { RelayError } from './errors.ts';
import type { RateLimits } from './limits.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface RelayConfig {
  /** Holds the node key (`node-key`), so the peer id survives restarts. */
  dataDir: string;
  /** libp2p listen multiaddrs: TCP and/or WebSockets (`/tcp/N/ws`). Port 0 picks a free port. */
  listen: string[];
  /** Multiaddrs to announce instead of the listen addresses (a public wss address behind a proxy). */
  announce: string[];
  /** The metrics and health endpoint (plain HTTP, its own port). */
  http: { host: string; port: number };
  /** Follow gossip topics of this chain only; null follows any chain id. */
  chainId: string | null;
  connections: {
    /** Inbound connections held at once; the next one is refused. */
    max: number;
    /** Inbound connections from one IP address. */
    perIp: number;
    /** Connections of one peer id (a peer may hold a TCP and a WebSocket connection). */
    perPeer: number;
    /** New inbound connections per second from one IP address. */
    inboundPerSecondPerIp: number;
    /** Connections still in their handshake. */
    maxPendingUpgrades: number;
    /** Yamux streams a peer may hold open on one connection. */
    streamsPerConnection: number;
  };
  relay: {
    /** Reservations held at once (one per peer id: a refresh replaces the old one). */
    maxReservations: number;
    /** Reservations held by peers behind one IP address. */
    reservationsPerIp: number;
    /** How long a reservation lasts before the client must refresh it. */
    reservationTtlMs: number;
    /** Lifetime of one relayed connection; the circuit is reset after it. */
    circuitDurationMs: number;
    /** Bytes one relayed connection may carry (both directions together). */
    circuitDataBytes: number;
    /** Relayed connections one peer takes part in at once (as source or destination). */
    circuitsPerPeer: number;
    /** Relayed connections the relay carries at once. */
    maxCircuits: number;
    /** A hop request must complete within this time. */
    hopTimeoutMs: number;
  };
  rateLimits: RateLimits;
  gossip: {
    /** Run gossipsub as a hub for the network's topics. */
    enabled: boolean;
    /** Topics followed at once (topics appear as peers subscribe to them). */
    maxTopics: number;
    /** Largest message forwarded (at most MAX_GOSSIP_BYTES); larger ones are dropped with a strike. */
    maxMessageBytes: number;
  };
  logLevel: LogLevel;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The wire carries the circuit duration as a uint32. */
const MAX_UINT32 = 2 ** 32 - 1;

/**
 * Defaults sized for training traffic (DESIGN §4.9). A miner's IT_RES is tens of KiB typically and
 * MAX_GOSSIP_BYTES at the codec cap, several per second: the stock 128 KiB / 2 min circuit limit is
 * spent in under a second, so a circuit here may carry 1 GiB for an hour (about 290 KiB/s for the
 * whole hour), and a peer takes part in at most 16 circuits (its task group plus signalling).
 */
export const DEFAULT_CONFIG: RelayConfig = {
  dataDir: '.data/relay',
  listen: ['/ip4/127.0.0.1/tcp/4001', '/ip4/127.0.0.1/tcp/4002/ws'],
  announce: [],
  http: { host: '127.0.0.1', port: 9464 },
  chainId: null,
  connections: {
    max: 1024,
    perIp: 64,
    perPeer: 4,
    inboundPerSecondPerIp: 20,
    maxPendingUpgrades: 64,
    streamsPerConnection: 256,
  },
  relay: {
    maxReservations: 512,
    reservationsPerIp: 32,
    reservationTtlMs: 2 * 60 * 60 * 1000,
    circuitDurationMs: 60 * 60 * 1000,
    circuitDataBytes: GiB,
    circuitsPerPeer: 16,
    maxCircuits: 2048,
    hopTimeoutMs: 30_000,
  },
  rateLimits: {
    streamsPerSecond: 20,
    streamBurst: 100,
    gossipMessagesPerSecond: 50,
    gossipMessageBurst: 200,
    gossipBytesPerSecond: 8 * MiB,
    gossipBytesBurst: 2 * MAX_GOSSIP_BYTES,
    strikesBeforeDisconnect: 50,
    strikeDecayPerSecond: 1,
    banMs: 60_000,
  },
  gossip: { enabled: true, maxTopics: 256, maxMessageBytes: MAX_GOSSIP_BYTES },
  logLevel: 'info',
};

// ---------------------------------------------------------------------------------------------
// Field parsers

type Leaf<T> = (value: unknown, field: string) => T;
type Spec<T> = {
  [K in keyof T]: T[K] extends readonly unknown[] | string | number | boolean | null
    ? Leaf<T[K]>
    : Spec<T[K]>;
};

function invalid(field: string, message: string, value: unknown): RelayError {
  return new RelayError('RELAY_CONFIG_INVALID', `${field}: ${message}`, 'REJECT', { field, value });
}

function int(min: number, max: number): Leaf<number> {
  return (v, field) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(field, 'expected an integer', v);
    if (v < min || v > max) throw invalid(field, `expected ${min}..${max}`, v);
    return v;
  };
}

function num(min: number, max: number): Leaf<number> {
  return (v, field) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(field, 'expected a number', v);
    if (v < min || v > max) throw invalid(field, `expected ${min}..${max}`, v);
    return v;
  };
}

function str(): Leaf<string> {
  return (v, field) => {
    if (typeof v !== 'string' || v.length === 0) throw invalid(field, 'expected a non-empty string', v);
    return v;
  };
}

function bool(): Leaf<boolean> {
  return (v, field) => {
    if (typeof v !== 'boolean') throw invalid(field, 'expected true or false', v);
    return v;
  };
}

function oneOf<T extends string>(values: readonly T[]): Leaf<T> {
  return (v, field) => {
    if (!values.includes(v as T)) throw invalid(field, `expected one of ${values.join(', ')}`, v);
    return v as T;
  };
}

const CHAIN_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

function chainIdOrNull(): Leaf<string | null> {
  return (v, field) => {
    if (v === null) return null;
    if (typeof v !== 'string' || !CHAIN_ID.test(v)) throw invalid(field, 'expected a chain id or null', v);
    return v;
  };
}

/** TCP or WebSocket multiaddrs: the transports this relay runs. */
function multiaddrs(minCount: number): Leaf<string[]> {
  return (v, field) => {
    if (!Array.isArray(v)) throw invalid(field, 'expected an array of multiaddrs', v);
    if (v.length < minCount) throw invalid(field, `expected at least ${minCount} multiaddr(s)`, v);
    return v.map((a, i) => {
      const f = `${field}[${i}]`;
      if (typeof a !== 'string') throw invalid(f, 'expected a multiaddr string', a);
      let names: string[];
      try {
        names = multiaddr(a)
          .getComponents()
          .map((c) => c.name);
      } catch {
        throw invalid(f, 'not a multiaddr', a);
      }
      if (!names.includes('tcp')) throw invalid(f, 'expected a /tcp or /tcp/.../ws address', a);
      return a;
    });
  };
}

const SPEC: Spec<RelayConfig> = {
  dataDir: str(),
  listen: multiaddrs(1),
  announce: multiaddrs(0),
  http: { host: str(), port: int(0, 65535) },
  chainId: chainIdOrNull(),
  connections: {
    max: int(1, 1_000_000),
    perIp: int(1, 1_000_000),
    perPeer: int(1, 64),
    inboundPerSecondPerIp: int(1, 1_000_000),
    maxPendingUpgrades: int(1, 100_000),
    streamsPerConnection: int(8, 100_000),
  },
  relay: {
    maxReservations: int(0, 1_000_000),
    reservationsPerIp: int(1, 1_000_000),
    reservationTtlMs: int(1000, 7 * 24 * 60 * 60 * 1000),
    circuitDurationMs: int(1000, MAX_UINT32),
    circuitDataBytes: int(1024, Number.MAX_SAFE_INTEGER),
    circuitsPerPeer: int(1, 10_000),
    maxCircuits: int(1, 1_000_000),
    hopTimeoutMs: int(100, 600_000),
  },
  rateLimits: {
    streamsPerSecond: num(0.01, 1_000_000),
    streamBurst: int(1, 1_000_000),
    gossipMessagesPerSecond: num(0.01, 1_000_000),
    gossipMessageBurst: int(1, 1_000_000),
    gossipBytesPerSecond: num(1, Number.MAX_SAFE_INTEGER),
    // At least one largest message (checked against gossip.maxMessageBytes below).
    gossipBytesBurst: int(1024, Number.MAX_SAFE_INTEGER),
    strikesBeforeDisconnect: int(1, 1_000_000),
    strikeDecayPerSecond: num(0, 1_000_000),
    banMs: int(0, 7 * 24 * 60 * 60 * 1000),
  },
  gossip: { enabled: bool(), maxTopics: int(1, 100_000), maxMessageBytes: int(1024, MAX_GOSSIP_BYTES) },
  logLevel: oneOf(['debug', 'info', 'warn', 'error'] as const),
};

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function parseWith<T>(spec: Spec<T>, defaults: T, input: unknown, prefix: string): T {
  if (!isRecord(input)) throw invalid(prefix.slice(0, -1) || '(root)', 'expected an object', input);
  const specRecord = spec as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(specRecord, key)) throw invalid(prefix + key, 'unknown field', input[key]);
  }
  const out: Record<string, unknown> = {};
  for (const [key, sub] of Object.entries(specRecord)) {
    const field = prefix + key;
    const fallback = (defaults as Record<string, unknown>)[key];
    if (!Object.hasOwn(input, key)) {
      out[key] = structuredClone(fallback);
    } else if (typeof sub === 'function') {
      out[key] = (sub as Leaf<unknown>)(input[key], field);
    } else {
      out[key] = parseWith(sub as Spec<unknown>, fallback, input[key], `${field}.`);
    }
  }
  return out as T;
}

/** Validates a parsed JSON value; missing fields take their defaults. */
export function parseConfig(input: unknown): RelayConfig {
  const config = parseWith(SPEC, DEFAULT_CONFIG, input, '');
  // Below one largest message, a legal message could never pass the byte bucket.
  if (config.rateLimits.gossipBytesBurst < config.gossip.maxMessageBytes) {
    throw invalid(
      'rateLimits.gossipBytesBurst',
      `must be at least gossip.maxMessageBytes (${config.gossip.maxMessageBytes})`,
      config.rateLimits.gossipBytesBurst,
    );
  }
  return config;
}

export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RelayError(
      'RELAY_CONFIG_UNREADABLE',
      `cannot read ${path}: ${(e as Error).message}`,
      'REJECT',
      {
        path,
      },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new RelayError(
      'RELAY_CONFIG_UNREADABLE',
      `${path} is not JSON: ${(e as Error).message}`,
      'REJECT',
      {
        path,
      },
    );
  }
}

/** Flags and the config field each sets. Repeated list flags collect; a list flag replaces the file's list. */
const FLAGS = {
  '--data-dir': 'dataDir',
  '--listen': 'listen',
  '--announce': 'announce',
  '--http-host': 'http.host',
  '--http-port': 'http.port',
  '--chain-id': 'chainId',
  '--log-level': 'logLevel',
} as const;
type Flag = keyof typeof FLAGS;
const LIST_FLAGS: ReadonlySet<Flag> = new Set<Flag>(['--listen', '--announce']);

export interface CliOptions {
  configPath: string | undefined;
  config: RelayConfig;
}

/**
 * `--config path` loads a file; the other flags override single fields. Flag values go through the
 * same field parsers as the file, so `--http-port x` names `http.port` in its error.
 */
export function configFromArgs(argv: readonly string[]): CliOptions {
  let configPath: string | undefined;
  const overrides = new Map<Flag, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw invalid(name, 'missing value', null);
    if (name === '--config') {
      configPath = value;
    } else if (Object.hasOwn(FLAGS, name)) {
      const flag = name as Flag;
      const list = LIST_FLAGS.has(flag) ? (overrides.get(flag) ?? []) : [];
      list.push(value);
      overrides.set(flag, list);
    } else {
      throw invalid(name, 'unknown flag', arg);
    }
  }
  const file = configPath === undefined ? {} : readConfigFile(configPath);
  if (!isRecord(file)) throw invalid('(root)', 'expected an object', file);
  const merged: Record<string, unknown> = structuredClone(file);
  for (const [flag, values] of overrides) {
    const path = FLAGS[flag].split('.');
    let target = merged;
    for (const key of path.slice(0, -1)) {
      const next = target[key];
      if (isRecord(next)) {
        target = next;
      } else {
        const created: Record<string, unknown> = {};
        target[key] = created;
        target = created;
      }
    }
    target[path.at(-1)!] = LIST_FLAGS.has(flag) ? values : flagValue(flag, values[0]!);
  }
  return { configPath, config: parseConfig(merged) };
}

function flagValue(flag: Flag, value: string): unknown {
  if (flag === '--http-port') {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n))
      throw invalid('http.port', 'expected an integer', value);
    return n;
  }
  if (flag === '--chain-id' && value === 'any') return null;
  return value;
}

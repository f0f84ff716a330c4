/**
 * Helpers for the relay's tests and benchmark: run `relay/main.ts` as a real child process from a
 * config file, read its JSON-line log, query its HTTP endpoint, and build Node libp2p clients that
 * reach it over loopback. Every wait is bounded in time.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { type GossipSub, gossipsub } from '@libp2p/gossipsub';
import { type Identify, identify } from '@libp2p/identify';
import type { Stream } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { type Ping, ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { createLibp2p, type Libp2p } from 'libp2p';
import { MAX_GOSSIP_BYTES } from '../shared/net/protocols.ts';
import type { RelayHealth } from './node.ts';

const root = join(import.meta.dirname, '..');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pouw-${prefix}-`));
}

export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `promise`, or a rejection after `ms` (the timer is cleared either way, so nothing lingers). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface LogLine {
  msg: string;
  level: string;
  [field: string]: unknown;
}

export interface RelayProcess {
  child: ChildProcess;
  peerId: string;
  multiaddrs: string[];
  tcpAddr: string;
  wsAddr: string;
  http: string;
  keyCreated: boolean;
  logs: LogLine[];
  stderr: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  health(): Promise<RelayHealth>;
  metrics(): Promise<string>;
  /** SIGKILL if still running (for `after` hooks). */
  kill(): void;
}

/** Writes `config` to `<dir>/relay.json` and starts the relay from it; resolves once it logs `relay started`. */
export async function spawnRelay(
  dir: string,
  config: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<RelayProcess> {
  const configPath = join(dir, 'relay.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'relay/main.ts'), '--config', configPath],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ msg: 'non-json output', level: 'unknown', line });
      }
      nl = buffered.indexOf('\n');
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let exited = false;
  void exit.then(() => {
    exited = true;
  });
  const started = await waitFor(
    () => {
      if (exited) throw new Error(`relay exited before starting: ${stderr.join('')}`);
      return logs.find((l) => l.msg === 'relay started');
    },
    timeoutMs,
    'the relay to start',
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  const multiaddrs = started['multiaddrs'] as string[];
  const http = started['http'] as string;
  return {
    child,
    peerId: started['peerId'] as string,
    multiaddrs,
    tcpAddr: multiaddrs.find((a) => !a.includes('/ws/'))!,
    wsAddr: multiaddrs.find((a) => a.includes('/ws/'))!,
    http,
    keyCreated: started['keyCreated'] as boolean,
    logs,
    stderr,
    exit,
    health: async () => (await (await fetch(`${http}/health`)).json()) as RelayHealth,
    metrics: async () => (await fetch(`${http}/metrics`)).text(),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The value of one sample in Prometheus text, e.g. `metric(text, 'pouw_relay_drops_total', { reason: 'banned' })`. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    const m = /^(?:\{([^}]*)\})? (\S+)$/.exec(rest);
    if (m === null) continue;
    if ((m[1] ?? '') === want) return Number(m[2]);
  }
  throw new Error(`metric ${name}{${want}} not found`);
}

export type ClientServices = { identify: Identify; ping: Ping; pubsub?: GossipSub };
export type Client = Libp2p<ClientServices>;

export interface ClientOptions {
  /** Reserve a slot on this relay (`<relay multiaddr>/p2p-circuit` is listened on). */
  reserveOn?: string;
  /** Run gossipsub, with frames large enough for MAX_GOSSIP_BYTES messages. */
  gossip?: boolean;
}

/** A Node libp2p client: TCP, WebSockets and circuit relay transports; listens nowhere but on the relay. */
export async function startClient(options: ClientOptions = {}): Promise<Client> {
  const services = {
    identify: identify(),
    ping: ping(),
    ...(options.gossip === true
      ? {
          pubsub: gossipsub({
            allowPublishToZeroTopicPeers: true,
            maxInboundDataLength: MAX_GOSSIP_BYTES + 64 * 1024,
            fallbackToFloodsub: false,
          }),
        }
      : {}),
  };
  return createLibp2p<ClientServices>({
    addresses: { listen: options.reserveOn === undefined ? [] : [`${options.reserveOn}/p2p-circuit`] },
    transports: [tcp(), webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { reconnectRetries: 0 },
    // Loopback only: these clients dial the test's relay and each other through it.
    connectionGater: { denyDialMultiaddr: () => false },
    services,
  });
}

/** An echo protocol that runs over relayed (limited) connections. */
export const ECHO = '/pouw-test/echo/1.0.0';

export async function serveEcho(node: Client): Promise<void> {
  await node.handle(
    ECHO,
    async (stream) => {
      for await (const chunk of stream) {
        if (!stream.send(chunk)) await stream.onDrain();
      }
      await stream.close();
    },
    { runOnLimitedConnection: true },
  );
}

/** Sends `payload` in 64 KiB chunks while reading the echo; resolves with the bytes read back. */
export async function echo(stream: Stream, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(timeoutMs);
  signal.addEventListener('abort', () => stream.abort(new Error('echo timed out')), { once: true });
  const reading = (async () => {
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of stream) {
      const bytes = chunk.subarray();
      parts.push(bytes);
      total += bytes.byteLength;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  })();
  try {
    for (let at = 0; at < payload.byteLength; at += 64 * 1024) {
      if (!stream.send(payload.subarray(at, at + 64 * 1024))) await stream.onDrain({ signal });
    }
    await stream.close({ signal });
  } catch (e) {
    reading.catch(() => undefined);
    throw e;
  }
  return reading;
}

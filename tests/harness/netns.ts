/**
 * Runs a command inside a private network namespace the test creates itself (ENVIRONMENT.md:
 * Chromium gathers no loopback ICE candidates, so WebRTC between tabs needs a non-loopback address).
 * The namespace has `lo` up and one veth pair whose first end carries NETNS_ADDRESS and the default
 * route, so ICE finds a host candidate; the pair's other end lives in the same namespace, so no packet
 * can leave it. Everything the run needs (relay, supervisors, page server, browsers) must be started
 * from inside the command, which is why callers run one orchestrator script here rather than a server.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

/** Address of the namespace's veth end (a private range; reachable only inside the namespace). */
export const NETNS_ADDRESS = '10.77.0.1';

const SETUP = [
  'set -e',
  'ip link set lo up',
  'ip link add pouw0 type veth peer name pouw1',
  `ip addr add ${NETNS_ADDRESS}/24 dev pouw0`,
  'ip link set pouw0 up',
  'ip link set pouw1 up',
  'ip route add default dev pouw0',
].join(' && ');

/** Whether this machine lets us create a network namespace (root, or user namespaces allowed). */
export function netnsAvailable(): { ok: true } | { ok: false; reason: string } {
  const probe = spawnSync('unshare', ['-n', 'bash', '-c', SETUP], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error) return { ok: false, reason: probe.error.message };
  if (probe.status !== 0) return { ok: false, reason: probe.stderr.trim() || `exit ${probe.status}` };
  return { ok: true };
}

export interface NetnsProcess {
  child: ChildProcess;
  /** Resolves with the exit code (or 128 + signal number style code 1 when killed by a signal). */
  exited: Promise<number>;
}

/**
 * Spawns `argv` inside a fresh namespace. The process tree dies with the namespace's last process;
 * callers kill `child.pid` (the unshare process, which execs bash then the command) when done.
 */
export function spawnInNetns(
  argv: readonly string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; stdio?: 'inherit' | 'pipe' },
): NetnsProcess {
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('unshare', ['-n', 'bash', '-c', `${SETUP} && exec ${quoted}`], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env, POUW_NETNS_ADDRESS: NETNS_ADDRESS },
    stdio: opts.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
  return { child, exited };
}

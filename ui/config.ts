/**
 * What the page connects to, from its URL: `?relay=<multiaddr>` selects the real network through
 * that relay; without it the page runs the demo network in itself (`?peers=N` adds N demo miners
 * in their own workers, 0..3, default 1, so IT_RES flow both ways). `?backend=wasm|cpu|webgl|webgpu`
 * pins a TF.js backend (the ladder decides otherwise). `?duty=X` (0 < X ≤ 1, default 1) caps the
 * share of time the volunteer works, so a laptop or a busy machine lends only part of its CPU/GPU.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { NetError } from '../shared/errors.ts';
import type { BackendName } from '../web-worker-node/trainer/engine-tfjs.ts';

export type NetworkSource = { kind: 'demo'; peers: number } | { kind: 'relay'; relay: string };

export interface AppConfig {
  source: NetworkSource;
  backend: BackendName | undefined;
  /** Share of time spent training, (0, 1]; undefined: all of it. */
  dutyCycle: number | undefined;
}

export const MAX_DEMO_PEERS = 3;
const BACKENDS: readonly BackendName[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

/** Parses the page's query string. Throws NetError('NET_BAD_CONFIG') naming the bad parameter. */
export function parseConfig(search: string): AppConfig {
  const q = new URLSearchParams(search);
  const backendParam = q.get('backend');
  if (backendParam !== null && !BACKENDS.includes(backendParam as BackendName))
    throw new NetError(
      'NET_BAD_CONFIG',
      `backend must be one of ${BACKENDS.join(', ')}, got "${backendParam}"`,
    );
  const backend = (backendParam ?? undefined) as BackendName | undefined;
  const dutyParam = q.get('duty');
  const dutyCycle = dutyParam === null ? undefined : Number(dutyParam);
  if (dutyCycle !== undefined && !(dutyCycle > 0 && dutyCycle <= 1))
    throw new NetError('NET_BAD_CONFIG', `duty must be a number in (0, 1], got "${dutyParam}"`);
  const relay = q.get('relay');
  if (relay !== null) {
    try {
      multiaddr(relay);
    } catch (e) {
      throw new NetError('NET_BAD_CONFIG', `relay is not a multiaddr: ${(e as Error).message}`);
    }
    return { source: { kind: 'relay', relay }, backend, dutyCycle };
  }
  const peersParam = q.get('peers');
  const peers = peersParam === null ? 1 : Number(peersParam);
  if (!Number.isInteger(peers) || peers < 0 || peers > MAX_DEMO_PEERS)
    throw new NetError(
      'NET_BAD_CONFIG',
      `peers must be an integer from 0 to ${MAX_DEMO_PEERS}, got "${peersParam}"`,
    );
  return { source: { kind: 'demo', peers }, backend, dutyCycle };
}

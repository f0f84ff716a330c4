/**
 * The mining service on a Node worker thread (the edge volunteer's twin of the browser's mining
 * worker): `nodeMiningService()` spawns this file as a worker and returns the miner's proxy; inside
 * the worker the same file serves `LocalMiningService` with node:crypto SHA-256 and Ed25519 and a
 * macrotask yield between grinding slices, so checks and seals overtake grinding, at a low thread
 * priority, so grinding never takes a core from training.
 */
import { createHash } from 'node:crypto';
import { setPriority } from 'node:os';
import { isMainThread, MessageChannel, type MessagePort, Worker, workerData } from 'node:worker_threads';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import {
  connectMiningPort,
  type Digest,
  type MiningService,
  type PortLike,
  serveMiningPort,
} from '../../shared/pouw/mining.ts';

/** node:crypto SHA-256 (SHA-NI where the CPU has it). */
export const nodeDigest: Digest = (parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

export interface NodeMiningService extends MiningService {
  /** Stops the worker thread (after close()). */
  terminate(): Promise<void>;
}

/**
 * A mining service on its own worker thread: the hashes over n, the IT_RES ids and (given the key)
 * signature, the checks of received IT_RES, nonce0 and grinding all run there, so the training
 * thread only trains.
 */
export function nodeMiningService(o: {
  chainId: string;
  taskId: Uint8Array;
  parameterCount: number;
  /** The miner's Ed25519 seed, to sign in the worker (else the miner signs). */
  secretKey?: Uint8Array;
}): NodeMiningService {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL(import.meta.url), { workerData: { port: port2 }, transferList: [port2] });
  worker.unref();
  const service = connectMiningPort(port1 as unknown as PortLike, o);
  return {
    ...service,
    close() {
      service.close();
      port1.close();
    },
    async terminate() {
      await worker.terminate();
    },
  };
}

if (!isMainThread && (workerData as { port?: MessagePort } | null)?.port !== undefined) {
  // Mining is background work: on Linux this lowers only this thread (nice 10), so when cores are
  // scarce the scheduler runs the training thread first instead of letting a woken miner preempt it.
  try {
    setPriority(10);
  } catch {
    // Not permitted or not supported: mining keeps the default priority.
  }
  serveMiningPort((workerData as { port: MessagePort }).port as unknown as PortLike, {
    digest: nodeDigest,
    ed: nodeCryptoEd25519,
    yieldToEvents: () => new Promise((resolve) => setImmediate(resolve)),
  });
}

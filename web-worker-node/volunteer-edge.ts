/**
 * Edge volunteers: the browser volunteer's worker code (volunteer-core.ts) on a Node worker thread,
 * driven by the same page-side `Volunteer` (volunteer-client.ts) over comlink's node adapter. The
 * CLI (`npm run worker`) calls `startEdgeVolunteer` with the network it connected and the keys it
 * keeps; nothing here is browser-only or libp2p-specific.
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { MNIST_FILE } from './data/mnist-node.ts';
import { Volunteer, type VolunteerOptions, type VolunteerWorkerHandle } from './volunteer-client.ts';
import type { VolunteerWorkerApi } from './volunteer-core.ts';

/** Spawns volunteer-edge.worker.ts on a worker thread (it inherits this process's --import tsx). */
export function spawnEdgeWorker(): VolunteerWorkerHandle {
  const worker = new Worker(new URL('./volunteer-edge.worker.ts', import.meta.url), {
    name: 'pouw-edge-volunteer',
  });
  const api = Comlink.wrap<VolunteerWorkerApi>(nodeEndpoint(worker));
  return {
    api,
    async terminate() {
      api[Comlink.releaseProxy]();
      await worker.terminate();
    },
  };
}

export type EdgeVolunteerOptions = Omit<VolunteerOptions, 'worker' | 'datasetUrl' | 'backend'> & {
  /** 'wasm' (default ladder: wasm, then cpu) or 'cpu'. */
  backend?: { force?: 'wasm' | 'cpu' };
  /**
   * Where the packed data is: default, a network URL ending in the packed MNIST file name is read
   * from this checkout's public/data (no download); any other URL is fetched as given.
   */
  datasetUrl?: (networkUrl: string) => string;
  /** Start training at once (default true); false leaves it paused after init. */
  autoStart?: boolean;
};

const PACKED_MNIST = MNIST_FILE.pathname.slice(MNIST_FILE.pathname.lastIndexOf('/') + 1);

/** Runs a volunteer on a worker thread and (by default) starts training. */
export async function startEdgeVolunteer(opts: EdgeVolunteerOptions): Promise<Volunteer> {
  const volunteer = await Volunteer.launch({
    ...opts,
    worker: spawnEdgeWorker(),
    datasetUrl: opts.datasetUrl ?? ((url) => (url.endsWith(`/${PACKED_MNIST}`) ? MNIST_FILE.href : url)),
  });
  if (opts.autoStart !== false) await volunteer.start();
  return volunteer;
}

/**
 * The volunteer's worker thread under Node (edge volunteers): the same `VolunteerCore` as the
 * browser's Web Worker, with the Node platform — TF.js wasm → cpu (trainer/backends-node.ts), file:
 * URLs read from disk, node:crypto SHA-256, setImmediate between steps — served with comlink over
 * the thread's parentPort. Spawned by volunteer-edge.ts; never imported by browser code.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parentPort } from 'node:worker_threads';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { NetError } from '../shared/errors.ts';
import type { Digest } from '../shared/pouw/mining.ts';
import { selectBackend } from './trainer/backends-node.ts';
import { serveVolunteer, type VolunteerPlatform } from './volunteer-core.ts';

/** node:crypto SHA-256 (synchronous; SHA-NI where the CPU has it). */
const nodeDigest: Digest = (parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

const nodePlatform: VolunteerPlatform = {
  name: 'node',
  selectBackend,
  async fetchBytes(url) {
    if (url.startsWith('file:')) return new Uint8Array(await readFile(fileURLToPath(url)));
    const res = await fetch(url);
    if (!res.ok)
      throw new NetError(
        res.status === 404 ? 'NET_NOT_FOUND' : 'NET_UNAVAILABLE',
        `GET ${url}: HTTP ${res.status}`,
        'IGNORE',
      );
    return new Uint8Array(await res.arrayBuffer());
  },
  yieldToEvents: () => new Promise<void>((resolve) => setImmediate(resolve)),
  digest: nodeDigest,
  now: () => performance.now(),
};

if (parentPort === null) throw new Error('volunteer-edge.worker.ts runs only as a worker thread');
serveVolunteer(nodeEndpoint(parentPort), nodePlatform);

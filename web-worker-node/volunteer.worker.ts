/**
 * The volunteer's Web Worker (browser entry): `VolunteerCore` with the browser platform — the TF.js
 * ladder webgpu → webgl → wasm → cpu (trainer/backends-browser.ts), fetch for the data, WebCrypto
 * SHA-256, and a MessageChannel macrotask between steps so the page's calls and the network port
 * get in. The page spawns it with volunteer-client.ts; Vite and the test runner bundle it as a module
 * worker. The Node twin is volunteer-edge.worker.ts: same core, Node platform.
 */
import { NetError } from '../shared/errors.ts';
import { webCryptoDigest } from '../shared/pouw/mining.ts';
import { configureWasmFiles, selectBackend } from './trainer/backends-browser.ts';
import { serveVolunteer, type VolunteerPlatform } from './volunteer-core.ts';

/** One message per waiting caller, answered in order (the trainer and the grinder both yield). */
const tick = new MessageChannel();
const waiting: (() => void)[] = [];
tick.port1.onmessage = () => waiting.shift()?.();

const browserPlatform: VolunteerPlatform = {
  name: 'browser',
  selectBackend,
  configureWasmFiles,
  async fetchBytes(url) {
    const res = await fetch(url);
    if (!res.ok)
      throw new NetError(
        res.status === 404 ? 'NET_NOT_FOUND' : 'NET_UNAVAILABLE',
        `GET ${url}: HTTP ${res.status}`,
        'IGNORE',
      );
    return new Uint8Array(await res.arrayBuffer());
  },
  yieldToEvents: () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      tick.port2.postMessage(null);
    }),
  digest: webCryptoDigest(crypto.subtle),
  now: () => performance.now(),
};

serveVolunteer(globalThis as unknown as Parameters<typeof serveVolunteer>[0], browserPlatform);

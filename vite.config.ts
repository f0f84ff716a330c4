/**
 * The UI's Vite build (`npm run ui:dev`, `npm run ui:build` → dist/ui): the Svelte 5 app in ui/,
 * static files from public/ (the packed MNIST digits are served at data/), the volunteer Web Worker
 * bundled as an ES module worker, and relative asset URLs (`base: './'`), so dist/ui works from any
 * static file server and path. TF.js's .wasm files come in through `?url` imports (ui/wasm-files.ts).
 */
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: `${repo}ui`,
  base: './',
  publicDir: `${repo}public`,
  plugins: [svelte()],
  worker: { format: 'es' },
  build: {
    outDir: `${repo}dist/ui`,
    emptyOutDir: true,
    sourcemap: true,
    // TF.js (core and four backends) is most of the worker; it is one file on purpose.
    chunkSizeWarningLimit: 4096,
  },
  // The dev server serves web-worker-node/ and shared/ from outside ui/.
  server: { fs: { allow: [repo] } },
});

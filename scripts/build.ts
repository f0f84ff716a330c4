/**
 * `npm run build`: type-checks everything, then bundles the browser-facing code with esbuild into
 * dist/ (platform `browser`, so a Node built-in reaching the bundle fails the build), and reports
 * bundle sizes, then builds the Svelte UI with Vite into dist/ui (served by `npm start`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as esbuild from 'esbuild';

const root = join(import.meta.dirname, '..');
execFileSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')],
  { stdio: 'inherit' },
);

const entries = {
  'pouw-shared': join(root, 'shared/index.ts'),
  'light-client-store': join(root, 'web-worker-node/light-client-store.ts'),
};
mkdirSync(join(root, 'dist'), { recursive: true });
for (const [name, entry] of Object.entries(entries)) {
  const outfile = join(root, 'dist', `${name}.js`);
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['browser'],
    minify: true,
    sourcemap: true,
    outfile,
    logLevel: 'warning',
  });
  console.log(`dist/${name}.js  ${(statSync(outfile).size / 1024).toFixed(0)} KiB`);
}

execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], {
  cwd: root,
  stdio: 'inherit',
});
console.log('dist/ui  built');

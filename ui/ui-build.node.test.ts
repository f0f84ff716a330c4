/**
 * The UI as it ships: `vite build` (the repository's vite.config.ts) into a temporary folder must give
 * index.html, the volunteer worker bundle, TF.js's .wasm files and the packed data; then the built
 * page, served as plain static files on 127.0.0.1, runs in headless Chromium: pressing Start trains
 * (the iteration count rises) in demo mode, the wallet page shows a `pouw1…` address, and
 * `?relay=` shows "network not available" instead of pretending.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { chromium } from 'playwright-core';
import { build } from 'vite';
import { after, assert, before, describe, it } from '#test';
import { chromiumArgs, chromiumPath } from '../tests/harness/chromium.ts';

const repo = join(import.meta.dirname, '..');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.gz': 'application/octet-stream',
};

/** A static file server for `dir` on 127.0.0.1 (no directory listing, no paths outside `dir`). */
function serveStatic(dir: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(dir, path === '/' ? 'index.html' : path));
    if (!file.startsWith(dir) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
      .end(readFileSync(file));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` }),
    ),
  );
}

let outDir: string;

before(() => {
  outDir = mkdtempSync(join(tmpdir(), 'pouw-ui-'));
});
after(() => rmSync(outDir, { recursive: true, force: true }));

describe('the UI build', () => {
  it('vite build emits the page, the volunteer worker, the TF.js wasm files and the data', async () => {
    await build({
      configFile: join(repo, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir, sourcemap: false },
    });
    const assets = readdirSync(join(outDir, 'assets'));
    const html = readFileSync(join(outDir, 'index.html'), 'utf8');
    assert.ok(html.includes('<div id="app">'), 'index.html');
    // Relative asset URLs: the page works from any path of a static server.
    assert.ok(/src="\.\/assets\/index-[\w-]+\.js"/.test(html), 'relative script URL');
    const worker = assets.find((f) => /^volunteer\.worker-[\w-]+\.js$/.test(f));
    assert.ok(worker !== undefined, `worker bundle among ${assets.join(', ')}`);
    assert.ok(readFileSync(join(outDir, 'assets', worker), 'utf8').includes('WASM_HAS_MULTITHREAD_SUPPORT'));
    for (const name of ['tfjs-backend-wasm', 'tfjs-backend-wasm-simd'])
      assert.ok(
        assets.some((f) => new RegExp(`^${name}-[\\w-]+\\.wasm$`).test(f)),
        `${name}.wasm`,
      );
    assert.ok(statSync(join(outDir, 'data', 'mnist-10k.u8.gz')).size > 1_000_000, 'packed MNIST');
  });

  it('the built page trains in Chromium when Start is pressed; ?relay= says the network is not available', async () => {
    const { server, origin } = await serveStatic(outDir);
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: chromiumArgs,
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      // Demo mode, no demo peers (one worker: the smoke test stays light); wasm, as the ladder
      // would pick on this machine's software GPU.
      await page.goto(`${origin}/?peers=0&backend=wasm`);
      const start = page.getByRole('button', { name: 'Start contributing' });
      await start.waitFor();
      await page.waitForFunction(
        () => !(document.querySelector('button.big') as HTMLButtonElement | null)?.disabled,
        undefined,
        { timeout: 30_000 },
      );
      await start.click();
      const stat = (name: string) =>
        page
          .locator('.stats div', { has: page.locator('dt', { hasText: new RegExp(`^${name}$`) }) })
          .locator('dd');
      await page.waitForFunction(
        () => {
          const dd = [...document.querySelectorAll('.stats div')].find(
            (d) => d.querySelector('dt')?.textContent === 'Iterations',
          );
          return Number((dd?.querySelector('dd')?.textContent ?? '0').replace(/,/g, '')) >= 5;
        },
        undefined,
        { timeout: 60_000 },
      );
      assert.equal(await stat('IT_RES sent').count(), 1);
      assert.ok(Number((await stat('IT_RES sent').textContent())!.replace(/,/g, '')) >= 4, 'IT_RES sent');
      assert.ok((await page.getByText('Backend:').textContent())!.includes('wasm'));
      // Stop pauses: the button offers to resume.
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.getByRole('button', { name: 'Resume contributing' }).waitFor({ timeout: 30_000 });

      await page.getByRole('link', { name: 'Wallet' }).click();
      const address = await page.locator('code.address').textContent();
      assert.ok(address?.startsWith('pouw1'), `address ${address}`);
      assert.deepEqual(errors, []);

      const relay = await browser.newPage();
      await relay.goto(`${origin}/?relay=/ip4/127.0.0.1/tcp/9/ws`);
      const alert = relay.getByRole('alert');
      await alert.waitFor();
      assert.ok((await alert.textContent())!.includes('Network not available'));
      assert.equal(await relay.getByRole('button', { name: 'Start contributing' }).isDisabled(), true);
    } finally {
      await browser.close();
      server.close();
    }
  });
});

/**
 * Orchestrator of tests/net/volunteer-webrtc.node.test.ts, run INSIDE a private network namespace
 * (tests/harness/netns.ts: Chromium gathers no loopback ICE candidates, so the tabs need the
 * namespace's veth address). It starts the relay (a real relay/main.ts process), four supervisor
 * libp2p nodes serving the join protocol (WebSocket listeners), a static server for a page that
 * runs the volunteer's libp2p node (tests/net/volunteer-webrtc-page.ts bundled with esbuild), and
 * headless Chromium with two tabs in separate profiles. Both tabs join a two-slot task, then the
 * run waits for their direct WebRTC link and an IT_RES from one tab reaching the other. It prints
 * one line `RESULT <json>` with what it saw and exits 0, or `FAILED <reason>` and exits 1.
 * Everything it starts is stopped before it exits; the whole run is bounded (90 s).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { defaultNodeEd25519 } from '../../node-common/ed25519-node.ts';
import { createNode, type PouwNode } from '../../node-common/p2p.ts';
import { type RelayProcess, spawnRelay } from '../../relay/test-support.ts';
import { bytesToHex } from '../../shared/bytes.ts';
import { Committee } from '../../shared/chain/types.ts';
import * as bls from '../../shared/crypto/bls.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { taskId as taskIdOf } from '../../shared/pouw/task.ts';
import { JoinService } from '../../supervisor-node/join.ts';
import { tinyMnistTask } from '../../web-worker-node/demo.ts';
import { chromiumArgs, chromiumPath } from '../harness/chromium.ts';
import type { PageApi } from './volunteer-webrtc-page.ts';

const CHAIN = 'pouw-webrtc-test';
const host = process.env['POUW_NETNS_ADDRESS'];
if (host === undefined) {
  console.log('FAILED not inside the test network namespace (POUW_NETNS_ADDRESS unset)');
  process.exit(1);
}
const deadline = setTimeout(() => {
  console.log('FAILED the run took longer than 90 s');
  process.exit(1);
}, 90_000);

const dir = mkdtempSync(join(tmpdir(), 'pouw-webrtc-'));
let relay: RelayProcess | undefined;
const nodes: PouwNode[] = [];
const services: JoinService[] = [];
const server = createServer();
let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;

async function waitFor<T>(probe: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function run(): Promise<Record<string, unknown>> {
  const ed = await defaultNodeEd25519();
  relay = await spawnRelay(dir, {
    dataDir: join(dir, 'relay'),
    listen: [`/ip4/${host}/tcp/0/ws`],
    http: { host: '127.0.0.1', port: 0 },
    chainId: CHAIN,
    connections: { inboundPerSecondPerIp: 1000 },
  });
  const seeds = [0, 1, 2, 3].map((i) => new Uint8Array(32).fill(0x50 + i));
  const committee: Committee = {
    groupPublicKey: bls.getPublicKey(new Uint8Array(32).fill(9)),
    threshold: 3,
    members: await Promise.all(
      seeds.map(async (s, i) => ({
        nodeKey: await nobleEd25519.getPublicKey(s),
        blsPublicShare: bls.getPublicKey(new Uint8Array(32).fill(20 + i)),
      })),
    ),
  };
  const definition = tinyMnistTask(new Uint8Array(32).fill(2));
  const taskId = taskIdOf(CHAIN, definition);
  for (const s of seeds) nodes.push(await createNode({ nodeKeySeed: s, listen: [`/ip4/${host}/tcp/0/ws`] }));
  for (const a of nodes)
    for (const b of nodes) if (a !== b) await a.libp2p.dial(b.multiaddrs()).catch(() => {});
  for (const [i, node] of nodes.entries())
    services.push(
      await JoinService.start({
        node,
        chainId: CHAIN,
        committee,
        self: i,
        nodeKeySeed: seeds[i]!,
        ed,
        dir: join(dir, `member-${i}`),
        tasks: () => [
          {
            taskId,
            definition,
            minerSlots: 2,
            dataset: { url: 'data/x', segments: 10, testSegments: [8, 9] },
          },
        ],
        pollMs: 200,
      }),
    );

  // The page: served from 127.0.0.1 (a secure context, so WebCrypto is there); it dials the
  // relay and the supervisors on the namespace's address.
  await esbuild.build({
    entryPoints: [join(import.meta.dirname, 'volunteer-webrtc-page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['browser'],
    outfile: join(dir, 'page.js'),
    logLevel: 'warning',
  });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="page.js"></script>');
  server.on('request', (req, res) => {
    const name = req.url === '/page.js' ? 'page.js' : 'index.html';
    res
      .writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : 'text/html' })
      .end(readFileSync(join(dir, name)));
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );

  browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true });
  const pages = await Promise.all(
    [0, 1].map(async () => {
      const context = await browser!.newContext();
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => 'pouw' in globalThis);
      return page;
    }),
  );
  const cfg = {
    chainId: CHAIN,
    committee: bytesToHex(Committee.encode(committee)),
    relay: relay.wsAddr,
    supervisors: nodes.map((n) => n.multiaddrs()[0]!.toString()),
    taskId: bytesToHex(taskId),
  };
  // Functions passed to evaluate run in the page (no closures): they reach the page's `pouw` API.
  const joined = await Promise.all(
    pages.map((page) => page.evaluate((c) => (globalThis as unknown as { pouw: PageApi }).pouw.join(c), cfg)),
  );
  const linkedAt = performance.now();
  await waitFor(
    async () => {
      const links = await Promise.all(
        pages.map((page) => page.evaluate(() => (globalThis as unknown as { pouw: PageApi }).pouw.links())),
      );
      return links.every((l) => l.length === 1 && l[0]!.webrtc);
    },
    30_000,
    'a direct WebRTC link between the two tabs',
  );
  const linkMs = performance.now() - linkedAt;
  const facts = await Promise.all(
    pages.map((page) => page.evaluate(() => (globalThis as unknown as { pouw: PageApi }).pouw.connections())),
  );
  const dialMs = await Promise.all(
    pages.map((page) =>
      page.evaluate(() => (globalThis as unknown as { pouw: PageApi }).pouw.webrtcDialMs()),
    ),
  );
  let iteration = 0;
  await waitFor(
    async () => {
      await pages[0]!.evaluate(
        (n) => (globalThis as unknown as { pouw: PageApi }).pouw.publish(n),
        iteration++,
      );
      const got = await pages[1]!.evaluate(() =>
        (globalThis as unknown as { pouw: PageApi }).pouw.received(),
      );
      return got.length > 0;
    },
    20_000,
    'an IT_RES from tab 0 at tab 1',
  );
  const relayHealth = await relay.health();
  return {
    joined,
    linkAfterJoinMs: Math.round(linkMs),
    webrtcDialMs: dialMs,
    tabToTab: facts.map((f, i) =>
      f.filter((c) => c.peer === joined[1 - i]!.peerId).map((c) => ({ path: c.path, limited: c.limited })),
    ),
    itresPublished: iteration,
    relayCircuits: relayHealth.circuits,
  };
}

let code = 0;
try {
  console.log(`RESULT ${JSON.stringify(await run())}`);
} catch (e) {
  console.log(`FAILED ${(e as Error).stack ?? String(e)}`);
  code = 1;
} finally {
  await browser?.close().catch(() => {});
  await Promise.allSettled(services.map((s) => s.stop()));
  await Promise.allSettled(nodes.map((n) => n.stop()));
  relay?.kill();
  server.close();
  rmSync(dir, { recursive: true, force: true });
  clearTimeout(deadline);
}
process.exit(code);

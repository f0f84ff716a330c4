/**
 * Two headless Chromium tabs, each running the volunteer's libp2p node on its main thread
 * (web-worker-node/net-libp2p.ts, browser defaults: WebSockets to the relay, WebRTC, circuit relay),
 * join a two-slot task through the supervisors' join protocol and connect to each other over a
 * DIRECT WebRTC connection (not relayed: the only connection between them is a WebRTC one, without
 * relay limits, and the relay holds no circuit once they are linked); an IT_RES one tab publishes
 * reaches the other. The relay is a real process and the supervisors real libp2p nodes.
 *
 * Chromium gathers no loopback ICE candidates, so everything runs inside a private network
 * namespace this test creates (tests/harness/netns.ts); tests/net/volunteer-webrtc-run.ts is the
 * orchestrator it runs there. Skipped, with the reason, where namespaces cannot be created.
 */
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { type NetnsProcess, netnsAvailable, spawnInNetns } from '../harness/netns.ts';

const root = join(import.meta.dirname, '..', '..');
const netns = netnsAvailable();
let run: NetnsProcess | undefined;

after(() => {
  // The unshare process this test started; the namespace's processes die with it.
  if (run && run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
});

interface RunResult {
  joined: { peerId: string; miners: number; createMs: number; joinMs: number }[];
  linkAfterJoinMs: number;
  webrtcDialMs: Record<string, number>[];
  tabToTab: { path: string; limited: boolean }[][];
  itresPublished: number;
  relayCircuits: number;
}

describe('two browser tabs on the real network', { timeout: 150_000 }, () => {
  it('join a task and connect over direct WebRTC inside a network namespace', {
    skip: netns.ok ? false : `no network namespace here: ${netns.ok ? '' : netns.reason}`,
  }, async () => {
    run = spawnInNetns(
      [process.execPath, '--import', 'tsx', join(root, 'tests/net/volunteer-webrtc-run.ts')],
      {
        cwd: root,
      },
    );
    const out: string[] = [];
    run.child.stdout!.setEncoding('utf8').on('data', (c: string) => out.push(c));
    run.child.stderr!.setEncoding('utf8').on('data', (c: string) => out.push(c));
    const code = await run.exited;
    const text = out.join('');
    const line = text.split('\n').find((l) => l.startsWith('RESULT '));
    assert.equal(code, 0, `the orchestrator failed:\n${text.slice(-4000)}`);
    assert.ok(line !== undefined, `no RESULT line:\n${text.slice(-4000)}`);
    const r = JSON.parse(line.slice('RESULT '.length)) as RunResult;
    assert.equal(r.joined.length, 2);
    for (const j of r.joined) assert.equal(j.miners, 2, 'each tab got the two-miner set');
    assert.notEqual(r.joined[0]!.peerId, r.joined[1]!.peerId);
    for (const [i, conns] of r.tabToTab.entries()) {
      assert.ok(conns.length > 0, `tab ${i} is connected to the other tab`);
      for (const c of conns)
        assert.deepEqual(c, { path: 'webrtc', limited: false }, `tab ${i}: only direct WebRTC`);
    }
    assert.equal(r.relayCircuits, 0, 'the relay carries no circuit between the tabs');
    assert.ok(r.itresPublished >= 1);
    console.log(
      JSON.stringify({
        joinMs: r.joined.map((j) => Math.round(j.joinMs)),
        linkAfterJoinMs: r.linkAfterJoinMs,
        webrtcDialMs: r.webrtcDialMs.flatMap((d) => Object.values(d).map(Math.round)),
      }),
    );
  });
});

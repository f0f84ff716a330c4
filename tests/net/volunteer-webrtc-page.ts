/**
 * The page of tests/net/volunteer-webrtc.node.test.ts (bundled with esbuild for the browser): a
 * volunteer's libp2p node on the tab's main thread (web-worker-node/net-libp2p.ts with its browser
 * defaults: WebSockets, WebRTC, circuit relay), driven by the orchestrator through `window.pouw`.
 */
import { hexToBytes } from '../../shared/bytes.ts';
import { Committee } from '../../shared/chain/types.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { ItRes, type ItResBody, signItRes } from '../../shared/pouw/itres.ts';
import type { ConnectionFact } from '../../web-worker-node/net-libp2p.ts';
import { Libp2pVolunteerNetwork } from '../../web-worker-node/net-libp2p.ts';

export interface PageConfig {
  chainId: string;
  /** SSZ Committee, hex. */
  committee: string;
  relay: string;
  supervisors: string[];
  taskId: string;
}

export interface PageApi {
  join(cfg: PageConfig): Promise<{ peerId: string; miners: number; createMs: number; joinMs: number }>;
  links(): { peer: string; webrtc: boolean; relayed: boolean }[];
  connections(): ConnectionFact[];
  webrtcDialMs(): Record<string, number>;
  publish(iteration: number): Promise<void>;
  received(): number[];
  close(): Promise<void>;
}

let net: Libp2pVolunteerNetwork | undefined;
let secretKey: Uint8Array | undefined;
let publicKey: Uint8Array | undefined;
let taskId: Uint8Array | undefined;
let chainId = '';
const received: number[] = [];

const api: PageApi = {
  async join(cfg) {
    chainId = cfg.chainId;
    taskId = hexToBytes(cfg.taskId);
    secretKey = crypto.getRandomValues(new Uint8Array(32));
    publicKey = await nobleEd25519.getPublicKey(secretKey);
    const t0 = performance.now();
    net = await Libp2pVolunteerNetwork.create({
      chainId: cfg.chainId,
      committee: Committee.decode(hexToBytes(cfg.committee)),
      nodeKey: { secretKey, publicKey },
      relay: cfg.relay,
      supervisors: cfg.supervisors,
      taskId,
      rtcConfiguration: { iceServers: [] },
      allowPrivateDials: true,
      backoff: { initialMs: 200, maxMs: 2000 },
      joinPollMs: 200,
    });
    const createMs = performance.now() - t0;
    net.onItRes((m) => received.push(m.body.iteration));
    const a = await net.joinTask({ minerKey: publicKey, payout: new Uint8Array(20) });
    return {
      peerId: net.peerId,
      miners: a.miners.length,
      createMs,
      joinMs: performance.now() - t0 - createMs,
    };
  },
  links: () => net?.minerLinks() ?? [],
  connections: () => net?.connections() ?? [],
  webrtcDialMs: () => ({ ...(net?.stats.webrtcDialMs ?? {}) }),
  async publish(iteration) {
    const body: ItResBody = {
      ...ItRes.defaultValue().body,
      taskId: taskId!,
      miner: publicKey!,
      iteration,
      map: [],
    };
    await net!.publishItRes(await signItRes(chainId, body, secretKey!, nobleEd25519));
  },
  received: () => received.slice(),
  close: async () => net?.close(),
};

(globalThis as unknown as { pouw: PageApi }).pouw = api;

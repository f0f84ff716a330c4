/**
 * The volunteer's real network (DESIGN §4.9): a js-libp2p node that implements `VolunteerNetwork`.
 * It runs on a browser tab's main thread (RTCPeerConnection does not exist in workers) and, with
 * Node transports passed in, in an edge volunteer's process; it never imports node-common.
 *
 * - Identity: the keystore's node key is the libp2p private key, so the peer id IS the miner key
 *   the task's miner set names, and Noise proves it on every connection.
 * - Relay: dialled over WebSockets (TCP too under Node); the node reserves a slot on it
 *   (`/p2p-circuit`) and listens on `/webrtc`, so the miners of one task connect DIRECTLY to each
 *   other over WebRTC, signalling through the relay: a miner dials
 *   `<relay>/p2p-circuit/webrtc/p2p/<peer id of another miner key>`. The relay is also a gossip hub.
 * - Supervisors: configured multiaddrs, each ending in the peer id of a committee member of the
 *   genesis this volunteer holds (ADR 0012 says why not discovery through the relay). Joins,
 *   templates, candidates, finalized blocks and wallet proofs use their request/response protocols.
 * - Gossip: the task's IT_RES topic and the blocks topic, each message decoded and checked before
 *   anything sees it (IT_RES: the task, a miner of the signed set, map and signature; blocks: the
 *   committee's certificate); a failure is dropped with its typed code and counted against the peer
 *   that forwarded it, and a non-infrastructure peer over `maxBadInputs` is disconnected and refused
 *   for `banMs`.
 * - Reconnects: the relay, every supervisor and every miner of the task are kept connected; a
 *   dropped or failed connection is redialled with exponential backoff (bounded by `maxMs`).
 * - Finality: headers arrive on the blocks topic; a supervisor's status is polled too, so a missed
 *   gossip message only delays a template refresh.
 *
 * Nothing received is believed for a balance: finalized headers carry certificates and wallet
 * outputs state proofs, which the light client (balance.ts) checks against the genesis it holds.
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { keys } from '@libp2p/crypto';
import { type GossipSub, gossipsub, TopicValidatorResult } from '@libp2p/gossipsub';
import { type Identify, identify } from '@libp2p/identify';
import type { Connection, PeerId } from '@libp2p/interface';
import { noise } from '@libp2p/noise';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { type Ping, ping } from '@libp2p/ping';
import { webRTC } from '@libp2p/webrtc';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p';
import { bytesToHex, equalBytes, utf8 } from '../shared/bytes.ts';
import { verifyCertificate } from '../shared/chain/certificate.ts';
import { blockHash, outpointKey } from '../shared/chain/ids.ts';
import type { Block, Committee, OutPoint } from '../shared/chain/types.ts';
import { defaultEd25519, type Ed25519 } from '../shared/crypto/ed25519.ts';
import { isPouwError, NetError, VolunteerError, WorkError } from '../shared/errors.ts';
import {
  checkMinerSet,
  datasetUrl,
  JoinRequest as JoinRequestBody,
  JoinResponse,
  leadIndex,
  type SignedMinerSet,
  signJoin,
} from '../shared/net/join.ts';
import {
  BlockRequest,
  CandidateRequest,
  CandidateResponse,
  type BlockCandidate as CandidateValue,
  FinalizedBlock,
  MAX_PROOF_OUTPOINTS,
  ProofRequest,
  ProofResponse,
  StatusRequest,
  StatusResponse,
  TasksRequest,
  TasksResponse,
  TemplateRequest,
  TemplateResponse,
} from '../shared/net/messages.ts';
import { MAX_GOSSIP_BYTES, type ProtocolName, topics } from '../shared/net/protocols.ts';
import { checkItRes, ItRes } from '../shared/pouw/itres.ts';
import { type TaskDefinition, taskId as taskIdOf, validateTask } from '../shared/pouw/task.ts';
import { memoizedBlsVerify } from './balance.ts';
import type {
  CandidateVerdict,
  FinalizedHeader,
  JoinRequest,
  TaskAssignment,
  Unsubscribe,
  VolunteerNetwork,
  WalletProofs,
} from './network.ts';
import { requestOnce } from './p2p-request.ts';

type Transports = NonNullable<Libp2pOptions['transports']>;

export interface Libp2pVolunteerOptions {
  /** The chain and its committee, from the genesis this volunteer holds (never from the network). */
  chainId: string;
  committee: Committee;
  /** The node key (keystore.ts): the libp2p identity; signs joins here and IT_RES in the worker. */
  nodeKey: { secretKey: Uint8Array; publicKey: Uint8Array };
  /** The relay, ending in `/p2p/<relay peer id>`. */
  relay: string;
  /** Supervisor multiaddrs, each ending in `/p2p/<peer id of a committee member's node key>`. */
  supervisors: readonly string[];
  /** The task to join; default: the first task the supervisors list. */
  taskId?: Uint8Array;
  /** Transports to reach the relay and supervisors: default WebSockets (browsers); Node passes TCP too. */
  transports?: Transports;
  /** RTCPeerConnection configuration for WebRTC (closed networks: `{ iceServers: [] }`). */
  rtcConfiguration?: RTCConfiguration;
  /** Dial loopback and private addresses (development and tests only; browsers refuse otherwise). */
  allowPrivateDials?: boolean;
  /** Makes the task's dataset URL absolute (a page resolves it against its own URL). */
  resolveDatasetUrl?: (url: string) => string;
  /** Redial backoff: first delay, cap (default 500 ms, 15 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** How often a pending join is re-sent (default 500 ms, growing to 2 s). */
  joinPollMs?: number;
  /** How often a supervisor's tip is polled (default 4 s). */
  tipPollMs?: number;
  requestTimeoutMs?: number;
  /** Bad messages from one (non-infrastructure) peer before it is disconnected (default 64). */
  maxBadInputs?: number;
  banMs?: number;
  ed?: Ed25519;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export type PeerRole = 'relay' | 'supervisor' | 'miner' | 'other';
/** How a connection runs: direct WebRTC, through the relay (limited), or a direct socket (TCP/WS). */
export type ConnectionPath = 'webrtc' | 'relayed' | 'socket';

export interface ConnectionFact {
  peer: string;
  role: PeerRole;
  path: ConnectionPath;
  /** libp2p's own flag (false for relayed connections). */
  direct: boolean;
  limited: boolean;
  remoteAddr: string;
}

export interface Libp2pNetworkStats {
  /** Connections re-established after a drop (relay, supervisors, miners). */
  reconnects: number;
  dialFailures: number;
  /** Dropped input per peer id, by typed code. */
  badInput: Record<string, Record<string, number>>;
  itres: { published: number; delivered: number; rejected: number; ignored: number };
  finalizedSeen: number;
  /** From joinTask to the verified miner set. */
  joinMs: number | undefined;
  /** Outbound WebRTC dial time per miner peer id (first successful dial). */
  webrtcDialMs: Record<string, number>;
}

interface Target {
  peer: PeerId;
  key: string;
  role: PeerRole;
  addrs: Multiaddr[];
  attempts: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  dialing: boolean;
  connectedOnce: boolean;
}

interface JoinedTask {
  taskId: Uint8Array;
  hex: string;
  topic: string;
  definition: TaskDefinition;
  parameterCount: number;
  minerSet: SignedMinerSet;
  miners: Set<string>;
  assignment: TaskAssignment;
}

const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 15_000 };
const DIAL_TIMEOUT_MS = 10_000;
/** The higher of two miner keys waits this long before dialling, so one side normally dials. */
const SECOND_DIALER_DELAY_MS = 2000;
const MAX_JOIN_POLL_MS = 2000;
const TIP_CATCH_UP = 16;

type Services = { identify: Identify; ping: Ping; pubsub: GossipSub };

function peerOfAddr(ma: Multiaddr, what: string): string {
  const p2p = ma.getComponents().filter((c) => c.name === 'p2p');
  const id = p2p[p2p.length - 1]?.value;
  if (id === undefined)
    throw new NetError('NET_BAD_CONFIG', `${what} ${ma.toString()} must end in /p2p/<peer id>`);
  return id;
}

function peerOfKey(key: Uint8Array): PeerId {
  return peerIdFromPublicKey(keys.publicKeyFromRaw(key));
}

/** How a connection runs (see ConnectionPath). */
export function connectionPath(c: Pick<Connection, 'remoteAddr' | 'limits'>): ConnectionPath {
  const names = c.remoteAddr.getComponents().map((x) => x.name);
  if (names.includes('webrtc') && c.limits === undefined) return 'webrtc';
  if (c.limits !== undefined || names.includes('p2p-circuit')) return 'relayed';
  return 'socket';
}

export class Libp2pVolunteerNetwork implements VolunteerNetwork {
  readonly description: string;
  readonly peerId: string;
  readonly stats: Libp2pNetworkStats = {
    reconnects: 0,
    dialFailures: 0,
    badInput: {},
    itres: { published: 0, delivered: 0, rejected: 0, ignored: 0 },
    finalizedSeen: 0,
    joinMs: undefined,
    webrtcDialMs: {},
  };
  readonly #o: Libp2pVolunteerOptions;
  readonly #node: Libp2p<Services>;
  readonly #ed: Ed25519;
  readonly #nodeKeys: Uint8Array[];
  readonly #relay: Target;
  /** Supervisors by peer id, with their committee index. */
  readonly #supervisors = new Map<string, Target & { member: number }>();
  readonly #targets = new Map<string, Target>();
  readonly #banned: Map<string, number>;
  readonly #itresHandlers = new Set<(msg: ItRes) => void>();
  readonly #finalizedHandlers = new Set<(f: FinalizedHeader) => void>();
  readonly #blsVerify = memoizedBlsVerify();
  readonly #closing = new AbortController();
  #task: JoinedTask | undefined;
  #joining: Promise<TaskAssignment> | undefined;
  #tip = 0n;
  #tipTimer: ReturnType<typeof setTimeout> | undefined;
  #rotation = 0;
  #closed = false;

  private constructor(
    opts: Libp2pVolunteerOptions,
    node: Libp2p<Services>,
    ed: Ed25519,
    banned: Map<string, number>,
  ) {
    this.#o = opts;
    this.#node = node;
    this.#ed = ed;
    this.#banned = banned;
    this.peerId = node.peerId.toString();
    this.#nodeKeys = opts.committee.members.map((m) => m.nodeKey);
    const relayAddr = multiaddr(opts.relay);
    this.#relay = this.#target(peerOfAddr(relayAddr, 'the relay'), 'relay', [relayAddr]);
    const members = new Map(this.#nodeKeys.map((k, i) => [peerOfKey(k).toString(), i] as const));
    for (const s of opts.supervisors) {
      const ma = multiaddr(s);
      const id = peerOfAddr(ma, 'a supervisor address');
      const member = members.get(id);
      if (member === undefined)
        throw new NetError(
          'NET_BAD_CONFIG',
          `supervisor ${s} is not a committee member of the genesis`,
          'REJECT',
          {
            field: 'supervisors',
          },
        );
      const existing = this.#supervisors.get(id);
      if (existing !== undefined) existing.addrs.push(ma);
      else this.#supervisors.set(id, Object.assign(this.#target(id, 'supervisor', [ma]), { member }));
    }
    if (this.#supervisors.size === 0)
      throw new NetError('NET_BAD_CONFIG', 'at least one supervisor address is needed', 'REJECT', {
        field: 'supervisors',
      });
    this.description = `libp2p via relay ${relayAddr.toString()} (${this.#supervisors.size} supervisor${this.#supervisors.size === 1 ? '' : 's'}, chain ${opts.chainId})`;
  }

  /** Starts the node, dials the relay and the supervisors, and follows finalized blocks. */
  static async create(opts: Libp2pVolunteerOptions): Promise<Libp2pVolunteerNetwork> {
    const ed = opts.ed ?? (await defaultEd25519());
    const privateKey = await keys.generateKeyPairFromSeed('Ed25519', opts.nodeKey.secretKey);
    if (!equalBytes(privateKey.publicKey.raw, opts.nodeKey.publicKey))
      throw new VolunteerError('VOLUNTEER_MISUSE', 'the node key’s public key does not match its seed');
    const banned = new Map<string, number>();
    const isBanned = (peer: PeerId): boolean => {
      const until = banned.get(peer.toString());
      if (until === undefined) return false;
      if (Date.now() < until) return true;
      banned.delete(peer.toString());
      return false;
    };
    const node = await createLibp2p<Services>({
      privateKey,
      addresses: { listen: ['/p2p-circuit', '/webrtc'] },
      transports: [
        ...(opts.transports ?? [webSockets()]),
        webRTC(opts.rtcConfiguration === undefined ? {} : { rtcConfiguration: opts.rtcConfiguration }),
        circuitRelayTransport(),
      ],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: {
        ...(opts.allowPrivateDials === true ? { denyDialMultiaddr: () => false } : {}),
        denyInboundEncryptedConnection: (peer: PeerId) => isBanned(peer),
        denyOutboundEncryptedConnection: (peer: PeerId) => isBanned(peer),
      },
      connectionManager: { maxConnections: 64 },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          emitSelf: false,
          allowPublishToZeroTopicPeers: true,
          ignoreDuplicatePublishError: true,
          maxInboundDataLength: MAX_GOSSIP_BYTES,
          heartbeatInterval: 700,
          fallbackToFloodsub: false,
        }),
      },
    });
    const net = new Libp2pVolunteerNetwork(opts, node, ed, banned);
    net.#start();
    return net;
  }

  #start(): void {
    const node = this.#node;
    node.addEventListener('connection:close', (e) => this.#onConnectionClosed(e.detail));
    node.addEventListener('connection:open', (e) => {
      const t = this.#targets.get(e.detail.remotePeer.toString());
      if (t !== undefined && this.#satisfied(t)) t.attempts = 0;
      // Once a miner is linked directly, the relayed signalling connection has done its job: close
      // it, so it holds none of the relay's per-peer circuit budget.
      if (t?.role === 'miner' && connectionPath(e.detail) === 'webrtc')
        for (const c of node.getConnections(e.detail.remotePeer))
          if (c.limits !== undefined) c.close().catch(() => {});
    });
    this.#subscribeBlocks();
    this.#keep(this.#relay, 0);
    for (const s of this.#supervisors.values()) this.#keep(s, 0);
    this.#scheduleTipPoll();
    this.#log('network-started', { peerId: this.peerId, relay: this.#o.relay });
  }

  // -- connection facts --------------------------------------------------------------------

  /** Every open connection, with the role of the peer and how the connection runs. */
  connections(): ConnectionFact[] {
    return this.#node.getConnections().map((c) => {
      const peer = c.remotePeer.toString();
      return {
        peer,
        role: this.#targets.get(peer)?.role ?? 'other',
        path: connectionPath(c),
        direct: c.direct,
        limited: c.limits !== undefined,
        remoteAddr: c.remoteAddr.toString(),
      };
    });
  }

  /** The other miners of the joined task and whether each is connected over direct WebRTC. */
  minerLinks(): { peer: string; webrtc: boolean; relayed: boolean }[] {
    if (this.#task === undefined) return [];
    const facts = this.connections();
    return [...this.#targets.values()]
      .filter((t) => t.role === 'miner')
      .map((t) => ({
        peer: t.key,
        webrtc: facts.some((f) => f.peer === t.key && f.path === 'webrtc'),
        relayed: facts.some((f) => f.peer === t.key && f.path === 'relayed'),
      }));
  }

  /** Gossip peers subscribed to the joined task's IT_RES topic. */
  itresTopicPeers(): string[] {
    if (this.#task === undefined) return [];
    return this.#node.services.pubsub.getSubscribers(this.#task.topic).map((p) => p.toString());
  }

  /** The multiaddrs other miners can dial this node on (WebRTC through the relay once reserved). */
  multiaddrs(): string[] {
    return this.#node.getMultiaddrs().map((m) => m.toString());
  }

  /** The underlying libp2p node (tests and diagnostics). */
  get libp2p(): Libp2p<Services> {
    return this.#node;
  }

  // -- VolunteerNetwork ----------------------------------------------------------------------

  joinTask(request: JoinRequest): Promise<TaskAssignment> {
    if (this.#closed) return Promise.reject(new NetError('NET_CLOSED', 'the network is closed', 'IGNORE'));
    if (!equalBytes(request.minerKey, this.#o.nodeKey.publicKey))
      return Promise.reject(
        new VolunteerError(
          'VOLUNTEER_MISUSE',
          'a join is signed by the node key: minerKey must be this node’s key',
        ),
      );
    if (this.#task !== undefined) return Promise.resolve(this.#task.assignment);
    this.#joining ??= this.#join(request).finally(() => {
      this.#joining = undefined;
    });
    return this.#joining;
  }

  async publishItRes(msg: ItRes): Promise<void> {
    this.#live();
    const task = this.#task;
    if (task === undefined)
      throw new VolunteerError('VOLUNTEER_MISUSE', 'publish before the task was joined');
    try {
      await this.#node.services.pubsub.publish(task.topic, ItRes.encode(msg));
      this.stats.itres.published++;
    } catch (e) {
      // Nobody to send to right now (a reconnect is under way): the message is lost, not the task.
      this.#log('itres-publish-failed', { error: errorText(e) });
    }
  }

  onItRes(handler: (msg: ItRes) => void): Unsubscribe {
    this.#itresHandlers.add(handler);
    return () => this.#itresHandlers.delete(handler);
  }

  async fetchTemplate(request: { payout: Uint8Array; taskId: Uint8Array }): Promise<Block | undefined> {
    this.#live();
    const body = TemplateRequest.encode({
      payout: request.payout,
      taskId: request.taskId,
      extra: new Uint8Array(0),
    });
    let stale: Block | undefined;
    for (const s of this.#supervisorOrder()) {
      try {
        const answer = await this.#request(s, 'template', body, (b) => TemplateResponse.decode(b));
        if (!equalBytes(answer.template.header.taskId, request.taskId)) {
          this.#bad(s.key, 'NET_BAD_REQUEST');
          continue;
        }
        // A supervisor still catching up offers a template for a height already finalized: mining
        // it is wasted (every candidate BLOCK_BAD_HEIGHT), so ask the next one.
        if (answer.template.header.height <= this.#tip) {
          stale ??= answer.template;
          continue;
        }
        return answer.template;
      } catch {
        // Try the next supervisor.
      }
    }
    return stale;
  }

  async submitCandidate(candidate: CandidateValue): Promise<CandidateVerdict> {
    this.#live();
    const body = CandidateRequest.encode({ candidate, blockHash: new Uint8Array(0) });
    const hash = blockHash(this.#o.chainId, candidate.block.header);
    const sups = this.#supervisorOrder();
    const results = await Promise.allSettled(
      sups.map((s) => this.#request(s, 'candidate', body, (b) => CandidateResponse.decode(b), 30_000)),
    );
    for (const [i, r] of results.entries()) {
      if (r.status !== 'fulfilled') continue;
      if (!equalBytes(r.value.blockHash, hash)) {
        this.#bad(sups[i]!.key, 'NET_BAD_REQUEST');
        continue;
      }
      return { accepted: true, height: candidate.block.header.height, blockHash: hash };
    }
    const first = results.find((r) => r.status === 'rejected')?.reason as unknown;
    if (isPouwError(first)) {
      const remote = first.detail['remoteCode'];
      return {
        accepted: false,
        code: typeof remote === 'string' && remote !== '' ? remote : first.code,
        reason: first.message,
      };
    }
    return { accepted: false, code: 'NET_UNAVAILABLE', reason: 'no supervisor took the candidate' };
  }

  onFinalized(handler: (finalized: FinalizedHeader) => void): Unsubscribe {
    this.#finalizedHandlers.add(handler);
    return () => this.#finalizedHandlers.delete(handler);
  }

  async fetchFinalized(fromHeight: bigint, max: number): Promise<FinalizedHeader[]> {
    this.#live();
    const out: FinalizedHeader[] = [];
    // Height 0 is genesis: it has no certificate and the light client starts above it.
    let h = fromHeight < 1n ? 1n : fromHeight;
    const sups = this.#supervisorOrder();
    let at = 0;
    while (out.length < Math.max(0, max) && at < sups.length) {
      const s = sups[at]!;
      try {
        const f = await this.#request(
          s,
          'block',
          BlockRequest.encode({ height: h, hash: new Uint8Array(0) }),
          (b) => FinalizedBlock.decode(b),
        );
        const header = this.#checkFinalized(s.key, f);
        if (header.header.height !== h) {
          this.#bad(s.key, 'NET_BAD_REQUEST');
          at++;
          continue;
        }
        out.push(header);
        h++;
      } catch (e) {
        if (isPouwError(e) && e.code === 'NET_NOT_FOUND') break;
        at++;
      }
    }
    return out;
  }

  async fetchWalletProofs(owner: Uint8Array, known: readonly OutPoint[]): Promise<WalletProofs> {
    this.#live();
    // One answer per chunk of known outpoints; all must be against one finalized height, so a tip
    // that moves between chunks restarts the round (bounded).
    for (let round = 0; round < 3; round++) {
      const chunks: OutPoint[][] = [];
      for (let i = 0; i < known.length; i += MAX_PROOF_OUTPOINTS)
        chunks.push(known.slice(i, i + MAX_PROOF_OUTPOINTS));
      if (chunks.length === 0) chunks.push([]);
      const present = new Map<string, WalletProofs['present'][number]>();
      const spent = new Map<string, WalletProofs['spent'][number]>();
      let height: bigint | undefined;
      let consistent = true;
      for (const [i, outpoints] of chunks.entries()) {
        const answer = await this.#anySupervisor(
          'proof',
          ProofRequest.encode({
            outpoints,
            address: i === 0 ? owner : new Uint8Array(0),
          }),
          (b) => ProofResponse.decode(b),
        );
        if (height === undefined) height = answer.header.height;
        else if (answer.header.height !== height) {
          consistent = false;
          break;
        }
        for (const e of answer.entries) {
          const key = outpointKey(e.outpoint);
          if (e.out !== null) present.set(key, { outpoint: e.outpoint, out: e.out, proof: e.proof });
          else spent.set(key, { outpoint: e.outpoint, proof: e.proof });
        }
      }
      if (consistent && height !== undefined)
        return { height, present: [...present.values()], spent: [...spent.values()] };
    }
    throw new NetError(
      'NET_UNAVAILABLE',
      'the finalized tip kept moving while proofs were fetched',
      'IGNORE',
    );
  }

  /**
   * A view for one user of this node (the page's volunteer, its wallet panel): the same node, but
   * `close` only drops the handlers this view added.
   */
  view(): VolunteerNetwork {
    const offs = new Set<Unsubscribe>();
    const track = (off: Unsubscribe): Unsubscribe => {
      offs.add(off);
      return () => {
        offs.delete(off);
        off();
      };
    };
    return {
      description: this.description,
      joinTask: (r) => this.joinTask(r),
      publishItRes: (m) => this.publishItRes(m),
      onItRes: (h) => track(this.onItRes(h)),
      fetchTemplate: (r) => this.fetchTemplate(r),
      submitCandidate: (c) => this.submitCandidate(c),
      onFinalized: (h) => track(this.onFinalized(h)),
      fetchFinalized: (f, m) => this.fetchFinalized(f, m),
      fetchWalletProofs: (o, k) => this.fetchWalletProofs(o, k),
      close: async () => {
        for (const off of offs) off();
        offs.clear();
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    clearTimeout(this.#tipTimer);
    for (const t of this.#targets.values()) clearTimeout(t.timer);
    this.#itresHandlers.clear();
    this.#finalizedHandlers.clear();
    await this.#node.stop();
    this.#log('network-stopped', {});
  }

  // -- joining -----------------------------------------------------------------------------

  async #join(request: JoinRequest): Promise<TaskAssignment> {
    const started = performance.now();
    const { chainId } = this.#o;
    const taskId = this.#o.taskId ?? (await this.#pickTask());
    const join = await signJoin(
      chainId,
      { taskId, minerKey: request.minerKey, payout: request.payout },
      this.#o.nodeKey.secretKey,
      this.#ed,
    );
    const body = JoinRequestBody.encode({ taskId, join });
    const lead = leadIndex(taskId, this.#nodeKeys.length);
    let wait = this.#o.joinPollMs ?? 500;
    this.#log('join-started', { task: bytesToHex(taskId), lead });
    for (;;) {
      this.#live();
      const order = this.#supervisorOrder().sort(
        (a, b) => Number(b.member === lead) - Number(a.member === lead),
      );
      for (const s of order) {
        let answer: JoinResponse;
        try {
          answer = await this.#request(s, 'join', body, (b) => JoinResponse.decode(b));
        } catch {
          continue;
        }
        if (!equalBytes(answer.taskId, taskId) || !equalBytes(taskIdOf(chainId, answer.definition), taskId)) {
          this.#bad(s.key, 'NET_BAD_REQUEST');
          continue;
        }
        if (answer.minerSet === null) {
          this.#log('join-pending', { admitted: answer.admitted, slots: answer.minerSlots });
          break;
        }
        try {
          await checkMinerSet(chainId, this.#nodeKeys, answer.minerSet, this.#ed, taskId);
        } catch (e) {
          this.#bad(s.key, isPouwError(e) ? e.code : 'UNTYPED');
          continue;
        }
        const mine = bytesToHex(request.minerKey);
        if (!answer.minerSet.body.miners.some((k) => bytesToHex(k) === mine))
          throw new NetError('NET_UNAVAILABLE', 'the task’s miner slots are taken', 'IGNORE', {
            reason: 'TASK_FULL',
            task: bytesToHex(taskId),
          });
        const assignment = this.#joined(s.key, answer, answer.minerSet);
        this.stats.joinMs = performance.now() - started;
        this.#log('joined', {
          task: bytesToHex(taskId),
          miners: answer.minerSet.body.miners.length,
          joinMs: Math.round(this.stats.joinMs),
        });
        return assignment;
      }
      await this.#sleep(wait);
      wait = Math.min(wait * 1.5, MAX_JOIN_POLL_MS);
    }
  }

  /** The first task a supervisor lists (waits, polling, while none answers or none is open). */
  async #pickTask(): Promise<Uint8Array> {
    let wait = this.#o.joinPollMs ?? 500;
    for (;;) {
      this.#live();
      for (const s of this.#supervisorOrder()) {
        try {
          const answer = await this.#request(
            s,
            'tasks',
            TasksRequest.encode({ taskId: new Uint8Array(0) }),
            (b) => TasksResponse.decode(b),
          );
          const first = answer.tasks[0];
          if (first !== undefined) return first.taskId;
        } catch (e) {
          this.#log('tasks-unavailable', { supervisor: s.key, code: isPouwError(e) ? e.code : String(e) });
        }
      }
      await this.#sleep(wait);
      wait = Math.min(wait * 1.5, MAX_JOIN_POLL_MS);
    }
  }

  #joined(from: string, answer: JoinResponse, set: SignedMinerSet): TaskAssignment {
    const { chainId } = this.#o;
    let parameterCount: number;
    let url: string;
    try {
      parameterCount = validateTask(answer.definition).parameterCount;
      url = datasetUrl(answer.dataset);
    } catch (e) {
      this.#bad(from, isPouwError(e) ? e.code : 'UNTYPED');
      throw e;
    }
    const taskId = set.body.taskId;
    const miners = set.body.miners.map((k) => k.slice());
    const assignment: TaskAssignment = {
      chainId,
      task: answer.definition,
      miners,
      dataset: {
        url: this.#o.resolveDatasetUrl?.(url) ?? url,
        segments: answer.dataset.segments,
        testSegments: [...answer.dataset.testSegments],
      },
    };
    const task: JoinedTask = {
      taskId,
      hex: bytesToHex(taskId),
      topic: topics.itres(chainId, taskId),
      definition: answer.definition,
      parameterCount,
      minerSet: set,
      miners: new Set(miners.map((k) => bytesToHex(k))),
      assignment,
    };
    this.#task = task;
    this.#subscribeItRes(task);
    // Every other miner of the task: a direct WebRTC connection, signalled through the relay.
    const mine = bytesToHex(this.#o.nodeKey.publicKey);
    for (const k of miners) {
      const hex = bytesToHex(k);
      if (hex === mine) continue;
      const peer = peerOfKey(k).toString();
      const target = this.#target(peer, 'miner', [
        multiaddr(`${this.#o.relay}/p2p-circuit/webrtc/p2p/${peer}`),
      ]);
      this.#keep(target, hex > mine ? 0 : SECOND_DIALER_DELAY_MS);
    }
    return assignment;
  }

  // -- gossip --------------------------------------------------------------------------------

  #subscribeItRes(task: JoinedTask): void {
    const mine = bytesToHex(this.#o.nodeKey.publicKey);
    this.#subscribe(
      task.topic,
      async (data) => {
        const msg = ItRes.decode(data);
        if (!equalBytes(msg.body.taskId, task.taskId))
          throw new NetError('NET_BAD_REQUEST', 'an IT_RES of another task on this task’s topic');
        const miner = bytesToHex(msg.body.miner);
        if (!task.miners.has(miner))
          throw new WorkError('VERIFY_MEMBERSHIP', 'the IT_RES is not from a miner of this task');
        if (miner === mine) throw new NetError('NET_BAD_REQUEST', 'our own IT_RES came back', 'IGNORE');
        await checkItRes(this.#o.chainId, msg, task.parameterCount, this.#ed);
        return msg;
      },
      (msg) => {
        this.stats.itres.delivered++;
        for (const h of this.#itresHandlers) h(msg);
      },
      (verdict) => {
        if (verdict === 'REJECT') this.stats.itres.rejected++;
        else this.stats.itres.ignored++;
      },
    );
  }

  #subscribeBlocks(): void {
    this.#subscribe(
      topics.blocks(this.#o.chainId),
      (data, from) => this.#checkFinalized(from, FinalizedBlock.decode(data)),
      (f) => this.#finalized(f),
    );
  }

  /** Checks a finalized block's certificate against the genesis committee; throws typed errors. */
  #checkFinalized(_from: string, f: FinalizedBlock): FinalizedHeader {
    if (f.certificate === null)
      throw new NetError('NET_BAD_REQUEST', 'a finalized block without a certificate');
    verifyCertificate(f.certificate, {
      chainId: this.#o.chainId,
      height: f.block.header.height,
      blockHash: blockHash(this.#o.chainId, f.block.header),
      groupPublicKey: this.#o.committee.groupPublicKey,
      blsVerify: this.#blsVerify,
    });
    return { header: f.block.header, certificate: f.certificate };
  }

  #finalized(f: FinalizedHeader): void {
    if (f.header.height <= this.#tip) return;
    this.#tip = f.header.height;
    this.stats.finalizedSeen++;
    for (const h of this.#finalizedHandlers) h(f);
  }

  /**
   * Subscribes with a stateless validator (decode and check before anything sees the message). A
   * typed REJECT counts against the forwarding peer; IGNORE drops without penalty.
   */
  #subscribe<T>(
    topic: string,
    validate: (data: Uint8Array, from: string) => T | Promise<T>,
    deliver: (value: T) => void,
    onDrop?: (verdict: 'REJECT' | 'IGNORE') => void,
  ): void {
    const pubsub = this.#node.services.pubsub;
    const decoded = new WeakMap<object, T>();
    pubsub.topicValidators.set(topic, async (source, msg) => {
      const from = source.toString();
      if (msg.type !== 'signed') {
        this.#bad(from, 'NET_MALFORMED');
        onDrop?.('REJECT');
        return TopicValidatorResult.Reject;
      }
      try {
        decoded.set(msg, await validate(msg.data, from));
        return TopicValidatorResult.Accept;
      } catch (e) {
        if (isPouwError(e) && e.verdict !== 'REJECT') {
          onDrop?.('IGNORE');
          return TopicValidatorResult.Ignore;
        }
        this.#bad(from, isPouwError(e) ? e.code : 'UNTYPED');
        onDrop?.('REJECT');
        return TopicValidatorResult.Reject;
      }
    });
    pubsub.addEventListener('message', (evt) => {
      const msg = evt.detail;
      if (msg.topic !== topic || !decoded.has(msg)) return;
      const value = decoded.get(msg)!;
      decoded.delete(msg);
      deliver(value);
    });
    pubsub.subscribe(topic);
  }

  // -- requests ------------------------------------------------------------------------------

  /**
   * One request to supervisor `s`; `decode` turns the answer's body into its type. A body that
   * does not decode (or an oversized or malformed answer) counts against the supervisor.
   */
  async #request<T>(
    s: Target,
    name: ProtocolName,
    body: Uint8Array,
    decode: (b: Uint8Array) => T,
    timeoutMs = this.#o.requestTimeoutMs ?? 10_000,
  ): Promise<T> {
    let bytes: Uint8Array;
    try {
      bytes = await requestOnce(this.#node, s.addrs, name, body, { timeoutMs, signal: this.#closing.signal });
    } catch (e) {
      if (
        isPouwError(e) &&
        (e.code === 'NET_OVERSIZED' || e.code === 'NET_MALFORMED' || e.name === 'DecodeError')
      )
        this.#bad(s.key, e.code);
      throw e;
    }
    try {
      return decode(bytes);
    } catch (e) {
      this.#bad(s.key, isPouwError(e) ? e.code : 'UNTYPED');
      throw e;
    }
  }

  async #anySupervisor<T>(name: ProtocolName, body: Uint8Array, decode: (b: Uint8Array) => T): Promise<T> {
    let last: unknown;
    for (const s of this.#supervisorOrder()) {
      try {
        return await this.#request(s, name, body, decode);
      } catch (e) {
        last = e;
      }
    }
    throw isPouwError(last) ? last : new NetError('NET_UNAVAILABLE', 'no supervisor answered', 'IGNORE');
  }

  /** Supervisors, connected ones first, rotating so the load spreads. */
  #supervisorOrder(): (Target & { member: number })[] {
    const all = [...this.#supervisors.values()];
    const start = this.#rotation++ % all.length;
    const rotated = [...all.slice(start), ...all.slice(0, start)];
    return rotated.sort((a, b) => Number(this.#satisfied(b)) - Number(this.#satisfied(a)));
  }

  #scheduleTipPoll(): void {
    if (this.#closed) return;
    this.#tipTimer = setTimeout(() => {
      this.#pollTip().finally(() => this.#scheduleTipPoll());
    }, this.#o.tipPollMs ?? 4000);
  }

  /** Catches up on finalized headers a missed gossip message did not bring. */
  async #pollTip(): Promise<void> {
    if (this.#finalizedHandlers.size === 0) return;
    try {
      const status = await this.#anySupervisor(
        'status',
        StatusRequest.encode({ chainId: utf8(this.#o.chainId) }),
        (b) => StatusResponse.decode(b),
      );
      if (status.tipHeight <= this.#tip) return;
      const from = this.#tip + 1n;
      const count = Number(status.tipHeight - this.#tip);
      const headers = await this.fetchFinalized(from, Math.min(count, TIP_CATCH_UP));
      for (const f of headers) this.#finalized(f);
    } catch {
      // The next poll tries again.
    }
  }

  // -- connections ---------------------------------------------------------------------------

  #target(peer: string, role: PeerRole, addrs: Multiaddr[]): Target {
    const existing = this.#targets.get(peer);
    if (existing !== undefined) return existing;
    const t: Target = {
      peer: peerIdFromString(peer),
      key: peer,
      role,
      addrs,
      attempts: 0,
      timer: undefined,
      dialing: false,
      connectedOnce: false,
    };
    this.#targets.set(peer, t);
    return t;
  }

  /** Whether `t` has the connection it needs (a miner: direct WebRTC; others: any unlimited one). */
  #satisfied(t: Target): boolean {
    return this.#node
      .getConnections(t.peer)
      .some(
        (c) =>
          c.status === 'open' &&
          (t.role === 'miner' ? connectionPath(c) === 'webrtc' : c.limits === undefined),
      );
  }

  #keep(t: Target, delayMs: number): void {
    if (this.#closed || t.timer !== undefined || t.dialing) return;
    t.timer = setTimeout(() => {
      t.timer = undefined;
      void this.#dial(t);
    }, delayMs);
  }

  async #dial(t: Target): Promise<void> {
    if (this.#closed || t.dialing) return;
    if (this.#satisfied(t)) {
      t.attempts = 0;
      return;
    }
    t.dialing = true;
    const started = performance.now();
    try {
      await this.#node.dial(t.addrs, {
        signal: AbortSignal.any([AbortSignal.timeout(DIAL_TIMEOUT_MS), this.#closing.signal]),
      });
      if (t.connectedOnce) this.stats.reconnects++;
      if (t.role === 'miner' && this.stats.webrtcDialMs[t.key] === undefined && this.#satisfied(t))
        this.stats.webrtcDialMs[t.key] = performance.now() - started;
      t.connectedOnce = true;
      t.attempts = 0;
      this.#log('connected', { peer: t.key, role: t.role, ms: Math.round(performance.now() - started) });
    } catch (e) {
      if (this.#closed) return;
      this.stats.dialFailures++;
      t.attempts++;
      const delay = this.#backoff(t.attempts);
      this.#log('dial-failed', {
        peer: t.key,
        role: t.role,
        attempt: t.attempts,
        retryMs: delay,
        error: errorText(e),
      });
      t.dialing = false;
      this.#keep(t, delay);
      return;
    } finally {
      t.dialing = false;
    }
  }

  #onConnectionClosed(c: Connection): void {
    if (this.#closed) return;
    const t = this.#targets.get(c.remotePeer.toString());
    if (t === undefined) return;
    // Other connections may still serve; look again once libp2p has dropped this one.
    setTimeout(() => {
      if (this.#closed || this.#satisfied(t)) return;
      if (t.connectedOnce) this.#log('disconnected', { peer: t.key, role: t.role });
      this.#keep(t, this.#backoff(t.attempts));
    }, 0);
  }

  #backoff(attempts: number): number {
    const { initialMs, maxMs } = this.#o.backoff ?? DEFAULT_BACKOFF;
    const exp = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempts - 1));
    // Jitter (±20%) so many volunteers dropped by one relay restart do not redial in step.
    return Math.round(exp * (0.8 + 0.4 * Math.random()));
  }

  // -- bad input -----------------------------------------------------------------------------

  #bad(peer: string, code: string): void {
    const byCode = this.stats.badInput[peer] ?? {};
    this.stats.badInput[peer] = byCode;
    byCode[code] = (byCode[code] ?? 0) + 1;
    const total = Object.values(byCode).reduce((a, b) => a + b, 0);
    this.#log('bad-input', { peer, code, total });
    const role = this.#targets.get(peer)?.role;
    // The relay and the supervisors forward others' gossip and serve every request: dropping them
    // would cut this volunteer off; their messages are dropped one by one instead.
    if (role === 'relay' || role === 'supervisor') return;
    if (total >= (this.#o.maxBadInputs ?? 64) && !this.#banned.has(peer)) {
      this.#banned.set(peer, Date.now() + (this.#o.banMs ?? 60_000));
      const conn = this.#node.getConnections().find((c) => c.remotePeer.toString() === peer);
      if (conn !== undefined) this.#node.hangUp(conn.remotePeer).catch(() => {});
      this.#log('peer-banned', { peer, total });
    }
  }

  #live(): void {
    if (this.#closed) throw new NetError('NET_CLOSED', 'the network is closed', 'IGNORE');
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      this.#closing.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(new NetError('NET_CLOSED', 'the network is closed', 'IGNORE'));
        },
        { once: true },
      );
    });
  }

  #log(event: string, fields: Record<string, unknown>): void {
    this.#o.log?.(event, fields);
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message !== ''
    ? message
    : String((e as { type?: unknown })?.type ?? e);
}

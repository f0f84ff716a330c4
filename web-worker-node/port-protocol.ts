/**
 * The network port between the volunteer worker and its page (or the edge process's main thread):
 * outgoing IT_RES and block candidates, incoming peer IT_RES and block templates, each as its SSZ
 * bytes (the codecs of shared/pouw/itres.ts, shared/chain/types.ts and shared/net/messages.ts), so
 * what crosses is exactly what the network carries and every message is decoded at the boundary.
 *
 * `bridgeNetwork` runs on the page and connects the port to a `VolunteerNetwork`; `PortNetwork` runs
 * in the worker and gives the miner its transport, its template and its candidate sink.
 */
import type { Block as BlockValue } from '../shared/chain/types.ts';
import { Block } from '../shared/chain/types.ts';
import { BlockCandidate } from '../shared/net/messages.ts';
import type { BlockCandidate as BlockCandidateValue } from '../shared/pouw/candidate.ts';
import type { ItRes as ItResValue } from '../shared/pouw/itres.ts';
import { ItRes } from '../shared/pouw/itres.ts';
import type { ItResTransport } from '../shared/pouw/miner.ts';
import { CandidateGate } from './candidate-gate.ts';
import type { VolunteerNetwork } from './network.ts';
import { errorInfo, type VolunteerEvent } from './progress.ts';

const TEMPLATE_RETRY_MS = 2000;
const TEMPLATE_REFRESH_MS = 20_000;

/** Page → worker. */
export type ToWorker = { t: 'itres'; bytes: Uint8Array } | { t: 'template'; bytes: Uint8Array | null };
/** Worker → page. */
export type FromWorker = { t: 'itres'; bytes: Uint8Array } | { t: 'candidate'; bytes: Uint8Array };

/** The part of a MessagePort (DOM or node:worker_threads) used here. */
export interface NetworkPort {
  postMessage(message: unknown): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  close(): void;
}

export interface NetworkBridge {
  /** Fetches a template on the current tip and hands it to the worker (the latest request wins). */
  refreshTemplate(): Promise<void>;
  close(): void;
}

/**
 * Connects `network` to the worker's port: the worker's IT_RES are published, its candidates
 * submitted (the verdict comes back as an event), peer IT_RES are forwarded, and a fresh template is
 * fetched at once and after every finalized block.
 */
export function bridgeNetwork(
  network: VolunteerNetwork,
  port: NetworkPort,
  ctx: { payout: Uint8Array; taskId: Uint8Array; onEvent: (e: VolunteerEvent) => void },
): NetworkBridge {
  let closed = false;
  let templateRequests = 0;
  const gate = new CandidateGate();
  const post = (m: ToWorker) => {
    if (!closed) port.postMessage(m);
  };
  const fail = (e: unknown) => ctx.onEvent({ type: 'error', error: errorInfo(e) });
  port.onmessage = (ev) => {
    const m = ev.data as FromWorker;
    if (m.t === 'itres') {
      network.publishItRes(ItRes.decode(m.bytes)).catch(fail);
    } else if (m.t === 'candidate') {
      const candidate = BlockCandidate.decode(m.bytes);
      const height = candidate.block.header.height;
      if (!gate.admit(height)) return;
      network.submitCandidate(candidate).then(
        (v) => {
          gate.settle(height, v.accepted);
          // Refused as a block (stale height or parent): the template is behind the chain.
          if (!v.accepted && v.code.startsWith('BLOCK_')) refreshSoon();
          ctx.onEvent(
            v.accepted
              ? { type: 'verdict', height: v.height, accepted: true }
              : {
                  type: 'verdict',
                  height: candidate.block.header.height,
                  accepted: false,
                  code: v.code,
                  reason: v.reason,
                },
          );
        },
        (e: unknown) => {
          gate.settle(height, false);
          fail(e);
        },
      );
    }
  };
  const refreshTemplate = async () => {
    const mine = ++templateRequests;
    const block = await network.fetchTemplate({ payout: ctx.payout, taskId: ctx.taskId });
    // A slower, older request must not overwrite a newer template.
    if (mine !== templateRequests) return;
    post({ t: 'template', bytes: block === undefined ? null : Block.encode(block) });
  };
  // A template can lag the chain (a finalized block missed, or a supervisor behind when asked):
  // it is fetched again after a block-level refusal (at most every 2 s) and every 20 s anyway.
  let lastRefresh = 0;
  const refreshSoon = () => {
    if (closed || Date.now() - lastRefresh < TEMPLATE_RETRY_MS) return;
    lastRefresh = Date.now();
    refreshTemplate().catch(fail);
  };
  const periodic = setInterval(refreshSoon, TEMPLATE_REFRESH_MS);
  const offItRes = network.onItRes((msg) => post({ t: 'itres', bytes: ItRes.encode(msg) }));
  const offFinalized = network.onFinalized(() => {
    refreshTemplate().catch(fail);
  });
  refreshTemplate().catch(fail);
  return {
    refreshTemplate,
    close() {
      closed = true;
      clearInterval(periodic);
      offItRes();
      offFinalized();
      port.onmessage = null;
      port.close();
    },
  };
}

export interface PortNetworkCounters {
  sent: number;
  received: number;
  duplicates: number;
  rejected: number;
  dropped: number;
  /** Rejections by error code. */
  rejectedByCode: Record<string, number>;
}

/** The worker's side of the port. */
export class PortNetwork {
  private current: BlockValue | undefined;
  private receiver: ((msg: ItResValue) => Promise<'queued' | 'duplicate' | 'dropped'>) | undefined;
  readonly counters: PortNetworkCounters = {
    sent: 0,
    received: 0,
    duplicates: 0,
    rejected: 0,
    dropped: 0,
    rejectedByCode: {},
  };

  constructor(private readonly port: NetworkPort) {
    port.onmessage = (ev) => this.onMessage(ev.data as ToWorker);
  }

  /** Where peer IT_RES go (the miner's `receive`); until set, they are counted and dropped. */
  setReceiver(receive: (msg: ItResValue) => Promise<'queued' | 'duplicate' | 'dropped'>): void {
    this.receiver = receive;
  }

  /** The latest template from the page (the miner's `template` option). */
  template(): BlockValue | undefined {
    return this.current;
  }

  readonly transport: ItResTransport = {
    broadcast: (msg) => {
      this.counters.sent++;
      this.port.postMessage({ t: 'itres', bytes: ItRes.encode(msg) } satisfies FromWorker);
    },
  };

  sendCandidate(c: BlockCandidateValue): void {
    this.port.postMessage({ t: 'candidate', bytes: BlockCandidate.encode(c) } satisfies FromWorker);
  }

  close(): void {
    this.port.onmessage = null;
    this.port.close();
  }

  private onMessage(m: ToWorker): void {
    if (m.t === 'template') {
      this.current = m.bytes === null ? undefined : Block.decode(m.bytes);
      return;
    }
    if (m.t !== 'itres') return;
    const reject = (code: string) => {
      this.counters.rejected++;
      this.counters.rejectedByCode[code] = (this.counters.rejectedByCode[code] ?? 0) + 1;
    };
    let msg: ItResValue;
    try {
      msg = ItRes.decode(m.bytes);
    } catch (e) {
      reject((e as { code?: string }).code ?? 'DECODE_MALFORMED');
      return;
    }
    if (this.receiver === undefined) {
      this.counters.dropped++;
      return;
    }
    this.receiver(msg).then(
      (r) => {
        if (r === 'queued') this.counters.received++;
        else if (r === 'duplicate') this.counters.duplicates++;
        else this.counters.dropped++;
      },
      (e: unknown) => reject((e as { code?: string }).code ?? 'UNKNOWN'),
    );
  }
}

/**
 * The page's (or edge process's) side of the volunteer: joins a task through a `VolunteerNetwork`,
 * bridges that network to the worker's port (port-protocol.ts), initializes the worker with the
 * task, the data's location and the node key, and folds the worker's progress events (and the
 * supervisors' verdicts) into a `ProgressTracker`. Platform-neutral: the worker handle comes from
 * `spawnVolunteerWorker` (browser, here) or `startEdgeVolunteer` (Node, volunteer-edge.ts).
 */
import * as Comlink from 'comlink';
import { TaskDefinition, taskId } from '../shared/pouw/task.ts';
import type { Unsubscribe, VolunteerNetwork } from './network.ts';
import { bridgeNetwork, type NetworkBridge, type NetworkPort } from './port-protocol.ts';
import { ProgressTracker, type VolunteerEvent, type VolunteerSnapshot } from './progress.ts';
import type { InitReport, VolunteerInit, VolunteerStatus, VolunteerWorkerApi } from './volunteer-core.ts';

/** A running volunteer worker, whatever the platform. */
export interface VolunteerWorkerHandle {
  readonly api: Comlink.Remote<VolunteerWorkerApi>;
  terminate(): Promise<void>;
}

/**
 * Spawns the volunteer Web Worker. The literal `new Worker(new URL('./volunteer.worker.ts',
 * import.meta.url))` is what Vite recognizes and bundles; `url` overrides it (a test page whose
 * module lives elsewhere, or a prebuilt worker).
 */
export function spawnVolunteerWorker(url?: string | URL): VolunteerWorkerHandle {
  const worker =
    url === undefined
      ? new Worker(new URL('./volunteer.worker.ts', import.meta.url), {
          type: 'module',
          name: 'pouw-volunteer',
        })
      : new Worker(url, { type: 'module', name: 'pouw-volunteer' });
  const api = Comlink.wrap<VolunteerWorkerApi>(worker);
  return {
    api,
    async terminate() {
      api[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}

export interface VolunteerOptions {
  network: VolunteerNetwork;
  worker: VolunteerWorkerHandle;
  /** The node key: signs IT_RES (Ed25519 seed and public key). */
  identity: { secretKey: Uint8Array; publicKey: Uint8Array };
  /** 20-byte address payload the templates pay (the wallet's). */
  payout: Uint8Array;
  backend?: VolunteerInit['backend'];
  heldOut?: VolunteerInit['heldOut'];
  maxIterations?: number;
  dutyCycle?: number;
  /**
   * Where the data is, when the network's dataset URL must be resolved differently here (e.g. a
   * page-relative path made absolute, or a file: URL for an edge volunteer).
   */
  datasetUrl?: (networkUrl: string) => string;
  onEvent?: (e: VolunteerEvent) => void;
}

export class Volunteer {
  readonly progress = new ProgressTracker();
  private readonly listeners = new Set<(e: VolunteerEvent) => void>();
  private bridge: NetworkBridge | undefined;
  private closed = false;
  report: InitReport | undefined;

  private constructor(private readonly opts: VolunteerOptions) {
    if (opts.onEvent !== undefined) this.listeners.add(opts.onEvent);
  }

  /** Joins the task and initializes the worker (paused: call start()). */
  static async launch(opts: VolunteerOptions): Promise<Volunteer> {
    const v = new Volunteer(opts);
    try {
      await v.init();
    } catch (e) {
      await v.close();
      throw e;
    }
    return v;
  }

  private async init(): Promise<void> {
    const { network, worker, identity, payout } = this.opts;
    this.emit({ type: 'phase', phase: 'joining', detail: network.description });
    const assignment = await network.joinTask({ minerKey: identity.publicKey, payout });
    const { port1, port2 } = new MessageChannel();
    this.bridge = bridgeNetwork(network, port1 as unknown as NetworkPort, {
      payout,
      taskId: taskId(assignment.chainId, assignment.task),
      onEvent: (e) => this.emit(e),
    });
    const dataset = {
      ...assignment.dataset,
      url: this.opts.datasetUrl?.(assignment.dataset.url) ?? assignment.dataset.url,
    };
    const init: VolunteerInit = {
      chainId: assignment.chainId,
      task: TaskDefinition.encode(assignment.task),
      miners: assignment.miners,
      dataset: { url: dataset.url, segments: dataset.segments, testSegments: [...dataset.testSegments] },
      secretKey: identity.secretKey,
      ...(this.opts.backend === undefined ? {} : { backend: this.opts.backend }),
      ...(this.opts.heldOut === undefined ? {} : { heldOut: this.opts.heldOut }),
      ...(this.opts.maxIterations === undefined ? {} : { maxIterations: this.opts.maxIterations }),
      ...(this.opts.dutyCycle === undefined ? {} : { dutyCycle: this.opts.dutyCycle }),
    };
    this.report = await worker.api.init(
      init,
      Comlink.transfer(port2, [port2 as unknown as Transferable]) as unknown as NetworkPort,
      Comlink.proxy((e: VolunteerEvent) => this.emit(e)),
    );
  }

  /** Every event, as it arrives (the tracker has already folded it in). */
  onEvent(listener: (e: VolunteerEvent) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): VolunteerSnapshot {
    return this.progress.snapshot();
  }

  start(): Promise<void> {
    return this.opts.worker.api.start();
  }

  stop(): Promise<void> {
    return this.opts.worker.api.stop();
  }

  status(): Promise<VolunteerStatus> {
    return this.opts.worker.api.status();
  }

  /** Stops training, closes the worker's engine and port, the bridge, and the worker itself. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.opts.worker.api.close();
    } catch {
      // The worker may already be gone (failed init, terminated tab): terminate regardless.
    }
    this.bridge?.close();
    await this.opts.worker.terminate();
  }

  private emit(e: VolunteerEvent): void {
    this.progress.apply(e);
    for (const l of this.listeners) l(e);
  }
}

/**
 * The volunteer's worker: one thread holding the trainer (TF.js engine on the backend the ladder
 * picks) and the miner (shared/pouw/miner.ts, with its mining service grinding nonces on the same
 * thread between training steps), exposed with comlink. The page hands it the task, where the data
 * is, the node key, a port for network I/O (port-protocol.ts) and a callback for progress events.
 *
 * Platform-neutral: everything platform-specific (TF.js backends, reading bytes, how to yield to the
 * event loop, SHA-256) comes in as a `VolunteerPlatform`, so the same class runs in a browser Web
 * Worker (volunteer.worker.ts) and in a Node worker thread (volunteer-edge.worker.ts).
 */
import * as Comlink from 'comlink';
import { bytesToHex } from '../shared/bytes.ts';
import { defaultEd25519 } from '../shared/crypto/ed25519.ts';
import { VolunteerError } from '../shared/errors.ts';
import type { Batch } from '../shared/pouw/engine.ts';
import { Miner } from '../shared/pouw/miner.ts';
import { type Digest, LocalMiningService } from '../shared/pouw/mining.ts';
import { TaskDefinition, taskId, validateTask } from '../shared/pouw/task.ts';
import { type CommittedData, type DatasetSpec, heldOutBatch, loadCommittedMnist } from './data/committed.ts';
import { type NetworkPort, PortNetwork } from './port-protocol.ts';
import { errorInfo, type VolunteerEvent, type VolunteerPhase } from './progress.ts';
import type { WasmFileName } from './trainer/backends-browser.ts';
import {
  type BackendChoice,
  type BackendName,
  type BackendPreferences,
  createTfjsEngine,
  type TfjsTrainingEngine,
} from './trainer/engine-tfjs.ts';

/** What differs between a browser worker and a Node worker thread. */
export interface VolunteerPlatform {
  readonly name: 'browser' | 'node';
  /** Runs the platform's backend ladder (backends-browser.ts / backends-node.ts). */
  selectBackend(prefs: BackendPreferences): Promise<BackendChoice>;
  /** Bundler-emitted .wasm files (browser only; before selectBackend). */
  configureWasmFiles?(files: Partial<Record<WasmFileName, string>>): void;
  /** The bytes at `url` (fetch; file: URLs under Node). */
  fetchBytes(url: string): Promise<Uint8Array>;
  /** Resolves on a later macrotask, so port messages and comlink calls get in between steps. */
  yieldToEvents(): Promise<void>;
  /** SHA-256 for the miner's hashes over n and IT_RES ids. */
  digest: Digest;
  /** A monotonic clock in ms. */
  now(): number;
}

export interface VolunteerInit {
  chainId: string;
  /** The task definition's SSZ bytes (decoded and validated here, at the boundary). */
  task: Uint8Array;
  /** Ed25519 public keys of the task's miners, this volunteer's included. */
  miners: Uint8Array[];
  dataset: DatasetSpec;
  /** Ed25519 seed of the node key that signs this volunteer's IT_RES. */
  secretKey: Uint8Array;
  backend?: {
    force?: BackendName;
    /** Browser: URL prefix of the .wasm files; Node: a directory. */
    wasmPaths?: string;
    /** Browser: the .wasm files by name (bundler output with hashed names). */
    wasmFiles?: Partial<Record<WasmFileName, string>>;
  };
  /** Held-out evaluation every `every` iterations on the first `examples` held-out examples. */
  heldOut?: { every: number; examples: number };
  /** Pause for good after this many iterations (tests and benchmarks); default: the task's epochs. */
  maxIterations?: number;
  /**
   * Share of wall time spent working, in (0, 1] (default 1): after an iteration that took d ms the
   * worker idles d·(1/dutyCycle − 1) ms, so a volunteer can cap the CPU it lends (a laptop on battery).
   */
  dutyCycle?: number;
}

export interface InitReport {
  backend: BackendChoice;
  publicKey: Uint8Array;
  taskId: string;
  parameterCount: number;
  /** Nonces each iteration earns. */
  allowance: number;
  trainExamples: number;
}

export interface VolunteerStatus {
  phase: VolunteerPhase;
  iteration: number;
  itres: { sent: number; received: number; duplicates: number; rejected: number; dropped: number };
  rejectedByCode: Record<string, number>;
  candidates: number;
  noncesTried: number;
}

type EventSink = (e: VolunteerEvent) => unknown;

const DEFAULT_HELD_OUT = { every: 25, examples: 500 };

export class VolunteerCore {
  private phase: VolunteerPhase = 'idle';
  private emitTo: EventSink | undefined;
  private net: PortNetwork | undefined;
  private miner: Miner | undefined;
  private mining: LocalMiningService | undefined;
  private engine: TfjsTrainingEngine | undefined;
  private heldOut: Batch | undefined;
  private cfg: VolunteerInit | undefined;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();

  constructor(private readonly platform: VolunteerPlatform) {}

  /**
   * Loads and checks the data, picks the backend, builds engine and miner, and connects the port.
   * Throws VolunteerError('VOLUNTEER_MISUSE') if called twice, DATASET_MISMATCH for wrong data,
   * WorkError for a bad task or no usable backend.
   */
  async init(cfg: VolunteerInit, port: NetworkPort, onEvent: EventSink): Promise<InitReport> {
    if (this.phase !== 'idle') throw new VolunteerError('VOLUNTEER_MISUSE', `init in phase ${this.phase}`);
    const duty = cfg.dutyCycle ?? 1;
    if (!(duty > 0 && duty <= 1))
      throw new VolunteerError('VOLUNTEER_MISUSE', `dutyCycle must be in (0, 1], got ${cfg.dutyCycle}`);
    this.emitTo = onEvent;
    this.cfg = cfg;
    try {
      const task = TaskDefinition.decode(cfg.task);
      const layout = validateTask(task);
      this.setPhase('loading-data');
      const data: CommittedData = await loadCommittedMnist(
        cfg.chainId,
        task,
        cfg.dataset,
        await this.platform.fetchBytes(cfg.dataset.url),
      );
      this.emit({
        type: 'dataset',
        train: data.train.count,
        heldOut: data.heldOut.count,
        commitment: bytesToHex(data.commitment),
      });
      const held = cfg.heldOut ?? DEFAULT_HELD_OUT;
      if (data.heldOut.count > 0 && held.examples > 0) this.heldOut = heldOutBatch(data, held.examples);

      this.setPhase('selecting-backend');
      if (cfg.backend?.wasmFiles !== undefined) this.platform.configureWasmFiles?.(cfg.backend.wasmFiles);
      const choice = await this.platform.selectBackend({
        ...(cfg.backend?.force === undefined ? {} : { force: cfg.backend.force }),
        ...(cfg.backend?.wasmPaths === undefined ? {} : { wasmPaths: cfg.backend.wasmPaths }),
      });
      this.emit({
        type: 'backend',
        backend: choice.backend,
        selfTestError: choice.selfTestError,
        skipped: choice.skipped,
      });
      this.engine = await createTfjsEngine(task, { backend: choice.backend });

      const ed = await defaultEd25519();
      const publicKey = await ed.getPublicKey(cfg.secretKey);
      const id = taskId(cfg.chainId, task);
      const net = new PortNetwork(port);
      this.net = net;
      this.mining = new LocalMiningService({
        chainId: cfg.chainId,
        taskId: id,
        parameterCount: layout.parameterCount,
        digest: this.platform.digest,
        yieldToEvents: () => this.platform.yieldToEvents(),
      });
      const miner = await Miner.create({
        chainId: cfg.chainId,
        task,
        engine: this.engine,
        dataset: data.train,
        identity: { secretKey: cfg.secretKey, publicKey, ed },
        miners: cfg.miners,
        clock: () => BigInt(Date.now()),
        template: () => net.template(),
        transport: net.transport,
        mining: this.mining,
        digest: this.platform.digest,
        onCandidate: (c) => {
          net.sendCandidate(c);
          this.emit({ type: 'candidate', iteration: c.lucky.body.iteration, height: c.block.header.height });
        },
      });
      this.miner = miner;
      net.setReceiver((msg) => miner.receive(msg));
      this.setPhase('paused', 'ready');
      return {
        backend: choice,
        publicKey,
        taskId: bytesToHex(id),
        parameterCount: layout.parameterCount,
        allowance: miner.allowance,
        trainExamples: data.train.count,
      };
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  /** Starts or resumes training (no-op while training, after the task is done, or after an error). */
  start(): void {
    if (this.miner === undefined)
      throw new VolunteerError('VOLUNTEER_MISUSE', `start in phase ${this.phase}: init first`);
    if (this.running || this.phase === 'done' || this.phase === 'error') return;
    this.running = true;
    this.setPhase('training');
    this.loopDone = this.loop();
  }

  /** Pauses after the current iteration; the miner keeps its state and peer messages keep queuing. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loopDone;
    if (this.phase === 'training') {
      // The last IT_RES is still being signed and sent: settle it so the counters are final.
      await this.miner?.drain().catch(() => undefined);
      await this.emitCounters();
      this.setPhase('paused');
    }
  }

  async status(): Promise<VolunteerStatus> {
    const c = this.net?.counters;
    const stats = await this.miner?.stats();
    return {
      phase: this.phase,
      iteration: this.miner?.iteration ?? 0,
      itres: {
        sent: c?.sent ?? 0,
        received: c?.received ?? 0,
        duplicates: c?.duplicates ?? 0,
        rejected: c?.rejected ?? 0,
        dropped: c?.dropped ?? 0,
      },
      rejectedByCode: { ...(c?.rejectedByCode ?? {}) },
      candidates: stats?.candidates ?? 0,
      noncesTried: stats?.mining.tried ?? 0,
    };
  }

  /** Stops, waits for messages and mining in flight, and frees the engine and the port. */
  async close(): Promise<void> {
    await this.stop();
    try {
      await this.miner?.drain();
    } catch {
      // A failure was already reported as an error event; closing must still free everything.
    }
    this.miner?.close();
    this.mining?.close();
    this.engine?.dispose();
    this.net?.close();
    this.miner = undefined;
    this.engine = undefined;
  }

  private async loop(): Promise<void> {
    const miner = this.miner!;
    const net = this.net!;
    const every = this.cfg!.heldOut?.every ?? DEFAULT_HELD_OUT.every;
    const limit = this.cfg!.maxIterations ?? Number.POSITIVE_INFINITY;
    const idleFactor = 1 / (this.cfg!.dutyCycle ?? 1) - 1;
    try {
      while (this.running) {
        const began = this.platform.now();
        const report = miner.iteration >= limit ? undefined : await miner.iterate();
        if (report === undefined) {
          this.running = false;
          await miner.drain();
          await this.emitCounters();
          this.setPhase(
            'done',
            miner.done ? 'the task’s epochs are done' : `stopped after ${limit} iterations`,
          );
          break;
        }
        const stats = await miner.stats();
        const c = net.counters;
        this.emit({
          type: 'iteration',
          t: this.platform.now(),
          iteration: report.iteration,
          epoch: report.epoch,
          loss: report.loss,
          accuracy: report.accuracy,
          mapEntries: report.mapEntries,
          peers: report.peers,
          itresSent: c.sent,
          itresReceived: c.received,
          itresDuplicates: c.duplicates,
          itresRejected: c.rejected,
          noncesTried: stats.mining.tried,
        });
        if (this.heldOut !== undefined && every > 0 && (report.iteration + 1) % every === 0) {
          const r = await this.engine!.evaluate(miner.model(), this.heldOut);
          this.emit({
            type: 'heldout',
            iteration: report.iteration,
            loss: r.loss,
            accuracy: r.accuracy,
            examples: this.heldOut.labels.length,
          });
        }
        if (idleFactor > 0) {
          const idle = (this.platform.now() - began) * idleFactor;
          await new Promise((resolve) => setTimeout(resolve, idle));
        } else {
          await this.platform.yieldToEvents();
        }
      }
    } catch (e) {
      this.running = false;
      this.fail(e);
    }
  }

  private async emitCounters(): Promise<void> {
    const c = this.net!.counters;
    const stats = await this.miner!.stats();
    this.emit({
      type: 'counters',
      itresSent: c.sent,
      itresReceived: c.received,
      itresDuplicates: c.duplicates,
      itresRejected: c.rejected,
      noncesTried: stats.mining.tried,
    });
  }

  private setPhase(phase: VolunteerPhase, detail?: string): void {
    this.phase = phase;
    this.emit(detail === undefined ? { type: 'phase', phase } : { type: 'phase', phase, detail });
  }

  private fail(e: unknown): void {
    this.phase = 'error';
    this.emit({ type: 'error', error: errorInfo(e) });
  }

  private emit(e: VolunteerEvent): void {
    try {
      // A comlink proxy returns a promise; a page that went away must not crash the worker.
      void Promise.resolve(this.emitTo?.(e)).catch(() => undefined);
    } catch {
      // Same: the sink is gone.
    }
  }
}

/** The comlink surface of the worker (what `Comlink.wrap` gives the page). */
export type VolunteerWorkerApi = Pick<VolunteerCore, 'init' | 'start' | 'stop' | 'status' | 'close'>;

/** Serves a fresh `VolunteerCore` on `endpoint` (the worker's global scope, or a wrapped parentPort). */
export function serveVolunteer(endpoint: Comlink.Endpoint, platform: VolunteerPlatform): VolunteerCore {
  const core = new VolunteerCore(platform);
  Comlink.expose(core, endpoint);
  return core;
}

/**
 * A PoUW miner (DESIGN §4.4): trains its share of a task on an injected `TrainingEngine`, sends one
 * signed IT_RES per iteration, applies its peers' maps, and mines with the nonces each iteration
 * earns, emitting a `BlockCandidate` with the proof bundle a verifier replays.
 *
 * Where the time goes, and how it is kept off the training critical path:
 *  - the engine keeps n and the residual where they are cheapest (engine-tfjs.ts: JS arrays on cpu
 *    and wasm, tensors on the GPUs) and returns only the sparse map; the miner's optional host
 *    residual (`residual: 'host'`) takes plain gradients instead, as a verifier does;
 *  - the miner keeps a CPU mirror of n, updated from maps (O(map) per iteration);
 *  - everything else of an iteration lives in a `MiningService` (mining.ts), which may run on
 *    another core: the hash over all of n (modelHash), the IT_RES's id, work id and signature
 *    (`seal`, with the miner's key), nonce0, the checks of received IT_RES (`check`) and the
 *    grinding. The training thread hands over the map and the step's numbers and goes on; sealing
 *    and grinding run beside the next iteration, at most `miningBacklog` jobs deep, so every earned
 *    nonce is hashed; broadcasts stay in order.
 * Incoming peer messages are checked (task, membership and duplicates here; map and signature by
 * the service) on arrival and queued (bounded) until the next iteration applies them.
 */
import { bytesToHex, equalBytes } from '../bytes.ts';
import { blockHash } from '../chain/ids.ts';
import { meetsTarget } from '../chain/pow.ts';
import type { Block } from '../chain/types.ts';
import type { Ed25519 } from '../crypto/ed25519.ts';
import { WorkError } from '../errors.ts';
import type { BlockCandidate } from './candidate.ts';
import { assignedBatch, batchIndices, batchTensors, type Dataset } from './dataset.ts';
import type { Batch, LocalStepResult, TrainingEngine } from './engine.ts';
import type { CheckedItRes, ItRes } from './itres.ts';
import { MAX_PEER_MSGS } from './itres.ts';
import { nonceAllowance, residualHash } from './lattice.ts';
import {
  type Digest,
  LocalMiningService,
  type MiningOutcome,
  type MiningService,
  type MiningStats,
  nobleDigest,
  residualHashWith,
  residualStepFast,
  type Sealed,
} from './mining.ts';
import { applyMap, isFlushIteration, residualStep, segmentStart } from './residual.ts';
import {
  batchesPerEpoch,
  bitsToFloat32,
  float32Bits,
  type TaskDefinition,
  taskId,
  validateTask,
} from './task.ts';
import { ZnbCommitments } from './znb.ts';

const ZERO32: Uint8Array = new Uint8Array(32);

export interface MinerIdentity {
  /** Ed25519 seed. */
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  ed: Ed25519;
}

/** Where IT_RES messages go (gossip in the network, a bus in tests). */
export interface ItResTransport {
  broadcast(msg: ItRes): void;
}

export interface MinerOptions {
  chainId: string;
  task: TaskDefinition;
  engine: TrainingEngine;
  /** The training examples (at least `task.trainSize`; the batch schedule indexes into them). */
  dataset: Dataset;
  identity: MinerIdentity;
  /** Public keys of the task's miners, this one included; indices follow ascending byte order. */
  miners: readonly Uint8Array[];
  /** Milliseconds since the Unix epoch. */
  clock: () => bigint;
  /** A block template on the current finalized tip paying this miner, or undefined if there is none. */
  template: () => Block | undefined;
  transport: ItResTransport;
  onCandidate?: (candidate: BlockCandidate) => void;
  /**
   * The CPU side of an iteration (mirror of n, model hash, IT_RES ids and signature, checks of
   * received IT_RES, nonce0, grinding); default: a LocalMiningService on this thread holding the
   * miner's key. A service without the key leaves signing to the miner.
   */
  mining?: MiningService;
  /**
   * SHA-256 for the default LocalMiningService and the residual commitment: default noble;
   * node:crypto under Node, WebCrypto in browsers are several times faster.
   */
  digest?: Digest;
  /**
   * Where the residual lives. 'device' (default): the engine keeps n and r and returns only the map
   * (engine-tfjs.ts keeps them in JS arrays on cpu and wasm, on the GPU elsewhere). 'host': the
   * engine only computes gradients at the mirror's n (`gradient(n, batch)`), and r += g,
   * thresholding and the flush run here, as a verifier replays them. Both send byte-identical IT_RES
   * on cpu and wasm (tests/pouw).
   */
  residual?: 'device' | 'host';
  /**
   * Device residual only. True (default) when `engine.step(batch, true)` performs the flush itself.
   * False drives a flush iteration as state() + gradient() + residualStep() + setState().
   */
  flushInStep?: boolean;
  /**
   * What IT_RES.residualHash commits to. 'segment' (default): the residual where it is known
   * without a download, i.e. after a flush iteration (r = 0); zero bytes elsewhere. 'every': the
   * residual after every iteration (one download of r per iteration).
   */
  residualCommitment?: 'segment' | 'every';
  /** Peer messages waiting for the next iteration, at most (default MAX_PEER_MSGS); more are dropped. */
  maxQueuedPeerMessages?: number;
  /**
   * Mining jobs in flight before the miner waits for the oldest (default 8: grinding runs beside
   * the following iterations and may fall behind for a while, e.g. while other processes hold the
   * cores, without holding training back; a host that stays slower does hold it back rather than
   * lose earned nonces). Infinity never waits: the service's own bound then drops the oldest jobs.
   */
  miningBacklog?: number;
}

export interface IterationReport {
  iteration: number;
  epoch: number;
  batchId: number;
  loss: number;
  accuracy: number;
  /** Entries in this iteration's own map. */
  mapEntries: number;
  /** Peer messages applied before the step. */
  peers: number;
  flush: boolean;
  /** A template was available for mining (committed k iterations earlier, tip unchanged). */
  mined: boolean;
}

export interface MinerStats {
  iterations: number;
  mapEntries: number;
  peerMessagesApplied: number;
  peerMessagesDropped: number;
  duplicates: number;
  candidates: number;
}

export type ReceiveResult = 'queued' | 'duplicate' | 'dropped';

/** Per peer: iterations seen, as a window above a floor (bounded memory, late duplicates still caught). */
const SEEN_WINDOW = 1024;
interface PeerSeen {
  floor: number;
  seen: Set<number>;
  max: number;
}

export class Miner {
  readonly taskId: Uint8Array;
  readonly parameterCount: number;
  readonly minerIndex: number;
  readonly minerCount: number;
  /** Nonces per iteration (a = ω_B·β + ω_M·|M|). */
  readonly allowance: number;
  private readonly opts: MinerOptions;
  private readonly def: TaskDefinition;
  private readonly tau: number;
  private readonly batches: number;
  private readonly minerHex: string;
  private readonly members: Set<string>;
  private readonly mining: MiningService;
  private readonly ownsMining: boolean;
  private readonly digest: Digest;
  private readonly znb: ZnbCommitments;
  /** CPU mirror of the lattice state n. */
  private readonly n: Int32Array;
  /** Where the residual lives (resolved from the `residual` option). */
  get residualOn(): 'device' | 'host' {
    return this.hostR === undefined ? 'device' : 'host';
  }
  /** Host residual mode: r, and scratch space for the map. */
  private readonly hostR: Float32Array | undefined;
  private readonly mapScratch: Uint32Array | undefined;
  private iter = 0;
  private readonly peerQueue: CheckedItRes[] = [];
  private readonly peerSeen = new Map<string, PeerSeen>();
  /** Own IT_RES by iteration (signed asynchronously), pruned to what a proof bundle can still need. */
  private readonly history = new Map<number, Promise<ItRes>>();
  /** Templates (full blocks) committed by iteration, pruned to the last k + 1. */
  private readonly templates = new Map<number, Block>();
  private outbox: Promise<void> = Promise.resolve();
  private readonly pending = new Set<Promise<unknown>>();
  /** Mining jobs not yet finished, oldest first (backpressure, see `miningBacklog`). */
  private readonly jobs: Promise<unknown>[] = [];
  private failure: unknown;
  private zeroResidualHash: Uint8Array | undefined;
  /** The tip of the last template seen (queued grinding on another tip is dropped). */
  private tip: Uint8Array = ZERO32;
  private readonly counters: MinerStats = {
    iterations: 0,
    mapEntries: 0,
    peerMessagesApplied: 0,
    peerMessagesDropped: 0,
    duplicates: 0,
    candidates: 0,
  };

  private constructor(opts: MinerOptions) {
    this.opts = opts;
    this.def = opts.task;
    const layout = validateTask(opts.task);
    this.parameterCount = layout.parameterCount;
    if (opts.engine.parameterCount !== this.parameterCount) {
      throw new WorkError(
        'TASK_INVALID',
        `engine has ${opts.engine.parameterCount} weights, the task ${this.parameterCount}`,
      );
    }
    if (opts.dataset.featureBytes !== layout.inputSize || opts.dataset.count < opts.task.trainSize) {
      throw new WorkError(
        'TASK_INVALID',
        'dataset does not match the task (feature size or too few examples)',
      );
    }
    this.taskId = taskId(opts.chainId, opts.task);
    this.tau = bitsToFloat32(opts.task.tau);
    this.batches = batchesPerEpoch(opts.task);
    const sorted = opts.miners.map((k) => bytesToHex(k)).sort();
    this.minerHex = bytesToHex(opts.identity.publicKey);
    this.members = new Set(sorted);
    this.minerIndex = sorted.indexOf(this.minerHex);
    if (this.minerIndex < 0) throw new WorkError('TASK_INVALID', 'this miner is not among the task miners');
    this.minerCount = sorted.length;
    this.allowance = nonceAllowance(
      opts.task.omegaBPpm,
      opts.task.batchSize * (opts.dataset.featureBytes + 1),
      opts.task.omegaMPpm,
      this.parameterCount,
    );
    this.znb = new ZnbCommitments(opts.chainId, opts.task.znbLead);
    this.n = new Int32Array(this.parameterCount);
    if (opts.residual === 'host') {
      this.hostR = new Float32Array(this.parameterCount);
      this.mapScratch = new Uint32Array(this.parameterCount);
    }
    this.digest = opts.digest ?? nobleDigest;
    this.ownsMining = opts.mining === undefined;
    this.mining =
      opts.mining ??
      new LocalMiningService({
        chainId: opts.chainId,
        taskId: this.taskId,
        parameterCount: this.parameterCount,
        digest: this.digest,
        ed: opts.identity.ed,
        secretKey: opts.identity.secretKey,
      });
  }

  /** A miner at n = 0, r = 0 (the engine's state is reset). */
  static async create(opts: MinerOptions): Promise<Miner> {
    const m = new Miner(opts);
    await opts.engine.setState(m.n);
    m.mining.reset(m.n);
    return m;
  }

  /** The next iteration to run. */
  get iteration(): number {
    return this.iter;
  }

  /** A copy of the CPU mirror of n. */
  model(): Int32Array {
    return this.n.slice();
  }

  get publicKey(): Uint8Array {
    return this.opts.identity.publicKey;
  }

  /** The epoch and batch of an iteration, or undefined once the task's epochs are done. */
  assignment(iteration: number): { epoch: number; batchId: number } | undefined {
    const a = assignedBatch(this.minerIndex, this.minerCount, iteration, this.batches);
    return a.epoch >= this.def.epochs ? undefined : a;
  }

  get done(): boolean {
    return this.assignment(this.iter) === undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming peer messages.

  /**
   * Validates a peer's IT_RES and queues it for the next iteration. Throws WorkError (REJECT) for
   * a message of another task, from a non-member, with a bad map or signature; returns 'duplicate'
   * for one already seen (or older than the window), 'dropped' when the queue is full.
   */
  async receive(msg: ItRes): Promise<ReceiveResult> {
    const { body } = msg;
    if (!equalBytes(body.taskId, this.taskId))
      throw new WorkError('ITRES_MALFORMED', 'IT_RES for another task');
    const from = bytesToHex(body.miner);
    if (!this.members.has(from))
      throw new WorkError('ITRES_MALFORMED', 'IT_RES from a miner not assigned to this task');
    if (from === this.minerHex) return this.duplicate();
    if (this.alreadySeen(from, body.iteration)) return this.duplicate();
    const checked = await this.mining.check(msg);
    // Checked asynchronously: a copy may have been queued meanwhile.
    if (this.alreadySeen(from, body.iteration)) return this.duplicate();
    if (this.peerQueue.length >= (this.opts.maxQueuedPeerMessages ?? MAX_PEER_MSGS)) {
      this.counters.peerMessagesDropped++;
      return 'dropped';
    }
    this.markSeen(from, body.iteration);
    this.peerQueue.push(checked);
    return 'queued';
  }

  private duplicate(): 'duplicate' {
    this.counters.duplicates++;
    return 'duplicate';
  }

  private alreadySeen(from: string, iteration: number): boolean {
    const s = this.peerSeen.get(from);
    return s !== undefined && (iteration < s.floor || s.seen.has(iteration));
  }

  private markSeen(from: string, iteration: number): void {
    let s = this.peerSeen.get(from);
    if (s === undefined) {
      s = { floor: 0, seen: new Set(), max: iteration };
      this.peerSeen.set(from, s);
    }
    s.seen.add(iteration);
    s.max = Math.max(s.max, iteration);
    if (s.seen.size > SEEN_WINDOW) {
      s.floor = s.max - SEEN_WINDOW + 1;
      for (const i of s.seen) if (i < s.floor) s.seen.delete(i);
    }
  }

  // -------------------------------------------------------------------------------------------
  // One iteration.

  /**
   * Runs one iteration; undefined once the task's epochs are done. Not re-entrant: await each call.
   * A failure (engine, signer, mining host) is sticky: the miner's state may be half advanced, so
   * every later call rethrows it; recreate the miner from its last IT_RES to continue.
   */
  async iterate(): Promise<IterationReport | undefined> {
    if (this.failure !== undefined) throw this.failure;
    try {
      return await this.runIteration();
    } catch (e) {
      this.failure ??= e;
      throw e;
    }
  }

  private async runIteration(): Promise<IterationReport | undefined> {
    const i = this.iter;
    const slot = this.assignment(i);
    if (slot === undefined) return undefined;
    const { epoch, batchId } = slot;
    const { engine } = this.opts;
    const batch: Batch = batchTensors(
      this.opts.dataset,
      batchIndices(this.taskId, epoch, batchId, this.def.trainSize, this.def.batchSize),
    );

    // 1. Peer maps not yet applied: mirror, mining service and engine (the engine calls queue up).
    const peers = this.peerQueue.splice(0, MAX_PEER_MSGS);
    const deviceWork: Promise<void>[] = [];
    for (const p of peers) {
      applyMap(this.n, p.map);
      this.mining.apply(p.map);
      // Host residual: the engine holds no n (it gets the mirror's n with every gradient call).
      if (this.hostR === undefined) deviceWork.push(engine.applyMap(p.map));
    }
    // 3-4. Gradient, residual and map (a flush in the last iteration of a segment).
    const flush = isFlushIteration(i, this.def.segmentLength);
    const [, step] = await Promise.all([Promise.all(deviceWork), this.step(batch, flush)]);
    applyMap(this.n, step.map);

    // 6. IT_RES, committing to the template it will mine with at i + k; 7. the template committed at
    // i − k, if the tip has not changed since.
    const current = this.opts.template();
    let znbHash = ZERO32;
    if (current !== undefined) {
      znbHash = this.znb.commit(i, current.header);
      this.templates.set(i, current);
    }
    const header = current === undefined ? undefined : this.znb.templateFor(i, current.header.prevHash);
    const block = header === undefined ? undefined : this.templates.get(i - this.def.znbLead);
    if (current !== undefined && !equalBytes(current.header.prevHash, this.tip)) {
      this.tip = current.header.prevHash;
      this.mining.dropStale(this.tip);
    }
    const backlog = this.opts.miningBacklog ?? 8;
    while (this.jobs.length >= backlog) await this.jobs.shift();
    // 2 and 6-7 in the service: modelHash of the mirror before this map (n after the peer maps),
    // the body, its id, its work id (the header's hashMsg), the signature; nonce0 and grinding.
    const { sealed, mined: job } = this.mining.seal({
      fields: {
        taskId: this.taskId,
        miner: this.opts.identity.publicKey,
        epoch,
        iteration: i,
        batchId,
        residualHash: await this.residualCommitment(flush),
        peerMsgIds: peers.map((p) => p.id),
        loss: float32Bits(step.loss),
        accuracy: float32Bits(step.accuracy),
        znbHash,
        time: this.opts.clock(),
      },
      map: step.map,
      count: this.allowance,
      ...(block === undefined ? {} : { template: block.header }),
    });
    const signed = sealed.then((s) => this.signed(s));
    this.history.set(i, signed);
    this.outbox = this.outbox.then(async () => this.opts.transport.broadcast(await signed));
    this.track(this.outbox);
    const settled = job.then(
      () => undefined,
      () => undefined,
    );
    this.jobs.push(settled);
    void settled.then(() => {
      const at = this.jobs.indexOf(settled);
      if (at >= 0) this.jobs.splice(at, 1);
    });
    if (block !== undefined) {
      const proof = this.proofMessages(i);
      this.track(
        Promise.all([job, sealed]).then(([outcome, s]) => this.onMined(outcome, block, s.work, proof)),
      );
    } else {
      this.track(job);
    }
    this.prune(i + 1);

    this.iter = i + 1;
    this.counters.iterations++;
    this.counters.mapEntries += step.map.length;
    this.counters.peerMessagesApplied += peers.length;
    return {
      iteration: i,
      epoch,
      batchId,
      loss: step.loss,
      accuracy: step.accuracy,
      mapEntries: step.map.length,
      peers: peers.length,
      flush,
      mined: block !== undefined,
    };
  }

  /** Runs iterations until the task's epochs are done (or `maxIterations`), then drains. */
  async run(maxIterations = Number.POSITIVE_INFINITY): Promise<void> {
    for (let k = 0; k < maxIterations; k++) if ((await this.iterate()) === undefined) break;
    await this.drain();
  }

  /** Waits for broadcasts and mining jobs in flight; rethrows the first failure. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    if (this.failure !== undefined) throw this.failure;
  }

  async stats(): Promise<MinerStats & { mining: MiningStats }> {
    return { ...this.counters, mining: await this.mining.stats() };
  }

  /** Stops mining (a service the miner created is closed; an injected one is left to its owner). */
  close(): void {
    if (this.ownsMining) this.mining.close();
  }

  private async step(batch: Batch, flush: boolean): Promise<LocalStepResult> {
    const { engine } = this.opts;
    if (this.hostR !== undefined) {
      const g = await engine.gradient(this.n, batch);
      const map = residualStepFast(this.hostR, g.gradient, this.tau, flush, this.mapScratch!);
      return { map, loss: g.loss, accuracy: g.accuracy };
    }
    if (!flush || this.opts.flushInStep !== false) return engine.step(batch, flush);
    // The engine cannot flush inside step(): r += g, threshold at τ/2, r = 0, here on the CPU.
    const state = await engine.state();
    const g = await engine.gradient(state.n, batch);
    const map = residualStep(state.r, g.gradient, this.tau, true);
    applyMap(state.n, map);
    await engine.setState(state.n);
    return { map, loss: g.loss, accuracy: g.accuracy };
  }

  /** The sealed IT_RES, signed here if the service does not hold the key. */
  private async signed(s: Sealed): Promise<ItRes> {
    if (s.signature !== undefined) return { body: s.body, signature: s.signature };
    const { ed, secretKey } = this.opts.identity;
    return { body: s.body, signature: await ed.sign(secretKey, s.id) };
  }

  private async residualCommitment(flush: boolean): Promise<Uint8Array> {
    if (this.opts.residualCommitment === 'every') {
      const r = this.hostR ?? (await this.opts.engine.state()).r;
      return residualHashWith(this.digest, this.opts.chainId, this.taskId, r);
    }
    if (!flush) return ZERO32;
    this.zeroResidualHash ??= residualHash(
      this.opts.chainId,
      this.taskId,
      new Float32Array(this.parameterCount),
    );
    return this.zeroResidualHash;
  }

  /** The own messages a candidate from iteration i needs: i − k (ZNB) and the segment up to i. */
  private proofMessages(i: number): { znbSource: Promise<ItRes>; segment: Promise<ItRes>[] } {
    const znbSource = this.history.get(i - this.def.znbLead);
    const segment: Promise<ItRes>[] = [];
    for (let j = segmentStart(i, this.def.segmentLength); j <= i; j++) segment.push(this.history.get(j)!);
    if (znbSource === undefined)
      throw new WorkError('VERIFY_ZNB', `no IT_RES recorded for iteration ${i - this.def.znbLead}`);
    return { znbSource, segment };
  }

  private async onMined(
    outcome: MiningOutcome,
    template: Block,
    hashMsg: Uint8Array,
    proof: { znbSource: Promise<ItRes>; segment: Promise<ItRes>[] },
  ): Promise<void> {
    if (outcome.hit === undefined) return;
    const header = { ...template.header, hashMsg, nonce: outcome.hit.nonce };
    // The grinder is exact; this one reference check guards against a broken mining host.
    if (!meetsTarget(blockHash(this.opts.chainId, header), header.bits)) {
      throw new WorkError(
        'VERIFY_POW',
        `mining service reported a nonce that misses the target (iteration ${outcome.iteration})`,
      );
    }
    const segment = await Promise.all(proof.segment);
    const candidate: BlockCandidate = {
      block: { header, transactions: template.transactions },
      lucky: segment[segment.length - 1]!,
      znbSource: await proof.znbSource,
      segment,
    };
    this.counters.candidates++;
    this.opts.onCandidate?.(candidate);
  }

  /** Forgets what no iteration from `next` on can put into a proof bundle. */
  private prune(next: number): void {
    const keep = Math.min(segmentStart(next, this.def.segmentLength), next - this.def.znbLead);
    for (const j of this.history.keys()) if (j < keep) this.history.delete(j);
    for (const j of this.templates.keys()) if (j < next - this.def.znbLead) this.templates.delete(j);
  }

  private track(p: Promise<unknown>): void {
    const t = p.then(
      () => undefined,
      (e: unknown) => {
        this.failure ??= e;
      },
    );
    this.pending.add(t);
    void t.then(() => this.pending.delete(t));
  }
}

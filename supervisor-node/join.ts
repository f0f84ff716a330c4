/**
 * Task membership on the devnet (ADR 0012, shared/net/join.ts): the join protocol's server.
 *
 * Each joinable task has a lead, committee member `leadIndex(taskId, n)`. The lead admits signed
 * joins in arrival order until the task's `minerSlots` are taken, then signs the sorted miner set
 * with its node key, writes it to disk (fsync, rename) and only then serves it; a restarted lead
 * serves the set it wrote and never signs another. Every other member checks a join's signature,
 * forwards it to the lead and serves the lead's signed set once it has it (from a forwarded
 * answer or by polling the lead while the task is pending), also kept on disk. A lead that is down
 * stalls its tasks' membership (liveness), never splits it (safety): there is only one signer.
 *
 * Volunteers re-send their join until the set is signed, so a join the lead has not seen again for
 * `joinTtlMs` is dropped before the set is complete (a tab closed while waiting frees its slot).
 *
 * `JoinService.start` loads the sets on disk, serves PROTOCOLS.join on the node and starts polling
 * for pending tasks; `onMinerSet` tells the supervisor a task's miners once (tasks.ts builds the
 * task's history from them).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurable } from '../node-common/durable-file.ts';
import type { PeerId, PouwNode } from '../node-common/p2p.ts';
import { peerIdOfNodeKey } from '../node-common/p2p.ts';
import { bytesToHex, equalBytes } from '../shared/bytes.ts';
import type { Committee } from '../shared/chain/types.ts';
import type { Ed25519 } from '../shared/crypto/ed25519.ts';
import { isPouwError, NetError } from '../shared/errors.ts';
import {
  checkJoin,
  checkMinerSet,
  datasetLocator,
  JoinRequest,
  JoinResponse,
  leadIndex,
  type SignedJoin,
  SignedMinerSet,
  signMinerSet,
  sortMinerKeys,
} from '../shared/net/join.ts';
import { MAX_TASK_MINERS } from '../shared/net/messages.ts';
import type { TaskDefinition } from '../shared/pouw/task.ts';
import type { DriverLog } from './driver.ts';

/** A task volunteers can join, as the supervisor's task registry describes it. */
export interface JoinableTask {
  taskId: Uint8Array;
  definition: TaskDefinition;
  /** Miners the task waits for; the set is signed when this many have joined. */
  minerSlots: number;
  /** Where volunteers find the training data and how it was committed. */
  dataset: { url: string; segments: number; testSegments: readonly number[] };
}

export interface JoinServiceOptions {
  node: Pick<PouwNode, 'peerId' | 'serve' | 'request'>;
  chainId: string;
  committee: Committee;
  /** This supervisor's committee index (0-based). */
  self: number;
  nodeKeySeed: Uint8Array;
  ed: Ed25519;
  /** Where signed miner sets are kept (one file per task). */
  dir: string;
  /** The joinable tasks this supervisor supervises. */
  tasks: () => readonly JoinableTask[];
  /** Called once per task when its signed miner set is known here (ascending keys). */
  onMinerSet?: (taskId: Uint8Array, miners: Uint8Array[]) => void;
  log?: DriverLog;
  /** Polling interval while a task is pending at another member (default 500 ms). */
  pollMs?: number;
  /** A join not re-sent for this long leaves the pending set (default 20 s). */
  joinTtlMs?: number;
  /** Wall clock in ms (tests). */
  clock?: () => number;
}

interface Admitted {
  key: Uint8Array;
  payout: Uint8Array;
  seenAt: number;
}

interface TaskState {
  task: JoinableTask;
  hex: string;
  lead: number;
  set: SignedMinerSet | undefined;
  /** Lead only: joins held, in arrival order. */
  admitted: Map<string, Admitted>;
  /** Elsewhere: the count the lead reported last. */
  leadAdmitted: number;
  /** Lead: admissions run one at a time (signing is async); elsewhere: adoptions of the lead's set. */
  queue: Promise<unknown>;
  waiters: ((miners: Uint8Array[]) => void)[];
}

const MAX_POLL_BACKOFF_MS = 5000;
const LEAD_TIMEOUT_MS = 5000;

export class JoinService {
  readonly #o: JoinServiceOptions & { log: DriverLog; clock: () => number };
  readonly #tasks = new Map<string, TaskState>();
  readonly #nodeKeys: Uint8Array[];
  #stopped = false;
  #polls: Promise<void>[] = [];
  readonly #wakers = new Set<() => void>();
  readonly stats = { joins: 0, forwarded: 0, refused: 0, signed: 0, adopted: 0 };

  private constructor(opts: JoinServiceOptions) {
    this.#o = { ...opts, log: opts.log ?? (() => {}), clock: opts.clock ?? (() => Date.now()) };
    this.#nodeKeys = opts.committee.members.map((m) => m.nodeKey);
    const n = this.#nodeKeys.length;
    if (!Number.isInteger(opts.self) || opts.self < 0 || opts.self >= n)
      throw new NetError('NET_BAD_CONFIG', `join service: member ${opts.self} is not in a committee of ${n}`);
    for (const task of opts.tasks()) {
      if (!Number.isInteger(task.minerSlots) || task.minerSlots < 1 || task.minerSlots > MAX_TASK_MINERS)
        throw new NetError('NET_BAD_CONFIG', `task minerSlots must be in [1, ${MAX_TASK_MINERS}]`, 'REJECT', {
          field: 'task.minerSlots',
        });
      const hex = bytesToHex(task.taskId);
      this.#tasks.set(hex, {
        task,
        hex,
        lead: leadIndex(task.taskId, n),
        set: undefined,
        admitted: new Map(),
        leadAdmitted: 0,
        queue: Promise.resolve(),
        waiters: [],
      });
    }
  }

  /** Loads the sets on disk, serves PROTOCOLS.join and polls the leads of pending tasks. */
  static async start(opts: JoinServiceOptions): Promise<JoinService> {
    const service = new JoinService(opts);
    mkdirSync(opts.dir, { recursive: true });
    for (const st of service.#tasks.values()) await service.#load(st);
    await opts.node.serve('join', (body, from) => service.handle(body, from));
    for (const st of service.#tasks.values())
      if (st.set === undefined && st.lead !== opts.self) service.#polls.push(service.#poll(st));
    return service;
  }

  /** The task's miners (ascending) once its set is signed and known here. */
  miners(taskId: Uint8Array): Uint8Array[] | undefined {
    return this.#tasks.get(bytesToHex(taskId))?.set?.body.miners.map((k) => k.slice());
  }

  /** The lead of a task (its committee index). */
  leadOf(taskId: Uint8Array): number {
    return leadIndex(taskId, this.#nodeKeys.length);
  }

  /** Resolves with the task's miners once its set is known here. */
  whenMiners(taskId: Uint8Array): Promise<Uint8Array[]> {
    const st = this.#tasks.get(bytesToHex(taskId));
    if (st === undefined)
      return Promise.reject(new NetError('NET_NOT_FOUND', 'no such joinable task', 'IGNORE'));
    if (st.set !== undefined) return Promise.resolve(st.set.body.miners.map((k) => k.slice()));
    return new Promise((resolve) => st.waiters.push(resolve));
  }

  /**
   * The join protocol's handler: a request with a join is checked (its signature, its task) and
   * admitted (lead) or forwarded to the lead; the answer is the task's state, with the lead's
   * signed set once it exists. Throws typed errors (the node turns them into error envelopes and
   * counts REJECTs against the sender).
   */
  async handle(body: Uint8Array, _from: PeerId): Promise<Uint8Array> {
    const req = JoinRequest.decode(body);
    const st = this.#tasks.get(bytesToHex(req.taskId));
    if (st === undefined) throw new NetError('NET_NOT_FOUND', 'no such joinable task here', 'IGNORE');
    if (req.join !== null) {
      this.stats.joins++;
      if (!equalBytes(req.join.body.taskId, req.taskId)) {
        this.stats.refused++;
        throw new NetError('NET_BAD_REQUEST', 'the join names another task than the request');
      }
      try {
        await checkJoin(this.#o.chainId, req.join, this.#o.ed);
      } catch (e) {
        this.stats.refused++;
        throw e;
      }
    }
    if (st.set === undefined) {
      if (st.lead === this.#o.self) {
        if (req.join !== null) await this.#admit(st, req.join);
      } else {
        this.stats.forwarded += req.join === null ? 0 : 1;
        await this.#askLead(st, body);
      }
    }
    return JoinResponse.encode(this.#response(st));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const wake of this.#wakers) wake();
    await Promise.all(this.#polls);
  }

  #response(st: TaskState): JoinResponse {
    const { task } = st;
    const admitted = st.set
      ? st.set.body.miners.length
      : st.lead === this.#o.self
        ? st.admitted.size
        : st.leadAdmitted;
    return {
      taskId: task.taskId,
      definition: task.definition,
      dataset: datasetLocator(task.dataset),
      minerSlots: task.minerSlots,
      admitted,
      minerSet: st.set ?? null,
    };
  }

  #admit(st: TaskState, join: SignedJoin): Promise<void> {
    const run = st.queue.then(async () => {
      if (st.set !== undefined) return;
      const now = this.#o.clock();
      const ttl = this.#o.joinTtlMs ?? 20_000;
      for (const [k, a] of st.admitted) {
        if (now - a.seenAt > ttl) {
          st.admitted.delete(k);
          this.#o.log('join-expired', { task: st.hex, miner: k });
        }
      }
      const key = bytesToHex(join.body.minerKey);
      const held = st.admitted.get(key);
      if (held !== undefined) held.seenAt = now;
      else {
        st.admitted.set(key, {
          key: join.body.minerKey.slice(),
          payout: join.body.payout.slice(),
          seenAt: now,
        });
        this.#o.log('join-admitted', {
          task: st.hex,
          miner: key,
          admitted: st.admitted.size,
          slots: st.task.minerSlots,
        });
      }
      if (st.admitted.size < st.task.minerSlots) return;
      const miners = sortMinerKeys([...st.admitted.values()].map((a) => a.key));
      const signed = await signMinerSet(
        this.#o.chainId,
        { taskId: st.task.taskId, lead: this.#o.self, miners },
        this.#o.nodeKeySeed,
        this.#o.ed,
      );
      // On disk before anyone sees it: a restarted lead serves this set and signs no other.
      await this.#persist(st, signed);
      this.stats.signed++;
      this.#adopt(st, signed);
    });
    st.queue = run.catch(() => undefined);
    return run;
  }

  /** Sends `body` (a JoinRequest) to the lead and adopts the set its answer carries. */
  async #askLead(st: TaskState, body: Uint8Array): Promise<void> {
    const leadKey = this.#nodeKeys[st.lead]!;
    let answer: JoinResponse;
    try {
      const bytes = await this.#o.node.request(peerIdOfNodeKey(leadKey), 'join', body, {
        timeoutMs: LEAD_TIMEOUT_MS,
      });
      answer = JoinResponse.decode(bytes);
    } catch (e) {
      throw new NetError('NET_UNAVAILABLE', `the task's lead (member ${st.lead}) did not answer`, 'IGNORE', {
        lead: st.lead,
        cause: isPouwError(e) ? e.code : String(e),
      });
    }
    if (!equalBytes(answer.taskId, st.task.taskId)) {
      this.#o.log('join-lead-bad-answer', { task: st.hex, reason: 'another task' });
      throw new NetError('NET_UNAVAILABLE', 'the lead answered for another task', 'IGNORE');
    }
    st.leadAdmitted = answer.admitted;
    if (answer.minerSet === null || st.set !== undefined) return;
    try {
      await checkMinerSet(this.#o.chainId, this.#nodeKeys, answer.minerSet, this.#o.ed, st.task.taskId);
    } catch (e) {
      this.#o.log('join-lead-bad-set', { task: st.hex, code: isPouwError(e) ? e.code : String(e) });
      throw new NetError('NET_UNAVAILABLE', 'the lead served an invalid miner set', 'IGNORE');
    }
    const set = answer.minerSet;
    // Forwarded answers and polls may bring the set at once: it is written and adopted once.
    const run = st.queue.then(async () => {
      if (st.set !== undefined) return;
      await this.#persist(st, set);
      this.#adopt(st, set);
    });
    st.queue = run.catch(() => undefined);
    await run;
  }

  async #poll(st: TaskState): Promise<void> {
    const query = JoinRequest.encode({ taskId: st.task.taskId, join: null });
    const base = this.#o.pollMs ?? 500;
    let wait = base;
    while (!this.#stopped && st.set === undefined) {
      try {
        await this.#askLead(st, query);
        wait = base;
      } catch {
        wait = Math.min(wait * 2, MAX_POLL_BACKOFF_MS);
      }
      if (st.set !== undefined || this.#stopped) break;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#wakers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, wait);
        this.#wakers.add(wake);
      });
    }
  }

  #adopt(st: TaskState, set: SignedMinerSet): void {
    if (st.set !== undefined) return;
    st.set = set;
    st.admitted.clear();
    this.stats.adopted++;
    const miners = set.body.miners.map((k) => k.slice());
    this.#o.log('miner-set', {
      task: st.hex,
      lead: set.body.lead,
      miners: miners.map((k) => bytesToHex(k)),
      signedHere: set.body.lead === this.#o.self,
    });
    this.#o.onMinerSet?.(st.task.taskId, miners);
    for (const w of st.waiters.splice(0)) w(miners.map((k) => k.slice()));
  }

  #file(st: TaskState): string {
    return join(this.#o.dir, `miner-set-${st.hex}.ssz`);
  }

  async #load(st: TaskState): Promise<void> {
    const file = this.#file(st);
    if (!existsSync(file)) return;
    let set: SignedMinerSet;
    try {
      set = SignedMinerSet.decode(new Uint8Array(readFileSync(file)));
      await checkMinerSet(this.#o.chainId, this.#nodeKeys, set, this.#o.ed, st.task.taskId);
    } catch (e) {
      // Never replace a set silently: a lead that lost its own signature could sign a second one.
      throw new NetError(
        'NET_BAD_CONFIG',
        `${file}: not a valid miner set for this task (${String(e)})`,
        'REJECT',
        {
          field: 'minerSet',
        },
      );
    }
    this.#adopt(st, set);
  }

  async #persist(st: TaskState, set: SignedMinerSet): Promise<void> {
    await writeFileDurable(this.#file(st), SignedMinerSet.encode(set));
  }
}

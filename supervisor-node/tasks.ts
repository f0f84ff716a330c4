/**
 * The task a supervisor supervises and its message history (DESIGN §4.6, shared/pouw/history.ts):
 * the task file it is configured with, the training data it verifies against, the engine it
 * replays with, and the `HistorySource` the chain app asks for the history part of a value
 * (`ConsensusPayload.history`: the ids a proposal adds to the decided history; the value's
 * historyRoot is the Merkle root over the decided ids plus these).
 *
 * Task file (JSON; hex for bytes; paths relative to the file):
 *   { "definition": "<SSZ TaskDefinition>", "miners": ["<Ed25519 key>", …] | "minerSlots": 2,
 *     "dataUrl": "data/mnist-10k.u8.gz"                       (where volunteers find the data),
 *     "examples": "<count × (featureBytes + 1) bytes>" | "examplesFile": "train.bin",
 *     "count": 48, "featureBytes": 4,
 *     "segmentHashes": ["…"], "trainRanges": [{ "segment": 0, "start": 0, "end": 12 }, …] }
 *
 * With `minerSlots` instead of `miners`, volunteers join (ADR 0012, join.ts): the task is supervised
 * from the moment its lead's signed miner set is known (`superviseTask`).
 *
 * Replays run on `replayEngineFor(definition)` (replay-engine.ts): `JsSoftmaxEngine` for
 * one-dense-layer softmax tasks, the TF.js engine on the Node backend ladder (wasm, cpu) for any
 * other architecture. The supervisor passes a `DurableTaskHistory` (node-common/history-store.ts),
 * rebuilt from its LevelDB log, as the task's history.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { bytesToHex, equalBytes, hexToBytes } from '../shared/bytes.ts';
import { merkleRoot } from '../shared/chain/ids.ts';
import type { Block } from '../shared/chain/types.ts';
import type { Ed25519 } from '../shared/crypto/ed25519.ts';
import { HistoryError, isPouwError, NetError } from '../shared/errors.ts';
import { MAX_TASK_MINERS } from '../shared/net/messages.ts';
import type { Dataset } from '../shared/pouw/dataset.ts';
import { type HistoryIds, TaskHistory } from '../shared/pouw/history.ts';
import { type ItRes, itResId as itResIdOf } from '../shared/pouw/itres.ts';
import { TaskDefinition, taskId as taskIdOf, validateTask } from '../shared/pouw/task.ts';
import { CommittedDataset, type DatasetCommitmentProof, type VerifyContext } from '../shared/pouw/verify.ts';
import type { DriverLog } from './driver.ts';
import type { JoinableTask } from './join.ts';
import { replayEngineFor } from './replay-engine.ts';

export interface SupervisedTask {
  taskId: Uint8Array;
  definition: TaskDefinition;
  /** Sorted ascending (a miner's index sets its batch schedule). */
  miners: Uint8Array[];
  dataset: Dataset;
  data: CommittedDataset;
  history: TaskHistory;
  verifyContext(): VerifyContext;
}

function bad(field: string, message: string): never {
  throw new NetError('NET_BAD_CONFIG', `task file ${field}: ${message}`, 'REJECT', {
    field: `task.${field}`,
  });
}

function hex(v: unknown, field: string, length?: number): Uint8Array {
  if (typeof v !== 'string' || !/^([0-9a-f]{2})*$/.test(v)) bad(field, 'must be lowercase hex');
  const b = hexToBytes(v);
  if (length !== undefined && b.length !== length) bad(field, `must be ${length} bytes`);
  return b;
}

function int(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    bad(field, 'must be a non-negative integer');
  return v;
}

/** A task file, read and checked; its miners are fixed (`miners`) or joined (`joinable`). */
export interface TaskFile {
  taskId: Uint8Array;
  definition: TaskDefinition;
  dataset: Dataset;
  data: CommittedDataset;
  /** Sorted ascending; undefined when volunteers join. */
  miners: Uint8Array[] | undefined;
  joinable: JoinableTask | undefined;
}

/** Loads and checks a task file with a fixed miner list. */
export function loadTask(file: string, chainId: string, ed: Ed25519): SupervisedTask {
  const task = readTaskFile(file, chainId);
  if (task.miners === undefined) bad('miners', 'must be a non-empty array');
  return superviseTask(chainId, task, task.miners, ed);
}

/** Reads and checks a task file: definition, miners or miner slots, data bound to the commitment. */
export function readTaskFile(file: string, chainId: string): TaskFile {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    bad('(file)', `cannot read ${file}: ${(e as Error).message}`);
  }
  let definition: TaskDefinition;
  try {
    definition = TaskDefinition.decode(hex(json['definition'], 'definition'));
    validateTask(definition);
  } catch (e) {
    bad('definition', isPouwError(e) ? e.message : String(e));
  }
  let miners: Uint8Array[] | undefined;
  let minerSlots: number | undefined;
  if (json['minerSlots'] !== undefined) {
    if (json['miners'] !== undefined) bad('miners', 'a task has either miners or minerSlots');
    minerSlots = int(json['minerSlots'], 'minerSlots');
    if (minerSlots < 1 || minerSlots > MAX_TASK_MINERS)
      bad('minerSlots', `must be in [1, ${MAX_TASK_MINERS}]`);
    if (typeof json['dataUrl'] !== 'string' || json['dataUrl'] === '')
      bad('dataUrl', 'must name where volunteers find the data');
  } else {
    if (!Array.isArray(json['miners']) || json['miners'].length === 0)
      bad('miners', 'must be a non-empty array');
    miners = (json['miners'] as unknown[])
      .map((m, i) => hex(m, `miners[${i}]`, 32))
      .sort((a, b) => (bytesToHex(a) < bytesToHex(b) ? -1 : 1));
  }
  const count = int(json['count'], 'count');
  const featureBytes = int(json['featureBytes'], 'featureBytes');
  const examples =
    json['examplesFile'] !== undefined
      ? new Uint8Array(
          readFileSync(
            isAbsolute(String(json['examplesFile']))
              ? String(json['examplesFile'])
              : resolve(dirname(file), String(json['examplesFile'])),
          ),
        )
      : hex(json['examples'], 'examples');
  if (examples.length !== count * (featureBytes + 1))
    bad('examples', 'length is not count × (featureBytes + 1)');
  if (!Array.isArray(json['segmentHashes'])) bad('segmentHashes', 'must be an array');
  if (!Array.isArray(json['trainRanges'])) bad('trainRanges', 'must be an array');
  const proof: DatasetCommitmentProof = {
    segmentHashes: (json['segmentHashes'] as unknown[]).map((h, i) => hex(h, `segmentHashes[${i}]`, 32)),
    trainRanges: (json['trainRanges'] as Record<string, unknown>[]).map((r, i) => ({
      segment: int(r['segment'], `trainRanges[${i}].segment`),
      start: int(r['start'], `trainRanges[${i}].start`),
      end: int(r['end'], `trainRanges[${i}].end`),
    })),
  };
  const dataset: Dataset = { examples, count, featureBytes };
  let data: CommittedDataset;
  try {
    data = new CommittedDataset(chainId, definition, dataset, proof);
  } catch (e) {
    bad('examples', isPouwError(e) ? e.message : String(e));
  }
  const taskId = taskIdOf(chainId, definition);
  const inTrain = new Set(proof.trainRanges.map((r) => r.segment));
  const joinable: JoinableTask | undefined =
    minerSlots === undefined
      ? undefined
      : {
          taskId,
          definition,
          minerSlots,
          dataset: {
            url: String(json['dataUrl']),
            segments: proof.segmentHashes.length,
            testSegments: proof.segmentHashes.map((_, s) => s).filter((s) => !inTrain.has(s)),
          },
        };
  return { taskId, definition, dataset, data, miners, joinable };
}

/**
 * Supervises a task with its (sorted) miners: its message history (`history`, built for these
 * miners; in memory by default) and verification context.
 */
export function superviseTask(
  chainId: string,
  f: TaskFile,
  miners: Uint8Array[],
  ed: Ed25519,
  history: TaskHistory = new TaskHistory({ chainId, task: f.definition, miners, ed25519: ed }),
): SupervisedTask {
  const { taskId, definition, dataset, data } = f;
  const engine = replayEngineFor(definition);
  return {
    taskId,
    definition,
    miners,
    dataset,
    data,
    history,
    verifyContext: () => ({ chainId, task: definition, taskId, miners, data, history, engine, ed25519: ed }),
  };
}

// ---------------------------------------------------------------------------------------------

/** The history part of consensus values, as the chain app needs it. */
export interface HistorySource {
  /** Root of the decided history (templates carry it as hashMsgHist). */
  decidedRoot(): Uint8Array;
  /** The ids this member proposes (at most `maxIds`) and the root the history would have with them. */
  proposal(maxIds: number): { ids: HistoryIds; root: Uint8Array };
  /** The root of the decided history extended by `ids`, fetching what is missing; throws a typed error otherwise. */
  rootWith(ids: HistoryIds): Promise<Uint8Array>;
  /** Adopts the decided ids and marks the block's work rewarded. */
  adopt(ids: HistoryIds, block: Block): void;
  /** Offers IT_RES that arrived in a candidate's proof bundle (signed by their miner, audited here). */
  offer(messages: readonly ItRes[]): Promise<void>;
}

/** No task supervised: every value carries the root of an empty history and no ids. */
export function emptyHistory(chainId: string): HistorySource {
  const root = merkleRoot(chainId, []);
  return {
    decidedRoot: () => root,
    proposal: () => ({ ids: { from: 0, ids: [] }, root }),
    async rootWith(ids) {
      if (ids.from !== 0 || ids.ids.length !== 0)
        throw new HistoryError('HISTORY_BAD_IDS', 'no task is supervised here: the id list must be empty');
      return root;
    },
    adopt: () => {},
    offer: async () => {},
  };
}

/** Ids asked per fetch while catching up a decided list, and the pause after a fruitless one. */
const BACKLOG_FETCH_IDS = 256;
const BACKLOG_RETRY_MS = 1000;
/** Fruitless fetches in a row before a lagging history stops trying (it then only follows commits). */
const BACKLOG_MAX_FRUITLESS = 60;

/**
 * Offers fetched messages in the order `list` names them (predecessors first, so the audit need not
 * park them), without waiting in between (they still run in call order: a durable history writes
 * them in one synced batch). Returns how many were recorded, released ones included.
 */
async function offerInListOrder(h: TaskHistory, list: HistoryIds, fetched: ItRes[]): Promise<number> {
  const order = new Map(list.ids.map((id, i) => [bytesToHex(id), i]));
  const wanted = fetched.filter((m) => order.has(idOf(h, m)));
  wanted.sort((a, b) => order.get(idOf(h, a))! - order.get(idOf(h, b))!);
  const outcomes = await Promise.all(wanted.map((m) => h.offer(m)));
  return outcomes.flatMap((o) => [o, ...o.released]).filter((o) => o.verdict === 'ACCEPT').length;
}

/** One task's history; missing ids are fetched from the other members with `fetch`. */
export function taskHistorySource(
  task: SupervisedTask,
  fetch: (idsHex: string[]) => Promise<ItRes[]>,
  log: DriverLog,
  pending: readonly HistoryIds[] = [],
): HistorySource {
  const h = task.history;
  // Decided lists this history could not apply yet (a restart or a partition lost messages the
  // committee recorded): applied in height order once their missing ids are fetched from members.
  const backlog: HistoryIds[] = [...pending];
  let draining: Promise<void> | undefined;
  const drain = (): void => {
    if (draining !== undefined) return;
    draining = (async () => {
      let fruitless = 0;
      while (backlog.length > 0 && fruitless < BACKLOG_MAX_FRUITLESS) {
        const next = backlog[0]!;
        try {
          h.applyDecided(next);
          backlog.shift();
          fruitless = 0;
          if (backlog.length === 0) log('history-level', { decided: h.decidedCount });
        } catch (e) {
          if (!isPouwError(e) || e.code !== 'HISTORY_MISSING') {
            log('history-behind', { code: isPouwError(e) ? e.code : String(e), lists: backlog.length });
            backlog.length = 0;
            return;
          }
          const missing = (e.detail['missing'] as string[] | undefined) ?? [];
          const fetched = await fetch(missing.slice(0, BACKLOG_FETCH_IDS)).catch(() => [] as ItRes[]);
          if ((await offerInListOrder(h, next, fetched)) === 0) {
            fruitless++;
            await new Promise((r) => setTimeout(r, BACKLOG_RETRY_MS).unref?.());
          } else fruitless = 0;
        }
      }
      if (backlog.length > 0)
        log('history-behind', { code: 'HISTORY_MISSING', lists: backlog.length, gaveUp: true });
    })().finally(() => {
      draining = undefined;
    });
  };
  if (backlog.length > 0) drain();
  return {
    decidedRoot: () => h.rootAt(h.decidedCount),
    proposal(maxIds) {
      const p = h.proposal();
      const ids: HistoryIds = { from: p.from, ids: p.ids.slice(0, Math.max(0, maxIds)) };
      const check = h.checkProposalIds(ids);
      if (check.status !== 'complete') {
        // Our own tail is always complete and ordered; anything else is a bug worth seeing.
        log('history-proposal-incomplete', { status: check.status });
        return { ids: { from: h.decidedCount, ids: [] }, root: h.rootAt(h.decidedCount) };
      }
      return { ids, root: check.root };
    },
    async rootWith(ids) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const check = h.checkProposalIds(ids);
        if (check.status === 'complete') return check.root;
        if (check.status === 'invalid') throw check.error;
        await offerInListOrder(h, ids, await fetch(check.missing));
      }
      throw new HistoryError('HISTORY_MISSING', 'proposed ids could not be fetched', 'IGNORE');
    },
    adopt(ids, block) {
      // A member whose history lags keeps finalizing blocks from commits and proposes no history
      // until the backlog is applied.
      if (backlog.length > 0) {
        backlog.push(ids);
        drain();
      } else
        try {
          h.applyDecided(ids);
        } catch (e) {
          if (isPouwError(e) && e.code === 'HISTORY_MISSING') {
            backlog.push(ids);
            drain();
          } else log('history-behind', { code: isPouwError(e) ? e.code : String(e) });
        }
      if (equalBytes(block.header.taskId, task.taskId)) h.markRewarded(bytesToHex(block.header.hashMsg));
    },
    async offer(messages) {
      await Promise.all(messages.map((m) => h.offer(m)));
    },
  };
}

/**
 * The history of a task whose miners are not known yet (volunteers still joining): the empty
 * history until `current()` gives the task's source, then that source. A proposal with ids before
 * then is not valid *here, now* (IGNORE: this member learns the set within a poll), never refused.
 */
export function joinedTaskHistory(chainId: string, current: () => HistorySource | undefined): HistorySource {
  const empty = emptyHistory(chainId);
  const pick = () => current() ?? empty;
  return {
    decidedRoot: () => pick().decidedRoot(),
    proposal: (maxIds) => pick().proposal(maxIds),
    async rootWith(ids) {
      const source = current();
      if (source === undefined && ids.ids.length > 0)
        throw new HistoryError('HISTORY_MISSING', 'the task’s miner set is not known here yet', 'IGNORE');
      return (source ?? empty).rootWith(ids);
    },
    adopt: (ids, block) => pick().adopt(ids, block),
    offer: async (messages) => current()?.offer(messages),
  };
}

function idOf(h: TaskHistory, m: ItRes): string {
  return bytesToHex(itResIdOf(h.chainId, m.body));
}

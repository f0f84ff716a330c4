/**
 * Training data bound to a task's dataset commitment (DESIGN §3, §4.7). The packed file is cut into
 * S segments exactly as the task's client cut it (shared/pouw/dataset.ts `segmentRanges`), every
 * segment is hashed, and the Merkle root must equal `task.datasetCommitment` before a single batch
 * is trained; the training set is the non-test segments in order, and the held-out examples (for
 * the volunteer's own accuracy curve) come from the test segments.
 */
import { bytesToHex } from '../../shared/bytes.ts';
import { VolunteerError } from '../../shared/errors.ts';
import {
  batchTensors,
  type Dataset,
  datasetCommitment,
  segmentHash,
  segmentRanges,
} from '../../shared/pouw/dataset.ts';
import type { Batch } from '../../shared/pouw/engine.ts';
import { type TaskDefinition, validateTask } from '../../shared/pouw/task.ts';
import { isGzip, mnistExamples } from './mnist.ts';

/** Where a task's examples are and how they were committed. */
export interface DatasetSpec {
  /** The packed examples (public/data/mnist-10k.u8.gz format): an absolute URL (file: under Node). */
  url: string;
  /** S: the number of near-equal contiguous segments the commitment is over. */
  segments: number;
  /** The segments drawn as the hidden test split; the others, in order, are the training set. */
  testSegments: readonly number[];
}

export interface CommittedData {
  /** The training set (task.trainSize examples), the batches' index space. */
  train: Dataset;
  /** Examples of the test segments, for evaluation only (never trained on). */
  heldOut: Dataset;
  commitment: Uint8Array;
}

function mismatch(message: string, detail: Record<string, unknown> = {}): never {
  throw new VolunteerError('DATASET_MISMATCH', message, 'REJECT', detail);
}

function checkSpec(spec: DatasetSpec, count: number): void {
  if (!Number.isInteger(spec.segments) || spec.segments < 1 || spec.segments > count)
    mismatch(`segment count ${spec.segments} for ${count} examples`);
  const seen = new Set<number>();
  for (const s of spec.testSegments) {
    if (!Number.isInteger(s) || s < 0 || s >= spec.segments || seen.has(s))
      mismatch(`bad test segment ${s}`, { segment: s });
    seen.add(s);
  }
}

/** Concatenates the given segments' examples, in order. */
function pick(full: Dataset, ranges: { start: number; end: number }[]): Dataset {
  const stride = full.featureBytes + 1;
  const count = ranges.reduce((n, r) => n + r.end - r.start, 0);
  const examples = new Uint8Array(count * stride);
  let at = 0;
  for (const r of ranges) {
    examples.set(full.examples.subarray(r.start * stride, r.end * stride), at * stride);
    at += r.end - r.start;
  }
  return { examples, count, featureBytes: full.featureBytes };
}

/** The commitment a task creator publishes for `full` cut into `segments` (and the split it implies). */
export function commitDataset(chainId: string, full: Dataset, spec: Omit<DatasetSpec, 'url'>): CommittedData {
  checkSpec({ ...spec, url: '' }, full.count);
  const ranges = segmentRanges(full.count, spec.segments);
  const commitment = datasetCommitment(
    chainId,
    ranges.map((r) => segmentHash(chainId, full, r)),
  );
  const test = new Set(spec.testSegments);
  return {
    train: pick(
      full,
      ranges.filter((_, s) => !test.has(s)),
    ),
    heldOut: pick(
      full,
      ranges.filter((_, s) => test.has(s)),
    ),
    commitment,
  };
}

/**
 * Checks `full` against the task: feature size, training-set size and the dataset commitment.
 * Throws VolunteerError('DATASET_MISMATCH') naming the first difference.
 */
export function bindDataset(
  chainId: string,
  task: TaskDefinition,
  full: Dataset,
  spec: DatasetSpec,
): CommittedData {
  const layout = validateTask(task);
  if (full.featureBytes !== layout.inputSize)
    mismatch(`${full.featureBytes} bytes per example, the model takes ${layout.inputSize}`);
  const data = commitDataset(chainId, full, spec);
  if (bytesToHex(data.commitment) !== bytesToHex(task.datasetCommitment))
    mismatch('the data does not match the task’s dataset commitment', {
      commitment: bytesToHex(data.commitment),
      expected: bytesToHex(task.datasetCommitment),
    });
  if (data.train.count !== task.trainSize)
    mismatch(`${data.train.count} training examples, the task trains on ${task.trainSize}`);
  return data;
}

/** Gunzips (DecompressionStream: browsers, workers and Node ≥ 18) when the bytes are gzip. */
export async function gunzipIfNeeded(raw: Uint8Array): Promise<Uint8Array> {
  if (!isGzip(raw)) return raw;
  const stream = new Blob([raw as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The packed MNIST file (gzip or not) as a committed dataset for `task`. */
export async function loadCommittedMnist(
  chainId: string,
  task: TaskDefinition,
  spec: DatasetSpec,
  raw: Uint8Array,
): Promise<CommittedData> {
  return bindDataset(chainId, task, mnistExamples(await gunzipIfNeeded(raw)), spec);
}

/** The first `count` held-out examples as a Batch (features in [0, 1]). */
export function heldOutBatch(data: CommittedData, count: number): Batch {
  const n = Math.min(count, data.heldOut.count);
  return batchTensors(
    data.heldOut,
    Array.from({ length: n }, (_, i) => i),
  );
}

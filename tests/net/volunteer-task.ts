/**
 * A joinable MNIST task for networked volunteer tests: the packed digits this repository ships
 * (public/data), cut into 10 segments with the last two held out (web-worker-node/demo.ts
 * MNIST_SPLIT), committed under the test chain's id, and the supervisors' task file
 * (supervisor-node/tasks.ts format) that names `minerSlots` instead of a miner list, with the
 * dataset's location for volunteers (`dataUrl`) and the training examples in a binary file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { bytesToHex } from '../../shared/bytes.ts';
import { segmentHash, segmentRanges } from '../../shared/pouw/dataset.ts';
import {
  type TaskDefinition,
  TaskDefinition as TaskDefinitionCodec,
  taskId as taskIdOf,
} from '../../shared/pouw/task.ts';
import { commitDataset } from '../../web-worker-node/data/committed.ts';
import { isGzip, mnistExamples } from '../../web-worker-node/data/mnist.ts';
import { MNIST_FILE } from '../../web-worker-node/data/mnist-node.ts';
import { MNIST_SPLIT, tinyMnistTask } from '../../web-worker-node/demo.ts';

export interface JoinableMnistTask {
  file: string;
  definition: TaskDefinition;
  taskId: Uint8Array;
  /** What volunteers are told (relative; the edge resolves it to this checkout's file). */
  dataUrl: string;
}

/** Writes `<dir>/task.json` and `<dir>/train.bin` for the one-softmax-layer MNIST task. */
export function writeJoinableMnistTask(
  dir: string,
  chainId: string,
  minerSlots: number,
  shape: (commitment: Uint8Array) => TaskDefinition = tinyMnistTask,
): JoinableMnistTask {
  const raw = new Uint8Array(readFileSync(MNIST_FILE));
  const full = mnistExamples(isGzip(raw) ? new Uint8Array(gunzipSync(raw)) : raw);
  const { train, commitment } = commitDataset(chainId, full, MNIST_SPLIT);
  const ranges = segmentRanges(full.count, MNIST_SPLIT.segments);
  const trainRanges: { segment: number; start: number; end: number }[] = [];
  let at = 0;
  for (const [s, r] of ranges.entries()) {
    if (MNIST_SPLIT.testSegments.includes(s)) continue;
    trainRanges.push({ segment: s, start: at, end: at + r.end - r.start });
    at += r.end - r.start;
  }
  const definition = shape(commitment);
  const dataUrl = 'data/mnist-10k.u8.gz';
  writeFileSync(join(dir, 'train.bin'), train.examples);
  const file = join(dir, 'task.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        definition: bytesToHex(TaskDefinitionCodec.encode(definition)),
        minerSlots,
        dataUrl,
        examplesFile: 'train.bin',
        count: train.count,
        featureBytes: train.featureBytes,
        segmentHashes: ranges.map((r) => bytesToHex(segmentHash(chainId, full, r))),
        trainRanges,
      },
      null,
      2,
    )}\n`,
  );
  return { file, definition, taskId: taskIdOf(chainId, definition), dataUrl };
}

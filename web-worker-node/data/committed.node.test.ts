import { readFileSync } from 'node:fs';
import { assert, describe, it } from '#test';
import { equalBytes } from '../../shared/bytes.ts';
import { datasetFromImages } from '../../shared/pouw/verify-fixtures.ts';
import { MNIST_SPLIT, tinyMnistTask } from '../demo.ts';
import { bindDataset, commitDataset, gunzipIfNeeded, heldOutBatch } from './committed.ts';
import { mnistExamples, parseMnist } from './mnist.ts';
import { MNIST_FILE } from './mnist-node.ts';

const CHAIN = 'pouw-test';

describe('committed training data', () => {
  it('binds the packed file to a task commitment; any mismatch is DATASET_MISMATCH', async () => {
    const raw = await gunzipIfNeeded(new Uint8Array(readFileSync(MNIST_FILE)));
    const full = mnistExamples(raw);
    // The direct conversion is byte for byte the float round trip the verifier fixtures use.
    assert.ok(equalBytes(full.examples, datasetFromImages(parseMnist(raw)).examples));
    const spec = { url: MNIST_FILE.href, ...MNIST_SPLIT };
    const { commitment } = commitDataset(CHAIN, full, MNIST_SPLIT);
    const task = tinyMnistTask(commitment);
    const data = bindDataset(CHAIN, task, full, spec);
    assert.equal(data.train.count, 8000);
    assert.equal(data.heldOut.count, 2000);
    // The held-out examples are the last two segments, never trained on.
    assert.ok(equalBytes(data.heldOut.examples, full.examples.subarray(8000 * 785)));
    assert.equal(heldOutBatch(data, 100).labels.length, 100);

    const mismatch = { name: 'VolunteerError', code: 'DATASET_MISMATCH' };
    const tampered = { ...full, examples: full.examples.slice() };
    tampered.examples[12_345]! ^= 1;
    assert.throws(() => bindDataset(CHAIN, task, tampered, spec), mismatch, 'one flipped pixel bit');
    assert.throws(() => bindDataset('pouw-other', task, full, spec), mismatch, 'another chain');
    assert.throws(
      () => bindDataset(CHAIN, task, full, { ...spec, testSegments: [9, 9] }),
      mismatch,
      'duplicate',
    );
    assert.throws(() => bindDataset(CHAIN, task, full, { ...spec, testSegments: [10] }), mismatch, 'range');
    assert.throws(() => bindDataset(CHAIN, task, full, { ...spec, segments: 0 }), mismatch, 'segments');
    assert.throws(() => bindDataset(CHAIN, { ...task, trainSize: 7999 }, full, spec), mismatch, 'trainSize');
    assert.throws(() => mnistExamples(raw.subarray(0, raw.length - 1)), { code: 'DECODE_UNDERSIZED' });
  });
});

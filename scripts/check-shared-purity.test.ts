import { join } from 'node:path';
import { assert, describe, it } from '#test';
import { checkSource, checkTree } from './check-shared-purity.ts';

const rulesOf = (src: string) => checkSource('x.ts', src).map((v) => `${v.rule}:${v.what}`);

describe('shared/ purity check', () => {
  it('the real shared/ tree is clean', () => {
    const violations = checkTree(join(import.meta.dirname, '..'));
    assert.deepEqual(violations, []);
  });

  it('flags Node built-ins in every import form', () => {
    assert.deepEqual(rulesOf(`import { readFileSync } from 'node:fs';`), ['node-builtin:node:fs']);
    assert.deepEqual(rulesOf(`import * as path from 'path';`), ['node-builtin:path']);
    assert.deepEqual(rulesOf(`export { x } from 'fs/promises';`), ['node-builtin:fs/promises']);
    assert.deepEqual(rulesOf(`const c = await import('crypto');`), ['node-builtin:crypto']);
    assert.deepEqual(rulesOf(`const c = require('node:crypto');`), [
      'node-builtin:node:crypto',
      'forbidden-global:require',
    ]);
    assert.deepEqual(rulesOf(`type W = import('worker_threads').Worker;`), ['node-builtin:worker_threads']);
    assert.deepEqual(rulesOf(`import 'buffer';`), ['node-builtin:buffer']);
  });

  it('allows a file of an npm package that shares a built-in name', () => {
    assert.deepEqual(rulesOf(`import { Buffer } from 'buffer/index.js';`), []);
  });

  it('flags libp2p, TensorFlow.js and storage packages', () => {
    assert.deepEqual(rulesOf(`import { createLibp2p } from 'libp2p';`), ['forbidden-package:libp2p']);
    assert.deepEqual(rulesOf(`import { noise } from '@libp2p/noise';`), ['forbidden-package:@libp2p/noise']);
    assert.deepEqual(rulesOf(`import * as tf from '@tensorflow/tfjs-core';`), [
      'forbidden-package:@tensorflow/tfjs-core',
    ]);
    assert.deepEqual(rulesOf(`import { openDB } from 'idb';`), ['forbidden-package:idb']);
    assert.deepEqual(rulesOf(`import { ClassicLevel } from 'classic-level';`), [
      'forbidden-package:classic-level',
    ]);
  });

  it('flags clocks, timers and storage globals', () => {
    assert.deepEqual(rulesOf('const t = Date.now();'), ['forbidden-global:Date']);
    assert.deepEqual(rulesOf('const d = new Date();'), ['forbidden-global:Date']);
    assert.deepEqual(rulesOf('setTimeout(() => 1, 5);'), ['forbidden-global:setTimeout']);
    assert.deepEqual(rulesOf('const id = setInterval(f, 5);'), ['forbidden-global:setInterval']);
    assert.deepEqual(rulesOf('const x = performance.now();'), ['forbidden-global:performance']);
    assert.deepEqual(rulesOf(`indexedDB.open('x');`), ['forbidden-global:indexedDB']);
    assert.deepEqual(rulesOf(`localStorage.setItem('a', 'b');`), ['forbidden-global:localStorage']);
    assert.deepEqual(rulesOf('const t = globalThis.setTimeout;'), ['forbidden-global:globalThis.setTimeout']);
    assert.deepEqual(rulesOf('const e = process.env;'), ['forbidden-global:process']);
  });

  it('does not flag names that only look like globals', () => {
    assert.deepEqual(rulesOf('// setTimeout(Date.now())\nconst s = "new Date()";'), []);
    assert.deepEqual(rulesOf('const o = { Date: 1, setTimeout: 2 }; o.Date; o.setTimeout;'), []);
    assert.deepEqual(rulesOf('function f(performance: number) { return performance + 1; }'), []);
    assert.deepEqual(rulesOf('interface Clock { Date: number; now(): bigint }'), []);
    assert.deepEqual(
      rulesOf(`import { x } from './date.ts'; import { y } from '@noble/hashes/sha2.js';`),
      [],
    );
  });
});

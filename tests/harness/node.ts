/** Test API under Node: node:test. The browser twin (browser.ts) exports the same names. */
export { after, before, describe, it } from 'node:test';
export * as assert from './assert.ts';
export const runtime: 'node' | 'browser' = 'node';

/**
 * Test API in Chromium: the mocha globals that @web/test-runner installs, under the same names
 * node:test uses, so one test file runs in both places.
 */
type Body = () => void | Promise<void>;
interface MochaGlobals {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: Body): void;
  before(fn: Body): void;
  after(fn: Body): void;
}
const g = globalThis as unknown as MochaGlobals;

export function describe(name: string, fn: () => void): void {
  g.describe(name, fn);
}
export function it(name: string, fn: Body): void {
  g.it(name, fn);
}
export function before(fn: Body): void {
  g.before(fn);
}
export function after(fn: Body): void {
  g.after(fn);
}
export * as assert from './assert.ts';
export const runtime: 'node' | 'browser' = 'browser';

/**
 * Portable assertions: the same test files run under node:test and in Chromium (mocha via
 * @web/test-runner), so assertions cannot come from `node:assert`.
 */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

function show(x: unknown): string {
  if (x instanceof Uint8Array)
    return `Uint8Array(${x.length})[${hex(x).slice(0, 64)}${x.length > 32 ? '…' : ''}]`;
  if (typeof x === 'bigint') return `${x}n`;
  try {
    return JSON.stringify(x, (_k, v) =>
      typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? hex(v) : v,
    );
  } catch {
    return String(x);
  }
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export function ok(value: unknown, message = 'expected a truthy value'): asserts value {
  if (!value) throw new AssertionError(`${message} (got ${show(value)})`);
}

export function equal<T>(actual: T, expected: T, message = ''): void {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(
      `${message ? `${message}: ` : ''}expected ${show(expected)}, got ${show(actual)}`,
    );
  }
}

export function notEqual<T>(actual: T, unexpected: T, message = ''): void {
  if (Object.is(actual, unexpected))
    throw new AssertionError(`${message ? `${message}: ` : ''}got ${show(actual)}`);
}

function deepEq(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Map && b instanceof Map) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEq(v, b.get(k))) return false;
    return true;
  }
  if (a instanceof Set && b instanceof Set) {
    if (a.size !== b.size) return false;
    for (const v of a) if (!b.has(v)) return false;
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!deepEq((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

export function deepEqual<T>(actual: T, expected: T, message = ''): void {
  if (!deepEq(actual, expected)) {
    throw new AssertionError(
      `${message ? `${message}: ` : ''}expected ${show(expected)}, got ${show(actual)}`,
    );
  }
}

export interface ErrorMatcher {
  name?: string;
  code?: string;
  verdict?: string;
  message?: RegExp;
}

function matchError(e: unknown, m: ErrorMatcher, context: string): void {
  if (!(e instanceof Error)) throw new AssertionError(`${context}: thrown value is not an Error: ${show(e)}`);
  const rec = e as Error & { code?: unknown; verdict?: unknown };
  if (m.name !== undefined && e.name !== m.name) {
    throw new AssertionError(`${context}: expected error name ${m.name}, got ${e.name} (${e.message})`);
  }
  if (m.code !== undefined && rec.code !== m.code) {
    throw new AssertionError(
      `${context}: expected error code ${m.code}, got ${show(rec.code)} (${e.message})`,
    );
  }
  if (m.verdict !== undefined && rec.verdict !== m.verdict) {
    throw new AssertionError(`${context}: expected verdict ${m.verdict}, got ${show(rec.verdict)}`);
  }
  if (m.message !== undefined && !m.message.test(e.message)) {
    throw new AssertionError(`${context}: message ${show(e.message)} does not match ${m.message}`);
  }
}

/** Asserts `fn` throws an error matching `m`; returns the error for further checks. */
export function throws(fn: () => unknown, m: ErrorMatcher = {}, message = 'expected a throw'): Error {
  try {
    fn();
  } catch (e) {
    matchError(e, m, message);
    return e as Error;
  }
  throw new AssertionError(`${message}: nothing was thrown`);
}

export async function rejects(
  fn: () => Promise<unknown>,
  m: ErrorMatcher = {},
  message = 'expected a rejection',
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    matchError(e, m, message);
    return e as Error;
  }
  throw new AssertionError(`${message}: the promise resolved`);
}

/**
 * The UTXO set as a map with cheap copy-on-write forks: a block is validated on a fork, and only a
 * block that passes every rule has its changes applied to the base.
 */
import type { TxOut } from './types.ts';

export class UtxoSet {
  private readonly added = new Map<string, TxOut>();
  private readonly removed = new Set<string>();
  private count: number;

  constructor(private readonly base?: UtxoSet) {
    this.count = base?.size ?? 0;
  }

  get size(): number {
    return this.count;
  }

  get(key: string): TxOut | undefined {
    const local = this.added.get(key);
    if (local !== undefined) return local;
    if (this.removed.has(key)) return undefined;
    return this.base?.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  set(key: string, out: TxOut): void {
    if (!this.has(key)) this.count++;
    this.added.set(key, out);
    if (this.base !== undefined) this.removed.delete(key);
  }

  delete(key: string): boolean {
    if (!this.has(key)) return false;
    this.count--;
    this.added.delete(key);
    if (this.base?.has(key)) this.removed.add(key);
    return true;
  }

  fork(): UtxoSet {
    return new UtxoSet(this);
  }

  *entries(): IterableIterator<[string, TxOut]> {
    if (this.base !== undefined) {
      for (const [k, v] of this.base.entries()) {
        if (!this.removed.has(k) && !this.added.has(k)) yield [k, v];
      }
    }
    yield* this.added.entries();
  }
}

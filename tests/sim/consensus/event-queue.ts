/** Virtual time: a binary min-heap of callbacks ordered by (time, insertion order), so runs are deterministic. */
interface Entry {
  at: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  #heap: Entry[] = [];
  #seq = 0;
  now = 0;
  processed = 0;

  get size(): number {
    return this.#heap.length;
  }

  at(time: number, run: () => void): void {
    const e = { at: Math.max(time, this.now), seq: this.#seq++, run };
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, e)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  after(delay: number, run: () => void): void {
    this.at(this.now + delay, run);
  }

  /** Runs the next event; false when none is left or the next one is after `until`. */
  runNext(until: number): boolean {
    const h = this.#heap;
    const top = h[0];
    if (top === undefined || top.at > until) return false;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
        if (less(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    this.now = top.at;
    this.processed++;
    top.run();
    return true;
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * One block candidate per height at a time. The miner emits a candidate for every lucky nonce, and
 * several can land on one template height; each costs every supervisor a replay of the lucky
 * iteration, while one finalized candidate is all a height needs. A refused candidate frees its
 * height at once; an accepted one holds it for `holdMs`, after which the next lucky candidate of
 * the same height goes out too: "accepted" may mean one supervisor took it (the others' histories
 * lagged) and that one then failed, and a miner that waited for ever would leave the height to
 * the others. Only the most recent heights are remembered.
 */
export class CandidateGate {
  private readonly heights = new Map<bigint, { state: 'pending' | 'accepted'; at: number }>();

  constructor(
    private readonly holdMs = 10_000,
    private readonly remember = 8,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a candidate for `height` should be sent now; if so, the height is marked pending. */
  admit(height: bigint): boolean {
    const held = this.heights.get(height);
    if (held?.state === 'pending') return false;
    if (held?.state === 'accepted' && this.now() - held.at < this.holdMs) return false;
    this.heights.set(height, { state: 'pending', at: this.now() });
    if (this.heights.size > this.remember) {
      let lowest = height;
      for (const h of this.heights.keys()) if (h < lowest) lowest = h;
      this.heights.delete(lowest);
    }
    return true;
  }

  /** The verdict for the candidate sent at `height`. */
  settle(height: bigint, accepted: boolean): void {
    if (accepted) this.heights.set(height, { state: 'accepted', at: this.now() });
    else this.heights.delete(height);
  }

  state(height: bigint): 'pending' | 'accepted' | undefined {
    return this.heights.get(height)?.state;
  }
}

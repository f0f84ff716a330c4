/**
 * One block candidate per height in flight or accepted. The miner emits a candidate for every lucky
 * nonce, and several can land on one template height; each costs every supervisor a replay of the
 * lucky iteration, while one accepted candidate is all a height needs. A refused candidate frees its
 * height so the next lucky one is tried. Only the most recent heights are remembered.
 */
export class CandidateGate {
  private readonly heights = new Map<bigint, 'pending' | 'accepted'>();

  constructor(private readonly remember = 8) {}

  /** Whether a candidate for `height` should be sent now; if so, the height is marked pending. */
  admit(height: bigint): boolean {
    if (this.heights.has(height)) return false;
    this.heights.set(height, 'pending');
    if (this.heights.size > this.remember) {
      let lowest = height;
      for (const h of this.heights.keys()) if (h < lowest) lowest = h;
      this.heights.delete(lowest);
    }
    return true;
  }

  /** The verdict for the candidate sent at `height`. */
  settle(height: bigint, accepted: boolean): void {
    if (accepted) this.heights.set(height, 'accepted');
    else this.heights.delete(height);
  }

  state(height: bigint): 'pending' | 'accepted' | undefined {
    return this.heights.get(height);
  }
}

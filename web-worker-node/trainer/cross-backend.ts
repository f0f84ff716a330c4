/**
 * Cross-backend divergence of the residual, measured the way a verifier meets it (DESIGN §4.5): a
 * reference miner (cpu) walks a trajectory; at every iteration each other backend computes its own
 * gradient at the same n, accumulates it into its own residual, makes its own ±τ decisions (±τ/2 at
 * a segment flush), and then advances that residual with the reference's map, as a verifier
 * replaying the miner's claimed maps does. The numbers (largest |Δg|, largest |Δr|, decisions that
 * differ, how close honest entries come to the threshold) choose the verifier's tolerance ε.
 * Pure TypeScript: the gradients come from any GradientEngine.
 */
import { accumulateAndThreshold, applyMap, INDEX_MASK, SIGN_BIT } from '../../shared/pouw/residual.ts';

export interface BackendDivergence {
  backend: string;
  /** max |g_b − g_ref| over every entry and iteration. */
  maxGradientDiff: number;
  /** max |v_b − v_ref|, v = r + g the value thresholded (and r itself at a flush). */
  maxResidualDiff: number;
  /** Entries whose decision (−1, 0, +1) differed from the reference's. */
  decisionsDiffered: number;
  /** The smallest and largest ||v_ref| − t| of an entry whose decision differed (NaN when none did). */
  differedAtDistance: number;
  differedMaxDistance: number;
}

export interface ThresholdProximity {
  /** Entries examined: |M| per iteration and per flush. */
  entries: number;
  /** Reference map entries over the run (steps and flushes). */
  mapEntries: number;
  /** min over every entry of ||v_ref| − t| (t = τ, or τ/2 at a flush): how close an honest entry came. */
  closest: number;
  within1e5: number;
  within1e4: number;
  within3e4: number;
  within1e3: number;
}

export interface DivergenceReport {
  iterations: number;
  flushes: number;
  tau: number;
  proximity: ThresholdProximity;
  backends: BackendDivergence[];
}

function decisions(map: Uint32Array, size: number): Int8Array {
  const d = new Int8Array(size);
  for (const e of map) d[e & INDEX_MASK] = (e & SIGN_BIT) !== 0 ? 1 : -1;
  return d;
}

export class DivergenceMeter {
  /** The reference trajectory's lattice point (apply the maps `step` returns to nothing else). */
  readonly n: Int32Array;
  private readonly rRef: Float32Array;
  private readonly rOther = new Map<string, Float32Array>();
  private readonly stats = new Map<string, BackendDivergence>();
  private iterations = 0;
  private flushes = 0;
  private readonly prox: ThresholdProximity = {
    entries: 0,
    mapEntries: 0,
    closest: Infinity,
    within1e5: 0,
    within1e4: 0,
    within3e4: 0,
    within1e3: 0,
  };

  constructor(
    private readonly parameterCount: number,
    private readonly tau: number,
    private readonly segmentLength: number,
    backends: readonly string[],
  ) {
    this.n = new Int32Array(parameterCount);
    this.rRef = new Float32Array(parameterCount);
    for (const b of backends) {
      this.rOther.set(b, new Float32Array(parameterCount));
      this.stats.set(b, {
        backend: b,
        maxGradientDiff: 0,
        maxResidualDiff: 0,
        decisionsDiffered: 0,
        differedAtDistance: Number.NaN,
        differedMaxDistance: Number.NaN,
      });
    }
  }

  private observe(vRef: Float32Array, threshold: number): void {
    const p = this.prox;
    for (let j = 0; j < vRef.length; j++) {
      const d = Math.abs(Math.abs(vRef[j]!) - threshold);
      if (d < p.closest) p.closest = d;
      if (d < 1e-3) {
        p.within1e3++;
        if (d < 3e-4) p.within3e4++;
        if (d < 1e-4) p.within1e4++;
        if (d < 1e-5) p.within1e5++;
      }
    }
    p.entries += vRef.length;
  }

  /** Compares one backend's values v_b with the reference's and advances r_b with the reference map. */
  private compare(
    backend: string,
    vRef: Float32Array,
    vB: Float32Array,
    refDecisions: Int8Array,
    threshold: number,
    flush: boolean,
  ): void {
    const s = this.stats.get(backend)!;
    const r = this.rOther.get(backend)!;
    for (let j = 0; j < vB.length; j++) {
      const v = vB[j]!;
      const diff = Math.abs(v - vRef[j]!);
      if (diff > s.maxResidualDiff) s.maxResidualDiff = diff;
      const mine = v > threshold ? 1 : v < -threshold ? -1 : 0;
      const theirs = refDecisions[j]!;
      if (mine !== theirs) {
        s.decisionsDiffered++;
        const dist = Math.abs(Math.abs(vRef[j]!) - threshold);
        if (!(dist >= s.differedAtDistance)) s.differedAtDistance = dist;
        if (!(dist <= s.differedMaxDistance)) s.differedMaxDistance = dist;
      }
      // The verifier advances with the miner's (reference's) decision.
      r[j] = flush ? 0 : Math.fround(v - theirs * this.tau);
    }
  }

  /**
   * One iteration: `ref` is the reference gradient at `this.n`, `others` each backend's gradient at
   * the same n. Returns the reference map (already applied to `this.n`) and, at the end of a
   * segment, the flush map (also applied).
   */
  step(
    ref: Float32Array,
    others: Readonly<Record<string, Float32Array>>,
  ): { map: Uint32Array; flushMap: Uint32Array | null } {
    const m = this.parameterCount;
    const vRef = new Float32Array(m);
    for (let j = 0; j < m; j++) vRef[j] = Math.fround(this.rRef[j]! + ref[j]!);
    this.observe(vRef, this.tau);
    const map = accumulateAndThreshold(this.rRef, ref, this.tau);
    const refDecisions = decisions(map, m);
    for (const [b, g] of Object.entries(others)) {
      const s = this.stats.get(b)!;
      const r = this.rOther.get(b)!;
      const vB = new Float32Array(m);
      for (let j = 0; j < m; j++) {
        const dg = Math.abs(g[j]! - ref[j]!);
        if (dg > s.maxGradientDiff) s.maxGradientDiff = dg;
        vB[j] = Math.fround(r[j]! + g[j]!);
      }
      this.compare(b, vRef, vB, refDecisions, this.tau, false);
    }
    applyMap(this.n, map);
    this.prox.mapEntries += map.length;
    this.iterations++;
    let flushMap: Uint32Array | null = null;
    if (this.iterations % this.segmentLength === 0) {
      const half = this.tau / 2;
      const before = this.rRef.slice();
      this.observe(before, half);
      flushMap = accumulateAndThreshold(this.rRef, null, this.tau, half);
      this.rRef.fill(0);
      const flushDecisions = decisions(flushMap, m);
      for (const b of Object.keys(others))
        this.compare(b, before, this.rOther.get(b)!.slice(), flushDecisions, half, true);
      applyMap(this.n, flushMap);
      this.prox.mapEntries += flushMap.length;
      this.flushes++;
    }
    return { map, flushMap };
  }

  report(): DivergenceReport {
    return {
      iterations: this.iterations,
      flushes: this.flushes,
      tau: this.tau,
      proximity: { ...this.prox },
      backends: [...this.stats.values()].map((s) => ({ ...s })),
    };
  }
}

/** One line per backend plus the proximity line, for test output and the ADR. */
export function formatDivergence(label: string, r: DivergenceReport): string {
  const p = r.proximity;
  const frac = (k: number) =>
    `${((100 * k) / p.entries).toPrecision(2)}% (${(k / (r.iterations + r.flushes)).toFixed(2)}/iter)`;
  const lines = [
    `${label}: ${r.iterations} iterations, ${r.flushes} flushes, τ=${r.tau}, ${p.mapEntries} reference map entries`,
    `  closest honest entry to the threshold: ${p.closest.toExponential(2)}; within 1e-5: ${frac(p.within1e5)}, 1e-4: ${frac(p.within1e4)}, 3e-4: ${frac(p.within3e4)}, 1e-3: ${frac(p.within1e3)}`,
  ];
  for (const b of r.backends) {
    lines.push(
      `  ${b.backend} vs reference: max|Δg| ${b.maxGradientDiff.toExponential(2)}, max|Δr| ${b.maxResidualDiff.toExponential(2)}, decisions differed ${b.decisionsDiffered}${b.decisionsDiffered > 0 ? ` (at ${b.differedAtDistance.toExponential(2)} to ${b.differedMaxDistance.toExponential(2)} from the threshold)` : ''}`,
    );
  }
  return lines.join('\n');
}

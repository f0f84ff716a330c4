/**
 * What a volunteer reports while it works, and the running summary a page or CLI shows. Events come
 * from the worker (phase, backend, iterations, held-out evaluations, candidates) and from the page's
 * network bridge (the supervisors' verdicts); `ProgressTracker` folds them into a snapshot with
 * bounded history, so a tab that trains for hours keeps a fixed-size chart.
 */

export type VolunteerPhase =
  | 'idle'
  | 'joining'
  | 'loading-data'
  | 'selecting-backend'
  | 'training'
  | 'paused'
  | 'done'
  | 'error';

export interface ErrorInfo {
  name: string;
  code?: string;
  message: string;
}

export type VolunteerEvent =
  | { type: 'phase'; phase: VolunteerPhase; detail?: string }
  | {
      type: 'backend';
      backend: string;
      selfTestError: number;
      /** Each faster candidate the ladder skipped, and why. */
      skipped: { backend: string; reason: string }[];
    }
  | { type: 'dataset'; train: number; heldOut: number; commitment: string }
  | {
      type: 'iteration';
      /** Worker clock (ms, monotonic within one volunteer). */
      t: number;
      iteration: number;
      epoch: number;
      /** Mean loss and accuracy of this iteration's batch. */
      loss: number;
      accuracy: number;
      mapEntries: number;
      /** Peer maps applied before this iteration. */
      peers: number;
      /** Cumulative counters. */
      itresSent: number;
      itresReceived: number;
      itresDuplicates: number;
      itresRejected: number;
      noncesTried: number;
    }
  | {
      /** Counters after the last iteration's messages and mining settled (on pause and when done). */
      type: 'counters';
      itresSent: number;
      itresReceived: number;
      itresDuplicates: number;
      itresRejected: number;
      noncesTried: number;
    }
  | { type: 'heldout'; iteration: number; loss: number; accuracy: number; examples: number }
  | { type: 'candidate'; iteration: number; height: bigint }
  | {
      type: 'verdict';
      height: bigint;
      accepted: boolean;
      code?: string;
      reason?: string;
    }
  | { type: 'error'; error: ErrorInfo };

export interface SeriesPoint {
  iteration: number;
  loss: number;
  accuracy: number;
}

export interface VolunteerSnapshot {
  phase: VolunteerPhase;
  phaseDetail: string | undefined;
  backend:
    | { name: string; selfTestError: number; skipped: { backend: string; reason: string }[] }
    | undefined;
  dataset: { train: number; heldOut: number; commitment: string } | undefined;
  iterations: number;
  epoch: number;
  /** The last batch's loss and accuracy. */
  loss: number | undefined;
  accuracy: number | undefined;
  /** Batch loss/accuracy over time (decimated to at most `maxPoints`). */
  series: SeriesPoint[];
  /** Held-out evaluations over time (decimated likewise). */
  heldOut: SeriesPoint[];
  itres: { sent: number; received: number; duplicates: number; rejected: number };
  /** Block candidates this volunteer found. */
  blocksFound: number;
  blocksAccepted: number;
  blocksRejected: number;
  lastVerdict: Extract<VolunteerEvent, { type: 'verdict' }> | undefined;
  noncesTried: number;
  noncesPerSecond: number;
  iterationsPerSecond: number;
  error: ErrorInfo | undefined;
}

/**
 * A series that keeps at most `max` points: when full, every other point goes and only every
 * 2^k-th iteration is kept from then on, so old and new history keep the same resolution.
 */
export class DecimatedSeries {
  private points: SeriesPoint[] = [];
  private stride = 1;
  constructor(private readonly max: number) {}
  push(p: SeriesPoint): void {
    if (p.iteration % this.stride !== 0) return;
    this.points.push(p);
    if (this.points.length > this.max) {
      this.stride *= 2;
      this.points = this.points.filter((q) => q.iteration % this.stride === 0);
    }
  }
  values(): SeriesPoint[] {
    return this.points.slice();
  }
}

/** Samples older than this leave the rate window. */
const RATE_WINDOW_MS = 5000;

export class ProgressTracker {
  private readonly series: DecimatedSeries;
  private readonly heldOut: DecimatedSeries;
  private readonly samples: { t: number; nonces: number; iteration: number }[] = [];
  private state: Omit<VolunteerSnapshot, 'series' | 'heldOut'> = {
    phase: 'idle',
    phaseDetail: undefined,
    backend: undefined,
    dataset: undefined,
    iterations: 0,
    epoch: 0,
    loss: undefined,
    accuracy: undefined,
    itres: { sent: 0, received: 0, duplicates: 0, rejected: 0 },
    blocksFound: 0,
    blocksAccepted: 0,
    blocksRejected: 0,
    lastVerdict: undefined,
    noncesTried: 0,
    noncesPerSecond: 0,
    iterationsPerSecond: 0,
    error: undefined,
  };

  constructor(maxPoints = 240) {
    this.series = new DecimatedSeries(maxPoints);
    this.heldOut = new DecimatedSeries(maxPoints);
  }

  apply(e: VolunteerEvent): void {
    const s = this.state;
    switch (e.type) {
      case 'phase':
        s.phase = e.phase;
        s.phaseDetail = e.detail;
        if (e.phase !== 'error') s.error = undefined;
        // Rates restart after a pause: the gap is not work.
        if (e.phase !== 'training') {
          this.samples.length = 0;
          s.noncesPerSecond = 0;
          s.iterationsPerSecond = 0;
        }
        break;
      case 'backend':
        s.backend = { name: e.backend, selfTestError: e.selfTestError, skipped: e.skipped };
        break;
      case 'dataset':
        s.dataset = { train: e.train, heldOut: e.heldOut, commitment: e.commitment };
        break;
      case 'iteration': {
        s.iterations = e.iteration + 1;
        s.epoch = e.epoch;
        s.loss = e.loss;
        s.accuracy = e.accuracy;
        s.itres = {
          sent: e.itresSent,
          received: e.itresReceived,
          duplicates: e.itresDuplicates,
          rejected: e.itresRejected,
        };
        s.noncesTried = e.noncesTried;
        this.series.push({ iteration: e.iteration, loss: e.loss, accuracy: e.accuracy });
        this.samples.push({ t: e.t, nonces: e.noncesTried, iteration: e.iteration });
        while (this.samples.length > 2 && e.t - this.samples[0]!.t > RATE_WINDOW_MS) this.samples.shift();
        const first = this.samples[0]!;
        const dt = (e.t - first.t) / 1000;
        if (dt > 0) {
          s.noncesPerSecond = (e.noncesTried - first.nonces) / dt;
          s.iterationsPerSecond = (e.iteration - first.iteration) / dt;
        }
        break;
      }
      case 'counters':
        s.itres = {
          sent: e.itresSent,
          received: e.itresReceived,
          duplicates: e.itresDuplicates,
          rejected: e.itresRejected,
        };
        s.noncesTried = e.noncesTried;
        break;
      case 'heldout':
        this.heldOut.push({ iteration: e.iteration, loss: e.loss, accuracy: e.accuracy });
        break;
      case 'candidate':
        s.blocksFound++;
        break;
      case 'verdict':
        if (e.accepted) s.blocksAccepted++;
        else s.blocksRejected++;
        s.lastVerdict = e;
        break;
      case 'error':
        s.phase = 'error';
        s.error = e.error;
        break;
    }
  }

  snapshot(): VolunteerSnapshot {
    return {
      ...this.state,
      itres: { ...this.state.itres },
      series: this.series.values(),
      heldOut: this.heldOut.values(),
    };
  }
}

/** An error as plain data (crosses workers; PouwError's name and code survive). */
export function errorInfo(e: unknown): ErrorInfo {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { name: e.name, ...(typeof code === 'string' ? { code } : {}), message: e.message };
  }
  return { name: 'Error', message: String(e) };
}

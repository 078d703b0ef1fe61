/**
 * Pure parts of the soak (`--soak SECONDS`): when to sample, per-window throughput/latency, and RSS growth per
 * process (end − first, and a least-squares slope in MB per minute). Unit-tested in test/bench-soak.unit.test.ts.
 */
import { type LatencySummary, summarize, throughput } from "./stats.js";

/** Samples taken before this many seconds into the soak are left out of the slope (heaps settle first). */
export const SLOPE_SKIP_SEC = 60;

/**
 * Seconds into the soak at which to sample, besides the first sample (t = 0) and the last one (taken once every
 * task has settled, at ~durationSec). A tick closer than half an interval to the end is dropped, so the last
 * window is never a sliver of a few tasks.
 */
export function sampleTimes(durationSec: number, everySec: number): number[] {
  if (!(everySec > 0)) throw new Error(`sampling interval must be positive, got ${everySec}`);
  const times: number[] = [];
  for (let t = everySec; t <= durationSec - everySec / 2; t += everySec) times.push(t);
  return times;
}

/**
 * Slope of the least-squares line through the points (y per unit of x); null with fewer than two distinct x
 * (a line through one point has no slope worth printing).
 */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  const meanX = points.reduce((s, p) => s + p.x, 0) / n;
  const meanY = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - meanX) ** 2;
    sxy += (p.x - meanX) * (p.y - meanY);
  }
  return sxx === 0 ? null : sxy / sxx;
}

export interface RssPoint {
  atSec: number;
  /** null when the process could not be read (gone). */
  mb: number | null;
}

export interface RssGrowth {
  /** RSS at the first sample (t = 0: after the warm-up and the peak phase, before the open loop starts). */
  firstMb: number | null;
  /** RSS at the last sample (every task settled). */
  endMb: number | null;
  maxMb: number | null;
  /** end − first. */
  growthMb: number | null;
  /** Least-squares slope over the samples at or after `skipSec`, in MB per minute; null with < 2 such samples. */
  slopeMbPerMin: number | null;
  /** How many samples the slope is fitted to. */
  slopeSamples: number;
}

export function rssGrowth(points: readonly RssPoint[], skipSec: number = SLOPE_SKIP_SEC): RssGrowth {
  const read = points.filter((p): p is { atSec: number; mb: number } => p.mb !== null);
  const first = points[0]?.mb ?? null;
  const end = points[points.length - 1]?.mb ?? null;
  const late = read.filter((p) => p.atSec >= skipSec).map((p) => ({ x: p.atSec / 60, y: p.mb }));
  return {
    firstMb: first,
    endMb: end,
    maxMb: read.length > 0 ? Math.max(...read.map((p) => p.mb)) : null,
    growthMb: first !== null && end !== null ? end - first : null,
    slopeMbPerMin: leastSquaresSlope(late),
    slopeSamples: late.length,
  };
}

export interface WindowStats {
  fromSec: number;
  toSec: number;
  /** Tasks whose send was due (and made) in this window. */
  sent: number;
  /** Tasks that completed in this window (whenever they were sent). */
  completed: number;
  /** Tasks that failed in this window (a timeout counts when it fires, taskTimeoutMs after the send). */
  failed: number;
  /** completed ÷ window length. */
  tasksPerSec: number;
  /** Of the tasks completed in this window, from their intended send time. */
  latencyMs: LatencySummary;
  /** Sent and not yet settled at the end of the window (a growing backlog shows here). */
  inFlightAtEnd: number;
  firstError?: string;
}

/**
 * Collects the outcomes of one window; `close` summarizes it and starts the next. Memory is bounded by one
 * window's completions (rate × interval latencies), however long the soak runs.
 */
export class SoakWindow {
  #from: number;
  #sent = 0;
  #failed = 0;
  #latencies: number[] = [];
  #firstError: string | undefined;

  constructor(fromSec: number) {
    this.#from = fromSec;
  }

  sent(): void {
    this.#sent++;
  }

  completed(latencyMs: number): void {
    this.#latencies.push(latencyMs);
  }

  failed(error: string): void {
    this.#failed++;
    this.#firstError ??= error;
  }

  close(toSec: number, inFlight: number): WindowStats {
    const stats: WindowStats = {
      fromSec: this.#from,
      toSec,
      sent: this.#sent,
      completed: this.#latencies.length,
      failed: this.#failed,
      tasksPerSec: throughput(this.#latencies.length, (toSec - this.#from) * 1000),
      latencyMs: summarize(this.#latencies),
      inFlightAtEnd: inFlight,
      ...(this.#firstError === undefined ? {} : { firstError: this.#firstError }),
    };
    this.#from = toSec;
    this.#sent = 0;
    this.#failed = 0;
    this.#latencies = [];
    this.#firstError = undefined;
    return stats;
  }
}

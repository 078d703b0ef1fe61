/** Pure statistics over latency samples (milliseconds). Unit-tested in test/bench-stats.unit.test.ts. */

export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * The q-quantile (0 ≤ q ≤ 1) of an ascending array by the nearest-rank method: the smallest sample such that at
 * least q of all samples are ≤ it. Nearest rank never invents a value that was not observed, which keeps tails honest.
 */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error("quantile of an empty sample");
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile must be within [0, 1], got ${q}`);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] as number;
}

export function summarize(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, min: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    count: sorted.length,
    min: sorted[0] as number,
    mean: sum / sorted.length,
    p50: quantileSorted(sorted, 0.5),
    p95: quantileSorted(sorted, 0.95),
    p99: quantileSorted(sorted, 0.99),
    max: sorted[sorted.length - 1] as number,
  };
}

/** Tasks per second; 0 when no time elapsed (rather than Infinity, which JSON cannot hold). */
export function throughput(completed: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (completed * 1000) / elapsedMs : 0;
}

/** CPU seconds spent per 1,000 completed tasks. */
export function cpuPerThousand(cpuSeconds: number, completed: number): number {
  return completed > 0 ? (cpuSeconds * 1000) / completed : 0;
}

/** a / b, or null when b is 0 or missing (a ratio against nothing is not a number to print). */
export function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || b === 0) return null;
  return a / b;
}

import { describe, expect, test } from "vitest";
import { cpuPerThousand, quantileSorted, ratio, summarize, throughput } from "../bench/src/stats.js";

describe("bench statistics", () => {
  test("nearest-rank quantiles return observed samples", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    expect(quantileSorted(sorted, 0.5)).toBe(50);
    expect(quantileSorted(sorted, 0.95)).toBe(95);
    expect(quantileSorted(sorted, 0.99)).toBe(99);
    expect(quantileSorted(sorted, 1)).toBe(100);
    expect(quantileSorted(sorted, 0)).toBe(1);
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantileSorted([7], 0.99)).toBe(7);
  });

  test("a single slow outlier shows in p99 of 100 samples only when it is in the top 1%", () => {
    const samples = [...Array.from({ length: 99 }, () => 1), 500];
    const summary = summarize(samples);
    expect(summary.p50).toBe(1);
    expect(summary.p99).toBe(1);
    expect(summary.max).toBe(500);
    const twoSlow = summarize([...Array.from({ length: 98 }, () => 1), 400, 500]);
    expect(twoSlow.p99).toBe(400);
  });

  test("summarize does not depend on input order and keeps p50 ≤ p95 ≤ p99", () => {
    const samples = [9, 3, 7, 1, 5, 10, 2, 8, 4, 6];
    const summary = summarize(samples);
    expect(summary).toEqual({ count: 10, min: 1, mean: 5.5, p50: 5, p95: 10, p99: 10, max: 10 });
    expect(samples[0]).toBe(9); // the input is not sorted in place
  });

  test("empty samples and bad quantiles", () => {
    expect(summarize([]).count).toBe(0);
    expect(() => quantileSorted([], 0.5)).toThrow(/empty/);
    expect(() => quantileSorted([1], 1.5)).toThrow(/within \[0, 1\]/);
  });

  test("throughput, CPU per thousand and ratios guard against division by zero", () => {
    expect(throughput(500, 2000)).toBe(250);
    expect(throughput(10, 0)).toBe(0);
    expect(cpuPerThousand(1.5, 3000)).toBe(0.5);
    expect(cpuPerThousand(1, 0)).toBe(0);
    expect(ratio(2, 4)).toBe(0.5);
    expect(ratio(2, 0)).toBeNull();
    expect(ratio(undefined, 4)).toBeNull();
  });
});

/** The pure parts of the soak (`--soak SECONDS`): sampling times, RSS slope and growth, per-window statistics. */
import { describe, expect, test } from "vitest";
import { parseArgs } from "../bench/src/args.js";
import { pacedLoop } from "../bench/src/load.js";
import { currentRssMbOf } from "../bench/src/proc.js";
import { leastSquaresSlope, rssGrowth, SoakWindow, sampleTimes } from "../bench/src/soak-stats.js";

describe("soak sampling", () => {
  test("samples every interval, never leaving a last window shorter than half an interval", () => {
    expect(sampleTimes(120, 15)).toEqual([15, 30, 45, 60, 75, 90, 105]); // the last sample, at ~120, is taken at the end
    expect(sampleTimes(100, 15)).toEqual([15, 30, 45, 60, 75, 90]); // 90 → end is 10 s, ≥ 7.5
    expect(sampleTimes(600, 15)).toHaveLength(39);
    expect(sampleTimes(10, 15)).toEqual([]);
    expect(() => sampleTimes(60, 0)).toThrow(/positive/);
  });
});

describe("RSS growth", () => {
  test("least-squares slope of a line is its slope, of noise around a flat line about zero", () => {
    expect(leastSquaresSlope([0, 1, 2, 3].map((x) => ({ x, y: 5 + 2 * x })))).toBeCloseTo(2, 10);
    expect(leastSquaresSlope([1, 2, 3, 4, 5, 6].map((x) => ({ x, y: 100 + (x % 2 === 0 ? 3 : -3) })))).toBeCloseTo(
      0.514,
      2,
    ); // a sawtooth leans by its phase, not by a trend
    expect(leastSquaresSlope([{ x: 1, y: 1 }])).toBeNull();
    expect(leastSquaresSlope([])).toBeNull();
    expect(leastSquaresSlope([1, 1, 1].map((x, i) => ({ x, y: i })))).toBeNull();
  });

  test("growth is end − first; the slope (MB/min) skips the first minute, where heaps settle", () => {
    // A jump in the first minute (start-up, the peak phase's heap), then flat at 150 MB: no growth by the slope.
    const settling = [0, 15, 30, 45, 60, 75, 90, 105, 120].map((atSec) => ({ atSec, mb: atSec < 60 ? 120 : 150 }));
    const flat = rssGrowth(settling);
    expect(flat).toMatchObject({ firstMb: 120, endMb: 150, maxMb: 150, growthMb: 30, slopeMbPerMin: 0 });
    expect(flat.slopeSamples).toBe(5);

    // A leak of 2 MB per minute after the first minute.
    const leaking = [0, 30, 60, 90, 120, 150, 180].map((atSec) => ({ atSec, mb: 100 + (2 * atSec) / 60 }));
    const leak = rssGrowth(leaking);
    expect(leak.slopeMbPerMin).toBeCloseTo(2, 10);
    expect(leak.growthMb).toBeCloseTo(6, 10);
    expect(leak.slopeSamples).toBe(5);
  });

  test("an unreadable sample (process gone) is a gap, and a soak too short for a slope says so", () => {
    const g = rssGrowth([
      { atSec: 0, mb: 100 },
      { atSec: 60, mb: 110 },
      { atSec: 75, mb: null },
      { atSec: 90, mb: 120 },
    ]);
    expect(g.maxMb).toBe(120);
    expect(g.growthMb).toBe(20);
    expect(g.slopeMbPerMin).toBeCloseTo(20, 10); // 110 → 120 over half a minute
    expect(g.slopeSamples).toBe(2);
    const short = rssGrowth([
      { atSec: 0, mb: 100 },
      { atSec: 30, mb: 101 },
    ]);
    expect(short.slopeMbPerMin).toBeNull();
    expect(short.slopeSamples).toBe(0);
    expect(
      rssGrowth([
        { atSec: 0, mb: 100 },
        { atSec: 60, mb: null },
      ]).growthMb,
    ).toBeNull();
  });

  test("VmRSS of a live process is read, of a missing one is undefined", () => {
    expect(currentRssMbOf(process.pid)).toBeGreaterThan(10);
    expect(currentRssMbOf(2 ** 22 + 12345)).toBeUndefined(); // above the kernel's pid_max
  });
});

describe("soak windows", () => {
  test("a window summarizes its own completions and failures, then starts empty", () => {
    const w = new SoakWindow(0);
    for (let i = 0; i < 3; i++) w.sent();
    for (const ms of [10, 20, 30, 40]) w.completed(ms);
    w.failed("timeout A");
    w.failed("timeout B");
    const first = w.close(15, 7);
    expect(first).toMatchObject({ fromSec: 0, toSec: 15, sent: 3, completed: 4, failed: 2, inFlightAtEnd: 7 });
    expect(first.tasksPerSec).toBeCloseTo(4 / 15, 10);
    expect(first.latencyMs).toMatchObject({ count: 4, p50: 20, p99: 40, max: 40 });
    expect(first.firstError).toBe("timeout A");

    const second = w.close(30, 0);
    expect(second).toMatchObject({ fromSec: 15, toSec: 30, sent: 0, completed: 0, failed: 0, tasksPerSec: 0 });
    expect(second.latencyMs.count).toBe(0);
    expect(second.firstError).toBeUndefined();
  });

  test("the paced loop reports every outcome as it comes and resolves once all have settled", async () => {
    const outcomes: string[] = [];
    let n = 0;
    const { sent, elapsedMs } = await pacedLoop(
      async () => {
        const i = n++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (i % 4 === 3) throw new Error(`boom ${i}`);
      },
      { ratePerSec: 500, total: 12 },
      (outcome) => outcomes.push(outcome.ok ? "ok" : outcome.error),
    );
    expect(sent).toBe(12);
    expect(outcomes).toHaveLength(12);
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(9);
    expect(outcomes).toContain("boom 3");
    expect(elapsedMs).toBeGreaterThan(20); // 12 sends at 2 ms apart, plus the last one's 5 ms
  });
});

describe("soak flags", () => {
  const parse = (...argv: string[]) => parseArgs(argv, "/tmp/out");

  test("--soak takes a positive integer of seconds, --soak-rate a positive rate", () => {
    expect(parse("--soak", "600")).toMatchObject({ soak: 600 });
    expect(parse("--soak=120", "--soak-rate", "37.5", "--only", "pipeline")).toMatchObject({
      soak: 120,
      soakRate: 37.5,
    });
    expect(parse("--size", "small").soak).toBeUndefined();
  });

  test("a bad value stops with a message naming the flag", () => {
    for (const bad of [["--soak", "0"], ["--soak", "1.5"], ["--soak", "ten"], ["--soak"], ["--soak", "-5"]])
      expect(() => parse(...bad)).toThrow(/--soak needs a positive integer/);
    for (const bad of [
      ["--soak", "60", "--soak-rate", "0"],
      ["--soak", "60", "--soak-rate", "x"],
      ["--soak", "60", "--soak-rate"],
    ])
      expect(() => parse(...bad)).toThrow(/--soak-rate needs a positive number/);
    expect(() => parse("--soak-rate", "10")).toThrow(/--soak-rate only applies with --soak/);
    expect(() => parse("--soak", "60", "--scaling")).toThrow(/--scaling/);
    expect(() => parse("--soak", "60", "--only", "raw")).toThrow(/pipeline only/);
  });
});

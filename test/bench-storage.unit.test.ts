/** The pure parts of the Redis storage footprint (bench/src/storage.ts): grouping, per-task arithmetic, formatting. */
import { describe, expect, test } from "vitest";
import { renderReport } from "../bench/src/report.js";
import type { BenchResult } from "../bench/src/run.js";
import { SIZES } from "../bench/src/sizes.js";
import {
  estimateBytes,
  groupByPrefix,
  PrefixGrouper,
  parseUsedMemory,
  prefixOf,
  type StorageSnapshot,
  storageHeadline,
  storagePerTask,
  storageRows,
  waitForQuiet,
} from "../bench/src/storage.js";

describe("grouping keys by prefix", () => {
  test("the prefix is the part before the first ':', or the whole name of a key without one", () => {
    expect(prefixOf("task:0190-abc")).toBe("task");
    expect(prefixOf("task_status:0190-abc")).toBe("task_status");
    expect(prefixOf("audit_seen:EVENTS:42")).toBe("audit_seen");
    expect(prefixOf("idempotency:caller:alice:k1")).toBe("idempotency");
    expect(prefixOf("audit_events")).toBe("audit_events");
    expect(prefixOf("task_index")).toBe("task_index");
    expect(prefixOf(":odd")).toBe("");
  });

  test("counts every key and keeps at most sampleMax of each prefix, in the order seen", () => {
    const keys = [
      ...Array.from({ length: 5 }, (_, i) => `task:${i}`),
      "audit_events",
      ...Array.from({ length: 3 }, (_, i) => `task_result:${i}`),
      "task_index",
    ];
    const groups = groupByPrefix(keys, 2);
    expect([...groups.keys()]).toEqual(["task", "audit_events", "task_result", "task_index"]);
    expect(groups.get("task")).toEqual({ keys: 5, sample: ["task:0", "task:1"] });
    expect(groups.get("task_result")).toEqual({ keys: 3, sample: ["task_result:0", "task_result:1"] });
    expect(groups.get("audit_events")).toEqual({ keys: 1, sample: ["audit_events"] });
  });

  test("SCAN's batches add up (the same key twice counts twice: SCAN may return a key again, rarely)", () => {
    const grouper = new PrefixGrouper(10);
    grouper.add(["task:1", "task:2"]);
    grouper.add([]);
    grouper.add(["task:3", "task_status:1"]);
    expect(grouper.groups.get("task")?.keys).toBe(3);
    expect(grouper.groups.get("task_status")?.keys).toBe(1);
  });
});

describe("estimates and per-task arithmetic", () => {
  test("bytes = mean of the measured sample × keys; keys gone before they were measured are left out", () => {
    expect(estimateBytes(1000, [100, 200, 300])).toEqual({ bytes: 200_000, sampled: 3 });
    expect(estimateBytes(10, [100, null, 300])).toEqual({ bytes: 2000, sampled: 2 });
    expect(estimateBytes(1, [4567])).toEqual({ bytes: 4567, sampled: 1 });
    expect(estimateBytes(5, [])).toEqual({ bytes: 0, sampled: 0 });
    expect(estimateBytes(5, [null])).toEqual({ bytes: 0, sampled: 0 });
  });

  test("used_memory is read from INFO memory (not used_memory_rss or _human)", () => {
    const info =
      "# Memory\r\nused_memory:1234567\r\nused_memory_human:1.18M\r\nused_memory_rss:9999999\r\nused_memory_peak:2000000\r\n";
    expect(parseUsedMemory(info)).toBe(1_234_567);
    expect(parseUsedMemory("# Memory\r\n")).toBeNaN();
  });

  const before: StorageSnapshot = {
    usedMemory: 1_000_000,
    dbSize: 3,
    byPrefix: [
      { prefix: "workers", keys: 1, sampledKeys: 1, bytes: 200 },
      { prefix: "worker", keys: 1, sampledKeys: 1, bytes: 300 },
      { prefix: "task_index", keys: 1, sampledKeys: 1, bytes: 100 },
    ],
  };
  const after: StorageSnapshot = {
    usedMemory: 3_000_000,
    dbSize: 1004,
    byPrefix: [
      { prefix: "task", keys: 500, sampledKeys: 200, bytes: 400_000 },
      { prefix: "task_history", keys: 500, sampledKeys: 200, bytes: 900_000 },
      { prefix: "task_index", keys: 1, sampledKeys: 1, bytes: 50_100 },
      { prefix: "workers", keys: 1, sampledKeys: 1, bytes: 200 },
      { prefix: "audit_events", keys: 1, sampledKeys: 1, bytes: 250_000 },
    ],
    settle: { waitedMs: 1200, quiet: true },
  };

  test("(after − before) ÷ tasks, overall and per prefix, largest first; a prefix in one snapshot only counts 0 in the other", () => {
    const perTask = storagePerTask(before, after, 500);
    expect(perTask.tasks).toBe(500);
    expect(perTask.usedMemoryPerTask).toBe(4000);
    expect(perTask.keysPerTask).toBeCloseTo(2.002, 10);
    expect(perTask.settle).toEqual({ waitedMs: 1200, quiet: true });
    expect(perTask.byPrefix).toEqual([
      { prefix: "task_history", keysPerTask: 1, bytesPerTask: 1800 },
      { prefix: "task", keysPerTask: 1, bytesPerTask: 800 },
      { prefix: "audit_events", keysPerTask: 0.002, bytesPerTask: 500 },
      { prefix: "task_index", keysPerTask: 0, bytesPerTask: 100 },
      { prefix: "workers", keysPerTask: 0, bytesPerTask: 0 },
      { prefix: "worker", keysPerTask: -0.002, bytesPerTask: -0.6 }, // expired in between: a negative share
    ]);
  });

  test("no finished task: every figure 0, not a division by zero", () => {
    const perTask = storagePerTask(before, after, 0);
    expect(perTask.usedMemoryPerTask).toBe(0);
    expect(perTask.keysPerTask).toBe(0);
    for (const p of perTask.byPrefix) expect(p.bytesPerTask).toBe(0);
  });
});

describe("formatting", () => {
  const storage = {
    tasks: 3200,
    usedMemoryPerTask: 2345.6,
    keysPerTask: 5.0003,
    byPrefix: [
      { prefix: "task_history", keysPerTask: 1, bytesPerTask: 1500.4 },
      { prefix: "task", keysPerTask: 1, bytesPerTask: 500 },
      { prefix: "worker", keysPerTask: 0, bytesPerTask: 0 },
    ],
    settle: { waitedMs: 1234, quiet: true },
  };

  test("the headline gives the tasks, used_memory and keys per task, and how the after-snapshot settled", () => {
    expect(storageHeadline("pipeline", storage)).toBe(
      "pipeline: Redis per finished task (after warm-up + saturation: 3,200 tasks; DBSIZE quiet after 1.2 s): " +
        "used_memory 2,346 bytes, 5.00 keys; by key prefix (bytes = mean MEMORY USAGE of up to 200 keys × keys):",
    );
    expect(storageHeadline("pipeline", { ...storage, settle: { waitedMs: 5003, quiet: false } })).toContain(
      "DBSIZE still changing at the 5.0 s deadline",
    );
    expect(storageHeadline("pipeline", { ...storage, settle: undefined })).toContain("3,200 tasks): used_memory");
  });

  test("rows: prefix, keys/task, bytes/task, share of the sum; then the sum; figures right-aligned", () => {
    expect(storageRows(storage)).toEqual([
      ["task_history", "     1.00", "     1,500", "  75%"],
      ["task", "     1.00", "       500", "  25%"],
      ["worker", "     0.00", "         0", "   0%"],
      ["(sum of the prefixes)", "     2.00", "     2,000", " 100%"],
    ]);
  });

  test("the report prints the table for a system with a storage section only", () => {
    const result: BenchResult = {
      startedAt: "2026-01-01T00:00:00.000Z",
      finishedAt: "2026-01-01T00:01:00.000Z",
      machine: { cpus: 2, cpuModel: "test", node: "v20", platform: "linux", loadAvgAtStart: [0, 0, 0] },
      size: "small",
      profile: SIZES.small,
      options: { only: ["pipeline", "raw"], workers: 1, gateways: 1 },
      reference: null,
      systems: [
        { system: "pipeline", storage },
        { system: "raw", saturation: { tasks: 1, completed: 1, failed: 0, elapsedMs: 1, tasksPerSec: 1, inFlight: 1 } },
      ],
      ratios: {
        oursOverRaw: emptyRatios(),
        oursOverBullmq: emptyRatios(),
        oursOverRawFlow: emptyRatios(),
        rawFlowOverRaw: emptyRatios(),
      },
    };
    const report = renderReport(result);
    expect(report).toContain("pipeline: Redis per finished task (after warm-up + saturation: 3,200 tasks");
    expect(report).toMatch(/key prefix\s+keys\/task\s+bytes\/task\s+share/);
    expect(report).toMatch(/task_history\s+1\.00\s+1,500\s+75%/);
    expect(report).not.toContain("raw: Redis per finished task");
    // The layout line says how the tasks were spread over keys (the soak's header uses the same words).
    const keyed = renderReport({
      ...result,
      options: {
        ...result.options,
        concurrencyKeys: { keys: 100, limit: 10 },
        fairnessKeys: { keys: 8, window: 16 },
      },
    });
    expect(keyed).toContain(
      "; tasks spread over 100 concurrency keys of limit 10; tasks spread over 8 fairness keys through a window of 16",
    );
    expect(report).not.toContain("tasks spread over");
  });
});

describe("waiting for a quiet DBSIZE", () => {
  /** A clock that only moves when the code sleeps. */
  const fakeClock = () => {
    let t = 0;
    return {
      now: () => t,
      sleep: async (ms: number) => {
        t += ms;
      },
    };
  };

  test("returns once the value has not changed for quietMs", async () => {
    const values = [10, 12, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15];
    let i = 0;
    const clock = fakeClock();
    const settle = await waitForQuiet(async () => values[Math.min(i++, values.length - 1)] as number, {
      quietMs: 500,
      deadlineMs: 5000,
      pollMs: 100,
      ...clock,
    });
    // The last change was seen at t=200; quiet from then on for 500 ms.
    expect(settle).toEqual({ waitedMs: 700, quiet: true });
  });

  test("gives up at the deadline when the value keeps changing", async () => {
    let n = 0;
    const settle = await waitForQuiet(async () => n++, {
      quietMs: 1000,
      deadlineMs: 3000,
      pollMs: 100,
      ...fakeClock(),
    });
    expect(settle).toEqual({ waitedMs: 3000, quiet: false });
  });

  test("with the real clock, a value that never changes is quiet after about quietMs", async () => {
    const settle = await waitForQuiet(async () => 7, { quietMs: 50, deadlineMs: 1000, pollMs: 10 });
    expect(settle.quiet).toBe(true);
    expect(settle.waitedMs).toBeGreaterThanOrEqual(50);
    expect(settle.waitedMs).toBeLessThan(1000);
  });
});

function emptyRatios() {
  return {
    tasksPerSec: null,
    cpuPer1000: null,
    p50AtReference: {},
    p99AtReference: {},
    oneAtATimeP50: null,
    oneAtATimeP99: null,
  };
}

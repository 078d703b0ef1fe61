/**
 * The benchmark cannot rot: the raw JetStream chain, BullMQ and the pipeline (the nine built services) run at a tiny
 * size with real servers; the JSON holds positive throughput and ordered percentiles, and no task fails. The
 * pipeline runs with three services in one services/combined process (--combine) and six alone, so both ways of
 * starting a service are exercised in one run, and with --telemetry export, so the services' OTLP export is too; its
 * Redis footprint per finished task must be positive.
 * The latency breakdown (--breakdown) runs too: its rows must follow a task through the stages in order; and --drain,
 * under --profile.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "@tm/testkit";
import { afterAll, expect, test } from "vitest";
import { allocProfiled } from "../bench/src/alloc-profile.js";
import { runBreakdown } from "../bench/src/breakdown.js";
import { runDrain } from "../bench/src/drain.js";
import { profiled } from "../bench/src/profile.js";
import { renderReport, writeResult } from "../bench/src/report.js";
import { type BenchResult, runBench } from "../bench/src/run.js";

const outDir = mkdtempSync(join(tmpdir(), "tm-bench-"));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

test("raw chain, raw contract flow and BullMQ at a tiny size give positive throughput and p50 ≤ p95 ≤ p99", {
  timeout: 30_000,
}, async () => {
  const result = await runBench({
    sizeName: "tiny",
    size: {
      warmup: 10,
      saturationTasks: 200,
      inFlight: 32,
      openLoopSeconds: 0.5,
      openLoopMinTasks: 20,
      openLoopMaxTasks: 100,
      oneAtATimeTasks: 10,
    },
    only: ["raw", "raw-flow", "bullmq"],
    workers: 1,
    gateways: 1,
    scaling: false,
    taskTimeoutMs: 10_000,
    log: () => undefined,
  });
  const json = JSON.parse(readFileSync(writeResult(result, outDir), "utf8")) as BenchResult;

  expect(json.systems.map((s) => s.system)).toEqual(["raw", "raw-flow", "bullmq"]);
  expect(json.reference?.tasksPerSec).toBeGreaterThan(0);
  for (const system of json.systems) {
    expect(system.skipped).toBeUndefined();
    expect(system.saturation?.completed).toBe(200);
    expect(system.saturation?.failed).toBe(0);
    expect(system.saturation?.tasksPerSec).toBeGreaterThan(0);
    expect(system.openLoop).toHaveLength(3);
    for (const phase of system.openLoop ?? []) {
      expect(phase.failed).toBe(0);
      expect(phase.latencyMs.count).toBe(phase.tasks);
      expect(phase.latencyMs.p50).toBeGreaterThan(0);
      expect(phase.latencyMs.p50).toBeLessThanOrEqual(phase.latencyMs.p95);
      expect(phase.latencyMs.p95).toBeLessThanOrEqual(phase.latencyMs.p99);
    }
    expect(system.oneAtATime?.completed).toBe(10);
    expect(system.oneAtATime?.latencyMs.p50).toBeGreaterThan(0);
    expect(system.oneAtATime?.latencyMs.p50).toBeLessThanOrEqual(system.oneAtATime?.latencyMs.p99 ?? 0);
    const roles = system.processes?.map((p) => p.role) ?? [];
    expect(roles).toContain(system.system === "bullmq" ? "redis-server" : "nats-server");
    // Each paced phase's CPU per process: every process of the run (the driver is one), and their sum without the
    // driver is the phase's cpuPer1000.
    for (const phase of system.openLoop ?? []) {
      const perProcess = phase.processCpuPer1000 ?? {};
      expect(Object.keys(perProcess).sort()).toEqual([...roles].sort());
      const withoutDriver = Object.entries(perProcess).filter(([role]) => role !== "bench-driver");
      expect(withoutDriver.reduce((sum, [, cpu]) => sum + cpu, 0)).toBeCloseTo(phase.cpuPer1000 ?? -1, 6);
    }
    for (const p of system.processes ?? []) expect(p.peakRssMb).toBeGreaterThan(0);
    expect((system.cpu?.systemPer1000 ?? 0) + (system.cpu?.infraPer1000 ?? 0)).toBeGreaterThan(0);
  }
  expect(json.systems.find((s) => s.system === "raw")?.processes?.filter((p) => p.kind === "system")).toHaveLength(6);
  const flowStages = json.systems.find((s) => s.system === "raw-flow")?.processes?.filter((p) => p.kind === "system");
  expect(flowStages?.map((p) => p.role)).toEqual([
    "flow-ingest",
    "flow-scheduler",
    "flow-worker",
    "flow-result",
    "flow-notifier",
    "flow-audit",
  ]);
  // Every stage did work: a stage that consumed nothing would leave the flow stuck, but say which one it was.
  for (const stage of flowStages ?? []) expect(stage.cpuSeconds, stage.role).toBeGreaterThan(0);
  expect(json.ratios.rawFlowOverRaw.tasksPerSec).toBeGreaterThan(0);
  expect(json.roundTrips?.map((r) => r.name)).toEqual([
    "Redis PING",
    "NATS round trip (flush)",
    "JetStream publish (PubAck)",
  ]);
  for (const r of json.roundTrips ?? []) {
    expect(r.backToBackMs).toBeGreaterThan(0);
    expect(r.afterIdleMs).toBeGreaterThan(0);
  }
  expect(json.ratios.oursOverRaw.oneAtATimeP50).toBeNull(); // the pipeline was not measured in this run
});

test("the pipeline part (nine services, three of them combined, traces exported; gRPC in, status stream and result out) runs at a tiny size", {
  timeout: 90_000,
}, async () => {
  const result = await runBench({
    sizeName: "tiny",
    size: {
      warmup: 5,
      saturationTasks: 60,
      inFlight: 16,
      openLoopSeconds: 0.5,
      openLoopMinTasks: 10,
      openLoopMaxTasks: 30,
      oneAtATimeTasks: 5,
    },
    only: ["pipeline"],
    workers: 1,
    gateways: 1,
    combine: ["notifier", "audit", "deadletter"],
    // As deployed with a collector: spans recorded and exported (to the benchmark's discarding sink).
    telemetry: "export",
    // Each task in one SubmitTaskAndStreamStatus call; the breakdown below runs the default two calls.
    clientFlow: "one-call",
    // Open loops at fractions of a given rate, not of the measured peak.
    referenceRate: 40,
    scaling: false,
    taskTimeoutMs: 20_000,
    log: () => undefined,
  });
  const [pipeline] = result.systems;
  expect(pipeline?.skipped).toBeUndefined();
  expect(pipeline?.saturation?.completed).toBe(60);
  expect(pipeline?.saturation?.failed).toBe(0);
  for (const phase of pipeline?.openLoop ?? []) expect(phase.failed).toBe(0);
  expect(pipeline?.oneAtATime?.completed).toBe(5);
  expect(pipeline?.otlpReceived?.["/v1/traces"]?.requests).toBeGreaterThan(0);
  expect(pipeline?.roundTrips?.map((r) => r.name)).toEqual([
    "gRPC unary call to the gateway (Health/Check)",
    "HTTP GET to result-store (/healthz)",
  ]);
  for (const r of pipeline?.roundTrips ?? []) expect(r.backToBackMs).toBeGreaterThan(0);
  const roles = pipeline?.processes?.filter((p) => p.kind === "system").map((p) => p.role) ?? [];
  expect(roles.sort()).toEqual(
    [
      "combined(notifier+audit+deadletter)",
      "enricher",
      "gateway",
      "ingest",
      "result-store",
      "scheduler",
      "worker",
    ].sort(),
  );
  expect(result.options.combine).toEqual(["notifier", "audit", "deadletter"]);
  expect(renderReport(result)).toContain("; each task one SubmitTaskAndStreamStatus call");
  expect(result.reference).toEqual({ source: "rate given with --reference-rate", tasksPerSec: 40 });
  expect(pipeline?.openLoop?.map((phase) => phase.offeredPerSec)).toEqual([10, 20, 30]);
  for (const p of pipeline?.processes ?? []) expect(p.peakRssMb).toBeGreaterThan(0);
  // Redis per finished task over warm-up + saturation (5 + 60 tasks), in the JSON and the report: positive bytes,
  // and one task:<id> hash and one stored result per task.
  const json = JSON.parse(readFileSync(writeResult(result, outDir), "utf8")) as BenchResult;
  const storage = json.systems[0]?.storage;
  expect(storage?.tasks).toBe(65);
  expect(storage?.usedMemoryPerTask).toBeGreaterThan(0);
  expect(storage?.keysPerTask).toBeGreaterThan(0);
  const prefix = (name: string) => storage?.byPrefix.find((p) => p.prefix === name);
  expect(prefix("task")?.keysPerTask).toBe(1);
  expect(prefix("task_result")?.keysPerTask).toBe(1);
  for (const name of ["task", "task_status", "task_result"])
    expect(prefix(name)?.bytesPerTask, name).toBeGreaterThan(0);
  expect(renderReport(result)).toContain("pipeline: Redis per finished task (after warm-up + saturation: 65 tasks");
});

test("the latency breakdown reads every measured task's trace, and its rows follow the task through the pipeline", {
  timeout: 90_000,
}, async () => {
  const result = await runBreakdown({
    sizeName: "tiny",
    size: {
      warmup: 5,
      saturationTasks: 0,
      inFlight: 4,
      openLoopSeconds: 0.5,
      openLoopMinTasks: 10,
      openLoopMaxTasks: 30,
      oneAtATimeTasks: 8,
    },
    workers: 1,
    gateways: 1,
    taskTimeoutMs: 20_000,
    log: () => undefined,
  });
  expect(result.skipped).toBeUndefined();
  expect(result.tasks.completed).toBe(8);
  // Every measured task's trace (the warm-up's are left out), each read in full: spans of every stage.
  expect(result.breakdown.traces).toBe(8);
  const startOf = (span: string) => {
    const row = result.breakdown.rows.find((r) => r.span === span);
    expect(row, `a row for ${span}`).toBeDefined();
    expect(row?.traces).toBe(8);
    return row?.startMs ?? Number.NaN;
  };
  expect(startOf("gateway grpc.taskmanager.v1.TaskService/SubmitTask")).toBe(0);
  const path = [
    "ingest tasks.ingest process",
    "enricher POST /enrich",
    "scheduler tasks.schedule process",
    "worker tasks.worker.medium process",
    "result-store tasks.results process",
  ].map(startOf);
  expect(path[0]).toBeGreaterThan(0);
  expect(path).toEqual([...path].sort((a, b) => a - b));
  expect(result.breakdown.totalMs).toBeGreaterThan(path.at(-1) ?? 0);
});

test("--drain measures the service and the bare consumer draining a batch each; --profile and --alloc-profile summarise its profiles", {
  timeout: 60_000,
}, async () => {
  const {
    result: { result, summaries: allocations },
    summaries,
  } = await profiled(outDir, () =>
    allocProfiled(outDir, () =>
      runDrain({ service: "notifier", messages: 2000, warmupMessages: 200, telemetry: "on", log: () => undefined }),
    ),
  );
  // The allocation profile was written at exit and saw the notifier's own work.
  const allocated = allocations.find((summary) => summary.service === "notifier");
  expect(allocated?.allocatedMb).toBeGreaterThan(0);
  expect(allocated?.topPackages.map((p) => p.name)).toContain("ioredis");
  // nats is inside the notifier's bundle: charged to it only through the bundle's source map (bench/src/bundle-frames.ts).
  expect(allocated?.topPackages.map((p) => p.name)).toContain("nats");
  // The notifier ran under the profiler and exited cleanly: its profile names it and saw its own work.
  const notifier = summaries.find((summary) => summary.service === "notifier");
  expect(notifier?.busySeconds).toBeGreaterThan(0);
  expect(notifier?.topPackages.map((p) => p.name)).toContain("ioredis");
  expect(notifier?.topPackages.map((p) => p.name)).toContain("nats");
  expect(result.runs.map((r) => r.consumer)).toEqual(["notifier", "bare consumer"]);
  for (const run of result.runs) {
    expect(run.messages).toBe(2000);
    expect(run.messagesPerSec).toBeGreaterThan(0);
    expect(run.perMessageUs.consumer).toBeGreaterThan(0);
    expect(run.perMessageUs.natsServer).toBeGreaterThan(0);
    expect(run.peakRssMb).toBeGreaterThan(0);
  }
  // The notifier writes each update to Redis (2,000 updates: ~30 ms of redis-server CPU, several 10 ms clock ticks);
  // the bare consumer never touches it.
  expect(result.runs[0]?.perMessageUs.redisServer).toBeGreaterThan(0);
  for (const run of result.runs) {
    // Per message the server took in the benchmark's publish and the consumer's ack, and sent out the delivery and
    // the PubAck (pull requests and the drain's polling add a little).
    expect(run.natsPerMessage?.inMsgs).toBeGreaterThanOrEqual(2);
    expect(run.natsPerMessage?.outMsgs).toBeGreaterThanOrEqual(2);
    expect(run.syscallsPerMessage?.consumer.reads).toBeGreaterThan(0);
    expect(run.syscallsPerMessage?.natsServer.reads).toBeGreaterThan(0);
  }
});

test("--drain worker: the bare baseline publishes what the worker publishes for an echo task", {
  timeout: 60_000,
}, async () => {
  const result = await runDrain({
    service: "worker",
    messages: 500,
    warmupMessages: 100,
    telemetry: "on",
    log: () => undefined,
  });
  expect(result.runs.map((r) => r.consumer)).toEqual(["worker", "bare consumer + 4 publishes in 3 rounds"]);
  // In per message: the benchmark's publish, RUNNING, the result, SUCCEEDED, the audit event and the ack (6); a
  // baseline that published less or more would not match. The consumer's pull requests come on top: few when it
  // drains in large batches, more when it is starved of CPU and pulls small ones (6.57 per message seen in a whole
  // suite run), hence the bound of 7.
  const [worker, bare] = result.runs.map((r) => r.natsPerMessage?.inMsgs ?? 0);
  expect(worker).toBeGreaterThanOrEqual(6);
  expect(worker).toBeLessThan(7);
  expect(bare).toBeGreaterThanOrEqual(6);
  expect(bare).toBeLessThan(7);
});

test("bench/startup.mjs times a service's start bundled and as tsc's output, and refuses an unknown service", {
  timeout: 60_000,
}, () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["bench/startup.mjs", ...args], { cwd: REPO_ROOT, encoding: "utf8", timeout: 50_000 });
  const ok = run("--runs", "1", "--services", "worker");
  expect(ok.status, ok.stderr).toBe(0);
  const row = ok.stdout.split("\n").find((line) => line.startsWith("worker "));
  // Ready ms, CPU ms and RSS MB, bundled then tsc's output: all measured, none zero.
  const figures =
    (row ?? "")
      .slice("worker".length)
      .match(/[\d.]+/g)
      ?.map(Number) ?? [];
  expect(figures).toHaveLength(6);
  for (const figure of figures) expect(figure).toBeGreaterThan(0);
  const bad = run("--services", "nope");
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toContain("--services: unknown nope");
});

test("bench/submit-rate.mjs measures SubmitTask against SubmitTasks on one gateway: every task accepted, figures positive", {
  timeout: 60_000,
}, () => {
  const run = spawnSync(
    process.execPath,
    ["bench/submit-rate.mjs", "--tasks", "200", "--batch", "50", "--in-flight", "8", "--rounds", "1"],
    { cwd: REPO_ROOT, encoding: "utf8", timeout: 50_000 },
  );
  expect(run.status, run.stderr).toBe(0);
  const rows = run.stdout.split("\n").filter((line) => /^SubmitTasks?,/.test(line));
  expect(rows.map((row) => row.split(/\s{2,}/)[0])).toEqual(["SubmitTask, 8 in flight", "SubmitTasks, 50 per call"]);
  for (const row of rows) {
    // tasks/s, then CPU ms per 1,000 tasks of the gateway, redis-server and nats-server: the gateway's is never 0.
    const [tasksPerSec, gateway] = (row.match(/\d+(?=,|\s|$)/g) ?? []).slice(-4).map(Number);
    expect(tasksPerSec).toBeGreaterThan(0);
    expect(gateway).toBeGreaterThan(0);
  }
});

test("bench/task-log.mjs measures what keeping ctx.log lines with the task costs: every row, the log's bytes growing with its lines", {
  timeout: 60_000,
}, () => {
  const run = spawnSync(process.execPath, ["bench/task-log.mjs", "--tasks", "20"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 50_000,
  });
  expect(run.status, run.stderr).toBe(0);
  const rows = run.stdout.split("\n").slice(2).filter(Boolean);
  expect(rows.map((row) => row.split(/\s{2,}/)[0])).toEqual([
    "1 line an attempt",
    "10 lines an attempt",
    "100 lines an attempt",
  ]);
  const bytes = rows.map((row) => Number(/(\d+) B\s*$/.exec(row)?.[1]));
  // Each log holds its lines: more lines, more bytes (a list of ~120 bytes a line, not a 4 KB stream node).
  expect(bytes[0]).toBeLessThan(1_000);
  expect(bytes[1]).toBeGreaterThan(bytes[0]!);
  expect(bytes[2]).toBeGreaterThan(bytes[1]!);
});

test("bench/handler-threads.mjs measures a handler thread's attempts: every row, and CPU-bound work in threads holding the event loop less than on it", {
  timeout: 60_000,
}, () => {
  const run = spawnSync(
    process.execPath,
    ["bench/handler-threads.mjs", "--attempts", "20", "--spins", "4", "--spin-ms", "50"],
    { cwd: REPO_ROOT, encoding: "utf8", timeout: 50_000 },
  );
  expect(run.status, run.stderr).toBe(0);
  const rows = run.stdout.split("\n").slice(1).filter(Boolean);
  expect(rows.map((row) => row.split(/\s{2,}/)[0])).toEqual([
    "cold attempt (thread start + import)",
    "RSS of 2 idle threads",
    "warm attempt, no-op",
    "warm attempt, progress + dependencies()",
    "4 × 50 ms CPU on the event loop",
    "4 × 50 ms CPU in 2 threads",
  ]);
  const held = (name: string) =>
    Number(/held up to (\d+) ms/.exec(rows.find((row) => row.startsWith(name)) ?? "")?.[1]);
  // On the event loop the four spins hold it for their whole 200 ms; in threads the loop stays free.
  expect(held("4 × 50 ms CPU on the event loop")).toBeGreaterThanOrEqual(190);
  expect(held("4 × 50 ms CPU in 2 threads")).toBeLessThan(held("4 × 50 ms CPU on the event loop"));
});

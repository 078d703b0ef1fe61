import { parseTaskTypes } from "@tm/flow";
import { ConfigError, loadConfig } from "@tm/kit";
import { expect, test } from "vitest";
import { poolProblem, typeNamesProblem, workerConfig } from "../src/config.js";

test("defaults: concurrency 8, weights 6,3,1, timeout 60 s", () => {
  const config = loadConfig(workerConfig, {});
  expect(config.WORKER_CONCURRENCY).toBe(8);
  expect(config.WORKER_PRIORITY_WEIGHTS).toEqual({ high: 6, medium: 3, low: 1 });
  expect(config.TASK_TIMEOUT_MS).toBe(60_000);
});

test.each([
  ["0,0,0", /WORKER_PRIORITY_WEIGHTS: at least one weight must be greater than 0 \(got "0,0,0"\)/],
  ["6,3", /WORKER_PRIORITY_WEIGHTS: must be three non-negative integers for high,medium,low/],
])("rejects WORKER_PRIORITY_WEIGHTS=%j at start-up, naming the variable", (value, message) => {
  expect(() => loadConfig(workerConfig, { WORKER_PRIORITY_WEIGHTS: value })).toThrow(ConfigError);
  expect(() => loadConfig(workerConfig, { WORKER_PRIORITY_WEIGHTS: value })).toThrow(message);
});

test("rejects a non-positive WORKER_CONCURRENCY", () => {
  expect(() => loadConfig(workerConfig, { WORKER_CONCURRENCY: "0" })).toThrow(/WORKER_CONCURRENCY: must be > 0/);
});

test("WORKER_REPORT_INTERVAL_MS: 5 s by default, 100 to 60000, a value outside named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_REPORT_INTERVAL_MS).toBe(5_000);
  expect(loadConfig(workerConfig, { WORKER_REPORT_INTERVAL_MS: "250" }).WORKER_REPORT_INTERVAL_MS).toBe(250);
  expect(() => loadConfig(workerConfig, { WORKER_REPORT_INTERVAL_MS: "50" })).toThrow(
    /WORKER_REPORT_INTERVAL_MS: must be at least 100/,
  );
  expect(() => loadConfig(workerConfig, { WORKER_REPORT_INTERVAL_MS: "90000" })).toThrow(
    /WORKER_REPORT_INTERVAL_MS: must be at most 60000/,
  );
  expect(() => loadConfig(workerConfig, { WORKER_REPORT_INTERVAL_MS: "soon" })).toThrow(
    /WORKER_REPORT_INTERVAL_MS: must be a number/,
  );
});

test("WORKER_ID: host:pid by default (also when empty); one with a space or past 200 characters refused, named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_ID).toMatch(new RegExp(`:${process.pid}$`));
  expect(loadConfig(workerConfig, { WORKER_ID: "" }).WORKER_ID).toMatch(new RegExp(`:${process.pid}$`));
  expect(loadConfig(workerConfig, { WORKER_ID: "worker-0.eu" }).WORKER_ID).toBe("worker-0.eu");
  for (const bad of ["two words", "x".repeat(201)]) {
    expect(() => loadConfig(workerConfig, { WORKER_ID: bad })).toThrow(
      /WORKER_ID: must be 1 to 200 characters without spaces/,
    );
  }
});

test("WORKER_POOL: unset is the default pool; a bad name, or a pool no type is routed to, is refused, named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_POOL).toBeUndefined();
  const config = loadConfig(workerConfig, { WORKER_POOL: "gpu", TASK_ROUTES: "checksum=gpu" });
  expect(config.WORKER_POOL).toBe("gpu");
  expect(poolProblem(config.WORKER_POOL, config.TASK_ROUTES)).toBeUndefined();
  expect(poolProblem(undefined, config.TASK_ROUTES)).toBeUndefined();
  expect(poolProblem("gpus", config.TASK_ROUTES)).toBe(
    'WORKER_POOL: no task type is routed to pool "gpus" (TASK_ROUTES: checksum=gpu): this worker would take no task',
  );
  expect(() => loadConfig(workerConfig, { WORKER_POOL: "GPU" })).toThrow(/WORKER_POOL: "GPU" is not a pool name/);
});

test("WORKER_MAX_ABANDONED_HANDLERS: 0 (never) by default, 0 to 10000, a bad value named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_MAX_ABANDONED_HANDLERS).toBe(0);
  expect(loadConfig(workerConfig, { WORKER_MAX_ABANDONED_HANDLERS: "10" }).WORKER_MAX_ABANDONED_HANDLERS).toBe(10);
  for (const bad of ["-1", "10001", "many", "2.5"]) {
    expect(() => loadConfig(workerConfig, { WORKER_MAX_ABANDONED_HANDLERS: bad })).toThrow(
      /WORKER_MAX_ABANDONED_HANDLERS: /,
    );
  }
});

test("WORKER_HANDBACK_DELIVERIES: 10 by default, 0 to 100, a bad value named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_HANDBACK_DELIVERIES).toBe(10);
  expect(loadConfig(workerConfig, { WORKER_HANDBACK_DELIVERIES: "0" }).WORKER_HANDBACK_DELIVERIES).toBe(0);
  for (const [bad, why] of [
    ["-1", "must be >= 0"],
    ["101", "must be at most 100"],
    ["lots", "must be a number"],
  ]) {
    expect(() => loadConfig(workerConfig, { WORKER_HANDBACK_DELIVERIES: bad })).toThrow(
      `WORKER_HANDBACK_DELIVERIES: ${why}`,
    );
  }
});

test("per-type limits: none by default; concurrency and rates parsed per type", () => {
  const none = loadConfig(workerConfig, {});
  expect(none.WORKER_TYPE_CONCURRENCY.size).toBe(0);
  expect(none.WORKER_TYPE_RATES.size).toBe(0);
  const config = loadConfig(workerConfig, {
    WORKER_TYPE_CONCURRENCY: "checksum=2, sleep=4",
    WORKER_TYPE_RATES: "echo=10/s,sleep=90/m:5,checksum=0.5/h",
  });
  expect([...config.WORKER_TYPE_CONCURRENCY]).toEqual([
    ["checksum", 2],
    ["sleep", 4],
  ]);
  expect(config.WORKER_TYPE_RATES.get("echo")).toEqual({ perSecond: 10, burst: 1 });
  expect(config.WORKER_TYPE_RATES.get("sleep")).toEqual({ perSecond: 1.5, burst: 5 });
  expect(config.WORKER_TYPE_RATES.get("checksum")?.perSecond).toBeCloseTo(0.5 / 3600);
  expect(none.WORKER_TYPE_GLOBAL_CONCURRENCY.size).toBe(0);
  expect([
    ...loadConfig(workerConfig, { WORKER_TYPE_GLOBAL_CONCURRENCY: "sleep=3" }).WORKER_TYPE_GLOBAL_CONCURRENCY,
  ]).toEqual([["sleep", 3]]);
});

test.each([
  ["WORKER_TYPE_CONCURRENCY", "checksum", /WORKER_TYPE_CONCURRENCY: "checksum" must be TYPE=N/],
  ["WORKER_TYPE_CONCURRENCY", "checksum=0", /"checksum=0": the limit must be a whole number from 1 to 10000/],
  ["WORKER_TYPE_CONCURRENCY", "checksum=1.5", /the limit must be a whole number/],
  ["WORKER_TYPE_CONCURRENCY", "echo=1,echo=2", /"echo" is named twice/],
  ["WORKER_TYPE_RATES", "echo=10", /"echo=10" must be TYPE=N\/UNIT\[:BURST\] with UNIT s, m or h/],
  ["WORKER_TYPE_RATES", "echo=10/d", /must be TYPE=N\/UNIT/],
  ["WORKER_TYPE_RATES", "echo=0/s", /the rate must be above 0/],
  ["WORKER_TYPE_RATES", "echo=10/s:0", /the burst must be a whole number from 1/],
  [
    "WORKER_TYPE_GLOBAL_CONCURRENCY",
    "sleep=0",
    /WORKER_TYPE_GLOBAL_CONCURRENCY: "sleep=0": the limit must be a whole number/,
  ],
])("rejects %s=%j at start-up, naming the variable and the problem", (name, value, message) => {
  expect(() => loadConfig(workerConfig, { [name]: value })).toThrow(ConfigError);
  expect(() => loadConfig(workerConfig, { [name]: value })).toThrow(message);
});

test.each([
  [
    "WORKER_TYPE_CONCURRENCY",
    "emial=2",
    /^WORKER_TYPE_CONCURRENCY: "emial" is not a task type this worker runs \(known: echo, sleep, checksum/,
  ],
  ["WORKER_TYPE_RATES", "nope=1/s", /^WORKER_TYPE_RATES: "nope" is not a task type this worker runs/],
  [
    "WORKER_TYPE_GLOBAL_CONCURRENCY",
    "resize=2",
    /^WORKER_TYPE_GLOBAL_CONCURRENCY: "resize" is not a task type .*fail\)$/,
  ],
])("%s=%j naming a type the worker does not run is a problem at start, named", (name, value, message) => {
  const config = loadConfig(workerConfig, { [name]: value });
  expect(typeNamesProblem(config, config.TASK_TYPES)).toMatch(message);
});

test("the per-type settings may name the deployment's own types (TASK_TYPES)", () => {
  const config = loadConfig(workerConfig, { TASK_TYPES: "resize", WORKER_TYPE_CONCURRENCY: "resize=2,echo=1" });
  expect(typeNamesProblem(config, config.TASK_TYPES)).toBeUndefined();
  expect(config.WORKER_TYPE_CONCURRENCY.get("resize")).toBe(2);
});

test("WORKER_HANDLER_MODULES is a list of modules, each once", () => {
  expect(loadConfig(workerConfig, {}).WORKER_HANDLER_MODULES).toEqual([]);
  expect(
    loadConfig(workerConfig, { WORKER_HANDLER_MODULES: " ./a.mjs, @acme/handlers ," }).WORKER_HANDLER_MODULES,
  ).toEqual(["./a.mjs", "@acme/handlers"]);
  expect(() => loadConfig(workerConfig, { WORKER_HANDLER_MODULES: "./a.mjs,./a.mjs" })).toThrow(
    /WORKER_HANDLER_MODULES: "\.\/a\.mjs" is listed twice/,
  );
});

test("WORKER_GATEWAY_URL: unset (also when empty) or an http(s) URL; anything else named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_GATEWAY_URL).toBeUndefined();
  expect(loadConfig(workerConfig, { WORKER_GATEWAY_URL: "" }).WORKER_GATEWAY_URL).toBeUndefined();
  expect(loadConfig(workerConfig, { WORKER_GATEWAY_URL: "http://envoy:50051" }).WORKER_GATEWAY_URL).toBe(
    "http://envoy:50051",
  );
  for (const bad of ["envoy:50051", "grpc://envoy:50051"]) {
    expect(() => loadConfig(workerConfig, { WORKER_GATEWAY_URL: bad })).toThrow(
      `WORKER_GATEWAY_URL: must be an http(s) URL, e.g. http://envoy:50051 (got "${bad}")`,
    );
  }
});

test("WORKER_THREADS: unset (WORKER_CONCURRENCY) by default, 1 to 256; WORKER_THREAD_HEAP_MB: unset, or at least 16; bad values named", () => {
  const defaults = loadConfig(workerConfig, {});
  expect(defaults.WORKER_THREADS).toBeUndefined();
  expect(defaults.WORKER_THREAD_HEAP_MB).toBeUndefined();
  const set = loadConfig(workerConfig, { WORKER_THREADS: "4", WORKER_THREAD_HEAP_MB: "256" });
  expect([set.WORKER_THREADS, set.WORKER_THREAD_HEAP_MB]).toEqual([4, 256]);
  for (const [variable, bad, why] of [
    ["WORKER_THREADS", "0", "must be > 0"],
    ["WORKER_THREADS", "257", "must be at most 256"],
    ["WORKER_THREADS", "some", "must be a number"],
    ["WORKER_THREAD_HEAP_MB", "8", "must be at least 16"],
  ] as const) {
    expect(() => loadConfig(workerConfig, { [variable]: bad })).toThrow(`${variable}: ${why}`);
  }
});

test("WORKER_TASK_LOG_LEVEL: unset by default (the worker's LOG_LEVEL), a pino level, a bad one named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_TASK_LOG_LEVEL).toBeUndefined();
  expect(loadConfig(workerConfig, { WORKER_TASK_LOG_LEVEL: "debug" }).WORKER_TASK_LOG_LEVEL).toBe("debug");
  expect(() => loadConfig(workerConfig, { WORKER_TASK_LOG_LEVEL: "verbose" })).toThrow(
    "WORKER_TASK_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal",
  );
});

test("WORKER_TASK_LOG_LINES: 1,000 by default, 0 (none kept) to 100,000; bad values named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_TASK_LOG_LINES).toBe(1_000);
  expect(loadConfig(workerConfig, { WORKER_TASK_LOG_LINES: "0" }).WORKER_TASK_LOG_LINES).toBe(0);
  expect(loadConfig(workerConfig, { WORKER_TASK_LOG_LINES: "100000" }).WORKER_TASK_LOG_LINES).toBe(100_000);
  for (const [bad, why] of [
    ["100001", "must be at most 100000"],
    ["-1", "must be >= 0"],
    ["lots", "must be a number"],
  ] as const) {
    expect(() => loadConfig(workerConfig, { WORKER_TASK_LOG_LINES: bad })).toThrow(`WORKER_TASK_LOG_LINES: ${why}`);
  }
});

test("WORKER_TYPE_ISOLATION: none by default; TYPE=thread|none per own type; a bad value, an unknown or a built-in type in a thread named", () => {
  expect(loadConfig(workerConfig, {}).WORKER_TYPE_ISOLATION.size).toBe(0);
  const config = loadConfig(workerConfig, { WORKER_TYPE_ISOLATION: "resize=thread, quick=none" });
  expect([...config.WORKER_TYPE_ISOLATION]).toEqual([
    ["resize", "thread"],
    ["quick", "none"],
  ]);
  expect(() => loadConfig(workerConfig, { WORKER_TYPE_ISOLATION: "resize=process" })).toThrow(
    'WORKER_TYPE_ISOLATION: "resize=process": the isolation must be none or thread',
  );
  expect(() => loadConfig(workerConfig, { WORKER_TYPE_ISOLATION: "resize" })).toThrow(
    'WORKER_TYPE_ISOLATION: "resize" must be TYPE=thread or TYPE=none',
  );
  const types = parseTaskTypes("resize");
  const problem = (value: string) =>
    typeNamesProblem(loadConfig(workerConfig, { WORKER_TYPE_ISOLATION: value }), types);
  expect(problem("resize=thread")).toBeUndefined();
  expect(problem("rezise=thread")).toMatch(/^WORKER_TYPE_ISOLATION: "rezise" is not a task type this worker runs/);
  expect(problem("checksum=thread")).toBe(
    'WORKER_TYPE_ISOLATION: "checksum" is a built-in type: only the types of WORKER_HANDLER_MODULES run in threads',
  );
  expect(problem("checksum=none")).toBeUndefined();
});

/**
 * Handlers declared `isolation: "thread"` (handler-threads.ts): each attempt in a worker thread of the built
 * handler-thread.js (pnpm build first), its ctx served by the worker.
 *
 * First the pool alone, with a ctx of plain functions: progress, log lines, dependencies() and child tasks cross the
 * port; errors keep their names and retryAfterMs; an abort reaches the handler's signal; a thread that ignores it is
 * terminated; a result that cannot be copied, and a thread out of memory, fail the attempt, and the pool goes on.
 * Then a worker against real nats-server and redis-server, AckWait 500 ms: a handler that keeps the CPU busy three
 * times that long runs once in a thread while another task finishes meanwhile, where the same handler on the event
 * loop is delivered, and run, twice; a stubborn thread fails its attempt at its timeout; a PermanentError by name is
 * dead-lettered at once. Then a type its handler left on the event loop, moved into a thread by WORKER_TYPE_ISOLATION,
 * runs once. Last, a worker stopped while its thread spins stops in time and hands the task back.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "@tm/kit";
import { readTaskLog } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { connect } from "nats";
import { afterAll, describe, expect, test } from "vitest";
import type { LoadedHandler } from "../src/handler-modules.js";
import { HandlerThreads } from "../src/handler-threads.js";
import type { TaskContext } from "../src/handlers/types.js";
import {
  enrichedTask,
  publishTask,
  StreamReader,
  startWorker,
  useWatchedWorker,
  type WatchedWorker,
} from "./support.js";

const dir = mkdtempSync(join(tmpdir(), "tm-threads-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const modulePath = join(dir, "handlers.mjs");
writeFileSync(
  modulePath,
  `import { appendFileSync } from "node:fs";
  const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} };
  const spin = (isolation) => ({
    type: isolation ? "spin" : "spin-inline",
    ...(isolation ? { isolation } : {}),
    run({ ms, runs }, ctx) {
      appendFileSync(runs, "run\\n");
      ctx.reportProgress(50, "half way", { spun: ms / 2 });
      busy(ms);
      return { spun: ms, attempt: ctx.attempt };
    },
  });
  const named = (name, message, fields = {}) => Object.assign(Object.assign(new Error(message), { name }), fields);
  export const handlers = [
    spin("thread"),
    spin(undefined),
    { type: "shout", run: ({ text }) => ({ text: String(text).toUpperCase() }) },
    { type: "stubborn", isolation: "thread", timeoutMs: 300, maxAttempts: 1, run() { for (;;) {} } },
    { type: "patient", isolation: "thread", run: (_p, ctx) => new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))) },
    { type: "refuse", isolation: "thread", run() { throw named("PermanentError", "never valid"); } },
    { type: "later", isolation: "thread", run() { throw named("RetryAfterError", "busy", { retryAfterMs: 1234 }); } },
    { type: "unclonable", isolation: "thread", run: () => ({ f() {} }) },
    { type: "hog", isolation: "thread", run() { const kept = []; for (;;) kept.push(new Array(1e5).fill(Math.random())); } },
    { type: "chatty", isolation: "thread", run(_p, ctx) {
        ctx.log.info({ step: 1 }, "below the worker's LOG_LEVEL (warn)");
        ctx.log.warn({ step: 2 }, "from a thread");
        ctx.log.error("and an error");
        return {};
      } },
    { type: "deps", isolation: "thread", run: (_p, ctx) => ctx.dependencies().catch((e) => "refused: " + e.message) },
    { type: "calls", isolation: "thread", async run(_p, ctx) {
        ctx.log.info({ step: 1 }, "from a thread");
        let refused;
        try { ctx.reportProgress(1, 42); } catch (error) { refused = error.name + ": " + error.message; }
        const child = await ctx.submitTask({ type: "shout" }).then(() => "submitted", (e) => e.name + ": " + e.message);
        const batch = await ctx.submitTasks([{ type: "shout" }, { type: "shout" }]);
        return { dependencies: await ctx.dependencies(), child, batch, refused, taskId: ctx.taskId, attempt: ctx.attempt };
      } },
  ];`,
);
const TYPES = "spin,spin-inline,shout,stubborn,patient,refuse,later,unclonable,hog,chatty,deps,calls";
const module = { specifier: modulePath, cwd: dir };
const inThread = (type: string): LoadedHandler => ({
  type,
  payload: { "~standard": { version: 1, vendor: "test", validate: (value) => ({ value }) } },
  run: () => {
    throw new Error("not run in this thread");
  },
  isolation: "thread",
  module,
});

/** A ctx of plain functions that records what the thread asked of it. */
function attemptContext() {
  const controller = new AbortController();
  const progress: unknown[] = [];
  const ctx: TaskContext = {
    taskId: "task-1",
    attempt: 2,
    deferrals: 0,
    signal: controller.signal,
    reportProgress: (percent, message, details) => progress.push({ percent, message, details }),
    get log(): TaskContext["log"] {
      throw new Error("the worker's log is not the thread's");
    },
    dependencies: async () => [{ taskId: "dep-1", state: "SUCCEEDED", result: { n: 1 } }],
    submitTask: async () => {
      throw Object.assign(new Error("the gateway refused it"), { name: "PermanentError" });
    },
    submitTasks: async (requests) => requests.map((_, i) => ({ taskId: `child-${i}`, deduplicated: false })),
  };
  return { ctx, controller, progress };
}

describe("the pool alone", () => {
  const lines: string[] = [];
  const log = createLogger(
    "worker",
    "info",
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const threads = new HandlerThreads({ maxThreads: 2, log, service: "worker" });
  afterAll(() => threads.close());

  test("ctx crosses the port: log lines, dependencies(), child tasks (a refusal keeps its name), a bad report's RangeError at the call", async () => {
    const { ctx } = attemptContext();
    const output = await threads.isolated(inThread("calls")).run({}, ctx);
    expect(output).toEqual({
      dependencies: [{ taskId: "dep-1", state: "SUCCEEDED", result: { n: 1 } }],
      child: "PermanentError: the gateway refused it",
      batch: [
        { taskId: "child-0", deduplicated: false },
        { taskId: "child-1", deduplicated: false },
      ],
      refused: "RangeError: reportProgress: message must be a string",
      taskId: "task-1",
      attempt: 2,
    });
    const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "from a thread");
    expect(line).toMatchObject({
      level: "info",
      service: "worker",
      taskId: "task-1",
      type: "calls",
      attempt: 2,
      step: 1,
    });
  });

  test("a ctx call that throws at once in the worker answers the thread with its error, and the worker goes on", async () => {
    const { ctx } = attemptContext();
    ctx.dependencies = () => {
      throw new Error("Redis is not configured");
    };
    await expect(threads.isolated(inThread("deps")).run({}, ctx)).resolves.toBe("refused: Redis is not configured");
  });

  test("progress reports reach the attempt's ctx", async () => {
    const { ctx, progress } = attemptContext();
    const runs = join(dir, "pool-runs");
    await expect(threads.isolated(inThread("spin")).run({ ms: 1, runs }, ctx)).resolves.toEqual({
      spun: 1,
      attempt: 2,
    });
    expect(progress).toEqual([{ percent: 50, message: "half way", details: { spun: 0.5 } }]);
  });

  test("errors keep their names and retryAfterMs; a result that cannot be copied fails the attempt", async () => {
    const run = (type: string) => threads.isolated(inThread(type)).run({}, attemptContext().ctx);
    await expect(run("refuse")).rejects.toMatchObject({ name: "PermanentError", message: "never valid" });
    await expect(run("later")).rejects.toMatchObject({ name: "RetryAfterError", retryAfterMs: 1234 });
    await expect(run("unclonable")).rejects.toThrow(
      /the handler's result cannot leave its thread: .*could not be cloned/,
    );
  });

  test("an abort reaches the handler's signal with its reason's name", async () => {
    const { ctx, controller } = attemptContext();
    const running = threads.isolated(inThread("patient")).run({}, ctx);
    controller.abort(Object.assign(new Error("cancelled: by an operator"), { name: "TaskCancelledError" }));
    await expect(running).rejects.toMatchObject({ name: "TaskCancelledError", message: "cancelled: by an operator" });
  });

  test("a thread that ignores its abort is terminated, and the pool runs the next attempt", async () => {
    const { ctx, controller } = attemptContext();
    const running = threads.isolated(inThread("stubborn")).run({}, ctx);
    await waitFor("a thread running", () => threads.threads > 0);
    controller.abort(new Error("timed out"));
    await expect(running).rejects.toThrow(
      "the handler's thread was terminated: it was still running 500 ms after its abort",
    );
    const runs = join(dir, "after-terminate");
    await expect(threads.isolated(inThread("spin")).run({ ms: 1, runs }, attemptContext().ctx)).resolves.toMatchObject({
      spun: 1,
    });
  });

  test("attempts beyond its threads wait for one, counted as waiting", async () => {
    const one = new HandlerThreads({ maxThreads: 1, log, service: "worker" });
    try {
      const spin = one.isolated(inThread("spin")).run;
      const runs = join(dir, "one-thread");
      const [first, second] = [
        spin({ ms: 300, runs }, attemptContext().ctx),
        spin({ ms: 1, runs }, attemptContext().ctx),
      ];
      await waitFor("the second attempt waiting", () => one.waiting === 1);
      expect(one.threads).toBe(1);
      await Promise.all([first, second]);
      expect(one.waiting).toBe(0);
    } finally {
      await one.close();
    }
  });

  test("a thread past WORKER_THREAD_HEAP_MB dies and fails its attempt; the pool goes on", async () => {
    const small = new HandlerThreads({ maxThreads: 1, heapMb: 32, log, service: "worker" });
    try {
      await expect(small.isolated(inThread("hog")).run({}, attemptContext().ctx)).rejects.toThrow(
        /^the handler's thread ran out of memory \(WORKER_THREAD_HEAP_MB=32\)/,
      );
      const runs = join(dir, "after-oom");
      await expect(small.isolated(inThread("spin")).run({ ms: 1, runs }, attemptContext().ctx)).resolves.toMatchObject({
        spun: 1,
      });
    } finally {
      await small.close();
    }
  });
});

/** The workers of the files' describes: the module's types, and a short AckWait: a busy handler on the event loop
 *  sends no heartbeat, and its delivery comes again after it. */
const WORKER_ENV = {
  TASK_TYPES: TYPES,
  WORKER_HANDLER_MODULES: modulePath,
  FLOW_ACK_WAIT_MS: "500",
  FLOW_MAX_DELIVER: "2",
};

/** Reads what landed in the worker's streams, and waits for a task's SUCCEEDED there. */
function watching(w: WatchedWorker) {
  async function refreshed<T>(read: () => T): Promise<T> {
    await Promise.all([w.events.refresh(), w.tasks.refresh()]);
    return read();
  }
  const succeeded = (taskId: string) =>
    waitFor(`${taskId} SUCCEEDED`, async () =>
      (await refreshed(() => w.events.statuses(taskId))).some((s) => s.state === "SUCCEEDED"),
    );
  return { refreshed, succeeded };
}

describe("in a worker", () => {
  const infra = useInfra();
  const w = useWatchedWorker(infra, { ...WORKER_ENV, WORKER_THREADS: "2" });
  const { refreshed, succeeded } = watching(w);
  const runsIn = (file: string) =>
    existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).length : 0;

  test("a handler busy for three AckWaits runs once in a thread, reports progress, and another task finishes meanwhile", async () => {
    const runs = join(dir, "thread-runs");
    const spin = enrichedTask("spin", { ms: 1_500, runs });
    await publishTask(w.nc, spin);
    await waitFor("the spin started", () => runsIn(runs) === 1);
    const shout = enrichedTask("shout", { text: "meanwhile" });
    await publishTask(w.nc, shout);
    await succeeded(shout.taskId);
    await succeeded(spin.taskId);
    const finished = (taskId: string) => Date.parse(w.tasks.results(taskId)[0]?.completedAt ?? "");
    expect(finished(shout.taskId)).toBeLessThan(finished(spin.taskId));
    expect(runsIn(runs)).toBe(1);
    expect(w.tasks.results(spin.taskId)).toHaveLength(1);
    expect(w.tasks.results(spin.taskId)[0]).toMatchObject({ output: { spun: 1_500, attempt: 1 }, attempts: 1 });
    // The thread stays for the next attempt: the worker's gauge shows it.
    const metrics = await (await fetch(`http://127.0.0.1:${w.service.opsPort}/metrics`)).text();
    expect(Number(/^tm_worker_handler_threads(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^tm_worker_handler_thread_waits(\{[^}]*\})? 0$/m);
    expect(w.events.statuses(spin.taskId).find((s) => s.progressMessage === "half way")).toMatchObject({
      state: "RUNNING",
      progress: 50,
      progressDetails: { spun: 750 },
    });
  });

  test("what a thread logs at the worker's level is kept with its task, stored before SUCCEEDED", async () => {
    const chatty = enrichedTask("chatty", {});
    await publishTask(w.nc, chatty);
    await succeeded(chatty.taskId);
    const page = await readTaskLog(w.redis, chatty.taskId, { limit: 10 });
    expect(page.lines.map(({ level, message, attempt, fields }) => ({ level, message, attempt, fields }))).toEqual([
      { level: "warn", message: "from a thread", attempt: 1, fields: { step: 2 } },
      { level: "error", message: "and an error", attempt: 1, fields: undefined },
    ]);
  });

  test("the same handler on the event loop holds back its heartbeats: its delivery comes again and it runs twice", async () => {
    const runs = join(dir, "inline-runs");
    const spin = enrichedTask("spin-inline", { ms: 1_500, runs });
    await publishTask(w.nc, spin);
    await waitFor("a second run", () => runsIn(runs) >= 2, { timeoutMs: 20_000 });
    await succeeded(spin.taskId);
  });

  test("a thread that never yields fails its attempt at the type's timeout; the next threaded task runs", async () => {
    const stubborn = enrichedTask("stubborn", {});
    await publishTask(w.nc, stubborn);
    await waitFor(
      "dead-lettered",
      async () => (await refreshed(() => w.events.deadLetters(stubborn.taskId))).length > 0,
    );
    expect(w.events.deadLetters(stubborn.taskId)[0]).toMatchObject({ reason: "exhausted", attempts: 1 });
    expect(w.events.statuses(stubborn.taskId).find((s) => s.state === "FAILED")?.error).toContain(
      "timed out after 300 ms",
    );
    // Its thread was terminated half a second later: counted, not abandoned.
    const terminated = async () =>
      (await (await fetch(`http://127.0.0.1:${w.service.opsPort}/metrics`)).text())
        .split("\n")
        .find(
          (line) => line.startsWith("tm_worker_handler_threads_terminated_total{") && line.includes('type="stubborn"'),
        );
    await waitFor("the termination counted", async () => (await terminated()) !== undefined);
    expect(Number((await terminated())?.split(" ").at(-1))).toBeGreaterThanOrEqual(1);
    const spin = enrichedTask("spin", { ms: 1, runs: join(dir, "after-stubborn") });
    await publishTask(w.nc, spin);
    await succeeded(spin.taskId);
  });

  test("a PermanentError thrown in a thread is dead-lettered at once", async () => {
    const refuse = enrichedTask("refuse", {});
    await publishTask(w.nc, refuse);
    await waitFor("dead-lettered", async () => (await refreshed(() => w.events.deadLetters(refuse.taskId))).length > 0);
    expect(w.events.deadLetters(refuse.taskId)[0]).toMatchObject({ reason: "rejected", attempts: 1 });
    expect(w.events.deadLetters(refuse.taskId)[0]?.error).toContain("never valid");
  });
});

describe("a worker keeping its handlers' lower levels with their tasks (WORKER_TASK_LOG_LEVEL)", () => {
  const infra = useInfra();
  const w = useWatchedWorker(infra, { ...WORKER_ENV, WORKER_THREADS: "1", WORKER_TASK_LOG_LEVEL: "info" });
  const { succeeded } = watching(w);

  test("a thread's info line is kept with its task while the worker logs at warn", async () => {
    const chatty = enrichedTask("chatty", {});
    await publishTask(w.nc, chatty);
    await succeeded(chatty.taskId);
    const page = await readTaskLog(w.redis, chatty.taskId, { limit: 10 });
    expect(page.lines.map(({ level, message }) => `${level} ${message}`)).toEqual([
      "info below the worker's LOG_LEVEL (warn)",
      "warn from a thread",
      "error and an error",
    ]);
  });
});

describe("a worker told where types run (WORKER_TYPE_ISOLATION)", () => {
  const infra = useInfra();
  // The handler that declares nothing, moved into a thread by the operator.
  const w = useWatchedWorker(infra, { ...WORKER_ENV, WORKER_TYPE_ISOLATION: "spin-inline=thread" });
  const { succeeded } = watching(w);

  test("a type its handler left on the event loop runs in a thread: busy for three AckWaits, it runs once", async () => {
    const runs = join(dir, "moved-runs");
    const spin = enrichedTask("spin-inline", { ms: 1_500, runs });
    await publishTask(w.nc, spin);
    await succeeded(spin.taskId);
    expect(readFileSync(runs, "utf8").split("\n").filter(Boolean)).toHaveLength(1);
    expect(w.tasks.results(spin.taskId)).toHaveLength(1);
    expect(w.tasks.results(spin.taskId)[0]).toMatchObject({ attempts: 1 });
  });
});

describe("a worker stopped while a thread runs", () => {
  const infra = useInfra();
  const env = {
    TASK_TYPES: TYPES,
    WORKER_HANDLER_MODULES: modulePath,
    SHUTDOWN_TIMEOUT_MS: "300",
  };

  test("stops within its shutdown timeout and the thread's grace, handing the task back; the next worker runs it once to SUCCEEDED", async () => {
    const runs = join(dir, "stopped-runs");
    const first = await startWorker(infra, env);
    const nc = await connect({ servers: infra.nats.url });
    const jsm = await nc.jetstreamManager();
    try {
      const spin = enrichedTask("spin", { ms: 3_000, runs });
      await publishTask(nc, spin);
      await waitFor("the spin started", () => existsSync(runs));
      const stoppingAt = performance.now();
      await first.stop();
      // SHUTDOWN_TIMEOUT_MS (300), then the abort, then the thread's grace (500) before it is terminated.
      expect(performance.now() - stoppingAt).toBeLessThan(2_500);
      const second = await startWorker(infra, env);
      try {
        const events = new StreamReader(jsm, "EVENTS");
        const tasks = new StreamReader(jsm, "TASKS");
        await waitFor("SUCCEEDED on the next worker", async () => {
          await events.refresh();
          return events.statuses(spin.taskId).some((s) => s.state === "SUCCEEDED");
        });
        await tasks.refresh();
        expect(readFileSync(runs, "utf8").split("\n").filter(Boolean)).toHaveLength(2);
        expect(tasks.results(spin.taskId)).toHaveLength(1);
      } finally {
        await second.stop();
      }
    } finally {
      await nc.drain();
    }
  });
});

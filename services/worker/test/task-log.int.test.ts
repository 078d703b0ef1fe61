/**
 * ctx.log kept with the task (task_logs:<id>), against real servers: what a handler logs is in the worker's log and
 * in the task's, the worker's own fields left out; every line is stored before the attempt's outcome goes out; each
 * attempt's lines are told apart; lines after the attempt ended, past the cap, or with WORKER_TASK_LOG_LINES=0 are
 * not kept; a Redis that cannot take them costs the attempt nothing. WORKER_TASK_LOG_LEVEL below the worker's level
 * keeps a handler's debug lines with its task and out of the worker's log; above it, the task keeps the severe ones.
 */
import { type DeliveryContext, type EnrichedTaskMessage, Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { Keys, readTaskLog } from "@tm/store";
import { freePort, useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { expect, test } from "vitest";
import * as z from "zod";
import { RunningTasks } from "../src/cancellation.js";
import { defineHandler, type TaskHandler } from "../src/handlers/types.js";
import { createTaskRunner } from "../src/run-task.js";
import { AttemptLog, FIELDS_MAX_BYTES, MESSAGE_MAX_CHARS, taskLogEntry } from "../src/task-log.js";
import { capturedLog, enrichedTask, useWatchedWorker } from "./support.js";

const infra = useInfra();
const w = useWatchedWorker(infra, { WORKER_CONCURRENCY: "2" });

/** A runner of the file's worker whose every type is `handler`, logging to a captured logger: one attempt of a task
 *  with it, and what it threw (undefined when it succeeded). */
function runnerWith(
  handler: TaskHandler,
  options: { taskLogLines?: number; taskLogLevel?: string; published?: string[]; timeoutMs?: number } = {},
) {
  const captured = capturedLog("info");
  const runtime = w.service.runtime as Runtime;
  const publisher = options.published
    ? {
        publish: ((subject, message, publishOptions) => {
          const state = (message as { state?: string }).state;
          options.published?.push(state ? `${subject} ${state}` : subject);
          return runtime.publisher.publish(subject, message, publishOptions);
        }) satisfies Runtime["publisher"]["publish"],
      }
    : runtime.publisher;
  const runner = createTaskRunner({
    rt: { ...runtime, log: captured.log, publisher } as Runtime,
    running: new RunningTasks(),
    timeoutMs: options.timeoutMs ?? 2_000,
    handlers: () => handler,
    ...(options.taskLogLines === undefined ? {} : { taskLogLines: options.taskLogLines }),
    ...(options.taskLogLevel === undefined ? {} : { taskLogLevel: options.taskLogLevel }),
  });
  const attempt = (task: EnrichedTaskMessage, number = 1) =>
    runner.run(task, { attempt: number, deferrals: 0, signal: new AbortController().signal } as DeliveryContext).then(
      () => undefined,
      (error: unknown) => error,
    );
  return { attempt, lines: captured.lines };
}

test("what a handler logs is in the worker's log and kept with its task, stored before SUCCEEDED goes out", async () => {
  const published: string[] = [];
  const chatty = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: async (_payload, ctx) => {
      ctx.log.info({ part: 7, of: 12 }, "uploading part 7");
      ctx.log.debug("below the worker's level: neither log has it");
      ctx.log.warn("slow downstream");
      ctx.log.error({ err: new Error("boom") }, "one part failed");
      return { ok: true };
    },
  });
  const { attempt, lines } = runnerWith(chatty, { published });
  const task = enrichedTask("echo", {});
  expect(await attempt(task)).toBeUndefined();
  // Read once, at once: the outcome was published after the lines were stored.
  const page = await readTaskLog(w.redis, task.taskId, { limit: 10 });
  expect(
    page.lines.map(({ level, message, attempt, generation }) => ({ level, message, attempt, generation })),
  ).toEqual([
    { level: "info", message: "uploading part 7", attempt: 1, generation: 0 },
    { level: "warn", message: "slow downstream", attempt: 1, generation: 0 },
    { level: "error", message: "one part failed", attempt: 1, generation: 0 },
  ]);
  expect(page).toMatchObject({ total: 3, dropped: 0 });
  // Only the handler's own fields: the task's id, type, attempt, service and trace are the log's already.
  expect(page.lines[0]?.fields).toEqual({ part: 7, of: 12 });
  expect(page.lines[1]?.fields).toBeUndefined();
  expect(page.lines[2]?.fields?.err).toMatchObject({ type: "Error", message: "boom" });
  expect(Date.parse(page.lines[0]?.time ?? "")).toBeGreaterThan(Date.now() - 60_000);
  // The worker's log has the same lines, with the attempt's fields.
  const workerLines = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(workerLines.filter((line) => line.taskId === task.taskId).map((line) => line.msg)).toEqual([
    "uploading part 7",
    "slow downstream",
    "one part failed",
  ]);
  expect(workerLines.find((line) => line.msg === "uploading part 7")).toMatchObject({
    service: "worker",
    type: "echo",
    attempt: 1,
    part: 7,
  });
  expect(published).toEqual([
    `${Subjects.status} RUNNING`,
    Subjects.results,
    `${Subjects.status} SUCCEEDED`,
    Subjects.audit,
  ]);
  // The task's retention.
  expect(await w.redis.ttl(Keys.logs(task.taskId))).toBeGreaterThan(6 * 24 * 3600);
  const metrics = await (await fetch(`http://127.0.0.1:${w.service.opsPort}/metrics`)).text();
  expect(
    Number(/^tm_worker_task_log_lines_total\{outcome="stored"[^}]*\} (\d+)/m.exec(metrics)?.[1]),
  ).toBeGreaterThanOrEqual(3);
});

test("each attempt's lines are kept, the failed one's before its failure is reported", async () => {
  const flaky = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: async (_payload, ctx) => {
      ctx.log.info(`attempt ${ctx.attempt} starting`);
      if (ctx.attempt === 1) throw new Error("first attempt fails");
      return {};
    },
  });
  const { attempt } = runnerWith(flaky);
  const task = enrichedTask("echo", {});
  expect(await attempt(task, 1)).toMatchObject({ message: "first attempt fails" });
  expect((await readTaskLog(w.redis, task.taskId, { limit: 10 })).lines.map((l) => l.message)).toEqual([
    "attempt 1 starting",
  ]);
  expect(await attempt(task, 2)).toBeUndefined();
  const page = await readTaskLog(w.redis, task.taskId, { limit: 10 });
  expect(page.lines.map((l) => [l.attempt, l.message])).toEqual([
    [1, "attempt 1 starting"],
    [2, "attempt 2 starting"],
  ]);
});

test("lines after the attempt ended go to the worker's log only; past the cap the newest are kept", async () => {
  let logLate = () => {};
  const stubborn = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: (_payload, ctx) =>
      new Promise<object>(() => {
        for (let n = 1; n <= 5; n += 1) ctx.log.info(`line ${n}`);
        logLate = () => ctx.log.info("after its attempt ended");
      }),
  });
  const { attempt, lines } = runnerWith(stubborn, { taskLogLines: 3, timeoutMs: 200 });
  const task = enrichedTask("echo", {});
  expect(await attempt(task)).toMatchObject({ name: "TaskTimeoutError" });
  logLate();
  expect(lines.some((line) => line.includes("after its attempt ended"))).toBe(true);
  const page = await readTaskLog(w.redis, task.taskId, { limit: 10 });
  expect(page.lines.map((l) => l.message)).toEqual(["line 3", "line 4", "line 5"]);
  expect(page).toMatchObject({ total: 5, dropped: 2 });
});

test("a handler logging in a tight loop: the newest lines are kept, the rest counted as dropped", async () => {
  const loop = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: async (_payload, ctx) => {
      for (let n = 1; n <= 5_000; n += 1) ctx.log.info(`line ${n}`);
      return {};
    },
  });
  const { attempt } = runnerWith(loop, { taskLogLines: 100 });
  const task = enrichedTask("echo", {});
  expect(await attempt(task)).toBeUndefined();
  const page = await readTaskLog(w.redis, task.taskId, { limit: 1_000 });
  expect(page.lines).toHaveLength(100);
  expect([page.lines[0]?.message, page.lines.at(-1)?.message]).toEqual(["line 4901", "line 5000"]);
  expect([page.lines[0]?.id, page.lines.at(-1)?.id]).toEqual(["4901", "5000"]);
  expect(page).toMatchObject({ total: 5_000, dropped: 4_900 });
});

test("a handler that first logs after its attempt ended: its lines go to the worker's log only", async () => {
  let logLate = () => {};
  const late = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: (_payload, ctx) =>
      new Promise<object>(() => {
        logLate = () => ctx.log.info("first words, too late");
      }),
  });
  const { attempt, lines } = runnerWith(late, { timeoutMs: 100 });
  const task = enrichedTask("echo", {});
  expect(await attempt(task)).toMatchObject({ name: "TaskTimeoutError" });
  logLate();
  expect(lines.some((line) => line.includes("first words, too late"))).toBe(true);
  // Past a flush interval, nothing was written for it.
  const after = Date.now() + 400;
  await waitFor("a flush interval to pass", () => Date.now() > after);
  expect(await w.redis.exists(Keys.logs(task.taskId))).toBe(0);
});

test("WORKER_TASK_LOG_LINES=0: ctx.log writes to the worker's log only", async () => {
  const quiet = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: async (_payload, ctx) => {
      ctx.log.info("only in the worker's log");
      return {};
    },
  });
  const { attempt, lines } = runnerWith(quiet, { taskLogLines: 0 });
  const task = enrichedTask("echo", {});
  expect(await attempt(task)).toBeUndefined();
  expect(lines.some((line) => line.includes("only in the worker's log"))).toBe(true);
  expect(await w.redis.exists(Keys.logs(task.taskId))).toBe(0);
});

test("a Redis that refuses the lines: counted as dropped, said once, and the attempt's end waits at most its deadline", async () => {
  // A real client of a port nothing listens on: refused at once without an offline queue, held for ever with one.
  const port = await freePort();
  const refusing = new Redis({ port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  const holding = new Redis({ port, lazyConnect: true, retryStrategy: () => 50 });
  for (const client of [refusing, holding]) client.on("error", () => undefined);
  holding.connect().catch(() => undefined);
  try {
    const counted: string[] = [];
    const { log, lines } = capturedLog("info");
    const settings = (redis: Redis) => ({
      redis,
      maxLines: 10,
      ttlSeconds: 60,
      log,
      onLines: (outcome: string, count: number) => counted.push(`${outcome} ${count}`),
      flushMs: 10,
      closeDeadlineMs: 200,
    });
    const line = (msg: string) => JSON.stringify({ level: "info", time: new Date().toISOString(), msg });
    const refused = new AttemptLog(settings(refusing), { taskId: "t-1", attempt: 1, generation: 0 });
    refused.line(line("one"));
    await waitFor("the first write refused", async () => counted.length === 1);
    refused.line(line("two"));
    refused.line(line("three"));
    await refused.close();
    expect(counted).toEqual(["dropped 1", "dropped 2"]);
    expect(lines.filter((l) => l.includes("could not be kept with it"))).toHaveLength(1);
    const held = new AttemptLog(settings(holding), { taskId: "t-2", attempt: 1, generation: 0 });
    held.line(line("waits for a Redis that is not there"));
    const started = Date.now();
    await held.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(2_000);
  } finally {
    refusing.disconnect();
    holding.disconnect();
  }
});

test("a line's message and fields are cut to their bounds, saying how much was left out", () => {
  const long = taskLogEntry(
    JSON.stringify({ level: "info", time: "2026-12-07T12:00:00.000Z", msg: "x".repeat(MESSAGE_MAX_CHARS + 5) }),
    { attempt: 2, generation: 1 },
  );
  expect(long?.message).toBe(`${"x".repeat(MESSAGE_MAX_CHARS)}… (5 more characters)`);
  expect(long).toMatchObject({ attempt: 2, generation: 1, level: "info", time: "2026-12-07T12:00:00.000Z" });
  const wide = taskLogEntry(
    JSON.stringify({ level: "warn", time: "2026-12-07T12:00:00.000Z", msg: "m", blob: "y".repeat(FIELDS_MAX_BYTES) }),
    { attempt: 1, generation: 0 },
  );
  expect(wide?.fields).toEqual({ omitted: `${FIELDS_MAX_BYTES + 11} bytes of fields, over ${FIELDS_MAX_BYTES}` });
  expect(taskLogEntry("not a JSON line", { attempt: 1, generation: 0 })).toBeUndefined();
  const own = taskLogEntry(JSON.stringify({ level: "info", msg: "m", workerId: "w-1", part: 1 }), {
    attempt: 1,
    generation: 0,
    omit: new Set(["workerId"]),
  });
  expect(own?.fields).toEqual({ part: 1 });
});

/** The messages of the worker's log lines about a task. */
function workerMessages(lines: string[], taskId: string): string[] {
  return lines
    .map((line) => JSON.parse(line) as { taskId?: string; msg?: string })
    .filter((line) => line.taskId === taskId)
    .map((line) => line.msg ?? "");
}

test("WORKER_TASK_LOG_LEVEL: debug lines kept with the task and not in the worker's log at info; warn keeps the severe", async () => {
  const levelled = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: async (_payload, ctx) => {
      ctx.log.trace("below both levels");
      ctx.log.debug({ rows: 3 }, "parsed the header");
      ctx.log.info("imported");
      ctx.log.warn("slow downstream");
      return { ok: true };
    },
  });
  const messagesOf = async (taskId: string) =>
    (await readTaskLog(w.redis, taskId, { limit: 10 })).lines.map(({ level, message }) => `${level} ${message}`);

  const below = runnerWith(levelled, { taskLogLevel: "debug" });
  const first = enrichedTask("echo", {});
  expect(await below.attempt(first)).toBeUndefined();
  expect(await messagesOf(first.taskId)).toEqual(["debug parsed the header", "info imported", "warn slow downstream"]);
  expect(workerMessages(below.lines, first.taskId)).toEqual(["imported", "slow downstream"]);

  const above = runnerWith(levelled, { taskLogLevel: "warn" });
  const second = enrichedTask("echo", {});
  expect(await above.attempt(second)).toBeUndefined();
  expect(await messagesOf(second.taskId)).toEqual(["warn slow downstream"]);
  expect(workerMessages(above.lines, second.taskId)).toEqual(["imported", "slow downstream"]);
});

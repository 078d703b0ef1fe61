import {
  createPublisher,
  type DeliveryContext,
  durableName,
  type EnrichedTaskMessage,
  PermanentError,
  type Publisher,
  RECORDED_ERROR_CHARS,
  RetryAfterError,
  StatusEventSchema,
  Subjects,
  statusEvent,
} from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { applyStatus, Keys } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import * as z from "zod";
import { RunningTasks } from "../src/cancellation.js";
import { abortableDelay, defineHandler, type TaskHandler } from "../src/handlers/types.js";
import { DEFAULT_WORKER_ID as WORKER_ID } from "../src/presence.js";
import { createTaskRunner, NO_HANDLER_RETRY_MS, TaskTimeoutError } from "../src/run-task.js";
import { cancelAsGateway, enrichedTask, publishTask, startWorker, useWatchedWorker } from "./support.js";

// Long enough that a cancel published after RUNNING is seen lands before the sleep below ends, even on a loaded machine.
const TASK_TIMEOUT_MS = 3_000;
const infra = useInfra();
const w = useWatchedWorker(infra, {
  WORKER_CONCURRENCY: "4",
  TASK_TIMEOUT_MS: String(TASK_TIMEOUT_MS),
  SHUTDOWN_TIMEOUT_MS: "500",
});

async function refresh() {
  await Promise.all([w.events.refresh(), w.tasks.refresh()]);
}

/** The worker publishes result, SUCCEEDED and then the "succeeded" audit: waiting for the last one means the
 *  others are in the streams too (waiting for SUCCEEDED alone races the audit publish). */
async function waitForSucceededAudit(taskId: string) {
  await waitFor("succeeded audit", async () => {
    await refresh();
    return w.events.audits(taskId).some((a) => a.action === "succeeded");
  });
}

async function waitForDeadLetter(taskId: string) {
  await waitFor("dead letter", async () => {
    await refresh();
    return w.events.deadLetters(taskId).length > 0;
  });
}

test("echo: publishes the payload as the result, then SUCCEEDED", async () => {
  const task = enrichedTask("echo", { hello: "world", n: [1, 2] });
  await publishTask(w.nc, task);
  await waitForSucceededAudit(task.taskId);
  const [result] = w.tasks.results(task.taskId);
  expect(result).toMatchObject({
    output: { hello: "world", n: [1, 2] },
    attempts: 1,
    type: "echo",
    priority: "medium",
  });
  expect(result?.durationMs).toBeGreaterThanOrEqual(0);
  const states = w.events.statuses(task.taskId).map((s) => `${s.state}:${s.attempt}`);
  expect(states).toEqual(["RUNNING:1", "SUCCEEDED:1"]);
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["succeeded"]);
});

test("a message of an older generation than the task's is acknowledged unrun: skipped_superseded, no status, no result", async () => {
  // The task was requeued (or replayed) as generation 1; its generation-0 message turns up afterwards.
  const stale = enrichedTask("echo", { stale: true }, "high");
  await w.redis.hset(Keys.task(stale.taskId), "generation", "1");
  await publishTask(w.nc, stale);
  await waitFor("skipped_superseded audit", async () => {
    await refresh();
    return w.events.audits(stale.taskId).some((a) => a.action === "skipped_superseded");
  });
  // The current generation's message runs as usual.
  const current = { ...stale, generation: 1 };
  await publishTask(w.nc, current);
  await waitForSucceededAudit(stale.taskId);
  expect(w.tasks.results(stale.taskId).map((r) => r.generation)).toEqual([1]);
  expect(w.events.statuses(stale.taskId).map((s) => `${s.state}:${s.generation}`)).toEqual([
    "RUNNING:1",
    "SUCCEEDED:1",
  ]);
  expect(w.events.audits(stale.taskId).map((a) => a.action)).toEqual(["skipped_superseded", "succeeded"]);
});

test("the result goes out without waiting for RUNNING's PubAck; SUCCEEDED only once both are acknowledged", async () => {
  // The runner of this worker's runtime, with its publishes going to the real streams through a wrapper that holds
  // RUNNING's PubAck back until the test lets it through.
  const real = createPublisher(w.nc);
  let releaseRunning = () => {};
  const runningHeld = new Promise<void>((resolve) => {
    releaseRunning = resolve;
  });
  const published: string[] = [];
  let resultAcked = false;
  const publisher: Publisher = {
    publish(subject, message, options) {
      const state = (message as { state?: string }).state;
      published.push(state ? `${subject} ${state}` : subject);
      const ack = real.publish(subject, message, options);
      if (state === "RUNNING") return ack.then(async (pubAck) => runningHeld.then(() => pubAck));
      if (subject !== Subjects.results) return ack;
      return ack.then((pubAck) => {
        resultAcked = true;
        return pubAck;
      });
    },
  };
  const rt = { ...w.service.runtime, publisher } as Runtime;
  const { run } = createTaskRunner({ rt, running: new RunningTasks(), timeoutMs: 5_000 });
  const task = enrichedTask("echo", { n: 1 });
  const done = run(task, { attempt: 1, signal: new AbortController().signal } as DeliveryContext);
  await waitFor("the result acknowledged while RUNNING's PubAck is held", async () => resultAcked);
  expect(published).toEqual([`${Subjects.status} RUNNING`, Subjects.results]);
  releaseRunning();
  await done;
  expect(published).toEqual([
    `${Subjects.status} RUNNING`,
    Subjects.results,
    `${Subjects.status} SUCCEEDED`,
    Subjects.audit,
  ]);
});

/** A task runner on the file's worker whose handler for every type is `handler`, and one first attempt of a task
 *  with it: what that threw (undefined when it succeeded). */
function runnerWith(handler: TaskHandler | undefined, timeoutMs: number) {
  const runner = createTaskRunner({
    rt: w.service.runtime as Runtime,
    running: new RunningTasks(),
    timeoutMs,
    handlers: () => handler,
  });
  const attempt = (task: EnrichedTaskMessage) =>
    runner
      .run(task, { attempt: 1, signal: new AbortController().signal } as DeliveryContext)
      .catch((error: unknown) => error);
  return { ...runner, attempt };
}

test("a result past the contract's 256 KiB fails the task at once (PermanentError), not once per attempt", async () => {
  const huge = defineHandler({ type: "echo", payload: z.unknown(), run: () => ({ blob: "x".repeat(300_000) }) });
  const failed = await runnerWith(huge, 5_000).attempt(enrichedTask("echo", { n: 1 }));
  expect(failed).toBeInstanceOf(PermanentError);
  expect((failed as Error).message).toMatch(
    /^the handler's result cannot be stored: output: must be at most 262144 bytes of JSON \(got 300011\)/,
  );
});

test.each([
  ["a BigInt", () => ({ count: 1n }), "Do not know how to serialize a BigInt"],
  [
    "a cycle",
    () => {
      const node: Record<string, unknown> = {};
      node.self = node;
      return node;
    },
    "Converting circular structure to JSON",
  ],
])(
  "a result JSON cannot write (%s) fails the task at once, naming why, instead of running its handler again",
  async (_what, output, reason) => {
    const odd = defineHandler({ type: "echo", payload: z.unknown(), run: output });
    const failed = await runnerWith(odd, 5_000).attempt(enrichedTask("echo", {}));
    expect(failed).toBeInstanceOf(PermanentError);
    expect((failed as Error).message).toContain(
      `the handler's result cannot be stored: output: must be JSON (${reason}`,
    );
  },
);

test("a handler that ignores its signal: the attempt still times out, and the handler is reported abandoned", async () => {
  let finish = () => {};
  const stubborn = defineHandler({
    type: "echo",
    payload: z.unknown(),
    run: () => new Promise<object>((resolve) => (finish = () => resolve({ late: true }))),
  });
  const runner = runnerWith(stubborn, 200);
  const task = enrichedTask("echo", { n: 1 });
  const failed = await runner.attempt(task);
  expect(failed).toBeInstanceOf(TaskTimeoutError);
  const gauge = async () =>
    (await (await fetch(`http://127.0.0.1:${w.service.opsPort}/metrics`)).text())
      .split("\n")
      .find((line) => line.startsWith("tm_worker_handlers_abandoned{") && line.includes('type="echo"'));
  await waitFor("the abandoned handler reported", async () => (await gauge())?.endsWith(" 1") === true);
  expect(runner.abandoned()).toBe(1); // what the worker's report (ListWorkers) shows
  const [listed] = runner.abandonedHandlers(20);
  expect(listed).toMatchObject({ taskId: task.taskId, type: "echo" });
  expect(Date.now() - listed!.sinceMs).toBeGreaterThanOrEqual(1_000); // abandoned a second after its attempt ended
  finish();
  await waitFor("the late finish counted", async () => (await gauge())?.endsWith(" 0") === true);
  expect(runner.abandoned()).toBe(0);
  expect(runner.abandonedHandlers(20)).toEqual([]);
});

test("sleep: several RUNNING progress updates with increasing versions, then SUCCEEDED", async () => {
  const task = enrichedTask("sleep", { ms: 900 }, "high");
  await publishTask(w.nc, task);
  await waitFor("SUCCEEDED", async () => {
    await refresh();
    return w.events.statuses(task.taskId).some((s) => s.state === "SUCCEEDED");
  });
  const statuses = w.events.statuses(task.taskId);
  const running = statuses.filter((s) => s.state === "RUNNING");
  expect(running.length).toBeGreaterThanOrEqual(3);
  expect(running.length).toBeLessThanOrEqual(6); // throttled to one per 250 ms
  const versions = statuses.map((s) => s.version);
  expect(versions).toEqual([...versions].sort((a, b) => a - b));
  expect(new Set(versions).size).toBe(versions.length);
  const progress = running.map((s) => s.progress);
  expect(progress[0]).toBe(0);
  expect(progress).toEqual([...progress].sort((a, b) => a - b));
  expect(statuses.at(-1)).toMatchObject({ state: "SUCCEEDED", progress: 100 });
  expect(w.tasks.results(task.taskId)[0]?.output).toEqual({ sleptMs: 900 });
  // Every report after the start carries the handler's message and details, numbered from 1 within the attempt.
  const reports = running.slice(1);
  expect(running[0]?.progressReport).toBeUndefined();
  expect(reports.map((s) => s.progressReport)).toEqual(reports.map((_, i) => i + 1));
  for (const s of reports) {
    const slept = s.progressDetails?.sleptMs;
    expect(s.progressMessage).toBe(`slept ${slept} of 900 ms`);
    expect(slept).toBe(9 * s.progress);
  }
  expect(statuses.at(-1)?.progressMessage).toBeUndefined();
});

test("flaky {failures: 2}: attempts 1 and 2 fail (RUNNING with error), attempt 3 succeeds", async () => {
  const task = enrichedTask("flaky", { failures: 2 });
  await publishTask(w.nc, task);
  await waitForSucceededAudit(task.taskId);
  const failedAttempts = w.events.statuses(task.taskId).filter((s) => s.state === "RUNNING" && s.error);
  expect(failedAttempts.map((s) => s.attempt)).toEqual([1, 2]);
  expect(failedAttempts[0]?.error).toMatch(/flaky: attempt 1 fails/);
  expect(w.tasks.results(task.taskId)).toHaveLength(1);
  expect(w.tasks.results(task.taskId)[0]).toMatchObject({ attempts: 3, output: { attempts: 3 } });
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["attempt_failed", "attempt_failed", "succeeded"]);
  // Each attempt's record names the worker that ran it (host:pid, as taskctl workers lists it).
  expect(w.events.audits(task.taskId).map((a) => a.detail?.worker)).toEqual([WORKER_ID, WORKER_ID, WORKER_ID]);
});

test("a huge error message and payload: the records cut the error, the dead letter leaves the payload out, once", async () => {
  // Control characters: JSON writes each as \u00XX, six bytes, the worst case for the audit event's 16 KiB limit;
  // and the payload (~120 KB of JSON) is past a dead letter's 64 KiB for the message it keeps.
  const task = { ...enrichedTask("flaky", { failures: 5, errorDetail: "\u0001".repeat(20_000) }), maxAttempts: 2 };
  await publishTask(w.nc, task);
  await waitFor("the dead letter", async () => {
    await w.events.refresh();
    return w.events.deadLetters(task.taskId).length === 1;
  });
  const audits = w.events.audits(task.taskId);
  expect(audits.map((a) => a.action)).toEqual(["attempt_failed", "failed"]);
  for (const audit of audits) {
    const error = String(audit.detail?.error);
    const head = /^flaky: attempt \d fails \(planned failures: 5\): /.exec(error)?.[0] ?? "";
    expect(head).not.toBe("");
    expect(error.slice(head.length)).toBe("\u0001".repeat(RECORDED_ERROR_CHARS - head.length));
  }
  expect(w.events.statuses(task.taskId).at(-1)).toMatchObject({ state: "FAILED", attempt: 2 });
  const [letter] = w.events.deadLetters(task.taskId);
  expect(letter).toMatchObject({ reason: "exhausted", attempts: 2, message: { taskId: task.taskId, generation: 0 } });
  expect(letter?.message).not.toHaveProperty("payload");
});

test("flaky {failures: 1, retryAfterMs}: the retry waits the delay the handler asked for, reported in the audit", async () => {
  const task = enrichedTask("flaky", { failures: 1, retryAfterMs: 1_500 });
  await publishTask(w.nc, task);
  await waitForSucceededAudit(task.taskId);
  const audits = w.events.audits(task.taskId);
  expect(audits.map((a) => a.action)).toEqual(["attempt_failed", "succeeded"]);
  // The configured delay after a first attempt is 100 ms here (FLOW_RETRY_DELAYS_MS): the handler's 1.5 s won.
  expect(audits[0]?.detail).toMatchObject({ attempt: 1, retryInMs: 1_500 });
  const starts = w.events.statuses(task.taskId).filter((s) => s.state === "RUNNING" && !s.error);
  expect(starts.map((s) => s.attempt)).toEqual([1, 2]);
  const [first, second] = starts.map((s) => Date.parse(s.updatedAt));
  expect(second! - first!).toBeGreaterThanOrEqual(1_500 - 20);
  expect(w.tasks.results(task.taskId)[0]).toMatchObject({ attempts: 2, output: { attempts: 2 } });
});

test("a task's own retry backoff sets its waits (×4, capped), and a RetryAfterError still comes first", async () => {
  const retryBackoff = { delayMs: 200, multiplier: 4, maxDelayMs: 600, jitter: 0 };
  const task = { ...enrichedTask("flaky", { failures: 2 }), retryBackoff };
  await publishTask(w.nc, task);
  await waitForSucceededAudit(task.taskId);
  const failed = w.events.audits(task.taskId).filter((a) => a.action === "attempt_failed");
  // Without it, the test settings' 100 ms and 200 ms (FLOW_RETRY_DELAYS_MS).
  expect(failed.map((a) => a.detail?.retryInMs)).toEqual([200, 600]);
  const starts = w.events.statuses(task.taskId).filter((s) => s.state === "RUNNING" && !s.error);
  expect(starts.map((s) => s.attempt)).toEqual([1, 2, 3]);
  const at = starts.map((s) => Date.parse(s.updatedAt));
  expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(200 - 20);
  expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(600 - 20);

  const asked = { ...enrichedTask("flaky", { failures: 1, retryAfterMs: 700 }), retryBackoff };
  await publishTask(w.nc, asked);
  await waitForSucceededAudit(asked.taskId);
  expect(w.events.audits(asked.taskId).find((a) => a.action === "attempt_failed")?.detail?.retryInMs).toBe(700);
});

test("a task past its expires_after is not run: CANCELLED, expired, audited; a later generation runs", async () => {
  const dueAt = new Date(Date.now() - 10_000).toISOString();
  const task = { ...enrichedTask("sleep", { ms: 10 }), createdAt: dueAt, expiresAfterMs: 5_000 };
  await publishTask(w.nc, task);
  await waitFor("the expired audit event", async () => {
    await refresh();
    return w.events.audits(task.taskId).some((a) => a.action === "expired");
  });
  const statuses = w.events.statuses(task.taskId);
  expect(statuses.map((s) => s.state)).toEqual(["CANCELLED"]); // never RUNNING: the handler did not start
  expect(statuses[0]?.error).toBe(
    `expired: not started by ${new Date(Date.parse(dueAt) + 5_000).toISOString()} (expires_after 5000 ms)`,
  );
  expect(w.events.audits(task.taskId)[0]?.detail).toMatchObject({ failedAttempts: 0 });
  expect(w.tasks.results(task.taskId)).toHaveLength(0);
  await waitFor(
    "the delivery acked",
    async () =>
      (await w.jsm.consumers.info("TASKS", durableName("worker", Subjects.workerMedium))).num_ack_pending === 0,
  );

  // A replay's generation is an operator's decision to run it now: not expired.
  const replayed = { ...task, generation: 1 };
  await createPublisher(w.nc).publish(Subjects.workerMedium, replayed, { msgId: `${task.taskId}:worker:1` });
  await waitForSucceededAudit(task.taskId);
});

test("a retry due after the task's expiry is not started: CANCELLED, counting the failed attempt", async () => {
  // Attempt 1 starts at once (well within 1 s); the handler asks for its retry 1.5 s later, past the expiry.
  const task = { ...enrichedTask("flaky", { failures: 1, retryAfterMs: 1_500 }), expiresAfterMs: 1_000 };
  await publishTask(w.nc, task);
  await waitFor("the expired audit event", async () => {
    await refresh();
    return w.events.audits(task.taskId).some((a) => a.action === "expired");
  });
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["attempt_failed", "expired"]);
  expect(w.events.statuses(task.taskId).at(-1)).toMatchObject({
    state: "CANCELLED",
    attempt: 1,
    error: expect.stringMatching(/^expired: not started by .* \(expires_after 1000 ms\) after 1 failed attempt$/),
  });
});

test("fail: five attempts, then FAILED and a dead letter with reason exhausted", async () => {
  const task = enrichedTask("fail", {});
  await publishTask(w.nc, task);
  await waitForDeadLetter(task.taskId);
  expect(w.events.deadLetters(task.taskId)[0]).toMatchObject({
    reason: "exhausted",
    attempts: 5,
    error: "task type fail always fails",
    consumer: durableName("worker", Subjects.workerMedium),
  });
  const statuses = w.events.statuses(task.taskId);
  expect(statuses.filter((s) => s.state === "RUNNING" && s.error).map((s) => s.attempt)).toEqual([1, 2, 3, 4]);
  expect(statuses.at(-1)).toMatchObject({ state: "FAILED", attempt: 5, error: "task type fail always fails" });
  expect(w.tasks.results(task.taskId)).toHaveLength(0);
});

test("an invalid payload for a known type is dead-lettered at once as rejected, naming the field", async () => {
  const task = enrichedTask("sleep", { ms: "x" });
  await publishTask(w.nc, task);
  await waitForDeadLetter(task.taskId);
  const [letter] = w.events.deadLetters(task.taskId);
  expect(letter).toMatchObject({ reason: "rejected", attempts: 1 });
  expect(letter?.error).toMatch(/invalid sleep payload: ms: /);
  expect(w.events.statuses(task.taskId).map((s) => s.state)).toEqual(["FAILED"]);
});

test("a task running past TASK_TIMEOUT_MS is aborted and retried", async () => {
  const task = enrichedTask("sleep", { ms: 20_000 });
  await publishTask(w.nc, task);
  await waitFor("second attempt", async () => {
    await refresh();
    return w.events.statuses(task.taskId).some((s) => s.state === "RUNNING" && s.attempt === 2);
  });
  const [firstFailure] = w.events.statuses(task.taskId).filter((s) => s.error);
  expect(firstFailure).toMatchObject({ attempt: 1, error: `timed out after ${TASK_TIMEOUT_MS} ms` });
  // Stop it for the rest of the file: the running attempt is aborted, a later one would see the marker and skip.
  await cancelAsGateway(w.redis, w.nc, task.taskId, "test done");
});

test("a task's own timeout replaces TASK_TIMEOUT_MS; with max_attempts 1 its first failure is final", async () => {
  const task = { ...enrichedTask("sleep", { ms: 20_000 }), timeoutMs: 150, maxAttempts: 1 };
  await publishTask(w.nc, task);
  await waitForDeadLetter(task.taskId);
  expect(w.events.deadLetters(task.taskId)[0]).toMatchObject({
    reason: "exhausted",
    attempts: 1,
    error: "timed out after 150 ms",
  });
  const statuses = w.events.statuses(task.taskId);
  expect(statuses.filter((s) => s.state === "RUNNING" && s.error)).toEqual([]);
  expect(statuses.at(-1)).toMatchObject({ state: "FAILED", attempt: 1, error: "timed out after 150 ms" });
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["failed"]);
});

test("a type's own timeoutMs replaces TASK_TIMEOUT_MS; a task's own timeout still comes first", async () => {
  const slow = defineHandler({
    type: "echo",
    payload: z.unknown(),
    timeoutMs: 150,
    run: (_payload, { signal }) => abortableDelay(20_000, signal),
  });
  const { attempt } = runnerWith(slow, 60_000);
  expect(await attempt(enrichedTask("echo", {}))).toMatchObject({
    name: "TaskTimeoutError",
    message: "timed out after 150 ms",
  });
  expect(await attempt({ ...enrichedTask("echo", {}), timeoutMs: 80 })).toMatchObject({
    message: "timed out after 80 ms",
  });
});

test("a type's heartbeatTimeoutMs aborts an attempt that reports no progress for that long, not one that does", async () => {
  const beating = (silentAfterMs: number) =>
    defineHandler({
      type: "echo",
      payload: z.unknown(),
      heartbeatTimeoutMs: 400,
      async run(_payload, { signal, reportProgress }) {
        // 1.2 s in all, three times the heartbeat timeout: reports every 25 ms until `silentAfterMs`.
        for (let elapsed = 0; elapsed < 1_200; elapsed += 25) {
          if (elapsed < silentAfterMs) reportProgress(elapsed / 12);
          await abortableDelay(25, signal);
        }
        return { done: true };
      },
    });
  expect(await runnerWith(beating(1_200), 60_000).attempt(enrichedTask("echo", {}))).toBeUndefined();
  // Silent after 100 ms: aborted by the heartbeat timeout, neither run to its end nor to its attempt timeout.
  expect(await runnerWith(beating(100), 60_000).attempt(enrichedTask("echo", {}))).toMatchObject({
    name: "TaskTimeoutError",
    message: "no progress reported for 400 ms (its heartbeat timeout)",
  });
  // A task's own heartbeat timeout comes first (SubmitTaskRequest.heartbeat_timeout).
  expect(
    await runnerWith(beating(100), 60_000).attempt({ ...enrichedTask("echo", {}), heartbeatTimeoutMs: 250 }),
  ).toMatchObject({ message: "no progress reported for 250 ms (its heartbeat timeout)" });
});

test("an attempt's failure repeats its last progress report, in its RUNNING and in FAILED: where it got to", async () => {
  const reporting = defineHandler({
    type: "echo",
    payload: z.unknown(),
    async run(_payload, { reportProgress }) {
      reportProgress(60, "uploading part 7", { part: 7 });
      throw new Error("the upload was refused");
    },
  });
  const runner = runnerWith(reporting, 60_000);
  const task = enrichedTask("echo", {});
  const failure = await runner.attempt(task);
  const ctx = { attempt: 1, deferrals: 0, signal: new AbortController().signal } as DeliveryContext;
  await runner.hooks.onRetry?.(task, failure, ctx, 1_000);
  await runner.hooks.onExhausted?.(task, failure, { ...ctx, attempt: 2 });
  await waitFor("FAILED", async () => {
    await refresh();
    return w.events.statuses(task.taskId).some((s) => s.state === "FAILED");
  });
  const statuses = w.events.statuses(task.taskId);
  const said = { progress: 60, progressMessage: "uploading part 7", progressDetails: { part: 7 } };
  expect(statuses.find((s) => s.state === "RUNNING" && s.error)).toMatchObject(said);
  expect(statuses.find((s) => s.state === "FAILED")).toMatchObject(said);
});

test("a type this worker has no handler for is retried later (a rollout not here yet), not failed at once", async () => {
  const failure = await runnerWith(undefined, 60_000).attempt(enrichedTask("resize", {}));
  expect(failure).toBeInstanceOf(RetryAfterError);
  expect(failure).toMatchObject({
    retryAfterMs: NO_HANDLER_RETRY_MS,
    message: expect.stringContaining('no handler for task type "resize" in this worker'),
  });
});

test("fail with max_attempts 2: two attempts, then FAILED and dead-lettered (not five)", async () => {
  const task = { ...enrichedTask("fail", {}), maxAttempts: 2 };
  await publishTask(w.nc, task);
  await waitForDeadLetter(task.taskId);
  expect(w.events.deadLetters(task.taskId)[0]).toMatchObject({ reason: "exhausted", attempts: 2 });
  const statuses = w.events.statuses(task.taskId);
  expect(statuses.filter((s) => s.state === "RUNNING" && s.error).map((s) => s.attempt)).toEqual([1]);
  expect(statuses.at(-1)).toMatchObject({ state: "FAILED", attempt: 2 });
});

test("max_attempts 1: a redelivery of an interrupted attempt is not run, even when the server did not count it", async () => {
  // What a SIGKILLed worker leaves behind: the attempt's RUNNING status, and (nats-server 2.9 can do this) the
  // message delivered again with the same delivery count, 1.
  const task = { ...enrichedTask("sleep", { ms: 10 }), maxAttempts: 1 };
  await applyStatus(
    w.redis,
    StatusEventSchema.parse(
      statusEvent({ taskId: task.taskId, state: "RUNNING", attempt: 1, source: "worker-killed" }),
    ),
  );
  await publishTask(w.nc, task);
  await waitForDeadLetter(task.taskId);
  expect(w.events.deadLetters(task.taskId)[0]).toMatchObject({
    reason: "exhausted",
    attempts: 1,
    error:
      "attempt 2 is past the task's limit of 1 (max_attempts): attempt 1 was interrupted (its process stopped or " +
      "crashed), and the task is not run again",
  });
  expect(w.events.statuses(task.taskId).map((s) => s.state)).toEqual(["FAILED"]);
  expect(w.tasks.results(task.taskId)).toEqual([]);
});

test("a cancel notice aborts a running sleep at once: no result, no status, message acked", async () => {
  // Shorter than the timeout, so only the cancel can stop it early.
  const task = enrichedTask("sleep", { ms: TASK_TIMEOUT_MS - 100 }, "low");
  await publishTask(w.nc, task);
  await waitFor("RUNNING", async () => {
    await refresh();
    return w.events.statuses(task.taskId).some((s) => s.state === "RUNNING");
  });
  await cancelAsGateway(w.redis, w.nc, task.taskId, "user asked");
  await waitFor("cancelled_while_running audit", async () => {
    await refresh();
    return w.events.audits(task.taskId).some((a) => a.action === "cancelled_while_running");
  });
  // "cancelled_while_running" is only written when the abort lands while the handler runs, so it proves the sleep
  // was cut short without timing it (a wall-clock bound would be flaky on a loaded CI machine).
  const consumer = durableName("worker", Subjects.workerLow);
  await waitFor("acked", async () => {
    const info = await w.jsm.consumers.info("TASKS", consumer);
    return (
      info.num_ack_pending === 0 && info.num_pending === 0 && info.ack_floor.stream_seq >= info.delivered.stream_seq
    );
  });
  await refresh();
  expect(w.tasks.results(task.taskId)).toHaveLength(0);
  expect(w.events.statuses(task.taskId).every((s) => s.state === "RUNNING" && !s.error)).toBe(true);
  expect((await w.jsm.consumers.info("TASKS", consumer)).num_redelivered).toBe(0);
});

test("a worker does not start when TASK_TYPES lists a type no handler module runs, its settings name an unknown type, or its pool gets no type", async () => {
  // Each stops its start with the variable and the problem (runService then exits 78), having taken no task.
  await expect(startWorker(infra, { TASK_TYPES: "resize" })).rejects.toThrow(
    'TASK_TYPES: no module in WORKER_HANDLER_MODULES (empty) has a handler for "resize"',
  );
  await expect(startWorker(infra, { WORKER_TYPE_RATES: "resize=1/s" })).rejects.toThrow(
    'WORKER_TYPE_RATES: "resize" is not a task type this worker runs (known: echo, sleep, checksum, flaky, fail)',
  );
  await expect(
    startWorker(infra, { TASK_TYPES: "resize", WORKER_HANDLER_MODULES: "./no/such/handlers.mjs" }),
  ).rejects.toThrow(/^WORKER_HANDLER_MODULES: \.\/no\/such\/handlers\.mjs: cannot be loaded: Cannot find module/);
  // A worker pool no route names (it would take nothing), and a pool worker without a handler for its pool's type.
  await expect(startWorker(infra, { WORKER_POOL: "gpu", TASK_ROUTES: "checksum=gpus" })).rejects.toThrow(
    'WORKER_POOL: no task type is routed to pool "gpu" (TASK_ROUTES: checksum=gpus): this worker would take no task',
  );
  await expect(
    startWorker(infra, { WORKER_POOL: "gpu", TASK_TYPES: "resize", TASK_ROUTES: "resize=gpu" }),
  ).rejects.toThrow('WORKER_POOL: no module in WORKER_HANDLER_MODULES (empty) has a handler for "resize"');
});

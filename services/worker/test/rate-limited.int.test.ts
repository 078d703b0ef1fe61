/**
 * A handler rate limited by its downstream (RateLimitedError): the delivery is put off and run again in the same
 * attempt, its type paused on this worker meanwhile, its slot free for other types; past WORKER_RATE_LIMIT_HOLD_MS
 * it is an ordinary retry. One slot (WORKER_CONCURRENCY 1), so "the slot is free" and "a buffered delivery of the
 * paused type waits" are both visible.
 */
import { durableName, StatusEventSchema, Subjects, statusEvent } from "@tm/flow";
import { applyStatus, extendTypeBackoff, handBacksOf, Keys, markCancelled, setWorkerQuiet } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { cancelAsGateway, enrichedTask, publishTask, useWatchedWorker } from "./support.js";

const HOLD_MS = 4_000;
const infra = useInfra();
// AckWait is 2 s here (support.ts): a wait longer than that is only survived with the queue's heartbeats.
const w = useWatchedWorker(infra, {
  WORKER_CONCURRENCY: "1",
  WORKER_RATE_LIMIT_HOLD_MS: String(HOLD_MS),
  WORKER_PAUSE_POLL_MS: "100",
});
// Each test starts with no back-off in force: none recorded, none applied.
beforeEach(async () => {
  await w.redis.del(Keys.typeBackoff("flaky"), Keys.typeBackoff("echo"));
  await waitFor("no type paused", async () => !w.service.started.limits.paused("flaky"));
});

async function waitForAudit(taskId: string, action: string) {
  await waitFor(`${action} audit of ${taskId}`, async () => {
    await Promise.all([w.events.refresh(), w.tasks.refresh()]);
    return w.events.audits(taskId).some((a) => a.action === action);
  });
  return w.events.audits(taskId).find((a) => a.action === action) as { at: string; detail?: Record<string, unknown> };
}

/** Until the worker's medium-priority consumer has nothing unacknowledged. */
async function waitUntilAcked() {
  await waitFor(
    "the delivery acked",
    async () =>
      (await w.jsm.consumers.info("TASKS", durableName("worker", Subjects.workerMedium))).num_ack_pending === 0,
  );
}

/** When the task's first RUNNING status (the handler's start) was published. */
function startedAt(taskId: string): number {
  const running = w.events.statuses(taskId).find((s) => s.state === "RUNNING");
  if (!running) throw new Error(`${taskId} never started`);
  return Date.parse(running.updatedAt);
}

test("rate limited twice: run again after each wait in the same attempt (max_attempts 1), past AckWait", async () => {
  const task = { ...enrichedTask("flaky", { failures: 0, rateLimits: 2, retryAfterMs: 1_200 }), maxAttempts: 1 };
  await publishTask(w.nc, task);
  await waitForAudit(task.taskId, "rate_limited");
  // The wait is shared with every worker (type_backoff:flaky, its TTL the wait), set by this one.
  await waitFor("the back-off recorded", async () => (await w.redis.pttl(Keys.typeBackoff("flaky"))) > 0);
  expect(await w.redis.pttl(Keys.typeBackoff("flaky"))).toBeLessThanOrEqual(1_200);
  expect(await w.redis.get(Keys.typeBackoff("flaky"))).toMatch(/^.+:\d+$/);
  // What the notifier stores meanwhile: attempt 1 started. Resuming it is not a redelivery of an interrupted attempt.
  await applyStatus(
    w.redis,
    StatusEventSchema.parse(statusEvent({ taskId: task.taskId, state: "RUNNING", attempt: 1, source: "worker" })),
  );
  await waitForAudit(task.taskId, "succeeded");
  const audits = w.events.audits(task.taskId);
  expect(audits.map((a) => a.action)).toEqual(["rate_limited", "rate_limited", "succeeded"]);
  expect(audits[0]?.detail).toMatchObject({ attempt: 1, retryInMs: 1_200, deferrals: 1 });
  expect(audits[1]?.detail).toMatchObject({ attempt: 1, retryInMs: 1_200, deferrals: 2 });
  expect(audits[1]?.detail?.error).toMatch(/run 2 of attempt 1 is rate limited/);
  const at = audits.map((a) => Date.parse(a.at));
  expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(1_200 - 30);
  expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(1_200 - 30);
  // One attempt: no failed attempt, no redelivery (2.4 s of waiting is past the 2 s AckWait), one result.
  expect(w.events.statuses(task.taskId).every((s) => s.attempt === 1 && !s.error)).toBe(true);
  expect(w.tasks.results(task.taskId)).toEqual([expect.objectContaining({ attempts: 1, output: { attempts: 1 } })]);
  const consumer = await w.jsm.consumers.info("TASKS", durableName("worker", Subjects.workerMedium));
  expect(consumer.num_redelivered).toBe(0);
});

test("while a type is paused, a buffered task of it waits for the pause's end and another type runs in the slot", async () => {
  const limited = enrichedTask("flaky", { failures: 0, rateLimits: 1, retryAfterMs: 2_500 });
  const sameType = enrichedTask("flaky", { failures: 0 });
  // Published together: the second is buffered behind the first (one slot) either before the pause begins (held
  // because the dispatcher then tracks its queue again: type-limits.unit.test.ts) or after.
  await publishTask(w.nc, limited);
  await publishTask(w.nc, sameType);
  const deferred = await waitForAudit(limited.taskId, "rate_limited");
  const other = enrichedTask("echo", { other: true });
  await publishTask(w.nc, other);
  // One after another: the StreamReader reads on from where it left off, and is not for concurrent refreshes.
  for (const task of [limited, sameType, other]) await waitForAudit(task.taskId, "succeeded");
  const pauseEnd = Date.parse(deferred.at) + 2_500;
  expect(startedAt(sameType.taskId)).toBeGreaterThanOrEqual(pauseEnd - 30);
  // The echo task used the slot the deferred delivery left free, long before the pause ended.
  expect(startedAt(other.taskId)).toBeLessThan(pauseEnd);
  expect(Date.parse(w.events.audits(limited.taskId).at(-1)?.at ?? "")).toBeGreaterThanOrEqual(pauseEnd - 30);
});

test("a task cancelled while its delivery waits is not run again", async () => {
  const task = enrichedTask("flaky", { failures: 0, rateLimits: 1, retryAfterMs: 1_000 });
  await publishTask(w.nc, task);
  await waitForAudit(task.taskId, "rate_limited");
  await markCancelled(w.redis, task.taskId, "user asked");
  await waitForAudit(task.taskId, "skipped_cancelled");
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["rate_limited", "skipped_cancelled"]);
  expect(w.tasks.results(task.taskId)).toHaveLength(0);
  await waitUntilAcked();
});

test("a task cancelled during a long wait is skipped on its cancel notice, not when the wait ends", async () => {
  const waitMs = 3_500;
  const task = enrichedTask("flaky", { failures: 0, rateLimits: 1, retryAfterMs: waitMs });
  await publishTask(w.nc, task);
  const limited = await waitForAudit(task.taskId, "rate_limited");
  // As the gateway cancels: the marker, then the notice.
  await cancelAsGateway(w.redis, w.nc, task.taskId, "user asked");
  const skipped = await waitForAudit(task.taskId, "skipped_cancelled");
  expect(Date.parse(skipped.at)).toBeLessThan(Date.parse(limited.at) + waitMs);
  expect(w.tasks.results(task.taskId)).toHaveLength(0);
  await waitUntilAcked();
});

test("past WORKER_RATE_LIMIT_HOLD_MS a RateLimitedError is an ordinary failed attempt (here the last: FAILED)", async () => {
  // Deferred at 0 ms and about 1.5 s (each wait fits in the 4 s), not at about 3 s: 3 + 1.5 s would pass it.
  const task = { ...enrichedTask("flaky", { failures: 0, rateLimits: 10, retryAfterMs: 1_500 }), maxAttempts: 1 };
  await publishTask(w.nc, task);
  await waitForAudit(task.taskId, "failed");
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["rate_limited", "rate_limited", "failed"]);
  expect(w.events.statuses(task.taskId).at(-1)).toMatchObject({
    state: "FAILED",
    attempt: 1,
    error: "flaky: run 3 of attempt 1 is rate limited (planned: 10)",
  });
  await waitFor("the dead letter", async () => {
    await w.events.refresh();
    return w.events.deadLetters(task.taskId).length === 1;
  });
  expect(w.events.deadLetters(task.taskId)[0]).toMatchObject({ reason: "exhausted", attempts: 1 });
});

test("a task whose expires_after passes while its started attempt waits is run again, not expired", async () => {
  const task = {
    ...enrichedTask("flaky", { failures: 0, rateLimits: 1, retryAfterMs: 1_200 }),
    expiresAfterMs: 600,
  };
  await publishTask(w.nc, task);
  await waitForAudit(task.taskId, "succeeded");
  expect(w.events.audits(task.taskId).map((a) => a.action)).toEqual(["rate_limited", "succeeded"]);
  expect(w.tasks.results(task.taskId)).toEqual([expect.objectContaining({ attempts: 1 })]);
});

test("a back-off another worker recorded (type_backoff) holds this worker's starts of the type until it is over", async () => {
  const setAt = Date.now();
  await extendTypeBackoff(w.redis, "flaky", 2_000, "another-worker:1");
  await waitFor("the worker to apply it", async () => w.service.started.limits.paused("flaky"));
  const held = enrichedTask("flaky", { failures: 0 });
  const other = enrichedTask("echo", { other: true });
  await publishTask(w.nc, held);
  await publishTask(w.nc, other);
  for (const task of [held, other]) await waitForAudit(task.taskId, "succeeded");
  // Its end as this worker computed it (poll time + the TTL left) may differ from setAt + 2 s by a poll's rounding.
  expect(startedAt(held.taskId)).toBeGreaterThanOrEqual(setAt + 2_000 - 100);
  expect(startedAt(other.taskId)).toBeLessThan(setAt + 2_000);
  expect(w.events.audits(held.taskId).map((a) => a.action)).toEqual(["succeeded"]); // nothing spent, nothing deferred
});

test("a delivery buffered before its type was paused is held too: the dispatcher looks at its buffer again", async () => {
  // One slot, taken by a sleep: the flaky task behind it is buffered (its type not even read: no limit yet).
  const blocker = enrichedTask("sleep", { ms: 1_500 });
  await publishTask(w.nc, blocker);
  await waitFor("the sleep to run", async () => w.service.started.dispatcher.inFlight === 1);
  const buffered = enrichedTask("flaky", { failures: 0 });
  await publishTask(w.nc, buffered);
  await waitFor("the flaky task buffered", async () => w.service.started.dispatcher.queued("medium") === 1);
  const setAt = Date.now();
  await extendTypeBackoff(w.redis, "flaky", 2_500, "another-worker:2");
  await waitFor("the worker to apply it", async () => w.service.started.limits.paused("flaky"));
  for (const task of [blocker, buffered]) await waitForAudit(task.taskId, "succeeded");
  // Without the second look it would have started as soon as the sleep ended, about 1 s before the back-off's end.
  expect(startedAt(buffered.taskId)).toBeGreaterThanOrEqual(setAt + 2_500 - 100);
});

test("a worker made quiet while a delivery waits out its rate limit keeps it and resumes it: the same attempt", async () => {
  const task = { ...enrichedTask("flaky", { failures: 0, rateLimits: 1, retryAfterMs: 1_200 }), maxAttempts: 1 };
  await publishTask(w.nc, task);
  await waitForAudit(task.taskId, "rate_limited");
  const workerId = w.service.started.workerId;
  const mark = { at: new Date().toISOString(), by: "test" };
  expect(await setWorkerQuiet(w.redis, workerId, true, mark)).toBe(true);
  try {
    await waitFor("quiet", () => w.service.started.dispatcher.quiet);
    await waitForAudit(task.taskId, "succeeded");
  } finally {
    await setWorkerQuiet(w.redis, workerId, false, mark);
    await waitFor("taking tasks again", () => !w.service.started.dispatcher.quiet);
  }
  expect(w.events.statuses(task.taskId).every((s) => s.attempt === 1 && !s.error)).toBe(true);
  expect(await handBacksOf(w.redis, task.taskId, task.generation)).toBe(0);
  const consumer = await w.jsm.consumers.info("TASKS", durableName("worker", Subjects.workerMedium));
  expect(consumer.num_redelivered).toBe(0);
});

/**
 * Delayed tasks (SubmitTaskRequest.run_at / delay) against a real nats-server and redis-server: a delayed task waits
 * PENDING in tasks_delayed and is queued once, at its time, in the trace it was submitted in, by whichever replica
 * takes it; a cancel, a retried submission, a requeue, a gateway that stops, NATS going away at its time, a failed
 * publish or a releaser that dies after taking it neither run it early, nor twice, nor lose it.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type AuditEvent, createPublisher, Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { createAdminClient, createTaskClient, Priority, RequeueResult, TaskState } from "@tm/proto";
import { applyStatus, Keys, readStatus, releaseDue } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startDelayedReleaser } from "../src/delayed-releaser.js";
import { event, type Gateway, startGateway, streamMessagesOf, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);

const ingested = (taskId: string) => streamMessagesOf(clients.nc, "TASKS", Subjects.ingest, taskId);
const audited = async (taskId: string): Promise<AuditEvent[]> =>
  (await streamMessagesOf(clients.nc, "EVENTS", Subjects.audit, taskId)).map((stored) => stored.message);
const inSet = async (key: string, taskId: string) => (await clients.redis.zscore(key, taskId)) !== null;
const delayMs = (ms: number) =>
  ({
    case: "delay",
    value: create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 }),
  }) as const;

function client(gateway: Gateway) {
  return createTaskClient({ baseUrl: gateway.baseUrl });
}

/** Submits an echo task delayed by `ms`; returns its id and release time as the gateway recorded it. */
async function submitDelayed(gateway: Gateway, ms: number, idempotencyKey = "") {
  const { taskId } = await client(gateway).submitTask({
    type: "echo",
    priority: Priority.HIGH,
    payload: { ms },
    idempotencyKey,
    schedule: delayMs(ms),
  });
  const { task } = await client(gateway).getTask({ taskId });
  return { taskId, runAt: timestampDate(task!.runAt!) };
}

/** Waits until the task's tasks.ingest message is in the stream; returns every one there is. */
async function waitUntilIngested(taskId: string, timeoutMs = 15_000) {
  await waitFor(`task ${taskId}'s tasks.ingest message`, async () => (await ingested(taskId)).length > 0, {
    timeoutMs,
  });
  return ingested(taskId);
}

describe("released by the gateways' pollers", () => {
  // Two replicas polling every 100 ms, as a deployment's replicas do.
  let gateways: Gateway[];
  beforeAll(async () => {
    const env = { GATEWAY_DELAYED_POLL_MS: "100", GATEWAY_MAX_DELAY_SECONDS: "60" };
    gateways = await Promise.all([startGateway(infra, env), startGateway(infra, env)]);
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
  });

  test("waits PENDING with its time, then is queued once at that time, in its submission's trace, and audited", async () => {
    const before = Date.now();
    const { taskId, runAt } = await submitDelayed(gateways[0]!, 800);
    expect(runAt.getTime()).toBeGreaterThanOrEqual(before + 800);
    const { task } = await client(gateways[1]!).getTask({ taskId });
    expect(task?.status?.state).toBe(TaskState.PENDING);
    expect(await inSet(Keys.delayed, taskId)).toBe(true);
    expect(await ingested(taskId)).toEqual([]);
    const stats = await createAdminClient({ baseUrl: gateways[1]!.baseUrl }).getQueueStats({});
    expect(stats.delayedTasks).toBeGreaterThanOrEqual(1n);

    const queued = await waitUntilIngested(taskId);
    expect(queued.map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
    expect(queued[0]!.storedAt.getTime()).toBeGreaterThanOrEqual(runAt.getTime());
    expect(queued[0]!.message).toMatchObject({ taskId, type: "echo", priority: "high", payload: { ms: 800 } });
    expect(queued[0]!.message.traceparent?.split("-")[1]).toBe(task?.traceId);
    expect(await inSet(Keys.delayed, taskId)).toBe(false);
    await waitFor("the task to leave tasks_unqueued", async () => !(await inSet(Keys.unqueued, taskId)));

    await waitFor("the released audit event", async () => (await audited(taskId)).length === 2);
    const [submitted, released] = await audited(taskId);
    expect(submitted).toMatchObject({ action: "submitted", detail: { runAt: runAt.toISOString() } });
    expect(released).toMatchObject({ service: "gateway", action: "released", detail: { runAt: runAt.toISOString() } });
    expect(released?.detail?.lateMs).toBeGreaterThanOrEqual(0);
  });

  test("PromoteTask: a task delayed for most of a minute is queued at once, due now, audited; then it is not waiting", async () => {
    const { taskId, runAt } = await submitDelayed(gateways[0]!, 50_000);
    const before = Date.now();
    const promoted = await client(gateways[1]!).promoteTask({ taskId });
    expect(timestampDate(promoted.previousRunAt!).getTime()).toBe(runAt.getTime());
    const dueNow = timestampDate(promoted.runAt!);
    expect(dueNow.getTime()).toBeGreaterThanOrEqual(before);
    const queued = await waitUntilIngested(taskId, 10_000);
    expect(queued.map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
    expect(queued[0]!.storedAt.getTime()).toBeLessThan(runAt.getTime() - 30_000);
    // Its run_at is now the promotion's time: expires_after and the end-to-end latency count from it.
    expect(queued[0]!.message.runAt).toBe(dueNow.toISOString());
    expect(timestampDate((await client(gateways[0]!).getTask({ taskId })).task!.runAt!)).toEqual(dueNow);
    await waitFor("the released audit event", async () => (await audited(taskId)).length === 3);
    const [, promotedEvent, released] = await audited(taskId);
    expect(promotedEvent).toMatchObject({
      action: "promoted",
      detail: { previousRunAt: runAt.toISOString(), runAt: dueNow.toISOString() },
    });
    expect(released).toMatchObject({ action: "released", detail: { runAt: dueNow.toISOString() } });

    const again = await client(gateways[0]!)
      .promoteTask({ taskId })
      .catch((error: unknown) => error);
    expect(again).toBeInstanceOf(ConnectError);
    expect(again).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: `task ${taskId} is not waiting for its time: it was released already (it is PENDING)`,
    });
  });

  test("PromoteTask refuses, naming why: a task never delayed, a cancelled one, an unknown one, a malformed id", async () => {
    const refusal = (taskId: string) =>
      client(gateways[0]!)
        .promoteTask({ taskId })
        .then(
          () => undefined,
          (error: unknown) => ({ code: (error as ConnectError).code, message: (error as ConnectError).rawMessage }),
        );
    const { taskId: now } = await client(gateways[0]!).submitTask({ type: "echo", payload: {} });
    expect(await refusal(now)).toEqual({
      code: Code.FailedPrecondition,
      message: `task ${now} is not waiting for its time: it was not submitted with run_at or delay`,
    });
    const { taskId: cancelled } = await submitDelayed(gateways[0]!, 50_000);
    await client(gateways[0]!).cancelTask({ taskId: cancelled });
    expect(await refusal(cancelled)).toEqual({
      code: Code.FailedPrecondition,
      message: `task ${cancelled} is not waiting for its time: it is CANCELLED`,
    });
    const unknown = crypto.randomUUID();
    expect(await refusal(unknown)).toEqual({ code: Code.NotFound, message: `task ${unknown} not found` });
    expect((await refusal("nope"))?.code).toBe(Code.InvalidArgument);
  });

  test("many due at once are each queued exactly once, and audited released once", async () => {
    const tasks = await Promise.all(Array.from({ length: 30 }, (_, i) => submitDelayed(gateways[i % 2]!, 800)));
    for (const { taskId } of tasks) {
      const queued = await waitUntilIngested(taskId);
      expect(queued).toHaveLength(1);
    }
    await waitFor("every released audit event", async () => {
      const events = await Promise.all(tasks.map(({ taskId }) => audited(taskId)));
      return events.every((list) => list.filter((e) => e.action === "released").length === 1);
    });
  });

  test("cancelled before its time, it leaves tasks_delayed and is never queued", async () => {
    const cancelledTask = await submitDelayed(gateways[0]!, 400);
    const { status } = await client(gateways[0]!).cancelTask({ taskId: cancelledTask.taskId, reason: "not needed" });
    expect(status?.state).toBe(TaskState.CANCELLED);
    await waitFor(
      "the cancel to take it out of tasks_delayed",
      async () => !(await inSet(Keys.delayed, cancelledTask.taskId)),
    );
    // As if that removal had failed (or raced the releaser): the releaser finds it CANCELLED and drops it.
    await clients.redis.zadd(Keys.delayed, Date.now(), cancelledTask.taskId);
    const later = await submitDelayed(gateways[1]!, 500);
    await waitUntilIngested(later.taskId);
    await waitFor("the cancelled task to be dropped", async () => !(await inSet(Keys.delayed, cancelledTask.taskId)));
    expect(await ingested(cancelledTask.taskId)).toEqual([]);
    expect(await inSet(Keys.unqueued, cancelledTask.taskId)).toBe(false);
    expect((await readStatus(clients.redis, cancelledTask.taskId))?.state).toBe("CANCELLED");
  });

  test("a retry with its idempotency key answers the same task and does not queue it early", async () => {
    const key = `delayed-${crypto.randomUUID()}`;
    const first = await submitDelayed(gateways[0]!, 1_000, key);
    const retry = await client(gateways[1]!).submitTask({
      type: "echo",
      priority: Priority.HIGH,
      idempotencyKey: key,
      schedule: delayMs(1_000),
    });
    expect(retry).toMatchObject({ taskId: first.taskId, deduplicated: true });
    expect(await ingested(first.taskId)).toEqual([]);
    const queued = await waitUntilIngested(first.taskId);
    expect(queued).toHaveLength(1);
    expect(queued[0]!.storedAt.getTime()).toBeGreaterThanOrEqual(first.runAt.getTime());
  });

  test("RequeueTasks refuses a delayed task before its time: it is waiting, not stalled", async () => {
    const { taskId, runAt } = await submitDelayed(gateways[0]!, 30_000);
    const admin = createAdminClient({ baseUrl: gateways[0]!.baseUrl });
    const { outcomes } = await admin.requeueTasks({ taskIds: [taskId], stalledForSeconds: 0 });
    expect(outcomes[0]?.result).toBe(RequeueResult.FAILED_PRECONDITION);
    expect(outcomes[0]?.reason).toBe(
      `it is delayed until ${runAt.toISOString()}: the gateway queues it then (cancel it instead to drop it)`,
    );
    expect(await inSet(Keys.delayed, taskId)).toBe(true);
    await client(gateways[0]!).cancelTask({ taskId });
  });

  test("a delay past GATEWAY_MAX_DELAY_SECONDS is INVALID_ARGUMENT naming the field, and nothing is stored", async () => {
    const before = await clients.redis.zcard(Keys.taskIndex);
    const error = await client(gateways[0]!)
      .submitTask({ type: "echo", schedule: delayMs(61_000) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toBe(
      "delay: 61 s exceeds the maximum of 60 s (GATEWAY_MAX_DELAY_SECONDS)",
    );
    expect(await clients.redis.zcard(Keys.taskIndex)).toBe(before);
  });
});

test("a task delayed on a gateway that stops is queued by another replica at its time", async () => {
  const first = await startGateway(infra, { GATEWAY_DELAYED_POLL_MS: "100" });
  const { taskId, runAt } = await submitDelayed(first, 1_000);
  await first.stop();
  const second = await startGateway(infra, { GATEWAY_DELAYED_POLL_MS: "100" });
  try {
    const queued = await waitUntilIngested(taskId);
    expect(queued).toHaveLength(1);
    expect(queued[0]!.storedAt.getTime()).toBeGreaterThanOrEqual(runAt.getTime());
  } finally {
    await second.stop();
  }
});

test("NATS down at its time: the task waits and is queued once JetStream is back, never failed", async () => {
  const gateway = await startGateway(infra, { GATEWAY_DELAYED_POLL_MS: "100", GATEWAY_REQUEUE_AFTER_MS: "300" });
  try {
    const { taskId, runAt } = await submitDelayed(gateway, 300);
    await infra.nats.stop();
    // The outage spans the task's time and several of the releaser's rounds.
    await waitFor("the task's time to pass, with rounds to spare", () => Date.now() > runAt.getTime() + 500);
    expect(await inSet(Keys.delayed, taskId)).toBe(true);
    expect(await inSet(Keys.unqueued, taskId)).toBe(false);
    await infra.nats.start();

    const queued = await waitUntilIngested(taskId, 30_000);
    expect(queued.map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
    expect((await readStatus(clients.redis, taskId))?.state).toBe("PENDING");
    await waitFor("the released audit event", async () => (await audited(taskId)).some((e) => e.action === "released"));
    const released = (await audited(taskId)).find((e) => e.action === "released");
    expect(released?.detail?.lateMs).toBeGreaterThanOrEqual(500);
  } finally {
    await gateway.stop();
  }
});

describe("one release round at a time", () => {
  // The gateway's own releaser polls every ten minutes: the test runs the rounds. Its requeue sweeper is quick.
  const g = useGateway(infra, { GATEWAY_DELAYED_POLL_MS: "600000", GATEWAY_REQUEUE_AFTER_MS: "300" });

  async function round(rt: Runtime, shedding?: () => string | undefined) {
    const releaser = startDelayedReleaser(rt, { pollMs: 600_000, ...(shedding ? { shedding } : {}) });
    try {
      return await releaser.release();
    } finally {
      await releaser.stop();
    }
  }

  test("PromoteTask queues the task at once: the gateway runs a round then, not at its next (ten minutes away)", async () => {
    const { taskId } = await submitDelayed(g.gateway, 50_000);
    await client(g.gateway).promoteTask({ taskId });
    const queued = await waitUntilIngested(taskId, 5_000);
    expect(queued.map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
  });

  test("while the gateway sheds load a due task waits in tasks_delayed, and the first round after queues it", async () => {
    const { taskId, runAt } = await submitDelayed(g.gateway, 50);
    await waitFor("the task to be due", () => Date.now() >= runAt.getTime());
    // Queued now, its message would add to a stream whose limits may discard waiting ones (backlog-shedding.ts).
    const shedding = () =>
      "the pipeline is shedding load: the backlog of consumer x is at 85 % of stream TASKS's limits";
    expect(await round(g.gateway.runtime, shedding)).toEqual({ released: 0, dropped: 0, returned: 0 });
    expect(await inSet(Keys.delayed, taskId)).toBe(true);
    expect(await ingested(taskId)).toEqual([]);
    expect(await round(g.gateway.runtime, () => undefined)).toMatchObject({ released: 1 });
    expect((await ingested(taskId)).map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
  });

  test("a publish that fails puts the task back, due at once; the next round queues it", async () => {
    const { taskId, runAt } = await submitDelayed(g.gateway, 50);
    const lost = await connect({ servers: infra.nats.url });
    const publisher = createPublisher(lost);
    await lost.close();
    await waitFor("the task to be due", () => Date.now() >= runAt.getTime());

    const failed = await round({ ...g.gateway.runtime, publisher } as Runtime);
    expect(failed).toEqual({ released: 0, dropped: 0, returned: 1 });
    expect(await inSet(Keys.delayed, taskId)).toBe(true);
    expect(await inSet(Keys.unqueued, taskId)).toBe(false);
    expect(await ingested(taskId)).toEqual([]);

    expect(await round(g.gateway.runtime)).toEqual({ released: 1, dropped: 0, returned: 0 });
    expect((await ingested(taskId)).map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
    expect(await inSet(Keys.unqueued, taskId)).toBe(false);
  });

  test("a releaser that dies after taking the task leaves it to the requeue sweeper, which queues it once", async () => {
    const { taskId, runAt } = await submitDelayed(g.gateway, 50);
    await waitFor("the task to be due", () => Date.now() >= runAt.getTime());
    // Taken (moved to tasks_unqueued), then nothing: the releaser's process died before publishing.
    expect((await releaseDue(clients.redis, Date.now(), 1_000)).map((e) => e.taskId)).toContain(taskId);
    const queued = await waitUntilIngested(taskId);
    expect(queued.map((q) => q.msgId)).toEqual([`${taskId}:ingest:0`]);
    await waitFor("the task to leave tasks_unqueued", async () => !(await inSet(Keys.unqueued, taskId)));
    await waitFor("the requeued audit event", async () => (await audited(taskId)).some((e) => e.action === "requeued"));
  });

  test("a task that waited for dependencies, its release cut short: the sweeper's message keeps its release time", async () => {
    const { taskId: dependency } = await client(g.gateway).submitTask({ type: "echo", priority: Priority.HIGH });
    const { taskId } = await client(g.gateway).submitTask({
      type: "echo",
      priority: Priority.HIGH,
      dependsOn: [dependency],
      expiresAfter: create(DurationSchema, { seconds: 600n }),
    });
    // Submitted a while before its dependency finished: its expiry must count from its release, not from then.
    const { task } = await client(g.gateway).getTask({ taskId });
    const submittedMs = timestampDate(task!.createdAt!).getTime();
    await waitFor("a moment after the submission", () => Date.now() > submittedMs + 200);
    await applyStatus(clients.redis, event({ taskId: dependency, state: "SUCCEEDED", generation: 0 }));
    const releasedAt = Date.now();
    expect((await releaseDue(clients.redis, releasedAt, 1_000)).map((e) => e.taskId)).toContain(taskId);
    // Nothing published: the releaser died. The sweeper queues it from its record.
    const [queued] = await waitUntilIngested(taskId);
    expect(queued?.message.runAt).toBeDefined();
    expect(Date.parse(queued?.message.runAt ?? "")).toBeGreaterThanOrEqual(releasedAt - 1_000);
    expect(Date.parse(queued?.message.runAt ?? "")).toBeGreaterThan(submittedMs + 200);
    await waitFor("the requeued audit event", async () => (await audited(taskId)).some((e) => e.action === "requeued"));
  });

  test("a task whose PENDING write was lost gets it, then is queued", async () => {
    const { taskId, runAt } = await submitDelayed(g.gateway, 50);
    await clients.redis.del(Keys.status(taskId));
    await waitFor("the task to be due", () => Date.now() >= runAt.getTime());
    expect(await round(g.gateway.runtime)).toEqual({ released: 1, dropped: 0, returned: 0 });
    expect(await readStatus(clients.redis, taskId)).toMatchObject({ state: "PENDING", generation: 0 });
    expect(await ingested(taskId)).toHaveLength(1);
  });

  test("a task cancelled, expired or requeued meanwhile is dropped, not queued", async () => {
    const cancelled = await submitDelayed(g.gateway, 50);
    await client(g.gateway).cancelTask({ taskId: cancelled.taskId });
    const expired = await submitDelayed(g.gateway, 50);
    const requeued = await submitDelayed(g.gateway, 50);
    await clients.redis.zadd(Keys.delayed, Date.now(), cancelled.taskId);
    await clients.redis.del(Keys.task(expired.taskId), Keys.status(expired.taskId));
    await clients.redis.hset(Keys.task(requeued.taskId), "generation", "1");
    await waitFor("every task to be due", () => Date.now() >= requeued.runAt.getTime());

    expect(await round(g.gateway.runtime)).toEqual({ released: 0, dropped: 3, returned: 0 });
    for (const { taskId } of [cancelled, expired, requeued]) {
      expect(await ingested(taskId)).toEqual([]);
      expect(await inSet(Keys.delayed, taskId)).toBe(false);
      expect(await inSet(Keys.unqueued, taskId)).toBe(false);
    }
  });
});

/**
 * Stalled tasks (GetQueueStats.stalled_tasks, the tm_tasks_stalled gauge) against real nats-server and redis-server,
 * with the gateway in this process and ingest's durable created but not consuming: tasks whose messages wait in the
 * queue are not stalled however long they wait; once their messages are lost (deleted from the stream, as a full
 * stream discards them) they are, after GATEWAY_STALLED_AFTER_SECONDS; a requeue or a cancel takes each out again,
 * and a delayed task is not stalled before its time. The gateway's own requeue of what a count found (its round, with
 * GATEWAY_STALLED_REQUEUE_LIMIT) is run here by the test, on the file's gateway (which itself only counts: limit 0).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { type Io, run } from "@tm/client";
import { parseTaskRoutes, provisionConsumer, Subjects } from "@tm/flow";
import { loadConfig } from "@tm/kit";
import { type ListTasksRequestSchema, TaskState } from "@tm/proto";
import { applyStatus, forgetUnfinished, forgetWorker, Keys, reportWorker, type WorkerReport } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { QueueStats } from "../src/queue-stats.js";
import { gateway } from "../src/service.js";
import { countStalledTasks, requeueStalledTasks, stalledRound } from "../src/stalled-tasks.js";
import { event, storedMessagesOf, streamMessagesOf, useGateway } from "./helpers.js";

const infra = useInfra();
const g = useGateway(infra, { GATEWAY_STALLED_AFTER_SECONDS: "1", GATEWAY_STALLED_REQUEUE_LIMIT: "0" });
let nc: NatsConnection;
let redis: Redis;

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  redis = new Redis(infra.redis.url);
  // As the ingest service would at its start: its queue then holds the gateway's messages until they are handled.
  await provisionConsumer(await nc.jetstreamManager(), "ingest", Subjects.ingest);
});
afterAll(async () => {
  await nc?.close();
  redis?.disconnect();
});

/** The file's gateway's Prometheus exposition. */
const gatewayMetrics = async () => (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();

const listed = async (request: MessageInitShape<typeof ListTasksRequestSchema>) =>
  (await g.admin.listTasks(request)).tasks.map((task) => task.taskId);

/** Each task's stall clock (its tasks_unfinished score). */
const clocks = async (taskIds: string[]) =>
  new Map(await Promise.all(taskIds.map(async (id) => [id, Number(await redis.zscore(Keys.unfinished, id))] as const)));
const byStallClock = (clock: Map<string, number>) => (x: string, y: string) =>
  clock.get(x)! - clock.get(y)! || (x < y ? -1 : 1);

/** A live worker's report, running `taskId`. */
const workerRunning = (id: string, taskId: string): WorkerReport => ({
  id,
  host: id.split(":")[0]!,
  pid: 1,
  startedAtMs: Date.now(),
  concurrency: 4,
  queued: 0,
  pausedQueues: [],
  runningCount: 1,
  running: [{ taskId, type: "echo", priority: "medium", attempt: 1, startedAtMs: Date.now() }],
  seenAtMs: Date.now(),
});

const auditedOf = async (taskId: string) =>
  (await streamMessagesOf(nc, "EVENTS", Subjects.audit, taskId)).map((stored) => stored.message);

const stalled = async () => {
  const stats = await g.admin.getQueueStats({});
  return { count: Number(stats.stalledTasks), all: stats.stalledTasksExaminedAll, after: stats.stalledAfterSeconds };
};

/** Deletes the task's messages from TASKS, as a stream at its limits discards its oldest. */
async function loseMessagesOf(taskIds: readonly string[]): Promise<void> {
  const jsm = await nc.jetstreamManager();
  for await (const stored of storedMessagesOf(nc, "TASKS")) {
    const msgId = stored.header?.get("Nats-Msg-Id") ?? "";
    if (taskIds.some((id) => msgId.startsWith(`${id}:`))) await jsm.streams.deleteMessage("TASKS", stored.seq);
  }
}

test("waiting in the queue is not stalled; lost messages are, until a requeue or a cancel moves their tasks", async () => {
  const submitted = Date.now();
  const [a, b] = await Promise.all([
    g.client.submitTask({ type: "echo", payload: { n: 1 } }),
    g.client.submitTask({ type: "echo", payload: { n: 2 } }),
  ]);
  // Delayed an hour: its stall clock starts at its release time.
  const delayed = await g.client.submitTask({
    type: "echo",
    schedule: { case: "delay", value: create(DurationSchema, { seconds: 3600n }) },
  });
  const { task } = await g.client.getTask({ taskId: delayed.taskId });
  expect(await redis.zscore(Keys.unfinished, delayed.taskId)).toBe(String(timestampDate(task!.runAt!).getTime()));
  await waitFor("the threshold to pass", () => Date.now() - submitted > 1_500);
  // Both unchanged past the threshold, but their messages wait in ingest's queue: a backlog, not a stall. Listed by
  // stalled_for_seconds (unchanged that long), not by `stalled` (what the count counts).
  expect(await stalled()).toEqual({ count: 0, all: true, after: 1 });
  expect(await listed({ stalledForSeconds: 1 })).toEqual(expect.arrayContaining([a.taskId, b.taskId]));
  expect(await listed({ stalled: true })).toEqual([]);

  await loseMessagesOf([a.taskId, b.taskId]);
  expect(await stalled()).toEqual({ count: 2, all: true, after: 1 });
  // Listed longest unmoved first (ties by id), a page at a time, with the other filters applied.
  const [first, second] = [a.taskId, b.taskId].sort(byStallClock(await clocks([a.taskId, b.taskId])));
  expect(await listed({ stalled: true })).toEqual([first, second]);
  const page1 = await g.admin.listTasks({ stalled: true, pageSize: 1 });
  expect(page1.tasks.map((t) => t.taskId)).toEqual([first]);
  const page2 = await g.admin.listTasks({ stalled: true, pageSize: 1, pageToken: page1.nextPageToken });
  expect(page2.tasks.map((t) => t.taskId)).toEqual([second]);
  expect(page2.nextPageToken).toBe(""); // nothing after it
  expect(await listed({ stalled: true, query: b.taskId.slice(0, 8) })).toEqual([b.taskId]);
  await expect(g.admin.listTasks({ stalled: true, state: TaskState.FAILED })).rejects.toThrow(
    /stalled: only unfinished tasks stall/,
  );

  // A cancel finishes b (no stage runs to see it: the gateway itself writes CANCELLED of a PENDING task).
  await g.client.cancelTask({ taskId: b.taskId });
  await waitFor(
    "b CANCELLED",
    async () => (await g.client.getTask({ taskId: b.taskId })).task?.status?.state === TaskState.CANCELLED,
  );
  expect(await redis.zscore(Keys.unfinished, b.taskId)).toBeNull();
  expect((await stalled()).count).toBe(1);
  // A requeue queues a new generation of a: its message waits in the queue again.
  const { outcomes } = await g.admin.requeueTasks({ taskIds: [a.taskId], stalledForSeconds: 1 });
  expect(outcomes[0]?.generation).toBe(1);
  expect((await stalled()).count).toBe(0);
});

test("the gateway requeues a stalled task on its own, at most GATEWAY_STALLED_REQUEUE_LIMIT times; a RUNNING one only after its own timeout", async () => {
  const rt = g.gateway.runtime;
  const queueStats = new QueueStats(rt.nats.jsm, ["TASKS", "EVENTS"]);
  const options = { afterMs: 1_000, retentionMs: 86_400_000 };
  const stalledNow = async () => {
    const found = await countStalledTasks(rt, () => queueStats.read(), options);
    const ours = [lost.taskId, running.taskId, finished.taskId, working.taskId];
    return found.tasks.filter((task) => ours.includes(task.taskId));
  };
  // An older message in ingest's queue (the last test's requeue) would, rightly, hide these tasks' stalls.
  const jsm = await nc.jetstreamManager();
  await jsm.streams.purge("TASKS", { filter: Subjects.ingest });
  const lost = await g.client.submitTask({ type: "echo", payload: { lost: true } });
  // Its result stored: it finished, only its status lags.
  const finished = await g.client.submitTask({ type: "echo", payload: { finished: true } });
  await redis.set(Keys.result(finished.taskId), JSON.stringify({ taskId: finished.taskId, output: {}, generation: 0 }));
  // RUNNING with its own timeout of an hour: its handler may run that long though its message is gone.
  const running = await g.client.submitTask({
    type: "echo",
    timeout: create(DurationSchema, { seconds: 3600n }),
  });
  await applyStatus(redis, event({ taskId: running.taskId, state: "RUNNING", generation: 0 }));
  // RUNNING, and a live worker reports running it: whatever the times (a host's clock off), it is not lost.
  const working = await g.client.submitTask({ type: "echo", payload: { working: true } });
  await applyStatus(redis, event({ taskId: working.taskId, state: "RUNNING", generation: 0 }));
  await reportWorker(redis, workerRunning("host-a:1", working.taskId), 60_000);
  const since = Date.now();
  await waitFor("the threshold to pass", () => Date.now() - since > 1_500);
  await loseMessagesOf([lost.taskId, running.taskId, finished.taskId, working.taskId]);
  expect(await stalledNow()).toEqual([{ taskId: lost.taskId, state: "PENDING", autoRequeues: 0 }]);
  // Once no worker reports it, it counts (then it is left out of this test: forgotten by the index).
  await forgetWorker(redis, "host-a:1");
  expect(await stalledNow()).toContainEqual({ taskId: working.taskId, state: "RUNNING", autoRequeues: 0 });
  await forgetUnfinished(redis, [working.taskId]);

  // Status events waiting for the notifier (here: a notifier durable that has read none of the stream's) may be any
  // task's: while the oldest is older than the task's last change, the task's status may only lag, and nothing counts.
  const notifierDurable = await provisionConsumer(jsm, "notifier", Subjects.status);
  expect(await stalledNow()).toEqual([]);
  expect(await requeueStalledTasks(rt, [], { afterMs: 1_000, limit: 1 })).toEqual({ requeued: 0, skipped: 0 });
  await jsm.consumers.delete("EVENTS", notifierDurable);

  const requeuedFrom: string[] = [];
  const round = await requeueStalledTasks(rt, await stalledNow(), { afterMs: 1_000, limit: 1 }, (state) =>
    requeuedFrom.push(state),
  );
  expect(round).toEqual({ requeued: 1, skipped: 0 });
  expect(requeuedFrom).toEqual(["PENDING"]);
  expect(await redis.hmget(Keys.task(lost.taskId), "generation", "autoRequeues")).toEqual(["1", "1"]);
  const audit = (await auditedOf(lost.taskId)).find((e) => e.action === "requeued_stalled");
  expect(audit?.detail).toMatchObject({ generation: 1, previousState: "PENDING", automatic: true });
  // Its new generation's message waits in the queue again: not stalled.
  expect(await stalledNow()).toEqual([]);

  // Lost again: counted, but past its limit it is left for an operator (and stays counted).
  const requeuedAt = Date.now();
  await waitFor("the threshold to pass again", () => Date.now() - requeuedAt > 1_500);
  await loseMessagesOf([lost.taskId]);
  const again = await stalledNow();
  expect(again).toEqual([{ taskId: lost.taskId, state: "PENDING", autoRequeues: 1 }]);
  expect(await requeueStalledTasks(rt, again, { afterMs: 1_000, limit: 1 })).toEqual({ requeued: 0, skipped: 1 });
  expect(await redis.hget(Keys.task(lost.taskId), "generation")).toBe("1");
  // An operator's requeue is not limited (nor counted).
  const { outcomes } = await g.admin.requeueTasks({ taskIds: [lost.taskId], stalledForSeconds: 1 });
  expect(outcomes[0]?.generation).toBe(2);
  expect(await redis.hget(Keys.task(lost.taskId), "autoRequeues")).toBe("1");

  // A result of an earlier generation does not say the current one finished (here: as if it had been requeued since).
  await redis.hset(Keys.task(finished.taskId), "generation", 1);
  await loseMessagesOf([lost.taskId]); // its requeued message, newer than the finished task's change, would hide it
  expect(await stalledNow()).toContainEqual({ taskId: finished.taskId, state: "PENDING", autoRequeues: 0 });
});

test("taskctl requeue --all-stalled requeues every stalled task its filter matches, and only those; again, none", async () => {
  // Older messages in ingest's queue (the earlier tests' requeues) would, rightly, hide these tasks' stalls.
  const jsm = await nc.jetstreamManager();
  await jsm.streams.purge("TASKS", { filter: Subjects.ingest });
  const submit = (type: string) => g.client.submitTask({ type, payload: { ms: 1 } });
  const lost = (await Promise.all([submit("sleep"), submit("sleep"), submit("sleep")])).map((r) => r.taskId);
  const otherType = (await submit("echo")).taskId;
  const submitted = Date.now();
  await loseMessagesOf([...lost, otherType]);
  await waitFor("the threshold to pass", () => Date.now() - submitted > 1_500);
  expect(new Set(await listed({ stalled: true, type: "sleep" }))).toEqual(new Set(lost));
  expect(await listed({ stalled: true, type: "echo" })).toContain(otherType);

  const taskctl = async (...args: string[]) => {
    let stdout = "";
    const io: Io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true }, env: {} };
    const code = await run([...args, "--addr", g.gateway.baseUrl], io);
    return { code, stdout };
  };
  const first = await taskctl("requeue", "--all-stalled", "--type", "sleep");
  expect(first.code).toBe(0);
  const rows = first.stdout.trim().split("\n");
  expect(rows.at(-1)).toBe("3 requeued");
  for (const id of lost) {
    expect(rows).toContainEqual(expect.stringMatching(new RegExp(`^${id}\\s+pending\\s+requeued\\s+generation 1`)));
    expect(await redis.hget(Keys.task(id), "generation")).toBe("1");
  }
  // Not of the type asked for: left as it was, still stalled.
  expect(first.stdout).not.toContain(otherType);
  expect(await redis.hget(Keys.task(otherType), "generation")).toBe("0");

  // The requeued tasks' messages now wait in the queue: nothing is stalled any more, nothing is requeued.
  expect(await taskctl("requeue", "--all-stalled", "--type", "sleep", "--json")).toEqual({ code: 0, stdout: "" });
  await jsm.streams.purge("TASKS", { filter: Subjects.ingest });
});

test("GATEWAY_STALLED_AFTER_SECONDS defaults to 600 s, GATEWAY_STALLED_REQUEUE_LIMIT to 3, GATEWAY_STALLED_CHECK_SECONDS to 15, and a bad value names the variable", () => {
  const shape = gateway.config ?? {};
  expect(loadConfig(shape, {}).GATEWAY_STALLED_AFTER_SECONDS).toBe(600);
  expect(() => loadConfig(shape, { GATEWAY_STALLED_AFTER_SECONDS: "0" })).toThrow("GATEWAY_STALLED_AFTER_SECONDS");
  expect(() => loadConfig(shape, { GATEWAY_STALLED_AFTER_SECONDS: "ten" })).toThrow("GATEWAY_STALLED_AFTER_SECONDS");
  expect(loadConfig(shape, {}).GATEWAY_STALLED_REQUEUE_LIMIT).toBe(3);
  expect(loadConfig(shape, { GATEWAY_STALLED_REQUEUE_LIMIT: "0" }).GATEWAY_STALLED_REQUEUE_LIMIT).toBe(0);
  expect(() => loadConfig(shape, { GATEWAY_STALLED_REQUEUE_LIMIT: "-1" })).toThrow("GATEWAY_STALLED_REQUEUE_LIMIT");
  expect(() => loadConfig(shape, { GATEWAY_STALLED_REQUEUE_LIMIT: "101" })).toThrow("GATEWAY_STALLED_REQUEUE_LIMIT");
  expect(loadConfig(shape, {}).GATEWAY_STALLED_CHECK_SECONDS).toBe(15);
  expect(() => loadConfig(shape, { GATEWAY_STALLED_CHECK_SECONDS: "0" })).toThrow("GATEWAY_STALLED_CHECK_SECONDS");
  expect(() => loadConfig(shape, { GATEWAY_STALLED_CHECK_SECONDS: "3601" })).toThrow(
    "GATEWAY_STALLED_CHECK_SECONDS: must be at most 3600 (an hour)",
  );
});

test("a pool's queue none of whose workers has started yet holds its tasks: reported unconsumed, its tasks not stalled until their message is lost", async () => {
  const rt = g.gateway.runtime;
  const queueStats = new QueueStats(rt.nats.jsm, ["TASKS", "EVENTS"], ["TASKS"]);
  const routes = parseTaskRoutes("echo=batch");
  const poolSubject = routes.subjectFor("echo", "low");
  const jsm = await nc.jetstreamManager();
  const { taskId } = await g.client.submitTask({ type: "echo", payload: { unserved: true } });
  await applyStatus(redis, event({ taskId, state: "SCHEDULED", generation: 0 }));
  await redis.hset(Keys.task(taskId), "priority", "low");
  // The scheduler's message for it, on the pool's queue, which no consumer reads (no worker of the pool started).
  await (await nc.jetstream()).publish(poolSubject, new TextEncoder().encode(JSON.stringify({ taskId })));
  const scheduledAt = Date.now();
  await waitFor("the threshold to pass", () => Date.now() - scheduledAt > 1_500);
  const options = { afterMs: 1_000, retentionMs: 86_400_000, routes };
  const stalledIds = async () =>
    (await countStalledTasks(rt, () => queueStats.read(), options)).tasks.map((task) => task.taskId);
  try {
    const { unconsumed } = await queueStats.read();
    expect(unconsumed).toEqual([
      { stream: "TASKS", subject: poolSubject, messages: 1, oldestAgeMs: expect.any(Number) },
    ]);
    expect(unconsumed[0]!.oldestAgeMs).toBeGreaterThanOrEqual(1_400);
    expect(await stalledIds()).not.toContain(taskId);
    // GetQueueStats and taskctl stats say so (the file's gateway samples TASKS's subjects as the service does).
    const stats = await g.admin.getQueueStats({});
    expect(stats.unconsumedQueues.map((q) => [q.stream, q.subject, q.messages])).toEqual([["TASKS", poolSubject, 1n]]);
    expect(stats.consumers.map((c) => c.subject)).not.toContain(poolSubject);
    // The gauge (alert QueueWithoutConsumer), from the gateway's latest read.
    const series = new RegExp(`^tm_queue_unconsumed_messages\\{subject="${poolSubject}"[^}]*\\} (\\d+)$`, "m");
    expect((await gatewayMetrics()).match(series)?.[1]).toBe("1");
    // Its message lost from the queue: nothing waits there any more, and the task is stalled.
    await jsm.streams.purge("TASKS", { filter: poolSubject });
    expect((await queueStats.read()).unconsumed).toEqual([]);
    expect(await stalledIds()).toContain(taskId);
    expect((await g.admin.getQueueStats({})).unconsumedQueues).toEqual([]);
    // Read again: 0 (the alert resolves).
    expect((await gatewayMetrics()).match(series)?.[1]).toBe("0");
  } finally {
    await forgetUnfinished(redis, [taskId]);
    await jsm.streams.purge("TASKS", { filter: poolSubject });
  }
});

test("a task of a type routed to a worker pool (TASK_ROUTES) waits on that pool's queue: not stalled while its message waits there", async () => {
  const rt = g.gateway.runtime;
  const queueStats = new QueueStats(rt.nats.jsm, ["TASKS", "EVENTS"]);
  const routes = parseTaskRoutes("echo=gpu");
  const poolSubject = routes.subjectFor("echo", "medium");
  const jsm = await nc.jetstreamManager();
  // As a worker of the pool would at its start (WORKER_POOL=gpu); it takes nothing here.
  const durable = await provisionConsumer(jsm, "worker", poolSubject);
  const { taskId } = await g.client.submitTask({ type: "echo", payload: { pooled: true } });
  await applyStatus(redis, event({ taskId, state: "SCHEDULED", generation: 0 }));
  // The scheduler's message for it, on the pool's queue.
  await (await nc.jetstream()).publish(poolSubject, new TextEncoder().encode(JSON.stringify({ taskId })));
  const scheduledAt = Date.now();
  await waitFor("the threshold to pass", () => Date.now() - scheduledAt > 1_500);
  const stalledIds = async (withRoutes: boolean) => {
    const options = { afterMs: 1_000, retentionMs: 86_400_000, ...(withRoutes ? { routes } : {}) };
    return (await countStalledTasks(rt, () => queueStats.read(), options)).tasks.map((task) => task.taskId);
  };
  try {
    expect(await stalledIds(true)).not.toContain(taskId);
    // Judged by the default pool's queue instead (which holds nothing of it), it would count as lost.
    expect(await stalledIds(false)).toContain(taskId);
    // Its message lost from the pool's queue: stalled.
    await jsm.streams.purge("TASKS", { filter: poolSubject });
    expect(await stalledIds(true)).toContain(taskId);
  } finally {
    await forgetUnfinished(redis, [taskId]);
    await jsm.consumers.delete("TASKS", durable);
  }
});

test("while the gateway sheds load its own requeues wait: the round counts the stalled task and requeues it only after", async () => {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.purge("TASKS", { filter: Subjects.ingest });
  const { taskId } = await g.client.submitTask({ type: "echo", payload: { shed: true } });
  const submitted = Date.now();
  await loseMessagesOf([taskId]);
  await waitFor("the threshold to pass", () => Date.now() - submitted > 1_500);
  const rt = g.gateway.runtime;
  const queueStats = new QueueStats(rt.nats.jsm, ["TASKS", "EVENTS"]);
  const options = { afterMs: 1_000, retentionMs: 86_400_000, requeueLimit: 3 };
  const ours = (found: { tasks: { taskId: string }[] }) => found.tasks.filter((task) => task.taskId === taskId);

  // A requeue adds a message to the stream whose limits are near: held, as submissions are refused.
  const held = await stalledRound(rt, queueStats, { ...options, shedding: () => "the pipeline is shedding load: …" });
  expect(ours(held)).toHaveLength(1);
  expect(await redis.hget(Keys.task(taskId), "generation")).toBe("0");
  // Shedding over: the next round requeues it.
  await stalledRound(rt, queueStats, { ...options, shedding: () => undefined });
  expect(await redis.hget(Keys.task(taskId), "generation")).toBe("1");
  await jsm.streams.purge("TASKS", { filter: Subjects.ingest });
});

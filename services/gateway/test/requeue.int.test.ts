/**
 * The requeue sweeper against a real nats-server and redis-server. An interrupted submission is set up as the gateway
 * leaves it when it dies between its Redis write and its tasks.ingest publish (or when the publish failed): the task
 * record, maybe its PENDING status, and its tasks_unqueued entry. Two gateway replicas sweep, as deployed.
 */
import { type AuditEvent, decodeMessage, type Subject, Subjects, type TaskMessage } from "@tm/flow";
import { createAdminClient, createTaskClient, Priority } from "@tm/proto";
import { applyStatus, isCancelled, Keys, markUnqueued, readStatus, saveTask, type TaskRecord } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, headers, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { event, type Gateway, startGateway } from "./helpers.js";

const infra = useInfra();
let gateways: Gateway[];
let nc: NatsConnection;
let redis: Redis;

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  await nc?.drain();
  redis?.disconnect();
});

interface Stored<S extends Subject> {
  message: ReturnType<typeof decodeMessage<S>>;
  msgId: string | undefined;
}

/** The messages of one subject and task currently in a stream, with their Nats-Msg-Id. */
async function storedFor<S extends Subject>(stream: string, subject: S, taskId: string): Promise<Stored<S>[]> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(stream);
  const found: Stored<S>[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const stored = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (stored?.subject !== subject) continue;
    const message = decodeMessage(subject, stored.data);
    if ((message as { taskId?: string }).taskId === taskId) {
      found.push({ message, msgId: stored.header?.get("Nats-Msg-Id") || undefined });
    }
  }
  return found;
}

const ingested = (taskId: string) => storedFor("TASKS", Subjects.ingest, taskId);
const audited = async (taskId: string): Promise<AuditEvent[]> =>
  (await storedFor("EVENTS", Subjects.audit, taskId)).map((stored) => stored.message);
const unqueued = async (taskId: string) => (await redis.zscore(Keys.unqueued, taskId)) !== null;

function newTask(ageMs: number): TaskRecord {
  return {
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "high",
    payload: { n: 7 },
    metadata: { team: "qa" },
    createdAt: new Date(Date.now() - ageMs).toISOString(),
    generation: 0,
  };
}

/** What a gateway leaves behind when it stops between saving a new task and queueing it. */
async function saveInterrupted(task: TaskRecord, { withStatus = true } = {}): Promise<TaskRecord> {
  await saveTask(redis, task, { unqueued: true });
  if (withStatus) await applyStatus(redis, event({ taskId: task.taskId, state: "PENDING" }));
  return task;
}

const interruptedSubmission = (ageMs: number, options?: { withStatus?: boolean }) =>
  saveInterrupted(newTask(ageMs), options);

describe("an interrupted submission", () => {
  // Two replicas sweeping every 100 ms, as a deployment's replicas do (one holds each round's lease).
  beforeAll(async () => {
    gateways = await Promise.all([
      startGateway(infra, { GATEWAY_REQUEUE_AFTER_MS: "300" }),
      startGateway(infra, { GATEWAY_REQUEUE_AFTER_MS: "300" }),
    ]);
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
  });

  test("is queued by the sweeper, once, under its own message id, and audited as requeued", async () => {
    const task = await interruptedSubmission(0);
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    const queued = await ingested(task.taskId);
    expect(queued.map((q) => q.msgId)).toEqual([`${task.taskId}:ingest:0`]);
    expect(queued[0]?.message).toMatchObject({
      taskId: task.taskId,
      type: "echo",
      priority: "high",
      payload: { n: 7 },
      metadata: { team: "qa" },
      createdAt: task.createdAt,
      generation: 0,
    } satisfies Partial<TaskMessage>);
    expect((await readStatus(redis, task.taskId))?.state).toBe("PENDING");
    await waitFor("the requeued audit event", async () => (await audited(task.taskId)).length > 0);
    const events = await audited(task.taskId);
    expect(events.map((e) => e.action)).toEqual(["requeued"]);
    expect(events[0]?.detail).toMatchObject({ reason: expect.stringContaining("interrupted") });
  });

  test("interrupted before its status was written, it gets its PENDING status and is queued", async () => {
    const task = await interruptedSubmission(0, { withStatus: false });
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect((await readStatus(redis, task.taskId))?.state).toBe("PENDING");
    expect(await ingested(task.taskId)).toHaveLength(1);
  });

  test("whose message had landed (only its PubAck was lost) is not queued a second time", async () => {
    // The message first, then what the gateway wrote before it: the sweeper cannot get in between.
    const task = newTask(0);
    const message: TaskMessage = { ...task, generation: 0 };
    const hdrs = headers();
    hdrs.set("Nats-Msg-Id", `${task.taskId}:ingest:0`);
    await nc.jetstream().publish(Subjects.ingest, JSON.stringify(message), { headers: hdrs });
    await saveInterrupted(task);
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect(await ingested(task.taskId)).toHaveLength(1);
    // The stream answered "duplicate": nothing was requeued, so nothing is audited as such.
    expect(await audited(task.taskId)).toEqual([]);
  });

  test("too old to be deduplicated, it is FAILED with its reason and its cancel marker set, not queued", async () => {
    // The stream remembers message ids for 120 s; the sweeper requeues up to 90 s.
    const task = await interruptedSubmission(100_000);
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    const status = await readStatus(redis, task.taskId);
    expect(status?.state).toBe("FAILED");
    expect(status?.error).toMatch(/^not queued: the submission was interrupted and 10\d s later is too old/);
    expect(await isCancelled(redis, task.taskId)).toBe(true);
    expect(await ingested(task.taskId)).toEqual([]);
    await waitFor("the not_queued audit event", async () => (await audited(task.taskId)).length > 0);
    expect((await audited(task.taskId)).map((e) => e.action)).toEqual(["not_queued"]);
  });

  test("that moved on since (a later status) is only taken out of the set", async () => {
    const task = await interruptedSubmission(100_000);
    await applyStatus(redis, event({ taskId: task.taskId, state: "INGESTED" }));
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect((await readStatus(redis, task.taskId))?.state).toBe("INGESTED");
    expect(await ingested(task.taskId)).toEqual([]);
    expect(await audited(task.taskId)).toEqual([]);
  });

  test("a dead-letter replay cut short after its new generation is queued as that generation", async () => {
    // What replay.ts leaves when the gateway dies after the letter was claimed and the generation incremented: the
    // record at generation 1, the dead-lettered generation's FAILED, the tasks_unqueued entry at the replay's time.
    const task = { ...newTask(3_600_000), generation: 1 };
    await saveTask(redis, task);
    await applyStatus(redis, event({ taskId: task.taskId, state: "FAILED", generation: 0, error: "always fails" }));
    await markUnqueued(redis, task.taskId, Date.now());
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    const queued = await ingested(task.taskId);
    expect(queued.map((q) => [q.msgId, q.message.generation])).toEqual([[`${task.taskId}:ingest:1`, 1]]);
    expect(await readStatus(redis, task.taskId)).toMatchObject({ state: "PENDING", generation: 1 });
    await waitFor("the requeued audit event", async () => (await audited(task.taskId)).length > 0);
    expect((await audited(task.taskId)).map((e) => [e.action, e.detail?.generation])).toEqual([["requeued", 1]]);
  });

  test("whose record expired is taken out of the set", async () => {
    const task = await interruptedSubmission(0);
    await redis.del(Keys.task(task.taskId), Keys.status(task.taskId));
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect(await ingested(task.taskId)).toEqual([]);
  });
});

test("a submission that completes takes its task out of tasks_unqueued (the sweeper has nothing to do)", async () => {
  // The only replica now, and its sweeper waits 30 s (the default): only the submission itself can take the entries
  // out in time.
  const patient = await startGateway(infra);
  const client = createTaskClient({ baseUrl: patient.baseUrl });
  const taskIds = await Promise.all(
    Array.from({ length: 20 }, async () => (await client.submitTask({ type: "echo", priority: Priority.LOW })).taskId),
  );
  await waitFor("every task to leave tasks_unqueued", async () => {
    const left = await Promise.all(taskIds.map(unqueued));
    return left.every((present) => !present);
  });
  for (const taskId of taskIds) {
    expect(await audited(taskId)).toHaveLength(1); // "submitted" only, no "requeued"
    expect(await ingested(taskId)).toHaveLength(1);
  }
  await patient.stop();
});

test("GetQueueStats counts the unqueued submissions, and those overdue for the sweeper", async () => {
  // A replica whose first sweep is 20 s away: the entries stay while the stats are read.
  const gateway = await startGateway(infra, { GATEWAY_REQUEUE_AFTER_MS: "60000" });
  try {
    const before = await redis.zcard(Keys.unqueued);
    await interruptedSubmission(0);
    await interruptedSubmission(0);
    const overdue = await interruptedSubmission(70_000);
    const stats = await createAdminClient({ baseUrl: gateway.baseUrl }).getQueueStats({});
    expect(stats.unqueuedSubmissions).toBe(BigInt(before + 3));
    expect(stats.unqueuedOverdue).toBeGreaterThanOrEqual(1n);
    expect(await redis.zscore(Keys.unqueued, overdue.taskId)).not.toBeNull();
  } finally {
    await gateway.stop();
  }
});

test("GATEWAY_REQUEUE_AFTER_MS at or past the requeue window stops the start, naming the variable", async () => {
  await expect(startGateway(infra, { GATEWAY_REQUEUE_AFTER_MS: "90000" })).rejects.toThrow(
    /GATEWAY_REQUEUE_AFTER_MS \(90000\) must be below 90000 ms/,
  );
});

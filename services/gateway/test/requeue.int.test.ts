/**
 * The requeue sweeper against a real nats-server and redis-server. An interrupted submission is set up as the gateway
 * leaves it when it dies between its Redis write and its tasks.ingest publish (or when the publish failed): the task
 * record, maybe its PENDING status, and its tasks_unqueued entry. Two gateway replicas sweep, as deployed.
 */

import { type AuditEvent, createPublisher, type Subject, Subjects, type TaskMessage } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { createAdminClient, createTaskClient, Priority, ReplayResult, RequeueResult } from "@tm/proto";
import {
  appendDeadLetter,
  applyStatus,
  claimReplay,
  type DeadLetterLine,
  isCancelled,
  Keys,
  readDeadLetterLines,
  readStatus,
  saveTask,
  type TaskRecord,
} from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { connect, headers } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { replayDeadLetter } from "../src/replay.js";
import { requeueStalledTask } from "../src/requeue-stalled.js";
import { event, type Gateway, startGateway, streamMessagesOf, useClients } from "./helpers.js";

const infra = useInfra();
let gateways: Gateway[];
const clients = useClients(infra);

const storedFor = <S extends Subject>(stream: string, subject: S, taskId: string) =>
  streamMessagesOf(clients.nc, stream, subject, taskId);

const ingested = (taskId: string) => storedFor("TASKS", Subjects.ingest, taskId);
const audited = async (taskId: string): Promise<AuditEvent[]> =>
  (await storedFor("EVENTS", Subjects.audit, taskId)).map((stored) => stored.message);
const unqueued = async (taskId: string) => (await clients.redis.zscore(Keys.unqueued, taskId)) !== null;

function newTask(ageMs: number): TaskRecord {
  return {
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "high",
    payload: { n: 7 },
    metadata: { team: "qa" },
    createdAt: new Date(Date.now() - ageMs).toISOString(),
    generation: 0,
    retryBackoff: { delayMs: 500, multiplier: 2, maxDelayMs: 8_000, jitter: 0 },
  };
}

/** What a gateway leaves behind when it stops between saving a new task and queueing it. */
async function saveInterrupted(task: TaskRecord, { withStatus = true } = {}): Promise<TaskRecord> {
  await saveTask(clients.redis, task, { unqueued: true });
  if (withStatus) await applyStatus(clients.redis, event({ taskId: task.taskId, state: "PENDING" }));
  return task;
}

const interruptedSubmission = (ageMs: number, options?: { withStatus?: boolean }) =>
  saveInterrupted(newTask(ageMs), options);

/**
 * The sweeper took the task out of tasks_unqueued having queued it once, as `generation`, with PENDING and an audit
 * (after `auditedBefore`, what the interrupted call audited before its queueing failed).
 */
async function expectRequeuedAsGeneration(taskId: string, generation: number, auditedBefore: string[] = []) {
  await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(taskId)));
  const queued = await ingested(taskId);
  expect(queued.map((q) => [q.msgId, q.message.generation])).toEqual([[`${taskId}:ingest:${generation}`, generation]]);
  // The task's own limits go with every generation.
  expect(queued[0]?.message.retryBackoff).toEqual({ delayMs: 500, multiplier: 2, maxDelayMs: 8_000, jitter: 0 });
  expect(await readStatus(clients.redis, taskId)).toMatchObject({ state: "PENDING", generation });
  await waitFor("the requeued audit event", async () => (await audited(taskId)).length > auditedBefore.length);
  expect((await audited(taskId)).map((e) => [e.action, e.detail?.generation])).toEqual([
    ...auditedBefore.map((action) => [action, generation]),
    ["requeued", generation],
  ]);
}

/**
 * What the gateway sends about `taskId` while `act` runs, in the order nats-server routes it: one core subscriber
 * sees one publisher's messages in the order the server read them, the order the streams store them in.
 */
async function sentInOrder(taskId: string, act: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const record = (kind: (message: { action?: string }) => string) => (_: Error | null, msg: { data: Uint8Array }) => {
    const message = JSON.parse(new TextDecoder().decode(msg.data)) as { taskId?: string; action?: string };
    if (message.taskId === taskId) seen.push(kind(message));
  };
  const subs = [
    clients.nc.subscribe(Subjects.ingest, { callback: record(() => "queued") }),
    clients.nc.subscribe(Subjects.audit, { callback: record((message) => `audit ${message.action}`) }),
  ];
  await clients.nc.flush();
  try {
    await act();
    await waitFor("the audit event and the queued task", async () => seen.length >= 2);
    return seen;
  } finally {
    for (const sub of subs) sub.unsubscribe();
  }
}

/** A publisher on a connection that is closed: every publish fails at once, as with NATS gone for good. */
async function lostPublisher() {
  const lost = await connect({ servers: infra.nats.url });
  const publisher = createPublisher(lost);
  await lost.close();
  return publisher;
}

/** A task whose generation 0 failed for good: its record, its FAILED status and its dead letter (alone in the list). */
async function deadLettered(): Promise<{ task: TaskRecord; line: DeadLetterLine }> {
  await clients.redis.del(Keys.deadLetter);
  const task = newTask(3_600_000);
  await saveTask(clients.redis, task);
  await applyStatus(
    clients.redis,
    event({ taskId: task.taskId, state: "FAILED", generation: 0, error: "always fails" }),
  );
  await appendDeadLetter(clients.redis, {
    id: `TASKS:${crypto.randomUUID()}`,
    taskId: task.taskId,
    subject: Subjects.workerHigh,
    consumer: "worker",
    reason: "exhausted",
    error: "always fails",
    attempts: 5,
    at: new Date().toISOString(),
    message: { taskId: task.taskId, generation: 0 },
  });
  const [line] = await readDeadLetterLines(clients.redis, 0, 1);
  return { task, line: line! };
}

/** A task whose generation 0 has sat in a worker queue for an hour (its message since discarded, say). */
async function stalledScheduled(): Promise<TaskRecord> {
  const task = newTask(3_600_000);
  await saveTask(clients.redis, task);
  await applyStatus(clients.redis, event({ taskId: task.taskId, state: "SCHEDULED", generation: 0 }));
  return task;
}

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
      retryBackoff: { delayMs: 500, multiplier: 2, maxDelayMs: 8_000, jitter: 0 },
    } satisfies Partial<TaskMessage>);
    expect((await readStatus(clients.redis, task.taskId))?.state).toBe("PENDING");
    await waitFor("the requeued audit event", async () => (await audited(task.taskId)).length > 0);
    const events = await audited(task.taskId);
    expect(events.map((e) => e.action)).toEqual(["requeued"]);
    expect(events[0]?.detail).toMatchObject({ reason: expect.stringContaining("interrupted") });
  });

  test("interrupted before its status was written, it gets its PENDING status and is queued", async () => {
    const task = await interruptedSubmission(0, { withStatus: false });
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect((await readStatus(clients.redis, task.taskId))?.state).toBe("PENDING");
    expect(await ingested(task.taskId)).toHaveLength(1);
  });

  test("whose message had landed (only its PubAck was lost) is not queued a second time", async () => {
    // The message first, then what the gateway wrote before it: the sweeper cannot get in between.
    const task = newTask(0);
    const message: TaskMessage = { ...task, generation: 0 };
    const hdrs = headers();
    hdrs.set("Nats-Msg-Id", `${task.taskId}:ingest:0`);
    await clients.nc.jetstream().publish(Subjects.ingest, JSON.stringify(message), { headers: hdrs });
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
    const status = await readStatus(clients.redis, task.taskId);
    expect(status?.state).toBe("FAILED");
    expect(status?.error).toMatch(/^not queued: the submission was interrupted and 10\d s later is too old/);
    expect(await isCancelled(clients.redis, task.taskId)).toBe(true);
    expect(await ingested(task.taskId)).toEqual([]);
    await waitFor("the not_queued audit event", async () => (await audited(task.taskId)).length > 0);
    expect((await audited(task.taskId)).map((e) => e.action)).toEqual(["not_queued"]);
  });

  test("FAILED by a round cut short before its cancel marker: the next round sets the marker and audits", async () => {
    // What a round leaves when Redis or NATS fails (or the gateway dies) between its FAILED and the marker: the entry
    // is still in the set. Without the marker, a message that landed after all would run a FAILED task.
    const task = newTask(100_000);
    await saveTask(clients.redis, task);
    const reason =
      "not queued: the submission was interrupted and 100 s later is too old to queue safely; submit it again";
    await applyStatus(clients.redis, event({ taskId: task.taskId, state: "FAILED", error: reason }));
    await clients.redis.zadd(Keys.unqueued, Date.parse(task.createdAt), task.taskId);
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect(await isCancelled(clients.redis, task.taskId)).toBe(true);
    expect(await clients.redis.get(Keys.cancel(task.taskId))).toBe(reason);
    expect(await readStatus(clients.redis, task.taskId)).toMatchObject({ state: "FAILED", error: reason });
    expect(await ingested(task.taskId)).toEqual([]);
    await waitFor("the not_queued audit event", async () => (await audited(task.taskId)).length > 0);
    expect((await audited(task.taskId)).map((e) => e.action)).toEqual(["not_queued"]);
  });

  test("that moved on since (a later status) is only taken out of the set", async () => {
    // The later status is written before the entry joins the set: the sweepers' rounds never see the task without it
    // (written after, a round on a loaded machine could come between and fail the task as too old).
    const task = newTask(100_000);
    await saveTask(clients.redis, task);
    await applyStatus(clients.redis, event({ taskId: task.taskId, state: "PENDING" }));
    await applyStatus(clients.redis, event({ taskId: task.taskId, state: "INGESTED" }));
    await clients.redis.zadd(Keys.unqueued, Date.parse(task.createdAt), task.taskId);
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    expect((await readStatus(clients.redis, task.taskId))?.state).toBe("INGESTED");
    expect(await ingested(task.taskId)).toEqual([]);
    expect(await audited(task.taskId)).toEqual([]);
  });

  test("a dead-letter replay cut short after its claim is queued as the new generation", async () => {
    // What replay.ts leaves when the gateway dies right after claiming the letter: the claim script has removed the
    // letter, started generation 1 and entered it in tasks_unqueued; the dead-lettered generation's FAILED remains.
    const { task, line } = await deadLettered();
    expect(await claimReplay(clients.redis, line.raw, task.taskId, 0, Date.now())).toEqual({
      claimed: true,
      generation: 1,
    });
    await expectRequeuedAsGeneration(task.taskId, 1);
  });

  test("a replay whose NATS fails after its claim is replayed with its queueing pending, and queued by the sweeper", async () => {
    const { task, line } = await deadLettered();
    const rt = { ...gateways[0]!.runtime, publisher: await lostPublisher() } as Runtime;

    const outcome = await replayDeadLetter(rt, line.letter!.id, line);
    expect(outcome).toMatchObject({ result: "replayed", taskId: task.taskId, generation: 1 });
    expect(outcome.result === "replayed" && outcome.queuePending).toMatch(
      new RegExp(`replay of task ${task.taskId} started generation 1 but could not queue it .*requeue sweeper`),
    );
    // The letter stays claimed (put back, it could not be replayed again: its task is PENDING of generation 1).
    expect(await clients.redis.llen(Keys.deadLetter)).toBe(0);
    await expectRequeuedAsGeneration(task.taskId, 1);
  });

  test("a replay is audited before its new generation is queued, so its history shows replayed before ingested", async () => {
    const { task, line } = await deadLettered();
    const order = await sentInOrder(task.taskId, () => replayDeadLetter(gateways[0]!.runtime, line.letter!.id, line));
    expect(order).toEqual(["audit replayed", "queued"]);
  });

  test("a requeue of a stalled task is audited before its new generation is queued", async () => {
    const task = await stalledScheduled();
    const order = await sentInOrder(task.taskId, () => requeueStalledTask(gateways[0]!.runtime, task.taskId, 0));
    expect(order).toEqual(["audit requeued_stalled", "queued"]);
  });

  test("two dead letters of one task replayed at once start one generation, not two", async () => {
    const { task, line } = await deadLettered();
    await appendDeadLetter(clients.redis, {
      ...line.letter!,
      id: `TASKS:${crypto.randomUUID()}`,
      subject: Subjects.ingest,
    });
    const lines = await readDeadLetterLines(clients.redis, 0, 2);
    expect(lines).toHaveLength(2);

    const rt = gateways[0]!.runtime;
    const outcomes = await Promise.all(lines.map((l) => replayDeadLetter(rt, l.letter!.id, l)));
    expect(outcomes.map((o) => o.result).sort()).toEqual(["failed_precondition", "replayed"]);
    expect(outcomes.find((o) => o.result === "failed_precondition")).toMatchObject({
      reason: expect.stringMatching(/replayed meanwhile|already running again as generation 1/),
    });
    expect((await readStatus(clients.redis, task.taskId))?.generation).toBe(1);
    expect(await clients.redis.hget(Keys.task(task.taskId), "generation")).toBe("1");
    // The refused letter stays, for a later replay should this generation fail too.
    expect(await clients.redis.llen(Keys.deadLetter)).toBe(1);
    await waitFor("the replayed generation's message", async () => (await ingested(task.taskId)).length > 0);
    expect((await ingested(task.taskId)).map((q) => q.msgId)).toEqual([`${task.taskId}:ingest:1`]);
  });

  test("a requeue of a stalled task whose NATS fails after its claim is requeued with its queueing pending, and queued by the sweeper", async () => {
    const task = await stalledScheduled();
    const rt = { ...gateways[0]!.runtime, publisher: await lostPublisher() } as Runtime;

    const outcome = await requeueStalledTask(rt, task.taskId, 0);
    expect(outcome).toMatchObject({ result: "requeued", generation: 1, previousState: "SCHEDULED" });
    expect(outcome.result === "requeued" && outcome.queuePending).toMatch(
      new RegExp(`requeue of task ${task.taskId} started generation 1 but could not queue it .*requeue sweeper`),
    );
    await expectRequeuedAsGeneration(task.taskId, 1);
  });

  test("RequeueTasks hit by an outage mid-call answers every outcome: done, queue pending, not attempted", async () => {
    const [first, second, third] = [await stalledScheduled(), await stalledScheduled(), await stalledScheduled()];
    // The gateway's own publisher, on its real connection, refusing the second task's tasks.ingest publish as a
    // NATS gone for good would (at once, instead of after the publisher's 30 s of retries).
    const handle = gateways[0]!.runtime.nats;
    const real = handle.publisher;
    handle.publisher = {
      publish(subject, message, options) {
        if (subject === Subjects.ingest && (message as { taskId?: string }).taskId === second.taskId) {
          return Promise.reject(new Error("NATS connection closed"));
        }
        return real.publish(subject, message, options);
      },
    };
    try {
      const admin = createAdminClient({ baseUrl: gateways[0]!.baseUrl });
      const { outcomes } = await admin.requeueTasks({
        taskIds: [first.taskId, second.taskId, third.taskId],
        stalledForSeconds: 0,
      });
      expect(outcomes.map((o) => [o.taskId, RequeueResult[o.result], o.generation, o.queuePending])).toEqual([
        [first.taskId, "REQUEUED", 1, false],
        [second.taskId, "REQUEUED", 1, true],
        [third.taskId, "UNAVAILABLE", 0, false],
      ]);
      expect(outcomes[0]?.reason).toBe("");
      expect(outcomes[1]?.reason).toMatch(/started generation 1 but could not queue it \(.*NATS connection closed/);
      expect(outcomes[2]?.reason).toMatch(
        new RegExp(
          `^not attempted: the requeue of task ${second.taskId} started generation 1 .* \\(at task ${second.taskId}\\); call again$`,
        ),
      );
    } finally {
      handle.publisher = real;
    }
    // The first was queued by the call, the second by the sweeper; the third was left as it was.
    await waitFor("the first task's new generation", async () => (await ingested(first.taskId)).length > 0);
    expect((await ingested(first.taskId)).map((q) => q.msgId)).toEqual([`${first.taskId}:ingest:1`]);
    // Its requeue was audited before the queueing failed; the sweeper's "requeued" follows.
    await expectRequeuedAsGeneration(second.taskId, 1, ["requeued_stalled"]);
    expect(await clients.redis.hget(Keys.task(third.taskId), "generation")).toBe("0");
    expect(await readStatus(clients.redis, third.taskId)).toMatchObject({ state: "SCHEDULED", generation: 0 });
    expect(await ingested(third.taskId)).toEqual([]);
  });

  test("ReplayDeadLetters whose Redis fails at the first letter answers UNAVAILABLE outcomes, nothing replayed", async () => {
    const { task, line } = await deadLettered();
    const other = { ...line.letter!, id: `TASKS:${crypto.randomUUID()}` };
    await appendDeadLetter(clients.redis, other);
    // The gateway's Redis connection, its reads of the first task refused as a Redis gone would.
    const rtRedis = gateways[0]!.runtime.redis;
    const realHgetall = rtRedis.hgetall.bind(rtRedis);
    rtRedis.hgetall = ((key: string) =>
      key === Keys.task(task.taskId)
        ? Promise.reject(new Error("Connection is closed."))
        : realHgetall(key)) as typeof rtRedis.hgetall;
    try {
      const admin = createAdminClient({ baseUrl: gateways[0]!.baseUrl });
      const { outcomes } = await admin.replayDeadLetters({ ids: [line.letter!.id, other.id] });
      expect(outcomes.map((o) => [o.id, ReplayResult[o.result], o.taskId])).toEqual([
        [line.letter!.id, "UNAVAILABLE", task.taskId],
        [other.id, "UNAVAILABLE", task.taskId],
      ]);
      expect(outcomes[0]?.reason).toMatch(/^Redis unavailable while reading the task: Connection is closed\.$/);
      expect(outcomes[1]?.reason).toMatch(
        /^not attempted: Redis unavailable .* \(at dead letter TASKS:.*\); call again$/,
      );
    } finally {
      rtRedis.hgetall = realHgetall as typeof rtRedis.hgetall;
    }
    // Both letters are still listed; the task is where it was.
    expect(await clients.redis.llen(Keys.deadLetter)).toBe(2);
    expect(await clients.redis.hget(Keys.task(task.taskId), "generation")).toBe("0");
  });

  test("a task failed as never queued is requeued under its id: marker cleared, queued as generation 1", async () => {
    const task = await interruptedSubmission(100_000);
    await waitFor(
      "the sweeper's FAILED and marker",
      async () => (await isCancelled(clients.redis, task.taskId)) === true,
    );
    await waitFor("the task to leave tasks_unqueued", async () => !(await unqueued(task.taskId)));
    // No threshold applies (the default ten minutes here): the task never ran.
    const outcome = await requeueStalledTask(gateways[0]!.runtime, task.taskId, 600_000);
    expect(outcome).toEqual({ taskId: task.taskId, result: "requeued", generation: 1, previousState: "FAILED" });
    expect(await isCancelled(clients.redis, task.taskId)).toBe(false);
    await waitFor("the new generation's message", async () => (await ingested(task.taskId)).length > 0);
    expect((await ingested(task.taskId)).map((q) => [q.msgId, q.message.generation])).toEqual([
      [`${task.taskId}:ingest:1`, 1],
    ]);
    expect(await readStatus(clients.redis, task.taskId)).toMatchObject({ state: "PENDING", generation: 1 });
    await waitFor("taken out of tasks_unqueued once queued", async () => !(await unqueued(task.taskId)));
  });

  test("a task FAILED for any other reason is not requeued: its dead letter is replayed instead", async () => {
    const task = newTask(3_600_000);
    await saveTask(clients.redis, task);
    await applyStatus(
      clients.redis,
      event({ taskId: task.taskId, state: "FAILED", generation: 0, error: "always fails" }),
    );
    expect(await requeueStalledTask(gateways[0]!.runtime, task.taskId, 0)).toEqual({
      taskId: task.taskId,
      result: "failed_precondition",
      previousState: "FAILED",
      reason:
        "it is FAILED: a failed task goes through the pipeline again by replaying its dead letter (taskctl dlq replay)",
    });
  });

  test("two requeues of one stalled task at once start one generation, not two", async () => {
    const task = await stalledScheduled();
    const rt = gateways[0]!.runtime;
    const outcomes = await Promise.all([
      requeueStalledTask(rt, task.taskId, 0),
      requeueStalledTask(rt, task.taskId, 0),
    ]);
    expect(outcomes.map((o) => o.result).sort()).toEqual(["failed_precondition", "requeued"]);
    expect(outcomes.find((o) => o.result === "failed_precondition")).toMatchObject({
      reason: expect.stringMatching(/moved meanwhile|it is PENDING and its status changed/),
    });
    expect(await clients.redis.hget(Keys.task(task.taskId), "generation")).toBe("1");
    await waitFor("the requeued generation's message", async () => (await ingested(task.taskId)).length > 0);
    expect((await ingested(task.taskId)).map((q) => q.msgId)).toEqual([`${task.taskId}:ingest:1`]);
  });

  test("whose record expired is taken out of the set", async () => {
    const task = await interruptedSubmission(0);
    await clients.redis.del(Keys.task(task.taskId), Keys.status(task.taskId));
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
    const before = await clients.redis.zcard(Keys.unqueued);
    await interruptedSubmission(0);
    await interruptedSubmission(0);
    const overdue = await interruptedSubmission(70_000);
    const stats = await createAdminClient({ baseUrl: gateway.baseUrl }).getQueueStats({});
    expect(stats.unqueuedSubmissions).toBe(BigInt(before + 3));
    expect(stats.unqueuedOverdue).toBeGreaterThanOrEqual(1n);
    expect(await clients.redis.zscore(Keys.unqueued, overdue.taskId)).not.toBeNull();
  } finally {
    await gateway.stop();
  }
});

test("GATEWAY_REQUEUE_AFTER_MS at or past the requeue window stops the start, naming the variable", async () => {
  await expect(startGateway(infra, { GATEWAY_REQUEUE_AFTER_MS: "90000" })).rejects.toThrow(
    /GATEWAY_REQUEUE_AFTER_MS \(90000\) must be below 90000 ms/,
  );
});

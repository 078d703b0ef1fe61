/**
 * Deliveries a worker holds buffered but never started, handed back when it stops, against a real nats-server and
 * redis-server: JetStream counts the hand-back as a delivery, but the task's attempts do not. The next worker runs
 * it as attempt 1; a task with max_attempts 1 runs (it was never run), rather than being failed as "interrupted".
 */
import { durableName, Subjects } from "@tm/flow";
import { handBacksOf, recordHandBacks } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { enrichedTask, publishTask, StreamReader, startWorker, stopWithRedisDown } from "./support.js";

const infra = useInfra();
let nc: NatsConnection;
let jsm: JetStreamManager;
let redis: Redis;
let events: StreamReader;
let tasks: StreamReader;

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  jsm = await nc.jetstreamManager();
  redis = new Redis(infra.redis.url);
  events = new StreamReader(jsm, "EVENTS");
  tasks = new StreamReader(jsm, "TASKS");
});
afterAll(async () => {
  await nc?.drain();
  redis?.disconnect();
});

/** Two slots: two busy tasks fill them and the worker buffers two more behind them. */
const TWO_SLOTS = { WORKER_CONCURRENCY: "2", SHUTDOWN_TIMEOUT_MS: "10000" };

/** A worker with both of its slots busy (two sleeps running), so that what is published next waits buffered. */
async function busyWorker(sleepMs: number) {
  const worker = await startWorker(infra, TWO_SLOTS);
  const busy = [enrichedTask("sleep", { ms: sleepMs }), enrichedTask("sleep", { ms: sleepMs })];
  for (const task of busy) await publishTask(nc, task);
  await waitFor("the busy tasks running", async () => {
    await events.refresh();
    return busy.every((task) => events.statuses(task.taskId).some((s) => s.state === "RUNNING"));
  });
  return { worker, busy };
}

/** Until the task's run ends, well or not (the assertions then say which). */
async function ended(taskId: string) {
  await waitFor(`task ${taskId} to end`, async () => {
    await events.refresh();
    return events.audits(taskId).some((a) => a.action === "succeeded" || a.action === "failed");
  });
}

test("a stopping worker hands back what it buffered: the next worker runs each as attempt 1, max_attempts 1 included", async () => {
  const { worker: first, busy } = await busyWorker(800);
  const once = { ...enrichedTask("echo", { once: true }), maxAttempts: 1 };
  const plain = enrichedTask("echo", { plain: true });
  await publishTask(nc, once);
  await publishTask(nc, plain);
  const { dispatcher } = first.started;
  await waitFor("both tasks buffered behind it", () => dispatcher.queued("medium") === 2);

  await first.stop(); // the busy tasks finish; the two buffered deliveries are handed back unstarted
  for (const task of busy) await ended(task.taskId);
  // Each recorded before its NAK, for its generation.
  for (const task of [once, plain]) expect(await handBacksOf(redis, task.taskId, task.generation)).toBe(1);

  const second = await startWorker(infra, TWO_SLOTS);
  try {
    await ended(once.taskId);
    await ended(plain.taskId);
  } finally {
    await second.stop();
  }
  await tasks.refresh();
  for (const task of [once, plain]) {
    expect(events.statuses(task.taskId).map((s) => `${s.state}:${s.attempt}`)).toEqual(["RUNNING:1", "SUCCEEDED:1"]);
    expect(tasks.results(task.taskId)).toHaveLength(1);
    expect(tasks.results(task.taskId)[0]?.attempts).toBe(1);
    expect(events.deadLetters(task.taskId)).toEqual([]);
  }
});

test("with Redis down a stopping worker does not wait on the record: its hand-back then counts as an attempt", async () => {
  const { worker: first } = await busyWorker(600);
  const once = { ...enrichedTask("echo", { once: true }), maxAttempts: 1 };
  const plain = enrichedTask("echo", { plain: true });
  // Two buffered: the worker's pull has ended (an open one would make the server give the delivery back, below).
  for (const task of [once, plain]) await publishTask(nc, task);
  await waitFor("buffered behind them", () => first.started.dispatcher.queued("medium") === 2);
  expect(await stopWithRedisDown(infra, first)).toBe("stopped");
  expect(await handBacksOf(redis, once.taskId, once.generation)).toBe(0);
  // Never more runs than asked: unrecorded, the hand-back counts as an attempt.
  const second = await startWorker(infra, TWO_SLOTS);
  try {
    await waitFor("both ended", async () => {
      await events.refresh();
      return (
        events.deadLetters(once.taskId).length > 0 && events.audits(plain.taskId).some((a) => a.action === "succeeded")
      );
    });
  } finally {
    await second.stop();
  }
  expect(events.deadLetters(once.taskId)[0]).toMatchObject({ reason: "exhausted" });
  expect(events.statuses(once.taskId).map((s) => s.state)).toEqual(["FAILED"]);
  expect(events.statuses(plain.taskId).map((s) => `${s.state}:${s.attempt}`)).toEqual(["RUNNING:2", "SUCCEEDED:2"]);
});

test("a hand-back while the worker's pull was open (nats-server may give that delivery back): attempts still 1, then 2", async () => {
  const { worker: first } = await busyWorker(600);
  // Fails its first attempt: its second must be attempt 2, whatever the delivery count says.
  const flaky = { ...enrichedTask("flaky", { failures: 1 }), maxAttempts: 2 };
  // One buffered: the worker's pull for one more is still open when it stops.
  await publishTask(nc, flaky);
  await waitFor("buffered behind them", () => first.started.dispatcher.queued("medium") === 1);
  await first.stop();
  expect(await handBacksOf(redis, flaky.taskId, flaky.generation)).toBe(1);
  const second = await startWorker(infra, TWO_SLOTS);
  try {
    await ended(flaky.taskId);
  } finally {
    await second.stop();
  }
  const attempts = events.statuses(flaky.taskId).map((s) => `${s.state}:${s.attempt}${s.error ? "!" : ""}`);
  expect(attempts).toEqual(["RUNNING:1", "RUNNING:1!", "RUNNING:2", "SUCCEEDED:2"]);
  expect(events.deadLetters(flaky.taskId)).toEqual([]);
});

test("a task handed back more times than it has attempts (a long rolling deploy) still runs, as attempt 1", async () => {
  // The worker provisions its consumers with MaxDeliver = FLOW_MAX_DELIVER (5) + WORKER_HANDBACK_DELIVERIES (10).
  const provisioner = await startWorker(infra, TWO_SLOTS);
  await provisioner.stop();
  const durable = durableName("worker", Subjects.workerMedium);
  expect((await jsm.consumers.info("TASKS", durable)).config.max_deliver).toBe(15);

  // Six stopping workers in turn, each handing the task back unstarted (recorded, then NAKed): more hand-backs than
  // its five attempts. With MaxDeliver 5 the server would stop delivering it after the fifth and it would never run.
  const task = enrichedTask("echo", { rolled: true });
  await publishTask(nc, task);
  const raw = await nc.jetstream().consumers.get("TASKS", durable);
  for (let handBack = 1; handBack <= 6; handBack++) {
    const delivery = await raw.next({ expires: 5_000 });
    expect(delivery?.json<{ taskId: string }>().taskId, `delivery ${handBack}`).toBe(task.taskId);
    await recordHandBacks(redis, [task]);
    delivery?.nak();
  }

  const next = await startWorker(infra, TWO_SLOTS);
  try {
    await ended(task.taskId);
  } finally {
    await next.stop();
  }
  await tasks.refresh();
  expect(events.statuses(task.taskId).map((s) => `${s.state}:${s.attempt}`)).toEqual(["RUNNING:1", "SUCCEEDED:1"]);
  expect(tasks.results(task.taskId)).toHaveLength(1);
});

import { createPublisher, type DeadLetter, type Publisher, STREAMS, type StatusEvent, Subjects } from "@tm/flow";
import { startService } from "@tm/kit";
import { appendAudit, Keys, readDeadLetters } from "@tm/store";
import { serviceEnv, useClients, useInfra, useStarted, waitFor } from "@tm/testkit";
import { beforeAll, expect, test } from "vitest";
import { EXHAUSTED_ERROR } from "../src/advisory.js";
import { deadletter } from "../src/service.js";
import { CRASHING_DURABLE, crashOnLastDelivery } from "./crash-on-last-delivery.js";

const infra = useInfra();
const service = useStarted(() => startService(deadletter, serviceEnv(infra, { LOG_LEVEL: "silent" })));
const clients = useClients(infra);
let publisher: Publisher;

beforeAll(() => {
  publisher = createPublisher(clients.nc);
});

function letter(taskId: string, id: string): DeadLetter {
  return {
    id,
    taskId,
    subject: Subjects.workerMedium,
    consumer: "worker-tasks-worker-medium",
    reason: "exhausted",
    error: "handler failed",
    attempts: 5,
    at: new Date().toISOString(),
    message: { taskId, type: "flaky", priority: "low" },
  };
}

async function lettersFor(taskId: string) {
  return (await readDeadLetters(clients.redis, 0, 1_000)).filter((stored) => stored.taskId === taskId);
}

test("a dead letter is stored with the task's history attached, once", async () => {
  const taskId = crypto.randomUUID();
  for (const [i, action] of ["accepted", "ingested", "started"].entries()) {
    await appendAudit(
      clients.redis,
      { taskId, service: "test", action, at: new Date().toISOString() },
      `seed:${taskId}:${i}`,
    );
  }
  const dead = letter(taskId, `TASKS:${Date.now()}`);
  await publisher.publish(Subjects.deadletter, dead, { msgId: `dlq:${dead.id}` });
  // The same letter again under another message id (past the stream's dedupe window, say): stored once.
  await publisher.publish(Subjects.deadletter, dead, { msgId: `dlq:${dead.id}:again` });

  await waitFor("the letter stored", async () => (await lettersFor(taskId)).length === 1);
  await waitFor("both copies consumed", async () => {
    const info = await (await clients.nc.jetstreamManager()).consumers.info(
      STREAMS.events,
      "deadletter-events-deadletter",
    );
    return info.num_pending === 0 && info.num_ack_pending === 0;
  });
  const stored = await lettersFor(taskId);
  expect(stored).toHaveLength(1);
  expect(stored[0]).toMatchObject({ id: dead.id, reason: "exhausted", error: "handler failed" });
  expect(stored[0]!.history?.map((event) => event.action)).toEqual(["accepted", "ingested", "started"]);
  // Counted by the task's type and priority; the second copy as a duplicate. (Only this test dead-letters a flaky
  // task, so the counts are exact.)
  const metrics = await (await fetch(`http://127.0.0.1:${service.value.opsPort}/metrics`)).text();
  const series = (outcome: string) =>
    new RegExp(
      `^tm_dead_letters_total\\{(?=[^}]*reason="exhausted")(?=[^}]*type="flaky")(?=[^}]*priority="low")(?=[^}]*outcome="${outcome}")[^}]*\\} 1$`,
      "m",
    );
  expect(metrics).toMatch(series("stored"));
  expect(metrics).toMatch(series("duplicate"));
});

test("a crash on the last delivery: the advisory becomes a dead letter and the task FAILED", async () => {
  const jsm = await clients.nc.jetstreamManager();
  const { task, replicaPull, letterId } = await crashOnLastDelivery(clients.nc, { hello: "world" });

  await waitFor(
    "the exhausted letter in dead_letter",
    async () => (await lettersFor(task.taskId)).some((stored) => stored.reason === "exhausted"),
    { timeoutMs: 10_000 },
  );
  expect(await replicaPull).toBeNull(); // max_deliver 1: the message is never delivered again
  const [stored] = await lettersFor(task.taskId);
  expect(stored).toMatchObject({
    id: letterId,
    subject: Subjects.ingest,
    consumer: CRASHING_DURABLE,
    error: EXHAUSTED_ERROR,
    attempts: 1,
    message: { taskId: task.taskId, type: "echo", payload: { hello: "world" } },
  });

  await waitFor("the FAILED status event", async () => {
    const last = await jsm.streams.getMessage(STREAMS.events, { last_by_subj: Subjects.status });
    const event = last.json<StatusEvent>();
    return event.taskId === task.taskId && event.state === "FAILED" && event.source === "deadletter";
  });
  expect(await clients.redis.exists(Keys.deadLetter)).toBe(1);
});

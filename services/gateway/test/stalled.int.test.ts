/**
 * Stalled tasks (GetQueueStats.stalled_tasks, the tm_tasks_stalled gauge) against real nats-server and redis-server,
 * with the gateway in this process and ingest's durable created but not consuming: tasks whose messages wait in the
 * queue are not stalled however long they wait; once their messages are lost (deleted from the stream, as a full
 * stream discards them) they are, after GATEWAY_STALLED_AFTER_SECONDS; a requeue or a cancel takes each out again,
 * and a delayed task is not stalled before its time.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { provisionConsumer, Subjects } from "@tm/flow";
import { loadConfig } from "@tm/kit";
import { TaskState } from "@tm/proto";
import { Keys } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { gateway } from "../src/service.js";
import { storedMessagesOf, useGateway } from "./helpers.js";

const infra = useInfra();
const g = useGateway(infra, { GATEWAY_STALLED_AFTER_SECONDS: "1" });
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
  // Both unchanged past the threshold, but their messages wait in ingest's queue: a backlog, not a stall.
  expect(await stalled()).toEqual({ count: 0, all: true, after: 1 });

  await loseMessagesOf([a.taskId, b.taskId]);
  expect(await stalled()).toEqual({ count: 2, all: true, after: 1 });

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

test("GATEWAY_STALLED_AFTER_SECONDS defaults to 600 s, and a bad value names the variable", () => {
  const shape = gateway.config ?? {};
  expect(loadConfig(shape, {}).GATEWAY_STALLED_AFTER_SECONDS).toBe(600);
  expect(() => loadConfig(shape, { GATEWAY_STALLED_AFTER_SECONDS: "0" })).toThrow("GATEWAY_STALLED_AFTER_SECONDS");
  expect(() => loadConfig(shape, { GATEWAY_STALLED_AFTER_SECONDS: "ten" })).toThrow("GATEWAY_STALLED_AFTER_SECONDS");
});

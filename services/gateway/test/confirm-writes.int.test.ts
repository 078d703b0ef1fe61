/**
 * REDIS_WAIT_REPLICAS in the gateway: a call that changes something (CancelTask here) answers once the replica holds
 * its writes, and UNAVAILABLE naming the setting when no replica does; reads ask nothing of the replicas; a
 * submission waits before its task is queued. The names deciding which calls confirm are checked against both
 * services, so a new read method is not confirmed by mistake (or a new write left out).
 */
import { Code } from "@connectrpc/connect";
import { Subjects } from "@tm/flow";
import { AdminService, Priority, TaskService } from "@tm/proto";
import { Keys } from "@tm/store";
import { type RedisServer, startRedis, useInfra, waitCommandCalls, waitFor, waitForReplicas } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { writesState } from "../src/confirm-writes.js";
import { rejection, startGateway, streamMessagesOf, useGateway } from "./helpers.js";

const infra = useInfra();
const WAITING = { REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "1000" };
const g = useGateway(infra, WAITING);
let replica: RedisServer;
let primary: Redis;
let onReplica: Redis;
let nc: NatsConnection;

beforeAll(async () => {
  replica = await startRedis({ replicaOf: infra.redis.port });
  primary = new Redis(infra.redis.url);
  onReplica = new Redis(replica.url);
  onReplica.on("error", () => undefined); // the test stops the replica
  nc = await connect({ servers: infra.nats.url });
  await waitForReplicas(infra.redis, 1);
});
afterAll(async () => {
  primary?.disconnect();
  onReplica?.disconnect();
  await nc?.close();
  await replica?.dispose();
});

test("the calls that confirm their writes are exactly the unary ones that change something", () => {
  const confirmed = [...TaskService.methods, ...AdminService.methods]
    .filter((m) => m.methodKind === "unary" && writesState(m.localName))
    .map((m) => m.name)
    .sort();
  expect(confirmed).toEqual(
    [
      "CancelTask",
      "PromoteTask",
      "ReplayDeadLetters",
      "RequeueTasks",
      "DiscardDeadLetters",
      "CancelTasks",
      "PauseQueue",
      "ResumeQueue",
      "CreateSchedule",
      "DeleteSchedule",
      "PauseSchedule",
      "ResumeSchedule",
      "RunSchedule",
      "SetTypeLimit",
      "ClearTypeLimit",
      "PauseType",
      "ResumeType",
      "QuietWorker",
      "ResumeWorker",
    ].sort(),
  );
});

test("a cancel answers once the replica holds it; a read asks nothing; no replica: UNAVAILABLE naming the setting", async () => {
  const { taskId } = await g.client.submitTask({ type: "sleep", payload: { ms: 60_000 } });
  const before = await waitCommandCalls(primary);
  await g.client.getTask({ taskId });
  expect(await waitCommandCalls(primary)).toBe(before);
  await g.client.cancelTask({ taskId });
  expect(await waitCommandCalls(primary)).toBeGreaterThan(before);
  expect(await onReplica.exists(Keys.cancel(taskId))).toBe(1);

  await replica.stop();
  try {
    await waitFor("the primary to see the replica gone", async () =>
      (await primary.info("replication")).includes("connected_slaves:0"),
    );
    const second = await g.client.submitTask({ type: "sleep", payload: { ms: 60_000 } }).catch((e: unknown) => e);
    expect(String(second)).toContain("REDIS_WAIT_REPLICAS");
    const refused = await rejection(g.admin.pauseQueue({ priority: Priority.LOW }));
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.message).toContain("0 of the 1 asked for (REDIS_WAIT_REPLICAS) after 1000 ms");
  } finally {
    await replica.start();
  }
});

test("a requeue not held by the replica queues nothing; the sweeper queues the generation once it is back", async () => {
  await waitForReplicas(infra.redis, 1); // the test before restarted it
  const { taskId } = await g.client.submitTask({ type: "sleep", payload: { ms: 60_000 } });
  const queuedIds = async () =>
    (await streamMessagesOf(nc, "TASKS", Subjects.ingest, taskId)).map((m) => m.msgId).sort();
  expect(await queuedIds()).toEqual([`${taskId}:ingest:0`]);

  await replica.stop();
  try {
    await waitFor("the primary to see the replica gone", async () =>
      (await primary.info("replication")).includes("connected_slaves:0"),
    );
    const refused = await rejection(g.admin.requeueTasks({ taskIds: [taskId], stalledForSeconds: 0 }));
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.message).toContain("REDIS_WAIT_REPLICAS");
    // The generation started on the primary, but nothing of it went out: a failover now could not leave a queued
    // generation whose claim is lost.
    expect(await primary.hget(Keys.task(taskId), "generation")).toBe("1");
    expect(await queuedIds()).toEqual([`${taskId}:ingest:0`]);
  } finally {
    await replica.start();
  }
  // A replica whose sweeper runs every 1/6 s (not the file's gateway: its sweeps would send WAITs of their own into
  // the other tests' counts).
  const sweeping = await startGateway(infra, { ...WAITING, GATEWAY_REQUEUE_AFTER_MS: "500" });
  try {
    await waitFor("the sweeper to queue generation 1", async () => (await queuedIds()).length === 2);
    expect(await queuedIds()).toEqual([`${taskId}:ingest:0`, `${taskId}:ingest:1`]);
  } finally {
    await sweeping.stop();
  }
});

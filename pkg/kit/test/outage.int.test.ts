/**
 * A dependency outage is told apart from a failing message, on the real clients' errors, and a delivery whose
 * handler hits one is held and run again in place once Redis is back: no attempt is spent, nothing is
 * dead-lettered, even when the outage outlasts every retry delay.
 */
import {
  Consumer,
  createPublisher,
  DEFAULT_FLOW_SETTINGS,
  type FlowSettings,
  type Outcome,
  provisionConsumer,
  provisionStreams,
  Subjects,
} from "@tm/flow";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createLogger } from "../src/logger.js";
import { isOutage } from "../src/outage.js";
import { connectRedis } from "../src/redis.js";

const infra = useInfra();
let nc: NatsConnection;
// Retry delays that a Redis outage of a second or more outlasts: without the hold the message would be dead-lettered.
const settings: FlowSettings = { ...DEFAULT_FLOW_SETTINGS, ackWaitMs: 2_000, retryDelaysMs: [50, 50, 50, 50] };
const log = createLogger("outage-test", "silent");

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
});
afterAll(async () => {
  await nc?.drain();
});

/** A client that gives up on a command after one reconnect attempt, so an outage surfaces as an error at once. */
function impatientRedis(): Redis {
  return connectRedis(infra.redis.url, "outage-test", log, {
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50,
  });
}

test("the clients' own outage errors are outages; a message's own failures are not", async () => {
  const redis = impatientRedis();
  try {
    await redis.set("k", "v");
    await expect(redis.hset("k", "f", "v")).rejects.toSatisfy((error) => !isOutage(error)); // WRONGTYPE
    await infra.redis.stop();
    const down = await redis.get("k").catch((error: unknown) => error);
    expect(down).toBeInstanceOf(Error);
    expect(isOutage(down), String(down)).toBe(true);
  } finally {
    await infra.redis.start();
    redis.disconnect();
  }

  const closed = await connect({ servers: infra.nats.url });
  await closed.close();
  const natsDown = await closed
    .jetstream()
    .publish(Subjects.ingest, new Uint8Array())
    .catch((error: unknown) => error);
  expect(isOutage(natsDown), String(natsDown)).toBe(true);

  expect(isOutage(new Error("connect ECONNREFUSED 127.0.0.1:8081"))).toBe(false);
});

test("Redis refusing writes for now (memory full, too few replicas for min-replicas-to-write) is an outage", async () => {
  const redis = impatientRedis();
  try {
    await redis.config("SET", "maxmemory", "1");
    const full = await redis.set("k", "v").catch((error: unknown) => error);
    expect(String(full)).toMatch(/^ReplyError: OOM command not allowed/);
    expect(isOutage(full)).toBe(true);
    await redis.config("SET", "maxmemory", "0");

    await redis.config("SET", "min-replicas-to-write", "1");
    const alone = await redis.set("k", "v").catch((error: unknown) => error);
    expect(String(alone)).toMatch(/^ReplyError: NOREPLICAS/);
    expect(isOutage(alone)).toBe(true);
  } finally {
    await redis.config("SET", "maxmemory", "0");
    await redis.config("SET", "min-replicas-to-write", "0");
    redis.disconnect();
  }
  expect(isOutage(new Error("flaky: attempt 1 fails"))).toBe(false);
  expect(isOutage(undefined)).toBe(false);
});

test("a handler failing on a Redis outage longer than all retry delays is held, then succeeds on its first attempt", async () => {
  const jsm = await nc.jetstreamManager();
  await provisionStreams(jsm, settings);
  await provisionConsumer(jsm, "held", Subjects.ingest, settings);
  const publisher = createPublisher(nc);
  const redis = impatientRedis();
  const taskId = crypto.randomUUID();
  const attempts: number[] = [];
  const outcomes: Outcome[] = [];
  const consumer = new Consumer({
    js: nc.jetstream(),
    publisher,
    service: "held",
    subject: Subjects.ingest,
    settings,
    isOutage,
    handler: async (m, ctx) => {
      attempts.push(ctx.attempt);
      await redis.set(`done:${m.taskId}`, String(ctx.attempt));
    },
    hooks: { onOutcome: (outcome) => void outcomes.push(outcome) },
  });
  try {
    await consumer.start();
    await infra.redis.stop();
    await publisher.publish(
      Subjects.ingest,
      { taskId, type: "echo", priority: "medium", payload: {}, createdAt: new Date().toISOString() },
      { msgId: `${taskId}:ingest` },
    );
    // Held through more failed runs than the message has deliveries: a NAK per failure would have dead-lettered it.
    await waitFor("held through the outage", () => outcomes.filter((o) => o === "held").length > settings.maxDeliver);
    await infra.redis.start();
    await waitFor("acked", () => outcomes.includes("acked"));
    expect(outcomes.filter((o) => o !== "held")).toEqual(["acked"]);
    expect(new Set(attempts)).toEqual(new Set([1]));
    const check = new Redis(infra.redis.url);
    expect(await check.get(`done:${taskId}`)).toBe("1");
    check.disconnect();
    // nats-server applies the ack asynchronously: wait for it, then nothing was redelivered.
    await waitFor(
      "the ack applied",
      async () => (await jsm.consumers.info("TASKS", "held-tasks-ingest")).num_ack_pending === 0,
    );
    expect((await jsm.consumers.info("TASKS", "held-tasks-ingest")).num_redelivered).toBe(0);
  } finally {
    await consumer.stop();
    redis.disconnect();
  }
});

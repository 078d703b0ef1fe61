/**
 * REDIS_WAIT_REPLICAS: a write is confirmed once a replica holds it, fails as a Redis outage when none does in time,
 * and many callers at once share a few WAITs rather than one each.
 */
import { type RedisServer, startRedis, waitCommandCalls, waitFor, waitForReplicas } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { isOutage } from "../src/outage.js";
import { NO_REPLICA_ACKS, ReplicaAckError, replicaAcks } from "../src/replica-acks.js";

let primary: RedisServer;
let replica: RedisServer;
let redis: Redis;
let onReplica: Redis;

beforeAll(async () => {
  primary = await startRedis();
  replica = await startRedis({ replicaOf: primary.port });
  redis = new Redis(primary.url);
  onReplica = new Redis(replica.url);
  onReplica.on("error", () => undefined); // the second test stops the replica
  await waitForReplicas(primary, 1);
});
afterAll(async () => {
  redis?.disconnect();
  onReplica?.disconnect();
  await Promise.all([primary?.dispose(), replica?.dispose()]);
});

test("confirmed once the replica holds the write; 50 callers at once share at most a few WAITs", async () => {
  const acks = replicaAcks(redis, 1, 2_000);
  await redis.set("one", "1");
  await acks.confirm();
  expect(await onReplica.get("one")).toBe("1");

  const before = await waitCommandCalls(redis);
  await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      await redis.set(`many:${i}`, String(i));
      await acks.confirm();
    }),
  );
  const waits = (await waitCommandCalls(redis)) - before;
  expect(waits).toBeGreaterThanOrEqual(1);
  expect(waits).toBeLessThanOrEqual(3);
  expect(await onReplica.mget(Array.from({ length: 50 }, (_, i) => `many:${i}`))).toEqual(
    Array.from({ length: 50 }, (_, i) => String(i)),
  );
});

test("with the replica gone, a write fails as an outage naming the setting; none asked for, nothing waits", async () => {
  await replica.stop();
  try {
    await waitFor("the primary to see the replica gone", async () =>
      (await redis.info("replication")).includes("connected_slaves:0"),
    );
    await redis.set("two", "2");
    const failure = await replicaAcks(redis, 1, 200)
      .confirm()
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ReplicaAckError);
    expect(String(failure)).toContain("0 of the 1 asked for (REDIS_WAIT_REPLICAS)");
    expect(isOutage(failure)).toBe(true);

    const before = await waitCommandCalls(redis);
    await replicaAcks(redis, 0, 200).confirm();
    await NO_REPLICA_ACKS.confirm();
    expect(await waitCommandCalls(redis)).toBe(before);
  } finally {
    await replica.start();
  }
});

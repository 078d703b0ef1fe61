/**
 * task_handbacks:<id> against a real redis-server: hand-backs are counted per task and generation, in one round trip
 * for many, and the key expires with the task's records.
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { Bounds, handBacksOf, Keys, recordHandBacks, redeliveredAttempt } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

test("hand-backs are counted per task and generation; none recorded reads 0", async () => {
  const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
  await recordHandBacks(clients.redis, [
    { taskId: a, generation: 0 },
    { taskId: b, generation: 0 },
  ]);
  await recordHandBacks(clients.redis, [{ taskId: a, generation: 0 }]);
  await recordHandBacks(clients.redis, [{ taskId: a, generation: 1 }]);
  await recordHandBacks(clients.redis, []);
  expect(await handBacksOf(clients.redis, a, 0)).toBe(2);
  expect(await handBacksOf(clients.redis, a, 1)).toBe(1);
  expect(await handBacksOf(clients.redis, b, 0)).toBe(1);
  expect(await handBacksOf(clients.redis, b, 1)).toBe(0);
  expect(await handBacksOf(clients.redis, crypto.randomUUID(), 0)).toBe(0);
  const ttl = await clients.redis.ttl(Keys.handBacks(a));
  expect(ttl).toBeGreaterThan(Bounds.taskTtlSeconds - 60);
  expect(ttl).toBeLessThanOrEqual(Bounds.taskTtlSeconds);
});

test("a redelivery's attempt: its deliveries less the hand-backs, and at least one past the attempt its status started", async () => {
  const taskId = crypto.randomUUID();
  expect(await redeliveredAttempt(clients.redis, taskId, 0, 3)).toBe(3);
  await recordHandBacks(clients.redis, [{ taskId, generation: 0 }]);
  expect(await redeliveredAttempt(clients.redis, taskId, 0, 2)).toBe(1);
  // The server gave the handed-back delivery back (not counted), and attempt 1 then ran and failed: RUNNING 1 stored.
  await clients.redis.hset(Keys.status(taskId), { state: "RUNNING", attempt: "1", generation: "0" });
  expect(await redeliveredAttempt(clients.redis, taskId, 0, 2)).toBe(2);
  // Another generation's status and hand-backs do not count.
  expect(await redeliveredAttempt(clients.redis, taskId, 1, 2)).toBe(2);
  await clients.redis.hset(Keys.status(taskId), { state: "SUCCEEDED" });
  expect(await redeliveredAttempt(clients.redis, taskId, 0, 2)).toBe(1);
});

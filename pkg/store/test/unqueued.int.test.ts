/**
 * tasks_unqueued against a real redis-server: saveTask enters a new submission only when asked, trims entries older
 * than the task TTL; the sweeper's reads come oldest first and bounded; the sweep lease has one holder.
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { Bounds, claimSweepLease, Keys, markQueued, saveTask, unqueuedBefore } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const NOW = Date.now();

async function save(taskId: string, createdMs: number, unqueued: boolean) {
  const task = {
    taskId,
    type: "echo",
    priority: "low" as const,
    payload: {},
    metadata: {},
    createdAt: new Date(createdMs).toISOString(),
    generation: 0,
  };
  await saveTask(clients.redis, task, { unqueued });
}

test("saveTask enters the task only when asked, scored by createdAt; markQueued takes it out", async () => {
  await save("a", NOW - 3_000, true);
  await save("b", NOW - 2_000, false);
  await save("c", NOW - 1_000, true);
  expect(await clients.redis.zrange(Keys.unqueued, 0, -1, "WITHSCORES")).toEqual([
    "a",
    String(NOW - 3_000),
    "c",
    String(NOW - 1_000),
  ]);
  await markQueued(clients.redis, ["a", "c", "unknown"]);
  await markQueued(clients.redis, []);
  expect(await clients.redis.zcard(Keys.unqueued)).toBe(0);
});

test("unqueuedBefore: entries created before the cutoff (exclusive), oldest first, at most the limit", async () => {
  for (let i = 0; i < 5; i++) await save(`t${i}`, NOW - 10_000 + i * 1_000, true);
  expect(await unqueuedBefore(clients.redis, NOW - 7_000, 10)).toEqual([
    { taskId: "t0", createdMs: NOW - 10_000 },
    { taskId: "t1", createdMs: NOW - 9_000 },
    { taskId: "t2", createdMs: NOW - 8_000 },
  ]);
  expect((await unqueuedBefore(clients.redis, NOW, 2)).map((e) => e.taskId)).toEqual(["t0", "t1"]);
});

test("entries older than the task TTL are trimmed on the next save (the set stays bounded)", async () => {
  await save("ancient", NOW - Bounds.taskTtlSeconds * 1_000 - 5_000, true);
  await save("fresh", NOW, true);
  expect(await clients.redis.zrange(Keys.unqueued, 0, -1)).toEqual(["fresh"]);
});

test("the sweep lease has one holder until it expires", async () => {
  expect(await claimSweepLease(clients.redis, "a", 60_000)).toBe(true);
  expect(await claimSweepLease(clients.redis, "b", 60_000)).toBe(false);
  await clients.redis.del(Keys.requeueSweepLease);
  expect(await claimSweepLease(clients.redis, "b", 60_000)).toBe(true);
  expect(await clients.redis.pttl(Keys.requeueSweepLease)).toBeGreaterThan(0);
});

/**
 * The paused worker queues (queue_paused) against a real redis-server: a pause keeps its first time and operator, a
 * resume says whether there was one, and reading lists high to low, ignoring fields that are not priorities and
 * keeping a priority paused whose record is not JSON.
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { Keys, pauseQueue, readPausedQueues, resumeQueue } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

test("pause, pause again, read high to low, resume", async () => {
  await pauseQueue(clients.redis, "low", "ops", new Date("2026-12-05T10:00:00Z"));
  await pauseQueue(clients.redis, "low", "someone-else", new Date("2026-12-05T11:00:00Z"));
  await pauseQueue(clients.redis, "high", undefined, new Date("2026-12-05T12:00:00Z"));
  expect(await readPausedQueues(clients.redis)).toEqual([
    { priority: "high", at: "2026-12-05T12:00:00.000Z" },
    { priority: "low", at: "2026-12-05T10:00:00.000Z", by: "ops" },
  ]);
  expect((await resumeQueue(clients.redis, "low")).wasPaused).toBe(true);
  expect((await resumeQueue(clients.redis, "low")).wasPaused).toBe(false);
  expect((await readPausedQueues(clients.redis)).map((q) => q.priority)).toEqual(["high"]);
});

test("a field that is not a priority is ignored; a priority whose record is not JSON stays paused", async () => {
  await clients.redis.hset(Keys.queuePaused, "urgent", "{}", "medium", "not json");
  expect(await readPausedQueues(clients.redis)).toEqual([{ priority: "medium", at: "" }]);
});

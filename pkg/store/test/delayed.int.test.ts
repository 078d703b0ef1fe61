/**
 * tasks_delayed against a real redis-server: saveTask enters a delayed task there (not in tasks_unqueued) and keeps
 * its record for its delay plus the TTL; releaseDue moves due tasks to tasks_unqueued, oldest first and bounded, and
 * two releasers at once never take the same task; a failed release goes back only while it is still unsettled.
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import {
  anyDelayedDue,
  Bounds,
  countDelayed,
  forgetDelayed,
  Keys,
  markQueued,
  promoteDelayed,
  readTask,
  releaseDue,
  returnToDelayed,
  saveTask,
} from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const NOW = Date.now();

async function saveDelayed(taskId: string, dueMs: number) {
  const task = {
    taskId,
    type: "echo",
    priority: "low" as const,
    payload: {},
    metadata: {},
    createdAt: new Date(NOW).toISOString(),
    generation: 0,
    runAt: new Date(dueMs).toISOString(),
  };
  await saveTask(clients.redis, task, { delayedUntilMs: dueMs });
}

test("a delayed task is entered in tasks_delayed by its time, with its runAt, and its record outlives its delay", async () => {
  await saveDelayed("a", NOW + 3_600_000);
  expect(await clients.redis.zrange(Keys.delayed, 0, -1, "WITHSCORES")).toEqual(["a", String(NOW + 3_600_000)]);
  expect(await clients.redis.zcard(Keys.unqueued)).toBe(0);
  expect((await readTask(clients.redis, "a"))?.runAt).toBe(new Date(NOW + 3_600_000).toISOString());
  const ttl = await clients.redis.ttl(Keys.task("a"));
  expect(ttl).toBeGreaterThan(Bounds.taskTtlSeconds + 3_590);
  expect(ttl).toBeLessThanOrEqual(Bounds.taskTtlSeconds + 3_600);
  // Listed like any task submitted now.
  expect(await clients.redis.zscore(Keys.taskIndex, "a")).toBe(String(NOW));
});

test("releaseDue moves only due tasks, oldest first and at most `limit`, to tasks_unqueued scored by now", async () => {
  await saveDelayed("late", NOW - 2_000);
  await saveDelayed("due", NOW - 1_000);
  await saveDelayed("exactly", NOW);
  await saveDelayed("future", NOW + 1_000);
  expect(await anyDelayedDue(clients.redis, NOW)).toBe(true);
  expect(await countDelayed(clients.redis, NOW - 1_500)).toEqual({ total: 4, overdue: 1 });

  expect(await releaseDue(clients.redis, NOW, 2)).toEqual([
    { taskId: "late", dueMs: NOW - 2_000 },
    { taskId: "due", dueMs: NOW - 1_000 },
  ]);
  expect(await releaseDue(clients.redis, NOW, 2)).toEqual([{ taskId: "exactly", dueMs: NOW }]);
  expect(await releaseDue(clients.redis, NOW, 2)).toEqual([]);
  expect(await anyDelayedDue(clients.redis, NOW)).toBe(false);
  expect(await clients.redis.zrange(Keys.delayed, 0, -1)).toEqual(["future"]);
  expect(await clients.redis.zrange(Keys.unqueued, 0, -1, "WITHSCORES")).toEqual([
    "due",
    String(NOW),
    "exactly",
    String(NOW),
    "late",
    String(NOW),
  ]);
});

test("two releasers at once take each due task exactly once", async () => {
  const ids = Array.from({ length: 300 }, (_, i) => `t${i}`);
  for (const id of ids) await saveDelayed(id, NOW - 1);
  const other = clients.redis.duplicate();
  try {
    const takes = await Promise.all(
      Array.from({ length: 8 }, (_, i) => releaseDue(i % 2 ? other : clients.redis, NOW, 50)),
    );
    const more = await releaseDue(clients.redis, NOW, 1_000);
    const taken = [...takes.flat(), ...more].map((entry) => entry.taskId);
    expect(taken).toHaveLength(ids.length);
    expect(new Set(taken).size).toBe(ids.length);
  } finally {
    other.disconnect();
  }
});

test("a failed release goes back to tasks_delayed unless it was settled meanwhile; a cancel forgets it", async () => {
  await saveDelayed("a", NOW - 1);
  await saveDelayed("b", NOW - 1);
  await releaseDue(clients.redis, NOW, 10);
  expect(await returnToDelayed(clients.redis, "a", NOW + 5)).toBe(true);
  await markQueued(clients.redis, ["b"]); // the requeue sweeper settled it
  expect(await returnToDelayed(clients.redis, "b", NOW + 5)).toBe(false);
  expect(await clients.redis.zrange(Keys.delayed, 0, -1, "WITHSCORES")).toEqual(["a", String(NOW + 5)]);
  expect(await clients.redis.zcard(Keys.unqueued)).toBe(0);

  expect(await forgetDelayed(clients.redis, "a")).toBe(true);
  expect(await forgetDelayed(clients.redis, "a")).toBe(false);
  expect(await countDelayed(clients.redis, NOW)).toEqual({ total: 0, overdue: 0 });
});

test("promoteDelayed makes a waiting task due now, its runAt and stall clock too, and answers its old time; otherwise undefined", async () => {
  await saveDelayed("later", NOW + 3_600_000);
  await clients.redis.zadd(Keys.unfinished, NOW + 3_600_000, "later"); // as its PENDING status entered it
  expect(await promoteDelayed(clients.redis, "later", NOW)).toBe(NOW + 3_600_000);
  expect(await clients.redis.zscore(Keys.delayed, "later")).toBe(String(NOW));
  expect(await clients.redis.zscore(Keys.unfinished, "later")).toBe(String(NOW));
  expect((await readTask(clients.redis, "later"))?.runAt).toBe(new Date(NOW).toISOString());
  expect(await releaseDue(clients.redis, NOW, 10)).toEqual([{ taskId: "later", dueMs: NOW }]);
  // Released already: no longer waiting.
  expect(await promoteDelayed(clients.redis, "later", NOW)).toBeUndefined();
  expect(await promoteDelayed(clients.redis, "never-submitted", NOW)).toBeUndefined();
  // An entry whose record is gone (expired) is not resurrected as a half-written record.
  await clients.redis.zadd(Keys.delayed, NOW + 1_000, "orphan");
  expect(await promoteDelayed(clients.redis, "orphan", NOW)).toBeUndefined();
  expect(await clients.redis.exists(Keys.task("orphan"))).toBe(0);
  expect(await clients.redis.zscore(Keys.unfinished, "orphan")).toBeNull(); // XX: never entered by a promote
});

/**
 * claimRequeue against a real redis-server: a stalled task's new generation starts only if the task is still as it
 * was judged (same generation, same status version) and no cancel was requested, and it is entered in
 * tasks_unqueued in the same step (so the requeue sweeper finishes a requeue whose gateway died after the claim).
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { claimRequeue, Keys, markCancelled, readTask, saveTask } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const TASK_ID = "0b7d7a52-6c1f-4f57-8a37-3d2f1e0c9b8a";
const VERSION = 4; // the status version the requeue was decided on (the claim only compares it)

async function setUp(): Promise<void> {
  await saveTask(clients.redis, {
    taskId: TASK_ID,
    type: "echo",
    priority: "high",
    payload: {},
    metadata: {},
    createdAt: new Date(Date.now() - 3_600_000).toISOString(),
    generation: 0,
  });
  await clients.redis.hset(Keys.status(TASK_ID), { state: "SCHEDULED", version: VERSION, generation: 0 });
}

test("starts the next generation and enters tasks_unqueued at once", async () => {
  await setUp();
  const at = Date.now();
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, at)).toEqual({ claimed: true, generation: 1 });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBe(String(at));
});

test("two requeues of one task at once: exactly one starts a generation", async () => {
  await setUp();
  const claims = await Promise.all([
    claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now()),
    claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now()),
  ]);
  expect(claims.filter((claim) => claim.claimed)).toHaveLength(1);
  expect(claims).toContainEqual({ claimed: false, reason: "moved_on" });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
});

test("a task that moved after it was judged stalled (a newer status) is left alone", async () => {
  await setUp();
  await clients.redis.hset(Keys.status(TASK_ID), { state: "RUNNING", version: VERSION + 1 });
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({
    claimed: false,
    reason: "moved_on",
  });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(0);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBeNull();
});

test("a task replayed meanwhile (a newer generation) is left alone", async () => {
  await setUp();
  await clients.redis.hincrby(Keys.task(TASK_ID), "generation", 1);
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({
    claimed: false,
    reason: "moved_on",
  });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
});

test("a task being cancelled is not requeued", async () => {
  await setUp();
  await markCancelled(clients.redis, TASK_ID, "no longer wanted");
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({
    claimed: false,
    reason: "cancelling",
  });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(0);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBeNull();
});

test("a task the sweeper failed as never queued: its marker (the sweeper's) is cleared with the new generation", async () => {
  await setUp();
  await markCancelled(clients.redis, TASK_ID, "not queued: too old to queue safely");
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now(), { clearCancelMarker: true })).toEqual({
    claimed: true,
    generation: 1,
  });
  expect(await clients.redis.exists(Keys.cancel(TASK_ID))).toBe(0);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).not.toBeNull();
});

test("a task whose record expired is not requeued and no record is made up", async () => {
  await setUp();
  await clients.redis.del(Keys.task(TASK_ID));
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({
    claimed: false,
    reason: "expired",
  });
  expect(await clients.redis.exists(Keys.task(TASK_ID))).toBe(0);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBeNull();
});

test("a task with a generation still being queued (in tasks_unqueued) is left alone: a second requeue reading between another's claim and its PENDING cannot start one more", async () => {
  await setUp();
  // The first requeue's claim: generation 1, entered in tasks_unqueued; its PENDING (a new status version) not yet written.
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({ claimed: true, generation: 1 });
  // A second requeue that read the task after that claim sees generation 1 and the old status version.
  expect(await claimRequeue(clients.redis, TASK_ID, 1, VERSION, Date.now())).toEqual({
    claimed: false,
    reason: "moved_on",
  });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
});

test("a delayed task still waiting for its release (in tasks_delayed, even overdue) is left to the releaser", async () => {
  await setUp();
  await clients.redis.zadd(Keys.delayed, Date.now() - 3_600_000, TASK_ID);
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({
    claimed: false,
    reason: "moved_on",
  });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(0);
  await clients.redis.zrem(Keys.delayed, TASK_ID);
  expect(await claimRequeue(clients.redis, TASK_ID, 0, VERSION, Date.now())).toEqual({ claimed: true, generation: 1 });
});

test("automatic requeues are counted on the task and refused past their limit; an operator's are neither", async () => {
  await setUp();
  const requeueAt = async (generation: number, autoLimit?: number) => {
    const claim = await claimRequeue(clients.redis, TASK_ID, generation, VERSION, Date.now(), {
      ...(autoLimit === undefined ? {} : { autoLimit }),
    });
    await clients.redis.zrem(Keys.unqueued, TASK_ID); // queued: its PubAck seen
    return claim;
  };
  expect(await requeueAt(0, 2)).toEqual({ claimed: true, generation: 1 });
  expect(await requeueAt(1, 2)).toEqual({ claimed: true, generation: 2 });
  expect(await requeueAt(2, 2)).toEqual({ claimed: false, reason: "auto_limit" });
  expect(await readTask(clients.redis, TASK_ID)).toMatchObject({ generation: 2, autoRequeues: 2 });
  // An operator may still requeue it, and that is not counted against the limit.
  expect(await requeueAt(2)).toEqual({ claimed: true, generation: 3 });
  expect(await readTask(clients.redis, TASK_ID)).toMatchObject({ generation: 3, autoRequeues: 2 });
  await expect(claimRequeue(clients.redis, TASK_ID, 3, VERSION, Date.now(), { autoLimit: 0 })).rejects.toThrow(
    "autoLimit must be a positive integer",
  );
});

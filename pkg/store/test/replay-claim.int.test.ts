/**
 * claimReplay against a real redis-server: claiming a dead letter and starting the task's next generation is one
 * step, so there is no state in which the letter is gone but the new generation is not in tasks_unqueued (the state
 * that lost a replay when the gateway died between the two).
 */
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import {
  appendDeadLetter,
  claimReplay,
  Keys,
  markCancelled,
  readDeadLetterLines,
  readTask,
  type StoredDeadLetter,
  saveTask,
} from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const TASK_ID = "7f0c3f1e-5b7a-4c35-9d0e-2f3a4b5c6d7e";

async function setUp(): Promise<string> {
  await saveTask(clients.redis, {
    taskId: TASK_ID,
    type: "fail",
    priority: "medium",
    payload: {},
    metadata: {},
    createdAt: new Date(Date.now() - 60_000).toISOString(),
    generation: 0,
  });
  const letter: StoredDeadLetter = {
    id: "TASKS:41",
    taskId: TASK_ID,
    subject: "tasks.worker.medium",
    consumer: "worker",
    reason: "exhausted",
    error: "always fails",
    attempts: 5,
    at: new Date().toISOString(),
    message: { taskId: TASK_ID, generation: 0 },
  };
  await appendDeadLetter(clients.redis, letter);
  const [line] = await readDeadLetterLines(clients.redis, 0, 1);
  return line!.raw;
}

test("claims the letter, increments the generation, clears the cancel marker and enters tasks_unqueued at once", async () => {
  const raw = await setUp();
  await markCancelled(clients.redis, TASK_ID, "cancelled before it died");
  const at = Date.now();

  expect(await claimReplay(clients.redis, raw, TASK_ID, 0, at)).toEqual({ claimed: true, generation: 1 });
  expect(await clients.redis.llen(Keys.deadLetter)).toBe(0);
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
  expect(await clients.redis.exists(Keys.cancel(TASK_ID))).toBe(0);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBe(String(at));
});

test("a letter already claimed is gone and changes nothing more", async () => {
  const raw = await setUp();
  await claimReplay(clients.redis, raw, TASK_ID, 0, Date.now());
  await clients.redis.zrem(Keys.unqueued, TASK_ID);

  expect(await claimReplay(clients.redis, raw, TASK_ID, 0, Date.now())).toEqual({ claimed: false, reason: "gone" });
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBeNull();
});

test("two replays of the same letter at once: exactly one claims it", async () => {
  const raw = await setUp();
  const claims = await Promise.all([
    claimReplay(clients.redis, raw, TASK_ID, 0, Date.now()),
    claimReplay(clients.redis, raw, TASK_ID, 0, Date.now()),
  ]);
  expect(claims.filter((claim) => claim.claimed)).toHaveLength(1);
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
});

test("a task whose record expired is not claimed: the letter stays and no record is made up", async () => {
  const raw = await setUp();
  await clients.redis.del(Keys.task(TASK_ID));

  expect(await claimReplay(clients.redis, raw, TASK_ID, 0, Date.now())).toEqual({ claimed: false, reason: "expired" });
  expect(await clients.redis.llen(Keys.deadLetter)).toBe(1);
  expect(await clients.redis.exists(Keys.task(TASK_ID))).toBe(0);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBeNull();
});

test("a replay decided on an older generation (another letter of the task replayed meanwhile) claims nothing", async () => {
  const raw = await setUp();
  await clients.redis.hincrby(Keys.task(TASK_ID), "generation", 1); // the other letter's replay

  expect(await claimReplay(clients.redis, raw, TASK_ID, 0, Date.now())).toEqual({ claimed: false, reason: "moved_on" });
  expect(await clients.redis.llen(Keys.deadLetter)).toBe(1);
  expect((await readTask(clients.redis, TASK_ID))?.generation).toBe(1);
  expect(await clients.redis.zscore(Keys.unqueued, TASK_ID)).toBeNull();
});

/**
 * Concurrency keys against a real redis-server: saveTask admits a task under its key's limit or makes it wait; the
 * status script gives a finished task's place to the oldest waiting one (through tasks_delayed, which releaseDue then
 * moves to tasks_unqueued as admitted); a cancel takes a waiting task out; keys are independent; a place whose task is
 * gone is taken back; a delayed task waits for its key when due.
 */
import type { TaskState } from "@tm/flow";
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import {
  applyStatus,
  applyStatusBatch,
  countConcurrencyWaiting,
  isConcurrencyWaiting,
  Keys,
  PLACE_CHECK_AFTER_MS,
  readConcurrencyKey,
  readTask,
  releaseDue,
  type SavedTask,
  saveTask,
} from "../src/index.js";
import { namedTasks, statusOf } from "./named-tasks.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const BASE = Date.now() - 60_000;

const { id, named } = namedTasks();

/** Saves task `id` of `key` (created `offset` ms after BASE) as the gateway does for one queued at once. */
async function submit(
  name: string,
  key: string,
  limit: number,
  offset = 0,
  options: { delayedUntilMs?: number } = {},
): Promise<SavedTask> {
  const task = {
    taskId: id(name),
    type: "echo",
    priority: "medium" as const,
    payload: {},
    metadata: {},
    createdAt: new Date(BASE + offset).toISOString(),
    generation: 0,
    concurrencyKey: key,
    concurrencyLimit: limit,
  };
  return options.delayedUntilMs === undefined
    ? saveTask(clients.redis, task, { unqueued: true })
    : saveTask(clients.redis, task, { delayedUntilMs: options.delayedUntilMs });
}

const status = (name: string, state: TaskState) => statusOf(id(name), state);

async function finish(name: string, state: TaskState = "SUCCEEDED") {
  expect(await applyStatus(clients.redis, status(name, state))).toBe(true);
}

const running = async (key: string) => named(await clients.redis.zrange(Keys.concurrencyRunning(key), 0, -1)).sort();
const waiting = async (key: string) => named(await clients.redis.zrange(Keys.concurrencyWaiting(key), 0, -1));
const unqueued = async () => named(await clients.redis.zrange(Keys.unqueued, 0, -1));
const delayed = async () => named(await clients.redis.zrange(Keys.delayed, 0, -1));
const releasedNow = async () => named((await releaseDue(clients.redis, Date.now(), 10)).map((entry) => entry.taskId));

test("tasks within the limit are queued; the rest wait, oldest first, and each end releases the next", async () => {
  expect(await submit("a", "acct-1", 2, 0)).toEqual({ waitingFor: 0 });
  expect(await submit("b", "acct-1", 2, 1)).toEqual({ waitingFor: 0 });
  // Two created in the same millisecond (a batch's tasks) wait in the order they came.
  expect(await submit("c", "acct-1", 2, 2)).toEqual({ waitingFor: 0, waitsFor: "concurrency" });
  expect(await submit("d", "acct-1", 2, 2)).toEqual({ waitingFor: 0, waitsFor: "concurrency" });
  expect(await running("acct-1")).toEqual(["a", "b"]);
  expect(await waiting("acct-1")).toEqual(["c", "d"]);
  expect((await unqueued()).sort()).toEqual(["a", "b"]);
  expect(await isConcurrencyWaiting(clients.redis, "acct-1", id("c"))).toBe(true);
  expect(await isConcurrencyWaiting(clients.redis, "acct-1", id("a"))).toBe(false);
  expect((await readTask(clients.redis, id("c")))?.concurrencyKey).toBe("acct-1");
  expect((await readTask(clients.redis, id("c")))?.concurrencyLimit).toBe(2);

  await finish("a");
  expect(await running("acct-1")).toEqual(["b", "c"]);
  expect(await waiting("acct-1")).toEqual(["d"]);
  // Made due now; the releaser finds it admitted already and moves it on to be queued.
  expect(await delayed()).toEqual(["c"]);
  expect(await releasedNow()).toEqual(["c"]);
  expect(await unqueued()).toContain("c");
  expect(await readConcurrencyKey(clients.redis, "acct-1", 10)).toMatchObject({ runningTotal: 2, waitingTotal: 1 });

  // A FAILED end gives its place back as SUCCEEDED does; a stale repeat of it releases nothing more.
  await finish("b", "FAILED");
  expect(await waiting("acct-1")).toEqual([]);
  expect(await running("acct-1")).toEqual(["c", "d"]);
  expect(await applyStatus(clients.redis, status("b", "FAILED"))).toBe(false);
  expect(await running("acct-1")).toEqual(["c", "d"]);
  // With none waiting, an end just gives its place back.
  await finish("c");
  expect(await running("acct-1")).toEqual(["d"]);
});

test("a task cancelled while it waits leaves the waiting set and takes no place", async () => {
  await submit("a", "k", 1, 0);
  await submit("b", "k", 1, 1);
  await submit("c", "k", 1, 2);
  await finish("b", "CANCELLED");
  expect(await running("k")).toEqual(["a"]);
  expect(await waiting("k")).toEqual(["c"]);
  expect(await delayed()).toEqual([]);
  await finish("a");
  expect(await running("k")).toEqual(["c"]);
});

test("keys are independent: one key's backlog does not hold back another's tasks", async () => {
  await submit("a1", "tenant-a", 1, 0);
  for (let i = 2; i <= 5; i++) await submit(`a${i}`, "tenant-a", 1, i);
  expect(await submit("b1", "tenant-b", 1, 10)).toEqual({ waitingFor: 0 });
  expect(await waiting("tenant-a")).toHaveLength(4);
  expect(await running("tenant-b")).toEqual(["b1"]);
  // Every key's waiting tasks are counted together, and leave the count as they leave their key's line.
  await submit("b2", "tenant-b", 1, 11);
  expect(await countConcurrencyWaiting(clients.redis)).toBe(5);
  await finish("a3", "CANCELLED");
  await finish("a1");
  expect(await countConcurrencyWaiting(clients.redis)).toBe(3);
});

test("several ends in one script call release as many waiting tasks", async () => {
  for (let i = 0; i < 5; i++) await submit(`t${i}`, "k", 2, i);
  expect(await waiting("k")).toEqual(["t2", "t3", "t4"]);
  expect(await applyStatusBatch(clients.redis, [status("t0", "SUCCEEDED"), status("t1", "SUCCEEDED")])).toEqual([
    true,
    true,
  ]);
  expect(await running("k")).toEqual(["t2", "t3"]);
  expect(await waiting("k")).toEqual(["t4"]);
});

/** Makes task `name`'s place look unchecked for two minutes (what PLACE_CHECK_AFTER_MS waits for). */
async function ageing(key: string, name: string) {
  await clients.redis.zadd(Keys.concurrencyRunning(key), Date.now() - 2 * PLACE_CHECK_AFTER_MS, id(name));
}

test("a place held by a task whose record is gone, or whose end bypassed the status script, is taken back", async () => {
  await submit("lost", "k", 1, 0);
  await clients.redis.del(Keys.task(id("lost"))); // its records expired unfinished
  // Checked only once it has gone unchecked for a while: until then the key is full.
  expect(await submit("next", "k", 1, 1)).toEqual({ waitingFor: 0, waitsFor: "concurrency" });
  await ageing("k", "lost");
  expect(await submit("later", "k", 1, 2)).toEqual({ waitingFor: 0, waitsFor: "concurrency" });
  // The place went to the oldest waiting task (made due now), not to the submission that found it.
  expect(await running("k")).toEqual(["next"]);
  expect(await waiting("k")).toEqual(["later"]);
  expect(await delayed()).toEqual(["next"]);

  // Ended without the status script's release (written by hand): found terminal when the key is full.
  await clients.redis.hset(Keys.status(id("next")), "state", "SUCCEEDED");
  await ageing("k", "next");
  await clients.redis.zrem(Keys.concurrencyWaiting("k"), id("later"));
  expect(await submit("after", "k", 1, 3)).toEqual({ waitingFor: 0 });
  expect(await running("k")).toEqual(["after"]);
});

test("a place checked and found still unfinished is kept, and not checked again for a while", async () => {
  await submit("busy", "k", 1, 0);
  await ageing("k", "busy");
  expect(await submit("next", "k", 1, 1)).toEqual({ waitingFor: 0, waitsFor: "concurrency" });
  expect(await running("k")).toEqual(["busy"]);
  const checkedAt = Number(await clients.redis.zscore(Keys.concurrencyRunning("k"), id("busy")));
  expect(checkedAt).toBeGreaterThan(Date.now() - PLACE_CHECK_AFTER_MS);
});

test("a task whose place frees while it is being entered waits no longer than the releaser's next round", async () => {
  await submit("a", "k", 2, 0);
  await submit("b", "k", 2, 1);
  await submit("c", "k", 2, 2); // waits
  // b's place freed without a release: the next submission takes it back and hands it to the oldest waiting (c), not
  // to itself.
  await clients.redis.del(Keys.task(id("b")));
  await ageing("k", "b");
  expect(await submit("d", "k", 2, 3)).toEqual({ waitingFor: 0, waitsFor: "concurrency" });
  expect(await running("k")).toEqual(["a", "c"]);
  expect(await waiting("k")).toEqual(["d"]);
  expect(await delayed()).toEqual(["c"]);
});

test("a delayed task is admitted when due: it waits for its key then, and is not released into the pipeline", async () => {
  await submit("a", "k", 1, 0);
  const due = Date.now() - 1;
  expect(await submit("later", "k", 1, 1, { delayedUntilMs: due })).toEqual({ waitingFor: 0 });
  expect(await running("k")).toEqual(["a"]);
  expect(await releasedNow()).toEqual([]);
  expect(await delayed()).toEqual([]);
  expect(await waiting("k")).toEqual(["later"]);
  await finish("a");
  expect(await releasedNow()).toEqual(["later"]);
  expect(await unqueued()).toContain("later");
});

test("a task without a key is untouched by the gate", async () => {
  const saved = await saveTask(
    clients.redis,
    {
      taskId: id("plain"),
      type: "echo",
      priority: "medium",
      payload: {},
      metadata: {},
      createdAt: new Date(BASE).toISOString(),
      generation: 0,
    },
    { unqueued: true },
  );
  expect(saved).toEqual({ waitingFor: 0 });
  expect(await unqueued()).toEqual(["plain"]);
  await finish("plain");
  expect(await clients.redis.keys("concurrency_*")).toEqual([]);
});

test("a key's waiting tasks get places by priority, then in the order they came", async () => {
  const at = async (name: string, priority: "high" | "medium" | "low", offset: number) =>
    saveTask(
      clients.redis,
      {
        taskId: id(name),
        type: "echo",
        priority,
        payload: {},
        metadata: {},
        createdAt: new Date(BASE + offset).toISOString(),
        generation: 0,
        concurrencyKey: "k",
        concurrencyLimit: 1,
      },
      { unqueued: true },
    );
  await at("holder", "medium", 0);
  await at("low", "low", 1);
  await at("medium-1", "medium", 2);
  await at("high-1", "high", 3);
  // Two in one millisecond (a batch's) keep the order they came within their priority.
  await at("high-2", "high", 4);
  await at("high-3", "high", 4);
  await at("medium-2", "medium", 5);
  expect(await waiting("k")).toEqual(["high-1", "high-2", "high-3", "medium-1", "medium-2", "low"]);
  // The every-key count holds them by the time they came, whatever their priority (it is trimmed by age).
  const scores = await clients.redis.zrange(Keys.concurrencyWaitingAll, 0, -1, "WITHSCORES");
  expect(Math.max(...scores.filter((_, i) => i % 2 === 1).map(Number))).toBeLessThan(BASE + 1_000);
  await finish("holder");
  expect(await running("k")).toEqual(["high-1"]);
  expect(named((await readConcurrencyKey(clients.redis, "k", 10)).waiting)).toEqual([
    "high-2",
    "high-3",
    "medium-1",
    "medium-2",
    "low",
  ]);
});

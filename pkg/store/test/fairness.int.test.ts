/**
 * Fairness keys against a real redis-server: saveTask lets a task into its type's window or makes it wait under its
 * key; the status script gives each freed place to the key whose turn it is (weighted, start-time fair queueing),
 * through tasks_delayed, which releaseDue then moves on as admitted; a cancel takes a waiting task out; a key that
 * comes back cannot jump the queue; types are independent; a place whose task is gone is taken back; a concurrency
 * key is applied first; a delayed task waits for its turn when due.
 */
import type { TaskState } from "@tm/flow";
import { useClients, useInfra } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import {
  applyStatus,
  countFairnessWaiting,
  isFairnessWaiting,
  Keys,
  PLACE_CHECK_AFTER_MS,
  RELEASES_PER_CALL_MAX,
  readFairnessQueue,
  readTask,
  releaseDue,
  type SavedTask,
  saveTask,
  summarizeFairnessQueues,
  TAG_TTL_SECONDS,
  type TaskRecord,
} from "../src/index.js";
import { namedTasks, statusOf } from "./named-tasks.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
  clear();
});

const BASE = Date.now() - 60_000;

const { id, named, clear } = namedTasks();

interface Submission {
  window?: number;
  weight?: number;
  offset?: number;
  type?: string;
  delayedUntilMs?: number;
  concurrency?: { key: string; limit: number };
}

function record(name: string, key: string, options: Submission = {}): TaskRecord {
  return {
    taskId: id(name),
    type: options.type ?? "echo",
    priority: "medium",
    payload: {},
    metadata: {},
    createdAt: new Date(BASE + (options.offset ?? 0)).toISOString(),
    generation: 0,
    fairnessKey: key,
    fairnessWeight: options.weight ?? 1,
    fairnessWindow: options.window ?? 2,
    ...(options.concurrency
      ? { concurrencyKey: options.concurrency.key, concurrencyLimit: options.concurrency.limit }
      : {}),
  };
}

/** Saves task `name` of fairness key `key` as the gateway does for one queued at once (or delayed). */
async function submit(name: string, key: string, options: Submission = {}): Promise<SavedTask> {
  const task = record(name, key, options);
  return options.delayedUntilMs === undefined
    ? saveTask(clients.redis, task, { unqueued: true })
    : saveTask(clients.redis, task, { delayedUntilMs: options.delayedUntilMs });
}

const status = (name: string, state: TaskState) => statusOf(id(name), state);

async function finish(name: string, state: TaskState = "SUCCEEDED") {
  expect(await applyStatus(clients.redis, status(name, state))).toBe(true);
}

const inWindow = async (type = "echo") => named(await clients.redis.zrange(Keys.fairnessRunning(type), 0, -1)).sort();
const waiting = async (key: string, type = "echo") =>
  named(await clients.redis.zrange(Keys.fairnessWaiting(type, key), 0, -1));
const unqueued = async () => named(await clients.redis.zrange(Keys.unqueued, 0, -1));
const delayed = async () => named(await clients.redis.zrange(Keys.delayed, 0, -1));
const releasedNow = async () => named((await releaseDue(clients.redis, Date.now(), 100)).map((entry) => entry.taskId));

/** Ends the window's tasks one at a time, oldest place first, and answers the order the waiting ones were let in. */
async function drain(steps: number, type = "echo"): Promise<string[]> {
  const order: string[] = [];
  for (let step = 0; step < steps; step++) {
    const [oldest] = named(await clients.redis.zrange(Keys.fairnessRunning(type), 0, 0));
    if (!oldest) break;
    await finish(oldest);
    const released = await releasedNow();
    order.push(...released);
    // Each let-in task takes a later place than the ones before it (the oldest ends next).
    for (const [i, name] of released.entries()) {
      await clients.redis.zadd(Keys.fairnessRunning(type), Date.now() + step * 10 + i, id(name));
    }
  }
  return order;
}

test("the window lets in its tasks; a second key's tasks are served in turn with the first's backlog", async () => {
  for (let i = 1; i <= 6; i++) {
    expect(await submit(`a${i}`, "tenant-a", { offset: i })).toEqual(
      i <= 2 ? { waitingFor: 0 } : { waitingFor: 0, waitsFor: "fairness" },
    );
  }
  for (let i = 1; i <= 3; i++) await submit(`b${i}`, "tenant-b", { offset: 10 + i });
  expect(await inWindow()).toEqual(["a1", "a2"]);
  expect((await unqueued()).sort()).toEqual(["a1", "a2"]);
  expect(await waiting("tenant-a")).toEqual(["a3", "a4", "a5", "a6"]);
  expect(await waiting("tenant-b")).toEqual(["b1", "b2", "b3"]);
  expect(await countFairnessWaiting(clients.redis)).toBe(7);
  expect(await isFairnessWaiting(clients.redis, record("b1", "tenant-b"))).toBe(true);
  expect(await isFairnessWaiting(clients.redis, record("a1", "tenant-a"))).toBe(false);
  expect((await readTask(clients.redis, id("b1")))?.fairnessKey).toBe("tenant-b");

  // First in, first out would run a3..a6 before b1: the turns alternate instead, the newcomer first (tenant-a has
  // already had two places).
  expect(await drain(9)).toEqual(["b1", "a3", "b2", "a4", "b3", "a5", "a6"]);
  expect(await countFairnessWaiting(clients.redis)).toBe(0);
  expect(await clients.redis.zcard(Keys.fairnessKeys("echo"))).toBe(0);
});

test("weights: a key of weight 4 is served four times for each time a key of weight 1 is", async () => {
  await submit("first", "warm-up", { window: 1 });
  for (let i = 0; i < 30; i++) {
    await submit(`h${i}`, "heavy", { window: 1, weight: 4, offset: 1 + i });
    await submit(`l${i}`, "light", { window: 1, weight: 1, offset: 1 + i });
  }
  // Both start level (heavy first on a tie, by name), then four of heavy's for each of light's.
  const order = await drain(22);
  expect(order.slice(0, 7)).toEqual(["h0", "l0", "h1", "h2", "h3", "h4", "l1"]);
  expect(order.filter((name) => name.startsWith("h"))).toHaveLength(17);
  // Within a key, the order they came.
  expect(order.filter((name) => name.startsWith("l"))).toEqual(["l0", "l1", "l2", "l3", "l4"]);
});

test("a key that submits one task each time its last was let in cannot jump the queue", async () => {
  await submit("first", "warm-up", { window: 1 });
  for (let i = 0; i < 40; i++) await submit(`h${i}`, "heavy", { window: 1, weight: 8, offset: 1 + i });
  let next = 0;
  await submit(`l${next}`, "light", { window: 1, weight: 1, offset: 100 });
  const order: string[] = [];
  for (let step = 0; step < 27; step++) {
    const [oldest] = named(await clients.redis.zrange(Keys.fairnessRunning("echo"), 0, 0));
    if (!oldest) break;
    await finish(oldest);
    const released = await releasedNow();
    order.push(...released);
    // Its waiting set empties each time: without the key's tag, it would start again at the clock, first in line.
    if (released.some((name) => name.startsWith("l"))) {
      next += 1;
      await submit(`l${next}`, "light", { window: 1, weight: 1, offset: 100 + next });
    }
  }
  const light = order.filter((name) => name.startsWith("l")).length;
  expect(order).toHaveLength(27);
  expect(light).toBeGreaterThanOrEqual(2);
  expect(light).toBeLessThanOrEqual(4); // 1 in 9 of 27, not every other one
});

test("a task cancelled while it waits leaves its key's line, and a key with none left leaves the queue", async () => {
  await submit("a1", "a", { window: 1 });
  await submit("b1", "b", { window: 1 });
  await submit("b2", "b", { window: 1, offset: 1 });
  await finish("b1", "CANCELLED");
  expect(await waiting("b")).toEqual(["b2"]);
  await finish("b2", "CANCELLED");
  expect(await waiting("b")).toEqual([]);
  expect(await countFairnessWaiting(clients.redis)).toBe(0);
  await finish("a1");
  expect(await delayed()).toEqual([]);
  expect(await inWindow()).toEqual([]);
  expect(await clients.redis.zcard(Keys.fairnessKeys("echo"))).toBe(0);
});

test("types are independent: one type's full window holds back no other type's tasks", async () => {
  await submit("a1", "t", { window: 1, type: "echo" });
  expect(await submit("a2", "t", { window: 1, type: "echo" })).toEqual({ waitingFor: 0, waitsFor: "fairness" });
  expect(await submit("s1", "t", { window: 1, type: "sleep" })).toEqual({ waitingFor: 0 });
  expect(await inWindow("sleep")).toEqual(["s1"]);
});

test("a place held by a task whose record is gone is taken back, once unchecked for a while", async () => {
  await submit("lost", "k", { window: 1 });
  await clients.redis.del(Keys.task(id("lost")));
  expect(await submit("next", "k", { window: 1, offset: 1 })).toEqual({ waitingFor: 0, waitsFor: "fairness" });
  await clients.redis.zadd(Keys.fairnessRunning("echo"), Date.now() - 2 * PLACE_CHECK_AFTER_MS, id("lost"));
  expect(await submit("later", "k", { window: 1, offset: 2 })).toEqual({ waitingFor: 0, waitsFor: "fairness" });
  // The place went to the one whose turn it was (made due now), not to the submission that found it.
  expect(await inWindow()).toEqual(["next"]);
  expect(await delayed()).toEqual(["next"]);
  expect(await releasedNow()).toEqual(["next"]);
});

test("a concurrency key applies first: a task waiting for its key takes no place in the window", async () => {
  const concurrency = { key: "acct", limit: 1 };
  expect(await submit("a", "t", { window: 5, concurrency })).toEqual({ waitingFor: 0 });
  expect(await submit("b", "t", { window: 5, offset: 1, concurrency })).toEqual({
    waitingFor: 0,
    waitsFor: "concurrency",
  });
  expect(await inWindow()).toEqual(["a"]);
  await finish("a");
  // b's key place freed: made due, and let into the window when the releaser moves it.
  expect(await releasedNow()).toEqual(["b"]);
  expect(await inWindow()).toEqual(["b"]);
  expect(await clients.redis.zrange(Keys.concurrencyRunning("acct"), 0, -1)).toEqual([id("b")]);
});

test("a delayed task waits for its turn when due, and is not released into the pipeline until then", async () => {
  await submit("a", "k", { window: 1 });
  expect(await submit("later", "k", { window: 1, offset: 1, delayedUntilMs: Date.now() - 1 })).toEqual({
    waitingFor: 0,
  });
  expect(await releasedNow()).toEqual([]);
  expect(await waiting("k")).toEqual(["later"]);
  await finish("a");
  expect(await releasedNow()).toEqual(["later"]);
  expect(await unqueued()).toContain("later");
});

test("the queue's view: the window's tasks, the keys waiting next first, and their counts", async () => {
  await submit("a1", "a", { window: 1 });
  await submit("a2", "a", { window: 1, offset: 1 });
  await submit("a3", "a", { window: 1, offset: 2 });
  await submit("b1", "b", { window: 1, offset: 3, weight: 3 });
  const view = await readFairnessQueue(clients.redis, "echo", 10);
  expect(named(view.running)).toEqual(["a1"]);
  expect(view.runningTotal).toBe(1);
  expect(view.keysTotal).toBe(2);
  // b has had nothing yet: it is served before a's second task.
  expect(view.keys.map(({ key, waiting, nextWeight }) => [key, waiting, nextWeight])).toEqual([
    ["b", 1, 3],
    ["a", 2, 1],
  ]);
  expect(view.keys[0]!.nextStart).toBeLessThan(view.keys[1]!.nextStart);
  expect(await summarizeFairnessQueues(clients.redis)).toEqual([{ type: "echo", running: 1, keysWaiting: 2 }]);
  // A key's tag lives an hour from its last task let in, not the task retention.
  const tagTtl = await clients.redis.ttl("fairness_tag:echo:a");
  expect(tagTtl).toBeGreaterThan(TAG_TTL_SECONDS - 60);
  expect(tagTtl).toBeLessThanOrEqual(TAG_TTL_SECONDS);
});

test("a task without a fairness key is untouched by the window", async () => {
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
  await finish("plain");
  expect(await clients.redis.keys("fairness_*")).toEqual([]);
});

test("a key whose line a cancel emptied leaves the queue at once, and comes back at the clock", async () => {
  // z waits behind c (both start level; c first by name), then its only task is cancelled while c's is first.
  await submit("a1", "a", { window: 1 });
  await submit("c1", "c", { window: 1, offset: 1 });
  await submit("z1", "z", { window: 1, offset: 2 });
  await finish("z1", "CANCELLED");
  // Not left in the queue until its turn comes: operators see the keys that have tasks waiting.
  expect((await readFairnessQueue(clients.redis, "echo", 10)).keys.map(({ key }) => key)).toEqual(["c"]);
  // The clock moves on while a and c take turns.
  for (let i = 2; i <= 6; i++) {
    await submit(`a${i}`, "a", { window: 1, offset: 10 + i });
    await submit(`c${i}`, "c", { window: 1, offset: 10 + i });
  }
  const before = await drain(6);
  expect(before.every((name) => !name.startsWith("z"))).toBe(true);
  // z comes back with three tasks: starting at the clock, it takes turns with a and c (a start of 0, its turn before
  // it left, would give it the next three places in a row).
  for (let i = 2; i <= 4; i++) await submit(`z${i}`, "z", { window: 1, offset: 100 + i });
  const after = await drain(3);
  expect(after).toHaveLength(3);
  expect(after.filter((name) => name.startsWith("z")).length).toBeLessThanOrEqual(2);
});

test("within a key, the line is by priority, then the order they came; across keys, turns decide", async () => {
  await submit("a1", "a", { window: 1 });
  const prioritised = async (name: string, key: string, priority: "high" | "low", offset: number) =>
    saveTask(clients.redis, { ...record(name, key, { window: 1, offset }), priority }, { unqueued: true });
  await prioritised("a-low", "a", "low", 1);
  await prioritised("a-high", "a", "high", 2);
  await prioritised("b-low", "b", "low", 3);
  expect(await waiting("a")).toEqual(["a-high", "a-low"]);
  // b's turn comes first (a has had the window's place), whatever its task's priority; then a's high one.
  expect(await drain(3)).toEqual(["b-low", "a-high", "a-low"]);
});

test("room for many is filled at most RELEASES_PER_CALL_MAX per script call, the rest as those end", async () => {
  // A full window of 200 (places held by hand), then 150 waiting tasks; the places free without a release (as if the
  // window had been raised), and the next submission's call lets in what one call may.
  const held = Array.from({ length: 200 }, (_, i) => [Date.now(), `held-${i}`] as const);
  await clients.redis.zadd(Keys.fairnessRunning("echo"), ...held.flat());
  for (let i = 0; i < 150; i++) await submit(`w${i}`, "k", { window: 200, offset: i });
  expect(await waiting("k")).toHaveLength(150);
  await clients.redis.del(Keys.fairnessRunning("echo"));
  await submit("last", "k", { window: 200, offset: 200 });
  expect(await clients.redis.zcard(Keys.fairnessRunning("echo"))).toBe(RELEASES_PER_CALL_MAX);
  expect(await waiting("k")).toHaveLength(151 - RELEASES_PER_CALL_MAX);
  // One end's call lets in the rest.
  await finish("w0");
  expect(await waiting("k")).toEqual([]);
  expect(await clients.redis.zcard(Keys.fairnessRunning("echo"))).toBe(150);
});

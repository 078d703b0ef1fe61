/**
 * The task index against a real redis-server: saveTask indexes and trims by TTL; listing walks newest first,
 * filters, and pages through ties on the same millisecond without repeating or skipping a task.
 */
import { StatusEventSchema, statusEvent, type TaskState } from "@tm/flow";
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import {
  applyStatus,
  Bounds,
  countTaskStates,
  type IndexCursor,
  Keys,
  listIndexedTasks,
  readTask,
  saveTask,
  type TaskRecord,
} from "../src/index.js";

const infra = useInfra();
let redis: Redis;
beforeAll(() => {
  redis = new Redis(infra.redis.url);
});
afterAll(() => redis?.disconnect());
beforeEach(async () => {
  await redis.flushdb();
});

const BASE = Date.parse("2026-03-01T12:00:00Z");

function uuid(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
}

async function save(n: number, createdMs: number, extra: Partial<TaskRecord> = {}, state: TaskState = "PENDING") {
  const taskId = uuid(n);
  await saveTask(redis, {
    taskId,
    type: "echo",
    priority: "medium",
    payload: {},
    metadata: {},
    createdAt: new Date(createdMs).toISOString(),
    generation: 0,
    ...extra,
  });
  await applyStatus(redis, StatusEventSchema.parse(statusEvent({ taskId, state, source: "test" })));
  return taskId;
}

describe("saveTask", () => {
  test("stores the record with the task TTL, reads back as saved, and a second save of the task replaces it", async () => {
    const taskId = uuid(1);
    const record: TaskRecord = {
      taskId,
      type: "echo",
      priority: "high",
      payload: { text: "héllo", nested: { list: [1, 2] } },
      metadata: { team: "payments" },
      createdAt: new Date(BASE).toISOString(),
      idempotencyKey: "order-7",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      generation: 0,
    };
    await saveTask(redis, record);
    expect(await readTask(redis, taskId)).toEqual(record);
    const ttl = await redis.ttl(Keys.task(taskId));
    expect(ttl).toBeGreaterThan(Bounds.taskTtlSeconds - 60);
    expect(ttl).toBeLessThanOrEqual(Bounds.taskTtlSeconds);

    await saveTask(redis, { ...record, idempotencyKey: undefined, generation: 2 }, { ttlSeconds: 60 });
    expect(await readTask(redis, taskId)).toEqual({ ...record, idempotencyKey: undefined, generation: 2 });
    expect(await redis.ttl(Keys.task(taskId))).toBeLessThanOrEqual(60);
    expect(await redis.zrange(Keys.taskIndex, 0, -1)).toEqual([taskId]);
  });
});

describe("task_index", () => {
  test("saveTask indexes by createdAt and drops entries older than the TTL", async () => {
    await save(1, BASE - 8 * 86_400_000);
    await save(2, BASE);
    expect(await redis.zrange(Keys.taskIndex, 0, -1)).toEqual([uuid(2)]);
    expect(Number(await redis.zscore(Keys.taskIndex, uuid(2)))).toBe(BASE);
  });

  test("pages newest first through ties on one millisecond without repeats or gaps", async () => {
    const expected: string[] = [];
    // 7 tasks on the same ms, then 5 on distinct ms: ties come in descending id order.
    for (let n = 1; n <= 7; n++) expected.push(await save(n, BASE));
    for (let n = 8; n <= 12; n++) expected.push(await save(n, BASE + n));
    const newestFirst = [...expected.slice(7).reverse(), ...expected.slice(0, 7).reverse()];

    const seen: string[] = [];
    let cursor: IndexCursor | undefined;
    do {
      const page = await listIndexedTasks(redis, {}, 3, cursor);
      seen.push(...page.tasks.map((t) => t.task.taskId));
      cursor = page.next;
    } while (cursor);
    expect(seen).toEqual(newestFirst);
  });

  test("filters by state, type, priority, time range and query; the scan limit hands back a cursor", async () => {
    await save(1, BASE, { type: "fail", priority: "high" }, "FAILED");
    await save(2, BASE + 1, { metadata: { team: "Payments" } });
    await save(3, BASE + 2, { priority: "low" }, "SUCCEEDED");
    const ids = async (filter: Parameters<typeof listIndexedTasks>[1]) =>
      (await listIndexedTasks(redis, filter, 50)).tasks.map((t) => t.task.taskId);
    expect(await ids({ state: "FAILED" })).toEqual([uuid(1)]);
    expect(await ids({ type: "echo" })).toEqual([uuid(3), uuid(2)]);
    expect(await ids({ priority: "low" })).toEqual([uuid(3)]);
    expect(await ids({ createdAfterMs: BASE + 1, createdBeforeMs: BASE + 2 })).toEqual([uuid(2)]);
    expect(await ids({ query: "payments" })).toEqual([uuid(2)]);
    expect(await ids({ query: uuid(1).slice(0, 30) })).toHaveLength(3);

    const limited = await listIndexedTasks(redis, { state: "FAILED" }, 50, undefined, 2);
    expect(limited.tasks).toEqual([]);
    expect(limited.next).toEqual({ scoreMs: BASE + 1, taskId: uuid(2) });
    const rest = await listIndexedTasks(redis, { state: "FAILED" }, 50, limited.next, 2);
    expect(rest.tasks.map((t) => t.task.taskId)).toEqual([uuid(1)]);
    expect(rest.next).toBeUndefined();
  });

  test("stalled: unfinished tasks whose status last changed by a time; the walk starts at that time", async () => {
    const changedAt = async (taskId: string, ms: number) =>
      redis.hset(Keys.status(taskId), "updatedAt", new Date(ms).toISOString());
    await changedAt(await save(1, BASE, {}, "SCHEDULED"), BASE + 10);
    await changedAt(await save(2, BASE + 1, {}, "SUCCEEDED"), BASE + 10); // finished: never stalled
    await changedAt(await save(3, BASE + 2, {}, "RUNNING"), BASE + 1_000);
    await save(4, BASE + 5_000, {}, "SCHEDULED"); // created after the time: cannot have stalled since then
    const ids = async (changedBeforeMs: number, scanLimit?: number) =>
      (await listIndexedTasks(redis, { changedBeforeMs }, 50, undefined, scanLimit)).tasks.map((t) => t.task.taskId);
    expect(await ids(BASE + 500)).toEqual([uuid(1)]);
    expect(await ids(BASE + 1_000)).toEqual([uuid(3), uuid(1)]);
    expect(await ids(BASE + 9)).toEqual([]);
    // Task 4 is not even examined: three entries (3, 2, 1) reach task 1.
    expect(await ids(BASE + 500, 3)).toEqual([uuid(1)]);
  });

  test("stalled: a delayed task still PENDING counts from its release time, not its submission", async () => {
    const delayed = await save(5, BASE, { runAt: new Date(BASE + 2_000).toISOString() }, "PENDING");
    await redis.hset(Keys.status(delayed), "updatedAt", new Date(BASE + 10).toISOString());
    const ids = async (changedBeforeMs: number) =>
      (await listIndexedTasks(redis, { changedBeforeMs }, 50)).tasks.map((t) => t.task.taskId);
    expect(await ids(BASE + 1_000)).not.toContain(delayed);
    expect(await ids(BASE + 2_000)).toContain(delayed);
  });

  test("counts tasks by state over the newest N", async () => {
    await save(1, BASE, {}, "FAILED");
    await save(2, BASE + 1, {}, "SUCCEEDED");
    await save(3, BASE + 2, {}, "SUCCEEDED");
    const all = await countTaskStates(redis);
    expect(Object.fromEntries(all.counts)).toEqual({ FAILED: 1, SUCCEEDED: 2 });
    expect(all).toMatchObject({ counted: 3, indexed: 3 });
    const newest = await countTaskStates(redis, 2);
    expect(Object.fromEntries(newest.counts)).toEqual({ SUCCEEDED: 2 });
    expect(newest).toMatchObject({ counted: 2, indexed: 3 });
  });
});

import { StatusEventSchema, shouldApply, statusEvent, statusVersion, type TaskState } from "@tm/flow";
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  appendAudit,
  appendDeadLetter,
  applyStatus,
  Keys,
  markCancelled,
  readDeadLetters,
  readHistory,
  readResult,
  readStatus,
  saveResult,
  storeResult,
} from "../src/index.js";

const infra = useInfra();
let redis: Redis;
beforeAll(() => {
  redis = new Redis(infra.redis.url);
});
afterAll(() => redis?.disconnect());

const event = (
  taskId: string,
  state: TaskState,
  extra: { attempt?: number; progress?: number; generation?: number } = {},
) => StatusEventSchema.parse(statusEvent({ taskId, state, source: "test", ...extra }));

describe("applyStatus", () => {
  test("only moves forward, and publishes exactly what it applies", async () => {
    const id = crypto.randomUUID();
    const sub = new Redis(infra.redis.url);
    const seen: number[] = [];
    await sub.subscribe(`task_status:${id}`);
    sub.on("message", (_channel, text) => seen.push(JSON.parse(text).version));
    expect(await applyStatus(redis, event(id, "PENDING"))).toBe(true);
    expect(await applyStatus(redis, event(id, "RUNNING", { attempt: 1, progress: 10 }))).toBe(true);
    expect(await applyStatus(redis, event(id, "INGESTED"))).toBe(false); // late
    expect(await applyStatus(redis, event(id, "RUNNING", { attempt: 1, progress: 10 }))).toBe(false); // duplicate
    expect(await applyStatus(redis, event(id, "SUCCEEDED", { attempt: 1 }))).toBe(true);
    expect(await applyStatus(redis, event(id, "CANCELLED"))).toBe(false); // after terminal
    expect((await readStatus(redis, id))?.state).toBe("SUCCEEDED");
    await redis.ping();
    const expected = [
      event(id, "PENDING"),
      event(id, "RUNNING", { attempt: 1, progress: 10 }),
      event(id, "SUCCEEDED"),
    ].map((e) => e.version);
    const deadline = Date.now() + 5_000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(expected);
    sub.disconnect();
  });

  test("agrees with lifecycle.shouldApply on every pair of updates", async () => {
    const samples: Array<[TaskState, number, number, number]> = [
      ["PENDING", 0, 0, 0],
      ["INGESTED", 0, 0, 0],
      ["SCHEDULED", 0, 0, 0],
      ["RUNNING", 1, 0, 0],
      ["RUNNING", 1, 60, 0],
      ["RUNNING", 2, 0, 0],
      ["SUCCEEDED", 2, 0, 0],
      ["FAILED", 5, 0, 0],
      ["CANCELLED", 0, 0, 0],
      ["PENDING", 0, 0, 1],
      ["RUNNING", 1, 0, 1],
    ];
    for (const [s1, a1, p1, g1] of samples) {
      for (const [s2, a2, p2, g2] of samples) {
        const id = crypto.randomUUID();
        const first = event(id, s1, { attempt: a1, progress: p1, generation: g1 });
        const second = event(id, s2, { attempt: a2, progress: p2, generation: g2 });
        await applyStatus(redis, first);
        const applied = await applyStatus(redis, second);
        expect(applied, `${s1}/${a1}/${p1}/g${g1} → ${s2}/${a2}/${p2}/g${g2}`).toBe(
          shouldApply({ state: s1, version: first.version }, { state: s2, version: second.version }),
        );
      }
    }
    expect(statusVersion({ state: "PENDING", generation: 1 })).toBeGreaterThan(statusVersion({ state: "FAILED" }));
  });
});

/** A tasks.results message of generation 0 (its output given by each call). */
function resultOf(taskId: string) {
  const now = new Date().toISOString();
  return {
    taskId,
    type: "echo",
    priority: "low" as const,
    attempts: 1,
    startedAt: now,
    completedAt: now,
    durationMs: 1,
    generation: 0,
  };
}

describe("results and lists", () => {
  test("the first result of a generation wins; a replay's result replaces it", async () => {
    const id = crypto.randomUUID();
    const base = resultOf(id);
    expect(await saveResult(redis, { ...base, output: { n: 1 } })).toBe(true);
    expect(await saveResult(redis, { ...base, output: { n: 2 } })).toBe(false);
    expect((await readResult(redis, id))?.output).toEqual({ n: 1 });
    expect(await saveResult(redis, { ...base, generation: 1, output: { n: 3 } })).toBe(true);
    expect((await readResult(redis, id))?.output).toEqual({ n: 3 });
  });

  test("storeResult: one script checks the cancel marker and the generation, then writes", async () => {
    const id = crypto.randomUUID();
    const base = resultOf(id);
    expect(await storeResult(redis, { ...base, output: { n: 1 } })).toBe("stored");
    expect(await storeResult(redis, { ...base, output: { n: 2 } })).toBe("duplicate");
    expect(await storeResult(redis, { ...base, generation: 1, output: { n: 3 } })).toBe("stored");
    expect(await storeResult(redis, { ...base, generation: 0, output: { n: 4 } })).toBe("duplicate");
    expect(await readResult(redis, id)).toMatchObject({ output: { n: 3 }, generation: 1 });
    const ttl = await redis.ttl(Keys.result(id));
    expect(ttl).toBeGreaterThan(0);

    // A cancelled task's result is not stored, whatever its generation.
    const cancelled = crypto.randomUUID();
    await markCancelled(redis, cancelled, "test");
    expect(await storeResult(redis, { ...base, taskId: cancelled, output: {} })).toBe("cancelled");
    expect(await redis.exists(Keys.result(cancelled))).toBe(0);

    // A stored value that cannot be decoded is never overwritten blindly; one without a generation is replaced.
    const corrupt = crypto.randomUUID();
    await redis.set(Keys.result(corrupt), "{not json");
    expect(await storeResult(redis, { ...base, taskId: corrupt, output: {} })).toBe("duplicate");
    expect(await redis.get(Keys.result(corrupt))).toBe("{not json");
    const legacy = crypto.randomUUID();
    await redis.set(Keys.result(legacy), JSON.stringify({ taskId: legacy, output: "old" }));
    expect(await storeResult(redis, { ...base, taskId: legacy, output: "new" })).toBe("stored");
    expect((await readResult(redis, legacy))?.output).toBe("new");
  });

  test("audit and dead-letter appends are idempotent per delivery and keep the task's history", async () => {
    const id = crypto.randomUUID();
    const audit = { taskId: id, service: "t", action: "a", at: new Date().toISOString() };
    expect(await appendAudit(redis, audit, `EVENTS:${id}:1`)).toBe(true);
    expect(await appendAudit(redis, audit, `EVENTS:${id}:1`)).toBe(false);
    expect(await appendAudit(redis, { ...audit, action: "b" }, `EVENTS:${id}:2`)).toBe(true);
    expect((await readHistory(redis, id)).map((e) => e.action)).toEqual(["a", "b"]);
    const letter = {
      id: `TASKS:${id}`,
      taskId: id,
      subject: "tasks.ingest",
      consumer: "c",
      reason: "invalid" as const,
      error: "x",
      attempts: 1,
      at: new Date().toISOString(),
    };
    expect(await appendDeadLetter(redis, letter)).toBe(true);
    expect(await appendDeadLetter(redis, letter)).toBe(false);
    expect((await readDeadLetters(redis)).filter((l) => l.taskId === id)).toHaveLength(1);
  });
});

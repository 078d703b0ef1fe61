import { StatusEventSchema, shouldApply, statusEvent, statusVersion, type TaskState } from "@tm/flow";
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  appendAudit,
  appendDeadLetter,
  applyStatus,
  readDeadLetters,
  readHistory,
  readResult,
  readStatus,
  saveResult,
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

describe("results and lists", () => {
  test("the first result of a generation wins; a replay's result replaces it", async () => {
    const id = crypto.randomUUID();
    const base = {
      taskId: id,
      type: "echo",
      priority: "low" as const,
      attempts: 1,
      startedAt: new Date().toISOString(),
      completedAt: new Date().toISOString(),
      durationMs: 1,
      generation: 0,
    };
    expect(await saveResult(redis, { ...base, output: { n: 1 } })).toBe(true);
    expect(await saveResult(redis, { ...base, output: { n: 2 } })).toBe(false);
    expect((await readResult(redis, id))?.output).toEqual({ n: 1 });
    expect(await saveResult(redis, { ...base, generation: 1, output: { n: 3 } })).toBe(true);
    expect((await readResult(redis, id))?.output).toEqual({ n: 3 });
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

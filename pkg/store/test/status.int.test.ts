import {
  type ProgressReport,
  StatusEventSchema,
  shouldApply,
  statusEvent,
  statusVersion,
  type TaskState,
} from "@tm/flow";
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  AUDIT_BATCH_MAX,
  addChild,
  appendAudit,
  appendAuditBatch,
  appendDeadLetter,
  appendTaskLog,
  applyStatus,
  applyStatusBatch,
  applyStatusUpdates,
  auditAppender,
  childrenOf,
  childrenSummary,
  dependencyOutcomesOf,
  dependentsOf,
  Keys,
  markCancelled,
  readDeadLetters,
  readHistory,
  readResult,
  readStatus,
  STATUS_BATCH_MAX,
  saveResult,
  saveTask,
  statusApplier,
  storeResult,
} from "../src/index.js";

const infra = useInfra();
let redis: Redis;
beforeAll(() => {
  redis = new Redis(infra.redis.url);
});
afterAll(() => redis?.disconnect());

/** A client of the test's Redis that records the key count of every script call it makes (Redis still runs them). */
function scriptCallCounter(): { counting: Redis; calls: number[] } {
  const counting = new Redis(infra.redis.url);
  const calls: number[] = [];
  const original = counting.evalsha.bind(counting) as (...args: unknown[]) => Promise<unknown>;
  (counting as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = (...args) => {
    calls.push(Number(args[1]));
    return original(...args);
  };
  return { counting, calls };
}

const event = (
  taskId: string,
  state: TaskState,
  extra: { attempt?: number; progress?: number; generation?: number; report?: ProgressReport } = {},
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
    // [state, attempt, progress, generation, progress report number (0: none)]
    const samples: Array<[TaskState, number, number, number, number]> = [
      ["PENDING", 0, 0, 0, 0],
      ["INGESTED", 0, 0, 0, 0],
      ["SCHEDULED", 0, 0, 0, 0],
      ["RUNNING", 1, 0, 0, 0],
      ["RUNNING", 1, 60, 0, 1],
      ["RUNNING", 1, 60, 0, 2],
      ["RUNNING", 1, 70, 0, 3],
      ["RUNNING", 2, 0, 0, 0],
      ["SUCCEEDED", 2, 0, 0, 0],
      ["FAILED", 5, 0, 0, 0],
      ["CANCELLED", 0, 0, 0, 0],
      ["PENDING", 0, 0, 1, 0],
      ["RUNNING", 1, 0, 1, 0],
    ];
    const report = (number: number) => (number ? { report: { number, message: `report ${number}` } } : {});
    for (const [s1, a1, p1, g1, r1] of samples) {
      for (const [s2, a2, p2, g2, r2] of samples) {
        const id = crypto.randomUUID();
        const first = event(id, s1, { attempt: a1, progress: p1, generation: g1, ...report(r1) });
        const second = event(id, s2, { attempt: a2, progress: p2, generation: g2, ...report(r2) });
        await applyStatus(redis, first);
        const applied = await applyStatus(redis, second);
        expect(applied, `${s1}/${a1}/${p1}/g${g1}/r${r1} → ${s2}/${a2}/${p2}/g${g2}/r${r2}`).toBe(
          shouldApply(
            { state: s1, version: first.version, progressReport: first.progressReport },
            { state: s2, version: second.version, progressReport: second.progressReport },
          ),
        );
      }
    }
    expect(statusVersion({ state: "PENDING", generation: 1 })).toBeGreaterThan(statusVersion({ state: "FAILED" }));
  });

  test("a progress report's message and details are stored and published with it; the next update without one clears them", async () => {
    const id = crypto.randomUUID();
    const sub = new Redis(infra.redis.url);
    const seen: Array<{ progressReport: number; progressMessage: string; progressDetails: string }> = [];
    await sub.subscribe(`task_status:${id}`);
    sub.on("message", (_channel, text) => seen.push(JSON.parse(text)));
    const reported = event(id, "RUNNING", {
      attempt: 1,
      progress: 40,
      report: { number: 1, message: "uploading part 7", details: { part: 7, of: 12 } },
    });
    const sameVersion = event(id, "RUNNING", {
      attempt: 1,
      progress: 40,
      report: { number: 2, message: "uploading part 8" },
    });
    expect(sameVersion.version).toBe(reported.version);
    expect(await applyStatus(redis, reported)).toBe(true);
    expect(await readStatus(redis, id)).toMatchObject({
      progress: 40,
      progressReport: 1,
      progressMessage: "uploading part 7",
      progressDetails: '{"part":7,"of":12}',
    });
    expect(await applyStatus(redis, sameVersion)).toBe(true); // same version, later report
    expect(await applyStatus(redis, reported)).toBe(false); // the earlier report, redelivered
    expect(await readStatus(redis, id)).toMatchObject({
      progressReport: 2,
      progressMessage: "uploading part 8",
      progressDetails: "",
    });
    expect(await applyStatus(redis, event(id, "SUCCEEDED", { attempt: 1 }))).toBe(true);
    expect(await readStatus(redis, id)).toMatchObject({ progressReport: 0, progressMessage: "", progressDetails: "" });
    // Gone, not kept empty: a task that reports nothing has none of these fields.
    expect(Object.keys(await redis.hgetall(Keys.status(id))).filter((f) => f.startsWith("progressR"))).toEqual([]);
    const deadline = Date.now() + 5_000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(seen.map((s) => [s.progressReport, s.progressMessage, s.progressDetails])).toEqual([
      [1, "uploading part 7", '{"part":7,"of":12}'],
      [2, "uploading part 8", ""],
      [0, "", ""],
    ]);
    sub.disconnect();
  });

  test("a task that SUCCEEDED is kept the succeeded retention from then on, its own first, unless others depend on it", async () => {
    const ttl = 3_600;
    const records = async (id: string, own?: number) => {
      await redis.hset(Keys.task(id), { taskId: id, ...(own ? { succeededRetentionSeconds: String(own) } : {}) });
      await redis.expire(Keys.task(id), ttl);
      await redis.set(Keys.result(id), "{}", "EX", ttl);
      await applyStatus(redis, event(id, "PENDING"), ttl);
      await appendAudit(
        redis,
        { taskId: id, service: "t", action: "submitted", at: new Date().toISOString() },
        `E:${id}:1`,
        ttl,
      );
      // A child its handler submitted: the parent's listing of it goes with the parent's records.
      await addChild(redis, id, crypto.randomUUID(), Date.now(), ttl);
      // So does what its handler logged.
      await appendTaskLog(
        redis,
        id,
        [{ time: new Date().toISOString(), level: "info", message: "hi", attempt: 1, generation: 0 }],
        { maxLines: 10, ttlSeconds: ttl },
      );
    };
    const ttls = async (id: string) =>
      Promise.all(
        [Keys.status(id), Keys.task(id), Keys.result(id), Keys.history(id), Keys.children(id), Keys.logs(id)].map(
          (key) => redis.ttl(key),
        ),
      );
    const [plain, own, depended, failed] = [0, 1, 2, 3].map(() => crypto.randomUUID()) as [
      string,
      string,
      string,
      string,
    ];
    await records(plain);
    await records(own, 300);
    await records(depended);
    await redis.zadd(Keys.dependentIds(depended), Date.now(), crypto.randomUUID());
    await records(failed);
    const outcomes = await applyStatusUpdates(
      redis,
      [plain, own, depended]
        .map((id) => ({ event: event(id, "SUCCEEDED", { attempt: 1 }) }))
        .concat([{ event: event(failed, "FAILED", { attempt: 1 }) }]),
      ttl,
      120,
    );
    expect(outcomes).toEqual(["applied", "applied", "applied", "applied"]);
    const within = (lowest: number, highest: number) => (left: number) => left > lowest && left <= highest;
    expect((await ttls(plain)).every(within(110, 120))).toBe(true);
    expect((await ttls(own)).every(within(290, 300))).toBe(true);
    for (const left of await ttls(depended)) expect(left).toBeGreaterThan(3_500);
    for (const left of await ttls(failed)) expect(left).toBeGreaterThan(3_500);
    // An audit event after SUCCEEDED (result_stored, succeeded) no longer extends the history past the status.
    await appendAudit(
      redis,
      { taskId: plain, service: "t", action: "succeeded", at: new Date().toISOString() },
      `E:${plain}:2`,
      ttl,
    );
    expect(await redis.ttl(Keys.history(plain))).toBeLessThanOrEqual(120);
    // Its dedupe marker too: 24 h otherwise, as for a task still kept (the first event's, before SUCCEEDED).
    expect(await redis.ttl(`audit_seen:E:${plain}:2`)).toBeLessThanOrEqual(120);
    expect(await redis.ttl(`audit_seen:E:${plain}:1`)).toBeGreaterThan(3_500);
    expect(await redis.llen(Keys.history(plain))).toBe(2);
    // Each shortened task waits in tasks_expiring for its records' end, then leaves task_index: here made due at once,
    // and taken out as the next task is shortened.
    expect(await redis.zscore(Keys.expiring, plain)).not.toBeNull();
    expect(await redis.zscore(Keys.expiring, depended)).toBeNull();
    await redis.zadd(Keys.taskIndex, Date.now(), plain);
    await redis.zadd(Keys.expiring, 1, plain);
    const next = crypto.randomUUID();
    await records(next);
    await applyStatusUpdates(redis, [{ event: event(next, "SUCCEEDED", { attempt: 1 }) }], ttl, 120);
    expect(await redis.zscore(Keys.taskIndex, plain)).toBeNull();
    expect(await redis.zscore(Keys.expiring, plain)).toBeNull();
    expect(await redis.zscore(Keys.expiring, next)).not.toBeNull();
    // Without a succeeded retention (0), nothing is shortened.
    const kept = crypto.randomUUID();
    await records(kept);
    await applyStatusUpdates(redis, [{ event: event(kept, "SUCCEEDED", { attempt: 1 }) }], ttl, 0);
    for (const left of await ttls(kept)) expect(left).toBeGreaterThan(3_500);
  });

  test("a batch applies its updates in order, each against what the earlier ones left, and publishes only those", async () => {
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    const sub = new Redis(infra.redis.url);
    const seen: string[] = [];
    await sub.subscribe(`task_status:${a}`, `task_status:${b}`);
    sub.on("message", (_channel, text) =>
      seen.push(`${JSON.parse(text).taskId === a ? "a" : "b"}:${JSON.parse(text).state}`),
    );
    const applied = await applyStatusBatch(redis, [
      event(a, "PENDING"),
      event(b, "RUNNING", { attempt: 1 }),
      event(a, "SCHEDULED"),
      event(a, "INGESTED"), // older than SCHEDULED, applied just before it in the same call: stale
      event(b, "SUCCEEDED", { attempt: 1 }),
      event(b, "CANCELLED"), // after a terminal state
    ]);
    expect(applied).toEqual([true, true, true, false, true, false]);
    expect((await readStatus(redis, a))?.state).toBe("SCHEDULED");
    expect((await readStatus(redis, b))?.state).toBe("SUCCEEDED");
    const deadline = Date.now() + 5_000;
    while (seen.length < 4 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["a:PENDING", "b:RUNNING", "a:SCHEDULED", "b:SUCCEEDED"]);
    expect(await applyStatusBatch(redis, [])).toEqual([]);
    sub.disconnect();
  });

  test("an update that requires a stored result is held, writing and publishing nothing, until one is stored", async () => {
    const [a, b, c] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    const sub = new Redis(infra.redis.url);
    const seen: string[] = [];
    await sub.subscribe(...[a, b, c].map((id) => Keys.status(id)));
    sub.on("message", (_channel, text) =>
      seen.push(`${[a, b, c].indexOf(JSON.parse(text).taskId)}:${JSON.parse(text).state}`),
    );
    await applyStatusBatch(redis, [event(a, "RUNNING", { attempt: 1 }), event(b, "RUNNING", { attempt: 1 })]);
    await saveResult(redis, { ...resultOf(b), output: "b" });
    // In one call, gated and plain updates mixed: each gated one checks its own task's result key.
    const outcomes = await applyStatusUpdates(redis, [
      { event: event(a, "SUCCEEDED", { attempt: 1 }), requireStoredResult: true }, // no result: held
      { event: event(c, "PENDING") },
      { event: event(b, "SUCCEEDED", { attempt: 1 }), requireStoredResult: true }, // result stored: applied
      { event: event(b, "SUCCEEDED", { attempt: 1 }), requireStoredResult: true }, // duplicate: stale, not held
    ]);
    expect(outcomes).toEqual(["held", "applied", "applied", "stale"]);
    expect((await readStatus(redis, a))?.state).toBe("RUNNING");
    expect((await readStatus(redis, b))?.state).toBe("SUCCEEDED");

    const apply = statusApplier(redis);
    expect(await apply({ event: event(a, "SUCCEEDED", { attempt: 1 }), requireStoredResult: true })).toBe("held");
    await saveResult(redis, { ...resultOf(a), output: "a" });
    expect(await apply({ event: event(a, "SUCCEEDED", { attempt: 1 }), requireStoredResult: true })).toBe("applied");
    const deadline = Date.now() + 5_000;
    while (seen.length < 5 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["0:RUNNING", "1:RUNNING", "2:PENDING", "1:SUCCEEDED", "0:SUCCEEDED"]);
    sub.disconnect();
  });

  test("one update that Redis refuses fails alone: the others of its call are applied", async () => {
    const apply = statusApplier(redis);
    const [good, bad, good2] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    await redis.set(Keys.status(bad), "not a hash"); // HMGET on it fails with WRONGTYPE
    const outcomes = await Promise.allSettled([
      apply({ event: event(good, "PENDING") }),
      apply({ event: event(bad, "PENDING") }),
      apply({ event: event(good2, "PENDING") }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
    expect((await readStatus(redis, good))?.state).toBe("PENDING");
    expect((await readStatus(redis, good2))?.state).toBe("PENDING");
  });

  test("the status applier gathers one turn's updates into calls of at most STATUS_BATCH_MAX", async () => {
    const { counting, calls } = scriptCallCounter();
    try {
      const apply = statusApplier(counting);
      const ids = Array.from({ length: STATUS_BATCH_MAX + 3 }, () => crypto.randomUUID());
      const results = await Promise.all(ids.map((id) => apply({ event: event(id, "PENDING") })));
      expect(results.every((outcome) => outcome === "applied")).toBe(true);
      // Two calls, by their key counts: a status hash and a task_dependents hash per update, then tasks_unfinished,
      // tasks_delayed, tasks_waiting, tasks_dependency_failed, task_index and tasks_expiring.
      expect(calls).toEqual([2 * STATUS_BATCH_MAX + 6, 2 * 3 + 6]);
      expect((await readStatus(redis, ids.at(-1) ?? ""))?.state).toBe("PENDING");
      expect(await apply({ event: event(ids[0] ?? "", "PENDING") })).toBe("stale");
    } finally {
      counting.disconnect();
    }
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
  test("dependencyOutcomesOf: each dependency's state, with its result or its error, in the order named", async () => {
    const [ok, bad, gone, child] = [1, 2, 3, 4].map(() => crypto.randomUUID()) as [string, string, string, string];
    await saveResult(redis, { ...resultOf(ok), output: { words: 3 } });
    await applyStatus(redis, event(ok, "SUCCEEDED"));
    await applyStatus(
      redis,
      StatusEventSchema.parse(statusEvent({ taskId: bad, state: "FAILED", source: "test", error: "boom" })),
    );
    const record = { type: "echo", priority: "low" as const, payload: {}, metadata: {}, generation: 0 };
    const createdAt = new Date().toISOString();
    await saveTask(
      redis,
      { ...record, taskId: child, createdAt, dependsOn: [ok, bad, gone], dependencyPolicy: "all-finished" },
      { ttlSeconds: 60 },
    );
    expect(await dependencyOutcomesOf(redis, child)).toEqual([
      { taskId: ok, state: "SUCCEEDED", result: { words: 3 } },
      { taskId: bad, state: "FAILED", error: "boom" },
      { taskId: gone, state: undefined },
    ]);
    // A task without dependencies (or unknown): none.
    expect(await dependencyOutcomesOf(redis, ok)).toEqual([]);
    // Each dependency lists the task among its dependents.
    expect(await dependentsOf(redis, ok, 10)).toEqual({ ids: [child], total: 1 });
  });

  test("dependentsOf drops the dependents whose records expired, as it reads them", async () => {
    const dependency = crypto.randomUUID();
    const record = { type: "echo", priority: "low" as const, payload: {}, metadata: {}, generation: 0 };
    const children = Array.from({ length: 5 }, () => crypto.randomUUID());
    for (const [i, child] of children.entries()) {
      const createdAt = new Date(Date.now() + i).toISOString();
      await saveTask(redis, { ...record, taskId: child, createdAt, dependsOn: [dependency] }, { ttlSeconds: 60 });
    }
    // The first three expired (as a succeeded task's shorter retention ends); their entries are still in the set.
    await redis.del(...children.slice(0, 3).map((id) => Keys.task(id)));
    expect(await dependentsOf(redis, dependency, 2)).toEqual({ ids: children.slice(3), total: 2 });
    expect(await redis.zcard(Keys.dependentIds(dependency))).toBe(2);
    expect(await dependentsOf(redis, dependency, 10)).toEqual({ ids: children.slice(3), total: 2 });
  });

  test("a task depending on one that SUCCEEDED with a shortened retention keeps that one's status and result as long as itself", async () => {
    const ttl = 3_600;
    const dependency = crypto.randomUUID();
    await redis.hset(Keys.task(dependency), { taskId: dependency });
    await redis.expire(Keys.task(dependency), ttl);
    await applyStatus(redis, event(dependency, "PENDING"), ttl);
    await saveResult(redis, {
      taskId: dependency,
      type: "echo",
      priority: "low",
      output: { words: 3 },
      attempts: 1,
      startedAt: new Date().toISOString(),
      completedAt: new Date().toISOString(),
      durationMs: 1,
      generation: 0,
    });
    await applyStatusUpdates(redis, [{ event: event(dependency, "SUCCEEDED", { attempt: 1 }) }], ttl, 120);
    expect(await redis.ttl(Keys.result(dependency))).toBeLessThanOrEqual(120);
    const dependent = crypto.randomUUID();
    const record = { type: "echo", priority: "low" as const, payload: {}, metadata: {}, generation: 0 };
    const createdAt = new Date().toISOString();
    const saved = await saveTask(
      redis,
      { ...record, taskId: dependent, createdAt, dependsOn: [dependency] },
      { ttlSeconds: ttl },
    );
    expect(saved).toEqual({ waitingFor: 0 });
    for (const key of [Keys.status(dependency), Keys.result(dependency)])
      expect(await redis.ttl(key)).toBeGreaterThan(3_500);
    // Its task record keeps the shortened retention: only what the dependent's handler reads is kept longer.
    expect(await redis.ttl(Keys.task(dependency))).toBeLessThanOrEqual(120);
    expect(await dependencyOutcomesOf(redis, dependent)).toEqual([
      { taskId: dependency, state: "SUCCEEDED", result: { words: 3 } },
    ]);
  });

  test("a parent lists its children oldest first, without those whose records expired", async () => {
    const parent = crypto.randomUUID();
    const record = { type: "echo", priority: "low" as const, payload: {}, metadata: {}, generation: 0 };
    const children = Array.from({ length: 4 }, () => crypto.randomUUID());
    for (const [i, child] of children.entries()) {
      const createdAt = new Date(Date.now() + i).toISOString();
      await saveTask(redis, { ...record, taskId: child, createdAt, parentTaskId: parent }, { ttlSeconds: 60 });
      expect(await addChild(redis, parent, child, Date.parse(createdAt), 60)).toBe(true);
    }
    expect(await redis.hget(Keys.task(children[0]!), "parentTaskId")).toBe(parent);
    expect(await childrenOf(redis, parent, 3)).toEqual({ ids: children.slice(0, 3), total: 4 });
    await redis.del(Keys.task(children[1]!));
    expect(await childrenOf(redis, parent, 10)).toEqual({ ids: [children[0], ...children.slice(2)], total: 3 });
    expect(await redis.ttl(Keys.children(parent))).toBeGreaterThan(50);
    expect(await childrenOf(redis, crypto.randomUUID(), 10)).toEqual({ ids: [], total: 0 });
  });

  test("GetTask's summary of a parent's children, from one read: listed, counted by state, the gone ones taken out", async () => {
    const parent = crypto.randomUUID();
    const record = { type: "echo", priority: "low" as const, payload: {}, metadata: {}, generation: 0 };
    const states = ["SUCCEEDED", "SUCCEEDED", "FAILED", "RUNNING", "SUCCEEDED", "PENDING"] as const;
    const children = states.map(() => crypto.randomUUID());
    for (const [i, child] of children.entries()) {
      const createdAt = new Date(Date.now() + i).toISOString();
      await saveTask(redis, { ...record, taskId: child, createdAt, parentTaskId: parent }, { ttlSeconds: 60 });
      await applyStatus(redis, event(child, states[i]!));
      await addChild(redis, parent, child, Date.parse(createdAt), 60);
    }
    // Its status expired, its record not yet: listed, not counted. Both expired: neither, and out of the set.
    await redis.del(Keys.status(children[1]!));
    await redis.del(Keys.status(children[4]!), Keys.task(children[4]!));
    expect(await childrenSummary(redis, parent, 3)).toEqual({
      ids: children.slice(0, 3),
      total: 5,
      byState: { SUCCEEDED: 1, FAILED: 1, RUNNING: 1, PENDING: 1 },
    });
    expect(await redis.zscore(Keys.children(parent), children[4]!)).toBeNull();
    // The first `counted` only (oldest first) are counted; the listing and the total are as before.
    expect(await childrenSummary(redis, parent, 2, 3)).toEqual({
      ids: children.slice(0, 2),
      total: 5,
      byState: { SUCCEEDED: 1, FAILED: 1 },
    });
    expect(await childrenSummary(redis, crypto.randomUUID(), 10)).toEqual({ ids: [], total: 0, byState: {} });
  });

  test("a CANCELLED parent lists no more children: addChild answers false and writes nothing", async () => {
    const parent = crypto.randomUUID();
    const [before, after] = [crypto.randomUUID(), crypto.randomUUID()];
    await applyStatus(redis, event(parent, "RUNNING"));
    expect(await addChild(redis, parent, before, Date.now(), 60)).toBe(true);
    await applyStatus(redis, event(parent, "CANCELLED"));
    expect(await addChild(redis, parent, after, Date.now(), 60)).toBe(false);
    expect(await redis.zrange(Keys.children(parent), 0, -1)).toEqual([before]);
  });

  test("saveTask refuses a task one of whose dependencies FAILED, naming it, and writes nothing", async () => {
    const [running, bad, child] = [1, 2, 3].map(() => crypto.randomUUID()) as [string, string, string];
    await applyStatus(redis, event(running, "RUNNING"));
    await applyStatus(redis, event(bad, "FAILED"));
    const record = { type: "echo", priority: "low" as const, payload: {}, metadata: {}, generation: 0 };
    const saved = await saveTask(
      redis,
      { ...record, taskId: child, createdAt: new Date().toISOString(), dependsOn: [running, bad] },
      { ttlSeconds: 60 },
    );
    expect(saved).toEqual({ refusedBy: { dependency: bad, state: "FAILED" } });
    expect(await redis.exists(Keys.task(child), Keys.dependents(running), Keys.dependentIds(running))).toBe(0);
    expect(await redis.hexists(Keys.waiting, child)).toBe(0);
  });

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

    // A result stored after its task's records were shortened (SUCCEEDED applied first) lives no longer than they do.
    const late = crypto.randomUUID();
    await redis.hset(Keys.status(late), { state: "SUCCEEDED" });
    await redis.expire(Keys.status(late), 120);
    expect(await storeResult(redis, { ...base, taskId: late, output: {} }, 3_600)).toBe("stored");
    const lateTtl = await redis.ttl(Keys.result(late));
    expect(lateTtl > 110 && lateTtl <= 120).toBe(true);
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

  test("a batch of audit appends is one script call: each event stored once, in order, with or without a task", async () => {
    const id = crypto.randomUUID();
    const at = new Date().toISOString();
    const before = await redis.llen(Keys.auditEvents);
    const stored = await appendAuditBatch(redis, [
      { event: { taskId: id, service: "t", action: "a", at }, deliveryId: `EVENTS:${id}:a` },
      { event: { service: "t", action: `no-task-${id}`, at }, deliveryId: `EVENTS:${id}:n` },
      { event: { taskId: id, service: "t", action: "b", at }, deliveryId: `EVENTS:${id}:b` },
      // The same delivery twice in one call (a redelivery that caught up with the first): stored once.
      { event: { taskId: id, service: "t", action: "b", at }, deliveryId: `EVENTS:${id}:b` },
    ]);
    expect(stored).toEqual([true, true, true, false]);
    expect((await readHistory(redis, id)).map((e) => e.action)).toEqual(["a", "b"]);
    expect(await redis.llen(Keys.auditEvents)).toBe(before + 3);
    const newest = (await redis.lrange(Keys.auditEvents, 0, 2)).map((line) => JSON.parse(line).action);
    expect(newest).toEqual(["b", `no-task-${id}`, "a"]);
    // An event without a task leaves no history behind its marker key.
    expect(await redis.exists(Keys.history(`audit_seen:EVENTS:${id}:n`))).toBe(0);
    expect(await redis.type(`audit_seen:EVENTS:${id}:n`)).toBe("string");
    expect(await appendAuditBatch(redis, [])).toEqual([]);
  });

  test("the audit appender gathers one turn's appends into calls of at most AUDIT_BATCH_MAX events", async () => {
    const { counting, calls } = scriptCallCounter();
    try {
      const append = auditAppender(counting);
      const id = crypto.randomUUID();
      const count = AUDIT_BATCH_MAX + 2;
      const at = new Date().toISOString();
      const results = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          append({ taskId: id, service: "t", action: `a${i}`, at }, `EVENTS:${id}:${i}`),
        ),
      );
      expect(results.every(Boolean)).toBe(true);
      // Two calls, by their key counts: audit_events, then a marker, a history and a status key per event.
      expect(calls).toEqual([1 + 3 * AUDIT_BATCH_MAX, 1 + 3 * 2]);
      expect(await redis.llen(Keys.history(id))).toBe(count);
      expect(await append({ taskId: id, service: "t", action: "a0", at }, `EVENTS:${id}:0`)).toBe(false);
    } finally {
      counting.disconnect();
    }
  });

  test("a failed batch call rejects every append in it", async () => {
    const broken = new Redis(infra.redis.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    // The connection is never opened: every command fails, which is what this test wants to see.
    broken.on("error", () => {});
    const append = auditAppender(broken);
    const id = crypto.randomUUID();
    const at = new Date().toISOString();
    const outcomes = await Promise.allSettled([
      append({ taskId: id, service: "t", action: "x", at }, `EVENTS:${id}:x`),
      append({ taskId: id, service: "t", action: "y", at }, `EVENTS:${id}:y`),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    expect(await redis.exists(Keys.history(id), `audit_seen:EVENTS:${id}:x`)).toBe(0);
    broken.disconnect();
  });
});

import { create } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, test } from "vitest";
import {
  DependencyPolicy,
  IdempotencyKeyReuse,
  Priority,
  SubmitTaskRequestSchema,
} from "../src/gen/taskmanager/v1/taskmanager_pb.js";
import { submitTaskRequestOf, type TaskRequest, taskRequestProblem } from "../src/task-request.js";

const message = (request: Parameters<typeof submitTaskRequestOf>[0]) =>
  create(SubmitTaskRequestSchema, submitTaskRequestOf(request));

describe("submitTaskRequestOf", () => {
  test("every field in its protobuf form", () => {
    const runAt = new Date("2030-01-02T03:04:05.678Z");
    const sent = message({
      type: "resize",
      payload: { width: 100, tags: ["a"] },
      priority: "high",
      metadata: { tenant: "acme" },
      runAt,
      timeoutMs: 30_000,
      maxAttempts: 5,
      heartbeatTimeoutMs: 2_000,
      expiresAfterMs: 60_000,
      succeededRetentionSeconds: 3_600,
      retryBackoff: { delayMs: 500, multiplier: 2, maxDelayMs: 10_000, jitter: 0.1 },
      dependsOn: ["a", "b"],
      dependencyPolicy: "all-finished",
      idempotencyKey: "order-7",
      keyReuse: "replace-waiting",
      concurrency: { key: "tenant:acme", limit: 3 },
      fairness: { key: "acme", weight: 5 },
    });
    expect(sent.type).toBe("resize");
    expect(sent.payload).toEqual({ width: 100, tags: ["a"] });
    expect(sent.priority).toBe(Priority.HIGH);
    expect(sent.metadata).toEqual({ tenant: "acme" });
    expect(sent.schedule.case).toBe("runAt");
    expect(sent.schedule.case === "runAt" && timestampDate(sent.schedule.value).toISOString()).toBe(
      runAt.toISOString(),
    );
    expect(durationMs(sent.timeout!)).toBe(30_000);
    expect(sent.maxAttempts).toBe(5);
    expect(durationMs(sent.heartbeatTimeout!)).toBe(2_000);
    expect(durationMs(sent.expiresAfter!)).toBe(60_000);
    expect(durationMs(sent.succeededRetention!)).toBe(3_600_000);
    expect(durationMs(sent.retryBackoff!.delay!)).toBe(500);
    expect(sent.retryBackoff).toMatchObject({ multiplier: 2, jitter: 0.1 });
    expect(durationMs(sent.retryBackoff!.maxDelay!)).toBe(10_000);
    expect(sent.dependsOn).toEqual(["a", "b"]);
    expect(sent.dependencyPolicy).toBe(DependencyPolicy.ALL_FINISHED);
    expect(sent.idempotencyKey).toBe("order-7");
    expect(sent.idempotencyKeyReuse).toBe(IdempotencyKeyReuse.REPLACE_WAITING);
    expect(sent).toMatchObject({ concurrencyKey: "tenant:acme", concurrencyLimit: 3 });
    expect(sent).toMatchObject({ fairnessKey: "acme", fairnessWeight: 5 });
    // A key without a weight leaves the weight to the gateway's default (1).
    expect(message({ type: "echo", fairness: { key: "acme" } })).toMatchObject({
      fairnessKey: "acme",
      fairnessWeight: 0,
    });
  });

  test("unset fields are left to the gateway's defaults", () => {
    const sent = message({ type: "echo" });
    expect(sent).toMatchObject({
      type: "echo",
      payload: {},
      priority: Priority.UNSPECIFIED,
      idempotencyKey: "",
      idempotencyKeyReuse: IdempotencyKeyReuse.UNSPECIFIED,
      maxAttempts: 0,
      dependsOn: [],
      dependencyPolicy: DependencyPolicy.UNSPECIFIED,
      concurrencyKey: "",
      concurrencyLimit: 0,
      fairnessKey: "",
      fairnessWeight: 0,
    });
    expect(sent.schedule.case).toBeUndefined();
    expect(sent.timeout).toBeUndefined();
    expect(sent.retryBackoff).toBeUndefined();
    expect(message({ type: "echo", delayMs: 1_500 }).schedule).toMatchObject({ case: "delay" });
  });
});

describe("taskRequestProblem", () => {
  test("a good request has none", () => {
    expect(taskRequestProblem({ type: "echo" })).toBeUndefined();
    expect(taskRequestProblem({ type: "echo", payload: Object.create(null), runAt: new Date() })).toBeUndefined();
    const longest = { key: `a-Z_0.9:@/=+${"k".repeat(116)}`, limit: 1_000 };
    expect(longest.key).toHaveLength(128);
    expect(taskRequestProblem({ type: "echo", concurrency: longest })).toBeUndefined();
    expect(taskRequestProblem({ type: "echo", concurrency: { key: "t", limit: 1 } })).toBeUndefined();
  });

  test.each<[string, unknown, string]>([
    ["no object", null, "needs a request object"],
    ["no type", { payload: {} }, "type must be a task type"],
    ["an array payload", { type: "echo", payload: [1] }, "payload must be a JSON object"],
    ["a class payload", { type: "echo", payload: new Map() }, "payload must be a JSON object"],
    ["a priority", { type: "echo", priority: "urgent" }, 'priority must be "high", "medium" or "low" (got "urgent")'],
    ["a negative delay", { type: "echo", delayMs: -1 }, "delayMs must be a whole number ≥ 0 (got -1)"],
    ["a fractional timeout", { type: "echo", timeoutMs: 1.5 }, "timeoutMs must be a whole number ≥ 0 (got 1.5)"],
    ["an invalid date", { type: "echo", runAt: new Date("nope") }, "runAt must be a valid Date"],
    ["a date string", { type: "echo", runAt: "2030-01-01" }, "runAt must be a valid Date"],
    ["a delay and a time", { type: "echo", delayMs: 5, runAt: new Date() }, "give delayMs or runAt, not both"],
    ["a backoff", { type: "echo", retryBackoff: { delayMs: -1 } }, "retryBackoff.delayMs must be a whole number"],
    ["a policy", { type: "echo", dependencyPolicy: "any" }, 'dependencyPolicy must be "all-succeeded" or'],
    ["dependencies", { type: "echo", dependsOn: "a" }, "dependsOn must be a list of task ids"],
    ["metadata", { type: "echo", metadata: { n: 1 } }, "metadata.n must be a string (got 1)"],
    ["an empty key", { type: "echo", idempotencyKey: "" }, "idempotencyKey must be a non-empty string"],
    ["a reuse", { type: "echo", idempotencyKey: "k", keyReuse: "always" }, 'keyReuse must be "after-finished" or'],
    ["a reuse without key", { type: "echo", keyReuse: "after-finished" }, "keyReuse needs an idempotencyKey"],
    [
      "a concurrency that is no object",
      { type: "echo", concurrency: "tenant-1" },
      "concurrency must be { key, limit }",
    ],
    ["a concurrency without key", { type: "echo", concurrency: { limit: 2 } }, "concurrency.key must be 1 to 128"],
    ["a fairness that is no object", { type: "echo", fairness: "acme" }, "fairness must be { key, weight? }"],
    ["a fairness without key", { type: "echo", fairness: { weight: 2 } }, "fairness.key must be 1 to 128"],
    ["a fairness key with a space", { type: "echo", fairness: { key: "a b" } }, "fairness.key must be"],
    [
      "a zero fairness weight",
      { type: "echo", fairness: { key: "a", weight: 0 } },
      "fairness.weight must be a whole number from 1 to 1000 (got 0)",
    ],
    ["a fairness weight over 1000", { type: "echo", fairness: { key: "a", weight: 1001 } }, "(got 1001)"],
    [
      "an empty concurrency key",
      { type: "echo", concurrency: { key: "", limit: 2 } },
      'concurrency.key must be 1 to 128 letters, digits or _ . : @ / = + - (got "")',
    ],
    [
      "a concurrency key with a space",
      { type: "echo", concurrency: { key: "a b", limit: 2 } },
      "concurrency.key must be",
    ],
    [
      "a long concurrency key",
      { type: "echo", concurrency: { key: "k".repeat(129), limit: 2 } },
      `(got "${"k".repeat(64)}"…)`,
    ],
    [
      "a concurrency without limit",
      { type: "echo", concurrency: { key: "t" } },
      "concurrency.limit must be a whole number from 1 to 1000 (got undefined)",
    ],
    [
      "a zero concurrency limit",
      { type: "echo", concurrency: { key: "t", limit: 0 } },
      "concurrency.limit must be a whole number from 1 to 1000 (got 0)",
    ],
    ["a high concurrency limit", { type: "echo", concurrency: { key: "t", limit: 1_001 } }, "(got 1001)"],
    ["a fractional concurrency limit", { type: "echo", concurrency: { key: "t", limit: 1.5 } }, "(got 1.5)"],
  ])("names %s", (_, request, problem) => {
    expect(taskRequestProblem(request as TaskRequest)).toContain(problem);
  });
});

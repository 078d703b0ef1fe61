import { createHash } from "node:crypto";
import { BUILT_IN_TASK_TYPES, RateLimitedError, RetryAfterError } from "@tm/flow";
import { createLogger } from "@tm/kit";
import { describe, expect, test } from "vitest";
import { BUILT_IN_HANDLERS, handlerFor, type TaskContext } from "../src/handlers/index.js";
import { validatePayload } from "../src/handlers/types.js";

function context(overrides: Partial<TaskContext> = {}): TaskContext & { progress: number[] } {
  const progress: number[] = [];
  return {
    taskId: "00000000-0000-4000-8000-000000000000",
    attempt: 1,
    deferrals: 0,
    signal: new AbortController().signal,
    reportProgress: (p) => progress.push(p),
    log: createLogger("worker", "silent"),
    dependencies: async () => [],
    submitTask: async () => {
      throw new Error("no gateway in this test");
    },
    submitTasks: async () => {
      throw new Error("no gateway in this test");
    },
    progress,
    ...overrides,
  };
}

function handler(type: string) {
  const found = handlerFor(type);
  if (!found) throw new Error(`no handler ${type}`);
  return found;
}

describe("handler registry", () => {
  test("holds the contract's task types", () => {
    expect(BUILT_IN_HANDLERS.map((handler) => handler.type).sort()).toEqual([...BUILT_IN_TASK_TYPES].sort()); // the registry implements exactly the built-in types
    expect(handlerFor("nope")).toBeUndefined();
  });

  test("checksum applies sha256 `rounds` times and reports progress", async () => {
    const ctx = context();
    let expected = "abc";
    for (let i = 0; i < 2500; i++) expected = createHash("sha256").update(expected).digest("hex");
    await expect(handler("checksum").run({ data: "abc", rounds: 2500 }, ctx)).resolves.toEqual({
      sha256: expected,
      rounds: 2500,
    });
    expect(ctx.progress).toEqual([40, 80, 100]);
  });

  test("checksum stops when its signal aborts", async () => {
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await expect(
      handler("checksum").run({ data: "x", rounds: 1_000_000 }, context({ signal: controller.signal })),
    ).rejects.toThrow("stop");
  });

  test("sleep reports progress ten times and rejects promptly with the abort reason", async () => {
    const ctx = context();
    await handler("sleep").run({ ms: 50 }, ctx);
    expect(ctx.progress).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error("cancelled")), 20);
    await expect(handler("sleep").run({ ms: 60_000 }, context({ signal: controller.signal }))).rejects.toThrow(
      "cancelled",
    );
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  test("sleep with ignoreSignal waits its time out, aborted or not (a handler that does not stop)", async () => {
    const controller = new AbortController();
    controller.abort(new Error("cancelled"));
    const ctx = context({ signal: controller.signal });
    expect(await handler("sleep").run({ ms: 30, ignoreSignal: true }, ctx)).toEqual({ sleptMs: 30 });
    expect(ctx.progress).toHaveLength(10);
  });

  test("flaky fails while attempt <= failures", async () => {
    await expect(async () => handler("flaky").run({ failures: 2 }, context({ attempt: 2 }))).rejects.toThrow(/flaky/);
    expect(await handler("flaky").run({ failures: 2 }, context({ attempt: 3 }))).toEqual({ attempts: 3 });
  });

  test("flaky with retryAfterMs fails with a RetryAfterError carrying that delay; a delay over an hour is refused", async () => {
    const failure = await Promise.resolve()
      .then(() => handler("flaky").run({ failures: 1, retryAfterMs: 2_500 }, context({ attempt: 1 })))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RetryAfterError);
    expect(failure).toMatchObject({ retryAfterMs: 2_500, message: expect.stringMatching(/flaky: attempt 1 fails/) });
    expect(await validatePayload(handler("flaky").payload, { failures: 1, retryAfterMs: 3_600_001 })).toHaveProperty(
      "problems",
    );
  });

  test("flaky with rateLimits is rate limited on each attempt's first runs (RateLimitedError), then fails or succeeds", async () => {
    const run = (attempt: number, deferrals: number) =>
      Promise.resolve()
        .then(() =>
          handler("flaky").run({ failures: 1, rateLimits: 2, retryAfterMs: 300 }, context({ attempt, deferrals })),
        )
        .catch((error: unknown) => error);
    for (const attempt of [1, 2]) {
      for (const deferrals of [0, 1]) {
        const limited = await run(attempt, deferrals);
        expect(limited).toBeInstanceOf(RateLimitedError);
        expect(limited).toMatchObject({ retryAfterMs: 300, message: expect.stringMatching(/is rate limited/) });
      }
    }
    const failed = await run(1, 2);
    expect(failed).not.toBeInstanceOf(RateLimitedError);
    expect(failed).toMatchObject({ message: expect.stringMatching(/flaky: attempt 1 fails/) });
    expect(await run(2, 2)).toEqual({ attempts: 2 });
    // Without retryAfterMs the wait is 1 s.
    const plain = await Promise.resolve()
      .then(() => handler("flaky").run({ failures: 0, rateLimits: 1 }, context()))
      .catch((error: unknown) => error);
    expect(plain).toMatchObject({ name: "RateLimitedError", retryAfterMs: 1_000 });
  });

  test("fail always fails; echo returns its payload", async () => {
    await expect(async () => handler("fail").run({}, context())).rejects.toThrow("task type fail always fails");
    expect(await handler("echo").run({ a: [1] }, context())).toEqual({ a: [1] });
  });

  test("payload schemas name the bad field", async () => {
    expect(await validatePayload(handler("sleep").payload, { ms: "x" })).toEqual({
      problems: expect.stringMatching(/^ms: Invalid input: expected number/),
    });
    expect(await validatePayload(handler("sleep").payload, { ms: 5 })).toEqual({ value: { ms: 5 } });
  });
});

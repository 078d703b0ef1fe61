import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PermanentError, RetryAfterError } from "@tm/flow";
import { DependencyPolicy, Priority, retryPushback, SubmitTaskRequestSchema } from "@tm/proto";
import { describe, expect, test } from "vitest";
import {
  attemptSubmitTask,
  type ChildSubmitter,
  childIdempotencyKey,
  childRequestProblem,
  unconfiguredChildSubmitter,
} from "../src/child-tasks.js";
import { childSubmitFailure, childSubmitRequest } from "../src/gateway-child-submitter.js";

const PARENT = { taskId: "0b6f4c1e-7d2a-4c55-9a43-2f1b8e6d9c10", priority: "high" as const };

/** A submitter that records what it was asked and answers with the key's task. */
function recording() {
  const calls: Array<{ key: string; type: string }> = [];
  const submit: ChildSubmitter = async (_parent, key, request) => {
    calls.push({ key, type: request.type });
    return { taskId: `id-of-${key}`, deduplicated: false };
  };
  return { calls, submit };
}

describe("ctx.submitTask's idempotency keys", () => {
  test("numbered by the call within the attempt, the same on every attempt and generation of the parent", async () => {
    const first = recording();
    const attempt1 = attemptSubmitTask(first.submit, PARENT, new AbortController().signal);
    await Promise.all([attempt1({ type: "echo" }), attempt1({ type: "sleep" })]);
    const again = recording();
    const attempt2 = attemptSubmitTask(again.submit, PARENT, new AbortController().signal);
    await Promise.all([attempt2({ type: "echo" }), attempt2({ type: "sleep" })]);
    expect(again.calls).toEqual(first.calls);
    expect(first.calls.map((call) => call.key)).toEqual([`child:${PARENT.taskId}:n:1`, `child:${PARENT.taskId}:n:2`]);
  });

  test("a key names the child whatever its place, and never as a place does", async () => {
    const { calls, submit } = recording();
    const ctxSubmit = attemptSubmitTask(submit, PARENT, new AbortController().signal);
    await ctxSubmit({ type: "echo", key: "1" });
    await ctxSubmit({ type: "echo" });
    expect(calls.map((call) => call.key)).toEqual([`child:${PARENT.taskId}:key:1`, `child:${PARENT.taskId}:n:2`]);
  });

  test("a bad request is a PermanentError naming the field; nothing is sent", async () => {
    const { calls, submit } = recording();
    const ctxSubmit = attemptSubmitTask(submit, PARENT, new AbortController().signal);
    const refused = (request: unknown) =>
      ctxSubmit(request as Parameters<typeof ctxSubmit>[0]).catch((error: unknown) => error);
    const urgent = await refused({ type: "echo", priority: "urgent" });
    expect(urgent).toBeInstanceOf(PermanentError);
    expect((urgent as Error).message).toBe('ctx.submitTask: priority must be "high", "medium" or "low" (got "urgent")');
    expect(((await refused({ type: "echo", key: "k".repeat(129) })) as Error).message).toContain(
      "key must be 1 to 128 characters",
    );
    expect(((await refused({ type: "echo", delayMs: -5 })) as Error).message).toContain(
      "delayMs must be a whole number ≥ 0 (got -5)",
    );
    expect(((await refused({})) as Error).message).toContain("type must be a task type");
    expect(((await refused(undefined)) as Error).message).toContain("needs a request object");
    expect(childRequestProblem({ type: "echo", retryBackoff: { delayMs: -1 } })).toBe(
      "retryBackoff.delayMs must be a whole number ≥ 0 (got -1)",
    );
    expect(childRequestProblem({ type: "echo", retryBackoff: { delayMs: 1, multiplier: Number.NaN } })).toBe(
      "retryBackoff.multiplier must be a number (got null)",
    );
    expect(childRequestProblem({ type: "echo", succeededRetentionSeconds: 1.5 })).toContain(
      "succeededRetentionSeconds must be a whole number",
    );
    expect(childRequestProblem({ type: "echo", dependencyPolicy: "any" as "all-finished" })).toContain(
      'dependencyPolicy must be "all-succeeded" or "all-finished"',
    );
    expect(calls).toEqual([]);
  });

  test("an attempt that has ended submits nothing more", async () => {
    const { calls, submit } = recording();
    const controller = new AbortController();
    const ctxSubmit = attemptSubmitTask(submit, PARENT, controller.signal);
    controller.abort(new Error("timed out"));
    await expect(ctxSubmit({ type: "echo" })).rejects.toThrow("timed out");
    expect(calls).toEqual([]);
  });

  test("without WORKER_GATEWAY_URL every call fails naming the setting", async () => {
    const ctxSubmit = attemptSubmitTask(unconfiguredChildSubmitter, PARENT, new AbortController().signal);
    await expect(ctxSubmit({ type: "echo" })).rejects.toThrow(/needs WORKER_GATEWAY_URL on this worker/);
  });
});

describe("the SubmitTask request of a child", () => {
  test("its fields, the parent linked, the parent's priority unless it sets one", () => {
    const request = create(
      SubmitTaskRequestSchema,
      childSubmitRequest(PARENT, "k", {
        type: "word-total",
        payload: { a: 1 },
        delayMs: 1_500,
        dependsOn: ["x"],
        dependencyPolicy: "all-finished",
        metadata: { team: "search" },
        timeoutMs: 2_000,
        maxAttempts: 2,
        heartbeatTimeoutMs: 500,
        expiresAfterMs: 60_000,
        succeededRetentionSeconds: 3_600,
        retryBackoff: { delayMs: 250, multiplier: 2, maxDelayMs: 4_000 },
      }),
    );
    expect(request).toMatchObject({
      type: "word-total",
      payload: { a: 1 },
      priority: Priority.HIGH,
      idempotencyKey: "k",
      parentTaskId: PARENT.taskId,
      metadata: { team: "search" },
      dependsOn: ["x"],
      dependencyPolicy: DependencyPolicy.ALL_FINISHED,
      maxAttempts: 2,
      schedule: { case: "delay", value: { seconds: 1n, nanos: 500_000_000 } },
      timeout: { seconds: 2n },
      heartbeatTimeout: { seconds: 0n, nanos: 500_000_000 },
      expiresAfter: { seconds: 60n },
      succeededRetention: { seconds: 3_600n },
      retryBackoff: { delay: { nanos: 250_000_000 }, multiplier: 2, maxDelay: { seconds: 4n }, jitter: 0 },
    });
    const plain = create(SubmitTaskRequestSchema, childSubmitRequest(PARENT, "k", { type: "echo", priority: "low" }));
    expect(plain).toMatchObject({ priority: Priority.LOW, payload: {}, dependsOn: [], maxAttempts: 0 });
    expect(plain.schedule.case).toBeUndefined();
    expect(plain.timeout).toBeUndefined();
  });
});

describe("the gateway's refusal as the attempt's failure", () => {
  const failure = (code: Code, metadata?: Headers) =>
    childSubmitFailure("echo", new ConnectError("no", code, metadata ?? new Headers()));

  test("a request no retry changes is permanent", () => {
    for (const code of [Code.InvalidArgument, Code.FailedPrecondition, Code.NotFound, Code.ResourceExhausted]) {
      expect(failure(code)).toBeInstanceOf(PermanentError);
    }
    expect(failure(Code.InvalidArgument).message).toBe(
      'ctx.submitTask("echo"): the gateway answered InvalidArgument: no',
    );
  });

  test("a rate limit's pushback is the wait; an outage, a shed or a refused key is retried", () => {
    const limited = failure(Code.ResourceExhausted, retryPushback(1_200));
    expect(limited).toBeInstanceOf(RetryAfterError);
    expect((limited as RetryAfterError).retryAfterMs).toBe(1_200);
    for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.Unauthenticated]) {
      expect(failure(code)).not.toBeInstanceOf(PermanentError);
      expect(failure(code)).not.toBeInstanceOf(RetryAfterError);
    }
    expect(failure(Code.Unauthenticated).message).toContain("is WORKER_GATEWAY_API_KEY a key the gateway accepts?");
    const plain = new Error("socket hang up");
    expect(childSubmitFailure("echo", plain)).toBe(plain);
  });
});

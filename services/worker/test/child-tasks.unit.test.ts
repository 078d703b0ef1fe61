import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PermanentError, RetryAfterError } from "@tm/flow";
import { DependencyPolicy, Priority, retryPushback, SubmitTaskRequestSchema } from "@tm/proto";
import { describe, expect, test } from "vitest";
import {
  attemptChildTasks,
  type ChildSubmitter,
  type ChildTaskRequest,
  childRequestProblem,
  MAX_CHILD_BATCH,
  type PreparedChild,
  unconfiguredChildSubmitter,
} from "../src/child-tasks.js";
import { childSubmitFailure, childSubmitRequest, waitOut } from "../src/gateway-child-submitter.js";

const PARENT = { taskId: "0b6f4c1e-7d2a-4c55-9a43-2f1b8e6d9c10", priority: "high" as const };

/** A submitter that records what it was asked and answers with the key's task; a type "refused-…" is refused. */
function recording(batchSize = 100) {
  const calls: Array<{ key: string; type: string }> = [];
  const batches: PreparedChild[][] = [];
  const answer = (child: PreparedChild) => {
    calls.push({ key: child.idempotencyKey, type: child.request.type });
    if (child.request.type === "refused-permanently") return new PermanentError(`${child.label}: refused`);
    if (child.request.type === "refused-for-now") return new Error(`${child.label}: unavailable`);
    return { taskId: `id-of-${child.idempotencyKey}`, deduplicated: false };
  };
  const submitter: ChildSubmitter = {
    batchSize,
    submit: async (_parent, child) => {
      const outcome = answer(child);
      if (outcome instanceof Error) throw outcome;
      return outcome;
    },
    submitBatch: async (_parent, children) => {
      batches.push([...children]);
      return children.map(answer);
    },
  };
  return { calls, batches, submitter };
}

/** An attempt's ctx.submitTask and ctx.submitTasks with `submitter`. */
function attempt(submitter: ChildSubmitter, signal = new AbortController().signal) {
  return attemptChildTasks(submitter, PARENT, { signal });
}

describe("ctx.submitTask's idempotency keys", () => {
  test("numbered by the call within the attempt, the same on every attempt and generation of the parent", async () => {
    const first = recording();
    const attempt1 = attempt(first.submitter).submitTask;
    await Promise.all([attempt1({ type: "echo" }), attempt1({ type: "sleep" })]);
    const again = recording();
    const attempt2 = attempt(again.submitter).submitTask;
    await Promise.all([attempt2({ type: "echo" }), attempt2({ type: "sleep" })]);
    expect(again.calls).toEqual(first.calls);
    expect(first.calls.map((call) => call.key)).toEqual([`child:${PARENT.taskId}:n:1`, `child:${PARENT.taskId}:n:2`]);
  });

  test("a key names the child whatever its place, and never as a place does", async () => {
    const { calls, submitter } = recording();
    const ctxSubmit = attempt(submitter).submitTask;
    await ctxSubmit({ type: "echo", key: "1" });
    await ctxSubmit({ type: "echo" });
    expect(calls.map((call) => call.key)).toEqual([`child:${PARENT.taskId}:key:1`, `child:${PARENT.taskId}:n:2`]);
  });

  test("a bad request is a PermanentError naming the field; nothing is sent", async () => {
    const { calls, submitter } = recording();
    const ctxSubmit = attempt(submitter).submitTask;
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
    expect(childRequestProblem({ type: "echo", concurrency: { key: "tenant 7", limit: 2 } })).toContain(
      "concurrency.key must be 1 to 128 letters",
    );
    expect(childRequestProblem({ type: "echo", dependencyPolicy: "any" as "all-finished" })).toContain(
      'dependencyPolicy must be "all-succeeded" or "all-finished"',
    );
    expect(calls).toEqual([]);
  });

  test("an attempt that has ended submits nothing more", async () => {
    const { calls, submitter } = recording();
    const controller = new AbortController();
    const { submitTask, submitTasks } = attempt(submitter, controller.signal);
    controller.abort(new Error("timed out"));
    await expect(submitTask({ type: "echo" })).rejects.toThrow("timed out");
    await expect(submitTasks([{ type: "echo" }])).rejects.toThrow("timed out");
    expect(calls).toEqual([]);
  });

  test("without WORKER_GATEWAY_URL every call fails naming the setting", async () => {
    const { submitTask, submitTasks } = attempt(unconfiguredChildSubmitter);
    await expect(submitTask({ type: "echo" })).rejects.toThrow(
      /^ctx\.submitTask\("echo"\) needs WORKER_GATEWAY_URL on this worker/,
    );
    await expect(submitTasks([{ type: "echo" }])).rejects.toThrow(
      /^ctx\.submitTasks: requests\[0\] \("echo"\) needs WORKER_GATEWAY_URL on this worker/,
    );
  });
});

describe("ctx.submitTasks", () => {
  const KEY = (place: number) => `child:${PARENT.taskId}:n:${place}`;

  test("numbers its children after the attempt's earlier ones, as submitTask does; keys stay their own", async () => {
    const { calls, submitter } = recording();
    const { submitTask, submitTasks } = attempt(submitter);
    await submitTask({ type: "echo" });
    const children = await submitTasks([{ type: "echo" }, { type: "sleep", key: "mine" }, { type: "echo" }]);
    await submitTask({ type: "echo" });
    expect(calls.map((call) => call.key)).toEqual([KEY(1), KEY(2), `child:${PARENT.taskId}:key:mine`, KEY(4), KEY(5)]);
    expect(children.map((child) => child.taskId)).toEqual([
      `id-of-${KEY(2)}`,
      `id-of-child:${PARENT.taskId}:key:mine`,
      `id-of-${KEY(4)}`,
    ]);
    expect(await submitTasks([])).toEqual([]);
  });

  test("a list longer than a call's batch goes in calls of that size; a dependency in an earlier call is named by its id", async () => {
    const { batches, submitter } = recording(2);
    const parts = Array.from({ length: 4 }, (_, i) => ({ type: "word-count", payload: { i } }));
    const children = await attempt(submitter).submitTasks([
      ...parts,
      { type: "word-total", dependsOn: ["outside"], dependsOnBatchItems: [0, 3, 2] },
    ]);
    expect(children).toHaveLength(5);
    expect(batches.map((batch) => batch.length)).toEqual([2, 2, 1]);
    const [fanIn] = batches[2] as PreparedChild[];
    // Places 0, 3 and 2 were all sent by earlier calls: their ids, after the request's own.
    expect(fanIn?.request.dependsOn).toEqual(["outside", `id-of-${KEY(1)}`, `id-of-${KEY(4)}`, `id-of-${KEY(3)}`]);
    expect(fanIn?.dependsOnBatchItems).toBeUndefined();
    expect(fanIn?.label).toBe('ctx.submitTasks: requests[4] ("word-total")');

    // In one call, the same dependencies are places in it.
    const whole = recording(10);
    await attempt(whole.submitter).submitTasks([...parts, { type: "word-total", dependsOnBatchItems: [0, 3, 2] }]);
    const sent = (whole.batches[0] as PreparedChild[])[4];
    expect(sent?.dependsOnBatchItems).toEqual([0, 3, 2]);
    expect(sent?.request.dependsOn).toBeUndefined();
    // Split 3 + 2: place 3 is in the fan-in's call (its place there is 0), 0 and 2 were sent before.
    const split = recording(3);
    await attempt(split.submitter).submitTasks([...parts, { type: "word-total", dependsOnBatchItems: [0, 3, 2] }]);
    const [, fanIn2] = split.batches[1] as PreparedChild[];
    expect(fanIn2?.dependsOnBatchItems).toEqual([0]);
    expect(fanIn2?.request.dependsOn).toEqual([`id-of-${KEY(1)}`, `id-of-${KEY(3)}`]);
  });

  test("every request is checked before any is sent: a PermanentError naming the first bad one", async () => {
    const { calls, submitter } = recording();
    const { submitTasks } = attempt(submitter);
    const problem = (requests: unknown) =>
      submitTasks(requests as Parameters<typeof submitTasks>[0]).then(
        () => undefined,
        (error: unknown) => {
          expect(error).toBeInstanceOf(PermanentError);
          return (error as Error).message;
        },
      );
    expect(await problem([{ type: "echo" }, { type: "echo", priority: "urgent" }])).toBe(
      'ctx.submitTasks: requests[1]: priority must be "high", "medium" or "low" (got "urgent")',
    );
    expect(await problem({ type: "echo" })).toBe(
      "ctx.submitTasks: needs a list of requests ([{ type, payload?, … }, …])",
    );
    expect(await problem([{ type: "echo", dependsOnBatchItems: [0] }])).toBe(
      "ctx.submitTasks: requests[0]: dependsOnBatchItems[0] must be the place of an earlier request (0 to -1), got 0",
    );
    expect(await problem([{ type: "echo" }, { type: "echo", dependsOnBatchItems: [0, 0] }])).toBe(
      "ctx.submitTasks: requests[1]: dependsOnBatchItems[1]: 0 is named twice",
    );
    expect(await problem([{ type: "echo", dependsOnBatchItems: "0" }])).toContain("must be a list of earlier places");
    expect(
      await problem([
        { type: "echo", key: "a" },
        { type: "echo", key: "a" },
      ]),
    ).toBe('ctx.submitTasks: requests[1]: key "a" is given twice');
    expect(await problem(Array.from({ length: MAX_CHILD_BATCH + 1 }, () => ({ type: "echo" })))).toContain(
      `${MAX_CHILD_BATCH + 1} requests are more than the ${MAX_CHILD_BATCH} one call takes`,
    );
    expect(calls).toEqual([]);
  });

  test("refused children fail the attempt with the first refusal, permanent when one is; later calls are not made", async () => {
    const { batches, submitter } = recording(2);
    const { submitTasks } = attempt(submitter);
    const failure = await submitTasks([
      { type: "echo" },
      { type: "refused-for-now" },
      { type: "refused-permanently" },
      { type: "echo" },
    ]).then(
      () => new Error("submitted"),
      (error: unknown) => error as Error,
    );
    // The first call's refusal is not permanent: the attempt is retried, the next call not made.
    expect(failure).not.toBeInstanceOf(PermanentError);
    expect(failure.message).toBe('ctx.submitTasks: requests[1] ("refused-for-now"): unavailable');
    expect(batches).toHaveLength(1);

    const both = recording(10);
    const permanent = await attempt(both.submitter)
      .submitTasks([{ type: "refused-for-now" }, { type: "echo" }, { type: "refused-permanently" }])
      .then(
        () => new Error("submitted"),
        (error: unknown) => error as Error,
      );
    expect(permanent).toBeInstanceOf(PermanentError);
    expect(permanent.message).toBe(
      'ctx.submitTasks: requests[2] ("refused-permanently"): refused (and 1 more of the call refused)',
    );
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
        concurrency: { key: "tenant-7", limit: 2 },
        fairness: { key: "tenant-7", weight: 3 },
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
      concurrencyKey: "tenant-7",
      concurrencyLimit: 2,
      fairnessKey: "tenant-7",
      fairnessWeight: 3,
    });
    const plain = create(SubmitTaskRequestSchema, childSubmitRequest(PARENT, "k", { type: "echo", priority: "low" }));
    expect(plain).toMatchObject({ priority: Priority.LOW, payload: {}, dependsOn: [], maxAttempts: 0 });
    expect(plain.schedule.case).toBeUndefined();
    expect(plain.timeout).toBeUndefined();
    // A time instead of a delay; the child's own key is not sent as a field of the request.
    const at = create(
      SubmitTaskRequestSchema,
      childSubmitRequest(PARENT, "k", { type: "echo", key: "mine", runAt: new Date("2030-01-01T00:00:01Z") }),
    );
    expect(at).toMatchObject({ idempotencyKey: "k", schedule: { case: "runAt", value: { seconds: 1_893_456_001n } } });
  });

  test("a child names neither an idempotency key nor a reuse of its own", () => {
    expect(childRequestProblem({ type: "echo", idempotencyKey: "x" } as ChildTaskRequest)).toBe(
      "idempotencyKey is not for a child task (its key names it among its parent's)",
    );
    expect(childRequestProblem({ type: "echo", keyReuse: "after-finished" } as ChildTaskRequest)).toContain(
      "keyReuse is not for a child task",
    );
  });
});

describe("the gateway's refusal as the attempt's failure", () => {
  const failure = (code: Code, metadata?: Headers) =>
    childSubmitFailure('ctx.submitTask("echo")', new ConnectError("no", code, metadata ?? new Headers()));

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
    expect(failure(Code.Unauthenticated).message).toContain(
      "is WORKER_GATEWAY_API_KEY, or the key in WORKER_GATEWAY_API_KEY_FILE, one the gateway accepts?",
    );
    const plain = new Error("socket hang up");
    expect(childSubmitFailure('ctx.submitTask("echo")', plain)).toBe(plain);
  });
});

describe("a rate-limit wait within the attempt", () => {
  test("keeps the attempt alive as it waits (its heartbeat timeout is held off), and ends with the attempt", async () => {
    let keptAlive = 0;
    const signal = new AbortController().signal;
    const started = performance.now();
    await waitOut(800, { signal, keepAlive: () => (keptAlive += 1) });
    expect(performance.now() - started).toBeGreaterThanOrEqual(790);
    // Every 250 ms and once at the end: a handler with a 500 ms heartbeat timeout outlives an 800 ms wait.
    expect(keptAlive).toBeGreaterThanOrEqual(3);

    const controller = new AbortController();
    const waiting = waitOut(60_000, { signal: controller.signal });
    controller.abort(new Error("cancelled"));
    // The attempt's own failure is its signal's reason (run-task.ts); the wait only has to end.
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" });
  });
});

import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { checkBatchSize, submitEach } from "../src/submit-batch.js";

const ok = (taskId: string) => ({ taskId, deduplicated: false });
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("SubmitTasks: submitEach", () => {
  it("answers one outcome per item in the items' order, whatever order they finish in", async () => {
    // Later items finish first.
    const outcomes = await submitEach([30, 20, 10, 0], async (delay) => {
      for (let i = 0; i < delay; i++) await tick();
      return ok(`t${delay}`);
    });
    expect(outcomes.map((o) => (o.case === "accepted" ? o.value.taskId : o.case))).toEqual(["t30", "t20", "t10", "t0"]);
  });

  it("has at most `concurrency` items in flight", async () => {
    let inFlight = 0;
    let most = 0;
    await submitEach(
      Array.from({ length: 50 }, (_, i) => i),
      async (i) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await tick();
        inFlight--;
        return ok(String(i));
      },
      { concurrency: 8 },
    );
    expect(most).toBe(8);
  });

  it("a refused item is its own outcome, with its code and its place; the others are submitted", async () => {
    const outcomes = await submitEach(["a", "bad", "c"], async (item) => {
      if (item === "bad") throw new ConnectError("type: unknown task type", Code.InvalidArgument);
      return ok(item);
    });
    expect(outcomes).toEqual([
      { case: "accepted", value: ok("a") },
      { case: "error", value: { code: Code.InvalidArgument, message: "tasks[1]: type: unknown task type" } },
      { case: "accepted", value: ok("c") },
    ]);
  });

  it("after an outage no further item is started: those are UNAVAILABLE, not attempted, naming the outage", async () => {
    const started: number[] = [];
    const outcomes = await submitEach(
      [0, 1, 2, 3, 4, 5],
      async (i) => {
        started.push(i);
        if (i === 1) throw new ConnectError("NATS unavailable while queueing the task", Code.Unavailable);
        await tick();
        return ok(String(i));
      },
      { concurrency: 2 },
    );
    // 0 and 1 start together; 1 fails before 0 is done, and no lane starts another item after that.
    expect(started).toEqual([0, 1]);
    expect(outcomes[0]).toEqual({ case: "accepted", value: ok("0") });
    expect(outcomes[1]).toEqual({
      case: "error",
      value: { code: Code.Unavailable, message: "tasks[1]: NATS unavailable while queueing the task" },
    });
    for (const i of [2, 3, 4, 5]) {
      expect(outcomes[i]).toEqual({
        case: "error",
        value: {
          code: Code.Unavailable,
          message: `tasks[${i}]: not attempted: tasks[1] met an outage (NATS unavailable while queueing the task); submit it again`,
        },
      });
    }
  });

  it("once the call's signal aborts (the client left) no further item is started", async () => {
    const call = new AbortController();
    const started: number[] = [];
    const outcomes = await submitEach(
      [0, 1, 2, 3],
      async (i) => {
        started.push(i);
        if (i === 1) call.abort();
        await tick();
        return ok(String(i));
      },
      { concurrency: 2, signal: call.signal },
    );
    expect(started).toEqual([0, 1]);
    expect(outcomes.slice(0, 2).map((o) => o.case)).toEqual(["accepted", "accepted"]);
    expect(outcomes[3]).toEqual({
      case: "error",
      value: { code: Code.Canceled, message: "tasks[3]: not attempted: the call ended before this task was started" },
    });
  });

  it("an unexpected error becomes the item's outcome (UNKNOWN with its message), the batch is still answered", async () => {
    const outcomes = await submitEach(["a", "b"], async (item) => {
      if (item === "a") throw new TypeError("cannot read properties of undefined");
      return ok(item);
    });
    expect(outcomes[0]).toEqual({
      case: "error",
      value: { code: Code.Unknown, message: "tasks[0]: cannot read properties of undefined" },
    });
    expect(outcomes[1]).toEqual({ case: "accepted", value: ok("b") });
  });
});

describe("SubmitTasks: an item waiting for an earlier item's outcome", () => {
  it("a chain longer than the lanes, each item awaiting the one before it, completes in order", async () => {
    const finished: number[] = [];
    const outcomes = await submitEach(
      Array.from({ length: 40 }, (_, i) => i),
      async (i, _index, outcomeOf) => {
        if (i > 0) {
          const before = await outcomeOf(i - 1);
          if (before.case !== "accepted" || before.value.taskId !== `t${i - 1}`) throw new Error("wrong outcome");
        }
        // Later items would finish first if they did not wait.
        for (let n = 0; n < 40 - i; n++) await tick();
        finished.push(i);
        return ok(`t${i}`);
      },
      { concurrency: 4 },
    );
    expect(finished).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(outcomes.every((o) => o.case === "accepted")).toBe(true);
  });

  it("an item's own place or a later one is not awaitable (it would wait for itself or for nothing)", async () => {
    const outcomes = await submitEach([0, 1], async (item, index, outcomeOf) => {
      if (item === 0) await outcomeOf(index + 1);
      return ok(String(item));
    });
    expect(outcomes[0]).toEqual({
      case: "error",
      value: {
        code: Code.Unknown,
        message: "tasks[0]: tasks[1] has not been started: only an earlier task's outcome can be awaited",
      },
    });
  });
});

describe("SubmitTasks: checkBatchSize", () => {
  it("refuses no tasks and more than the maximum, naming the bound", () => {
    expect(() => checkBatchSize(0, 10)).toThrow("tasks: a batch needs at least one task");
    expect(() => checkBatchSize(11, 10)).toThrow(
      "tasks: 11 tasks are more than the 10 one call may carry (GATEWAY_MAX_BATCH_TASKS): split the batch",
    );
    expect(() => checkBatchSize(1, 10)).not.toThrow();
    expect(() => checkBatchSize(10, 10)).not.toThrow();
  });
});

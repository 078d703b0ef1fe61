import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { SubmitTaskRequestSchema } from "@tm/proto";
import { describe, expect, it } from "vitest";
import { withBatchDependencies } from "../src/batch-dependencies.js";
import type { BatchOutcome } from "../src/submit-batch.js";
import { validateSubmission } from "../src/validation.js";

const ID = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const accepted = (n: number): BatchOutcome => ({ case: "accepted", value: { taskId: ID(n), deduplicated: false } });
const refused = (index: number, code: Code, message: string): BatchOutcome => ({
  case: "error",
  value: { code, message: `tasks[${index}]: ${message}` },
});
const request = (fields: MessageInitShape<typeof SubmitTaskRequestSchema>) =>
  create(SubmitTaskRequestSchema, { type: "echo", ...fields });
/** Outcomes of the earlier items by place; asking for another one fails the test. */
const outcomesOf =
  (known: Record<number, BatchOutcome>) =>
  async (earlier: number): Promise<BatchOutcome> => {
    const outcome = known[earlier];
    if (!outcome) throw new Error(`tasks[${earlier}] was not expected to be awaited`);
    return outcome;
  };
const refusal = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return { code: (error as ConnectError).code, message: (error as ConnectError).rawMessage };
};

describe("depends_on_batch_items", () => {
  it("adds the earlier items' ids after depends_on's, in the order named, and empties the field", async () => {
    const resolved = await withBatchDependencies(
      request({ dependsOn: [ID(9)], dependsOnBatchItems: [2, 0] }),
      3,
      outcomesOf({ 0: accepted(100), 2: accepted(102) }),
    );
    expect(resolved.dependsOn).toEqual([ID(9), ID(102), ID(100)]);
    expect(resolved.dependsOnBatchItems).toEqual([]);
  });

  it("leaves a request without them as it is, awaiting nothing", async () => {
    const plain = request({ dependsOn: [ID(1)] });
    expect(await withBatchDependencies(plain, 5, outcomesOf({}))).toBe(plain);
  });

  it("refuses its own place, a later one, one named twice, and more than 20 with depends_on, naming the field", async () => {
    const none = outcomesOf({ 0: accepted(0), 1: accepted(1) });
    expect(await refusal(withBatchDependencies(request({ dependsOnBatchItems: [0, 2] }), 2, none))).toEqual({
      code: Code.InvalidArgument,
      message:
        "depends_on_batch_items[1]: tasks[2] does not come before this task (tasks[2]): a task can wait only for earlier tasks of its call",
    });
    expect(await refusal(withBatchDependencies(request({ dependsOnBatchItems: [7] }), 2, none))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringContaining("depends_on_batch_items[0]: tasks[7] does not come before this task (tasks[2])"),
    });
    expect(await refusal(withBatchDependencies(request({ dependsOnBatchItems: [1, 0, 1] }), 2, none))).toEqual({
      code: Code.InvalidArgument,
      message: "depends_on_batch_items[2]: tasks[1] is named twice",
    });
    const twenty = Array.from({ length: 20 }, (_, i) => ID(i));
    expect(
      await refusal(withBatchDependencies(request({ dependsOn: twenty, dependsOnBatchItems: [0] }), 2, none)),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "depends_on_batch_items: with depends_on, 21 tasks exceeds the limit of 20",
    });
  });

  it("an item resolving to a task depends_on names too (a deduplicated submission) is named twice", async () => {
    expect(
      await refusal(
        withBatchDependencies(
          request({ dependsOn: [ID(5)], dependsOnBatchItems: [0] }),
          1,
          outcomesOf({ 0: accepted(5) }),
        ),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: `depends_on_batch_items[0]: tasks[0] is task ${ID(5)}, which depends_on names too`,
    });
  });

  it("a refused item refuses the task: FAILED_PRECONDITION naming it and why, or not attempted with its code", async () => {
    const known = outcomesOf({
      0: refused(0, Code.InvalidArgument, 'type: unknown task type "nope"'),
      1: refused(1, Code.Unavailable, "Redis did not answer"),
      2: refused(2, Code.Canceled, "not attempted: the call ended before this task was started"),
    });
    expect(await refusal(withBatchDependencies(request({ dependsOnBatchItems: [0] }), 3, known))).toEqual({
      code: Code.FailedPrecondition,
      message:
        'depends_on_batch_items[0]: tasks[0] was refused (type: unknown task type "nope"), so this task could never run',
    });
    expect(await refusal(withBatchDependencies(request({ dependsOnBatchItems: [1] }), 3, known))).toEqual({
      code: Code.Unavailable,
      message:
        "not attempted: depends_on_batch_items[0]: tasks[1] was not accepted (Redis did not answer); submit both again",
    });
    expect(await refusal(withBatchDependencies(request({ dependsOnBatchItems: [2] }), 3, known))).toMatchObject({
      code: Code.Canceled,
    });
  });

  it("SubmitTask (no batch) refuses the field", () => {
    expect(() => validateSubmission(request({ dependsOnBatchItems: [0] }), 1024)).toThrow(
      "depends_on_batch_items: names tasks of the same SubmitTasks call: SubmitTask takes depends_on",
    );
  });
});

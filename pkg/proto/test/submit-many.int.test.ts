/**
 * TaskManagerClient.submitMany over real HTTP/2 against a grpc-js server whose SubmitTasks is scripted per task (a
 * gateway that could not take some tasks of a call, or fails a call whole): only the tasks answered UNAVAILABLE are
 * sent again, under the keys they were first sent with; retries spent leave them rejected; a call that fails whole
 * after tasks were taken reports those tasks rather than throwing. (The whole pipeline: test/task-manager-client.)
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { startGrpcServer } from "@tm/testkit";
import { afterEach, expect, test } from "vitest";
import {
  type SubmitTaskOutcomeSchema,
  type SubmitTaskRequest,
  TaskService,
} from "../src/gen/taskmanager/v1/taskmanager_pb.js";
import { addService } from "../src/grpc-adapter.js";
import { type SubmittedTask, TaskManagerClient } from "../src/task-manager-client.js";

const servers: grpc.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.forceShutdown();
});

type Outcome = MessageInitShape<typeof SubmitTaskOutcomeSchema>;

/** Serves TaskService with `submitTasks` as given (each call's tasks recorded); every other method unimplemented. */
async function gateway(
  submitTasks: (tasks: SubmitTaskRequest[], call: number) => Outcome[],
): Promise<{ url: string; calls: SubmitTaskRequest[][] }> {
  const calls: SubmitTaskRequest[][] = [];
  const handlers: Record<string, (request: never) => Promise<unknown>> = Object.fromEntries(
    TaskService.methods.map((method) => [
      method.localName,
      async () => {
        throw new ConnectError(`${method.name} is not served here`, Code.Unimplemented);
      },
    ]),
  );
  handlers.submitTasks = async ({ tasks }: { tasks: SubmitTaskRequest[] }) => {
    calls.push(tasks);
    return { outcomes: submitTasks(tasks, calls.length) };
  };
  const { server, url } = await startGrpcServer((s) => addService(s, TaskService, handlers as never));
  servers.push(server);
  return { url, calls };
}

const accepted = (task: SubmitTaskRequest): Outcome => ({
  outcome: { case: "accepted", value: { taskId: `id-${task.idempotencyKey}` } },
});
const refused = (code: Code, message: string): Outcome => ({ outcome: { case: "error", value: { code, message } } });
const fulfilled = (outcome: PromiseSettledResult<SubmittedTask>) =>
  (outcome as PromiseFulfilledResult<SubmittedTask>).value.taskId;

test("only the tasks the gateway could not take are sent again, under the keys they were first sent with", async () => {
  const { url, calls } = await gateway((tasks, call) =>
    tasks.map((task) =>
      task.type === "busy" && call === 1 ? refused(Code.Unavailable, "Redis unavailable while saving") : accepted(task),
    ),
  );
  const tm = new TaskManagerClient({ baseUrl: url });
  const retried: number[] = [];
  const outcomes = await tm.submitMany(
    [{ type: "echo" }, { type: "busy" }, { type: "echo", idempotencyKey: "mine" }, { type: "bad" }],
    { onRetry: ({ attempt }) => retried.push(attempt) },
  );
  expect(calls.map((tasks) => tasks.map((task) => task.type))).toEqual([["echo", "busy", "echo", "bad"], ["busy"]]);
  // The retry carries the key the first call made up for it; the caller's own key is sent as given.
  expect(calls[1]?.[0]?.idempotencyKey).toBe(calls[0]?.[1]?.idempotencyKey);
  expect(calls[0]?.[1]?.idempotencyKey).toMatch(/^client-[0-9a-f-]{36}$/);
  expect(calls[0]?.[2]?.idempotencyKey).toBe("mine");
  expect(retried).toEqual([2]);
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
  expect(fulfilled(outcomes[1]!)).toBe(`id-${calls[0]?.[1]?.idempotencyKey}`);
  expect(fulfilled(outcomes[2]!)).toBe("id-mine");
});

test("a refusal is its task's outcome; retries spent leave UNAVAILABLE ones rejected", async () => {
  const { url, calls } = await gateway((tasks) =>
    tasks.map((task) =>
      task.type === "nope"
        ? refused(Code.InvalidArgument, 'unknown task type "nope"')
        : task.type === "down"
          ? refused(Code.Unavailable, "still down")
          : accepted(task),
    ),
  );
  const tm = new TaskManagerClient({ baseUrl: url, retries: 2 });
  const outcomes = await tm.submitMany([{ type: "nope" }, { type: "echo" }, { type: "down" }]);
  expect(calls.map((tasks) => tasks.length)).toEqual([3, 1, 1]);
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "fulfilled", "rejected"]);
  expect((outcomes[0] as PromiseRejectedResult).reason).toMatchObject({ code: Code.InvalidArgument });
  expect((outcomes[2] as PromiseRejectedResult).reason).toMatchObject({
    code: Code.Unavailable,
    rawMessage: "still down",
  });
});

test("a call failing whole throws while nothing was taken, and is the outcome of the tasks left once some were", async () => {
  const { url } = await gateway((tasks, call) => {
    if (call === 2) throw new ConnectError("too many tasks in one call", Code.InvalidArgument);
    return tasks.map(accepted);
  });
  const tm = new TaskManagerClient({ baseUrl: url });
  // batchSize 2: the first call takes two tasks, the second call fails whole.
  const outcomes = await tm.submitMany([{ type: "a" }, { type: "b" }, { type: "c" }], { batchSize: 2 });
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
  expect((outcomes[2] as PromiseRejectedResult).reason).toMatchObject({ code: Code.InvalidArgument });

  const { url: refusing } = await gateway(() => {
    throw new ConnectError("not authenticated", Code.Unauthenticated);
  });
  await expect(new TaskManagerClient({ baseUrl: refusing }).submitMany([{ type: "a" }])).rejects.toMatchObject({
    code: Code.Unauthenticated,
  });
});

test("dependsOnBatchItems: in the same call by the call's places, in an earlier call by the id it was given", async () => {
  const { url, calls } = await gateway((tasks) => tasks.map(accepted));
  const tm = new TaskManagerClient({ baseUrl: url });
  // Calls of two: [0, 1] and [2, 3]; 1 waits for 0 (same call), 2 for 0 and 1 (the call before), 3 for 2 (same call)
  // and for an id of its own.
  const outcomes = await tm.submitMany(
    [
      { type: "a" },
      { type: "b", dependsOnBatchItems: [0] },
      { type: "c", dependsOnBatchItems: [0, 1, 1] },
      { type: "d", dependsOn: ["elsewhere"], dependsOnBatchItems: [2] },
    ],
    { batchSize: 2 },
  );
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
  expect(calls.map((tasks) => tasks.map((task) => [task.type, task.dependsOnBatchItems, task.dependsOn]))).toEqual([
    [
      ["a", [], []],
      ["b", [0], []],
    ],
    [
      ["c", [], [fulfilled(outcomes[0]!), fulfilled(outcomes[1]!)]],
      ["d", [0], ["elsewhere"]],
    ],
  ]);
});

test("dependsOnBatchItems across a resend: a dependency taken by the first call is named by id, one sent again by its new place", async () => {
  const { url, calls } = await gateway((tasks, call) =>
    tasks.map((task) =>
      (task.type === "busy" || task.type === "after-busy") && call === 1
        ? refused(Code.Unavailable, "Redis unavailable while saving")
        : accepted(task),
    ),
  );
  const tm = new TaskManagerClient({ baseUrl: url });
  const outcomes = await tm.submitMany([
    { type: "first" },
    { type: "busy" },
    { type: "after-busy", dependsOnBatchItems: [0, 1] },
  ]);
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
  expect(calls[0]?.map((task) => task.dependsOnBatchItems)).toEqual([[], [], [0, 1]]);
  // Sent again: "busy" is now the call's place 0, and "first" (taken) is named by its id.
  expect(calls[1]?.map((task) => [task.type, task.dependsOnBatchItems, task.dependsOn])).toEqual([
    ["busy", [], []],
    ["after-busy", [0], [fulfilled(outcomes[0]!)]],
  ]);
});

test("dependsOnBatchItems: a task whose dependency was refused is refused too, naming it, and is not sent", async () => {
  const { url, calls } = await gateway((tasks) =>
    tasks.map((task) =>
      task.type === "bad" ? refused(Code.InvalidArgument, "type: unknown task type bad") : accepted(task),
    ),
  );
  const tm = new TaskManagerClient({ baseUrl: url });
  const outcomes = await tm.submitMany([{ type: "bad" }, { type: "then", dependsOnBatchItems: [0] }, { type: "ok" }], {
    batchSize: 1,
  });
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected", "fulfilled"]);
  const refusal = (outcomes[1] as PromiseRejectedResult).reason as ConnectError;
  expect(refusal.code).toBe(Code.FailedPrecondition);
  expect(refusal.rawMessage).toBe("dependency requests[0] was refused: type: unknown task type bad");
  expect(calls.map((tasks) => tasks.map((task) => task.type))).toEqual([["bad"], ["ok"]]);
});

test("dependsOnBatchItems naming the task itself, a later task or no place at all is a TypeError before anything is sent", async () => {
  const { url, calls } = await gateway((tasks) => tasks.map(accepted));
  const tm = new TaskManagerClient({ baseUrl: url });
  for (const dependsOnBatchItems of [[1], [2], [-1], [0.5]]) {
    await expect(tm.submitMany([{ type: "a" }, { type: "b", dependsOnBatchItems }])).rejects.toThrow(
      new TypeError(
        `invalid task request: requests[1]: dependsOnBatchItems may name only earlier tasks of the list, 0 to 0 (got ${dependsOnBatchItems[0]})`,
      ),
    );
  }
  await expect(tm.submitMany([{ type: "a", dependsOnBatchItems: [0] }])).rejects.toThrow(
    "requests[0]: dependsOnBatchItems may name only earlier tasks of the list, and it is the first (got 0)",
  );
  await expect(tm.submit({ type: "a", dependsOnBatchItems: [0] } as never)).rejects.toThrow(
    "dependsOnBatchItems names places in a submitMany list: use dependsOn",
  );
  await expect(tm.submitMany([{ type: "a", dependsOnBatchItems: "0" as never }])).rejects.toThrow(
    "requests[0]: dependsOnBatchItems must be a list of earlier places",
  );
  expect(calls).toEqual([]);
});

/**
 * GATEWAY_TASK_ISOLATION=caller against a real nats-server and redis-server, with API-key callers: each application
 * sees only its own tasks (another's is NOT_FOUND, as an unknown id is), its idempotency, concurrency and fairness
 * keys are its own, and an operator sees every task. Without isolation a task id is enough, as before.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createAdminClient, createTaskClient, TaskState } from "@tm/proto";
import { useInfra } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { startGateway, useGateway } from "./helpers.js";

const KEYS = {
  shop: "shop-key-0123456789abcdef",
  billing: "billing-key-0123456789abcd",
  ops: "ops-key-0123456789abcdefgh",
  /** The workers' key: their child tasks (ctx.submitTask) are their parent's submitter's (GATEWAY_CHILD_SUBMITTERS). */
  workers: "workers-key-0123456789abcd",
};
const infra = useInfra();

const env = (isolation: string) => ({
  GATEWAY_AUTH_MODE: "api-key",
  GATEWAY_API_KEYS: Object.entries(KEYS)
    .map(([caller, key]) => `${caller}:${key}`)
    .join(","),
  GATEWAY_ADMIN_CALLERS: "ops",
  GATEWAY_CHILD_SUBMITTERS: "workers",
  GATEWAY_RATE_LIMIT_PER_SEC: "0",
  GATEWAY_TASK_ISOLATION: isolation,
});

async function failure(call: Promise<unknown>): Promise<{ code: Code | "ok"; message: string }> {
  try {
    await call;
    return { code: "ok", message: "" };
  } catch (error) {
    const connectError = ConnectError.from(error);
    return { code: connectError.code, message: connectError.rawMessage };
  }
}

async function firstStatus(stream: AsyncIterable<{ status?: { state: TaskState } | undefined }>) {
  for await (const message of stream) return message.status?.state;
  return undefined;
}

describe("GATEWAY_TASK_ISOLATION=caller", () => {
  // A window of one (for the fairness case): the other cases submit no task with a fairness key.
  const g = useGateway(infra, { ...env("caller"), GATEWAY_FAIRNESS_WINDOW: "1" });
  const as = (caller: keyof typeof KEYS) => createTaskClient({ baseUrl: g.gateway.baseUrl, apiKey: KEYS[caller] });

  test("another caller's task is NOT_FOUND on GetTask, StreamTaskStatus, CancelTask, PromoteTask and GetTaskLogs, as an unknown id is", async () => {
    const { taskId } = await as("shop").submitTask({ type: "echo", payload: { order: 1 } });
    const unknown = crypto.randomUUID();
    const notFound = (id: string) => ({ code: Code.NotFound, message: `task ${id} not found` });

    expect(await failure(as("billing").getTask({ taskId }))).toEqual(notFound(taskId));
    expect(await failure(as("billing").getTask({ taskId: unknown }))).toEqual(notFound(unknown));
    expect(await failure(firstStatus(as("billing").streamTaskStatus({ taskId })))).toEqual(notFound(taskId));
    expect(await failure(as("billing").cancelTask({ taskId, reason: "not mine" }))).toEqual(notFound(taskId));
    expect(await failure(as("billing").promoteTask({ taskId }))).toEqual(notFound(taskId));
    expect(await failure(as("billing").getTaskLogs({ taskId }))).toEqual(notFound(taskId));

    // Its own caller, and an operator, see it; the refused cancel changed nothing.
    const { task } = await as("shop").getTask({ taskId });
    expect(task?.metadata).toMatchObject({ submitted_by: "shop" });
    expect(task?.status?.state).not.toBe(TaskState.CANCELLED);
    expect(await firstStatus(as("shop").streamTaskStatus({ taskId }))).toBeDefined();
    expect((await as("ops").getTask({ taskId })).task?.taskId).toBe(taskId);
    expect((await as("shop").getTaskLogs({ taskId })).lines).toEqual([]);
  });

  test("an operator may cancel any caller's task", async () => {
    const { taskId } = await as("shop").submitTask({ type: "sleep", payload: { ms: 60_000 } });
    const { status } = await as("ops").cancelTask({ taskId, reason: "runaway" });
    expect(status?.state).toBe(TaskState.CANCELLED);
  });

  test("idempotency keys are per caller: the same key from two callers makes two tasks", async () => {
    const key = `order-${crypto.randomUUID()}`;
    const shop = await as("shop").submitTask({ type: "echo", idempotencyKey: key });
    const billing = await as("billing").submitTask({ type: "echo", idempotencyKey: key });
    expect(billing.taskId).not.toBe(shop.taskId);
    expect([shop.deduplicated, billing.deduplicated]).toEqual([false, false]);
    expect(await as("shop").submitTask({ type: "echo", idempotencyKey: key })).toMatchObject({
      taskId: shop.taskId,
      deduplicated: true,
    });
    // The combined call follows the caller's own task too.
    const messages = as("billing").submitTaskAndStreamStatus({ type: "echo", idempotencyKey: key });
    for await (const message of messages) {
      expect(message).toMatchObject({ taskId: billing.taskId, deduplicated: true });
      break;
    }
  });

  test("concurrency keys are per application: the same key from two callers is two limits; a child counts as its parent's submitter's", async () => {
    const limited = { type: "sleep", payload: { ms: 60_000 }, concurrencyKey: "tenant-1", concurrencyLimit: 1 };
    const waits = async (caller: keyof typeof KEYS, taskId: string) =>
      (await as(caller).getTask({ taskId })).task?.concurrencyWaiting;
    const shop = await as("shop").submitTask(limited);
    const billing = await as("billing").submitTask(limited);
    expect([await waits("shop", shop.taskId), await waits("billing", billing.taskId)]).toEqual([false, false]);
    // The key as the caller named it, whatever it counts under.
    expect((await as("shop").getTask({ taskId: shop.taskId })).task?.concurrencyKey).toBe("tenant-1");
    const second = await as("shop").submitTask(limited);
    expect(await waits("shop", second.taskId)).toBe(true);
    // A worker's child of a shop task counts under the shop's keys, so it waits behind the shop's first task.
    const { taskId: parent } = await as("shop").submitTask({ type: "echo" });
    const child = await as("workers").submitTask({ ...limited, parentTaskId: parent });
    expect(await waits("shop", child.taskId)).toBe(true);
    // An operator names whose key to read; each application's is its own.
    const ops = createAdminClient({ baseUrl: g.gateway.baseUrl, apiKey: KEYS.ops });
    expect(await ops.getConcurrencyKey({ key: "tenant-1", owner: "shop" })).toMatchObject({
      running: [shop.taskId],
      waiting: [second.taskId, child.taskId],
      nextLimit: 1,
    });
    expect(await ops.getConcurrencyKey({ key: "tenant-1", owner: "billing" })).toMatchObject({
      running: [billing.taskId],
      waitingTotal: 0,
    });
    expect(await failure(ops.getConcurrencyKey({ key: "tenant-1" }))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^owner: is required with GATEWAY_TASK_ISOLATION=caller/),
    });
    for (const [caller, taskId] of [
      ["shop", shop.taskId],
      ["billing", billing.taskId],
      ["shop", second.taskId],
      ["shop", child.taskId],
    ] as const) {
      await as(caller).cancelTask({ taskId });
    }
  });

  test("fairness keys are per application: the same key from two callers is two turns in the type's one window", async () => {
    const shared = { type: "sleep", payload: { ms: 60_000 }, fairnessKey: "tenant-1" };
    const first = await as("shop").submitTask(shared);
    const shop = await as("shop").submitTask(shared);
    const billing = await as("billing").submitTask(shared);
    expect((await as("billing").getTask({ taskId: billing.taskId })).task).toMatchObject({
      fairnessKey: "tenant-1",
      fairnessWaiting: true,
    });
    const ops = createAdminClient({ baseUrl: g.gateway.baseUrl, apiKey: KEYS.ops });
    const view = await ops.getFairnessQueue({ taskType: "sleep" });
    expect(view.running).toEqual([first.taskId]);
    // Two keys, each application's; billing's turn first (the shop has had the window's place).
    expect(view.keys.map((k) => [k.key, k.waitingTotal])).toEqual([
      ["caller:billing:tenant-1", 1],
      ["caller:shop:tenant-1", 1],
    ]);
    for (const [caller, taskId] of [
      ["shop", first.taskId],
      ["shop", shop.taskId],
      ["billing", billing.taskId],
    ] as const) {
      await as(caller).cancelTask({ taskId });
    }
  });

  test("a worker's child task is its parent's submitter's: that application sees it, another does not", async () => {
    const { taskId: parent } = await as("shop").submitTask({ type: "echo" });
    const { taskId: other } = await as("shop").submitTask({ type: "sleep", payload: { ms: 60_000 } });
    // A child may wait for its application's tasks (here a sibling the shop submitted), seen as the shop sees them.
    const { taskId: child } = await as("workers").submitTask({
      type: "echo",
      parentTaskId: parent,
      dependsOn: [other],
    });
    const { task } = await as("shop").getTask({ taskId: child });
    expect(task).toMatchObject({ parentTaskId: parent, dependsOn: [other] });
    expect(task?.metadata).toMatchObject({ submitted_by: "shop", submitted_via: "workers" });
    expect(await failure(as("billing").getTask({ taskId: child }))).toEqual({
      code: Code.NotFound,
      message: `task ${child} not found`,
    });
    // A parent that does not exist leaves no owner to give the child: refused, naming the field.
    const unknown = crypto.randomUUID();
    expect(await failure(as("workers").submitTask({ type: "echo", parentTaskId: unknown }))).toEqual({
      code: Code.NotFound,
      message: `parent_task_id: task ${unknown} not found`,
    });
    // Another caller's children are its own, whatever parent they name, and a client cannot claim to be a worker.
    const { taskId: billed } = await as("billing").submitTask({
      type: "echo",
      parentTaskId: parent,
      metadata: { submitted_by: "shop", submitted_via: "workers" },
    });
    expect((await as("billing").getTask({ taskId: billed })).task?.metadata).toEqual({ submitted_by: "billing" });
    expect(await failure(as("shop").getTask({ taskId: billed }))).toMatchObject({ code: Code.NotFound });
    // Cancelling the parent with its children reaches the shop's own (the workers' child), not billing's.
    const cascade = await as("shop").cancelTask({ taskId: parent, includeChildren: true });
    expect(cascade.childrenCancelled).toBe(1);
    expect((await as("shop").getTask({ taskId: child })).task?.status?.state).toBe(TaskState.CANCELLED);
    expect((await as("billing").getTask({ taskId: billed })).task?.status?.state).not.toBe(TaskState.CANCELLED);
    await as("shop").cancelTask({ taskId: other });
  });
});

test("without isolation (the default), a task id is enough: another caller reads the task", async () => {
  const gateway = await startGateway(infra, env("none"));
  try {
    const shop = createTaskClient({ baseUrl: gateway.baseUrl, apiKey: KEYS.shop });
    const billing = createTaskClient({ baseUrl: gateway.baseUrl, apiKey: KEYS.billing });
    const { taskId } = await shop.submitTask({ type: "echo" });
    expect((await billing.getTask({ taskId })).task?.taskId).toBe(taskId);
    // A concurrency key is then one limit for everybody who names it.
    const limited = { type: "sleep", payload: { ms: 60_000 }, concurrencyKey: `k-${taskId}`, concurrencyLimit: 1 };
    const first = await shop.submitTask(limited);
    const other = await billing.submitTask(limited);
    expect((await billing.getTask({ taskId: other.taskId })).task?.concurrencyWaiting).toBe(true);
    for (const id of [first.taskId, other.taskId]) await shop.cancelTask({ taskId: id });
  } finally {
    await gateway.stop();
  }
});

test("GATEWAY_TASK_ISOLATION=caller without authentication stops the start, naming both variables", async () => {
  await expect(startGateway(infra, { GATEWAY_TASK_ISOLATION: "caller" })).rejects.toThrow(
    "GATEWAY_TASK_ISOLATION=caller needs callers to tell apart: set GATEWAY_AUTH_MODE to api-key or jwt",
  );
});

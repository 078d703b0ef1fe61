/**
 * Concurrency keys at the gateway, against a real nats-server and redis-server (no stages run, so the tasks stay where
 * the gateway left them): a task within its key's limit is queued on tasks.ingest, one over it is not; SubmitTasks
 * applies the limit task by task; a cancel of the task holding the place releases the oldest waiting one, which the
 * gateway's releaser queues; RequeueTasks refuses a waiting task; GetConcurrencyKey lists both sets and refuses a bad
 * key or owner, naming the field.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Subjects } from "@tm/flow";
import { RequeueResult, TaskState } from "@tm/proto";
import { applyStatus } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { event, streamMessagesOf, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);
const queued = async (taskId: string) =>
  (await streamMessagesOf(clients.nc, "TASKS", Subjects.ingest, taskId)).length > 0;

describe("concurrency keys", () => {
  const g = useGateway(infra, { GATEWAY_DELAYED_POLL_MS: "100" });

  /** tm_tasks_waiting{reason="concurrency"} on the gateway's /metrics. */
  async function waitingGauge(): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("tm_tasks_waiting{") && l.includes('reason="concurrency"'));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
  }

  test("over the limit a task waits unqueued; a cancel of one holding a place queues the oldest waiting", async () => {
    const key = `tenant-${crypto.randomUUID()}`;
    const limited = { type: "sleep", payload: { ms: 60_000 }, concurrencyKey: key, concurrencyLimit: 2 };
    const first = await g.client.submitTask(limited);
    const second = await g.client.submitTask(limited);
    // A batch is admitted task by task: its first waits behind the two, its second behind that one.
    const { outcomes } = await g.client.submitTasks({ tasks: [limited, limited] });
    const [third, fourth] = outcomes.map((o) => (o.outcome.case === "accepted" ? o.outcome.value.taskId : ""));
    expect(third && fourth).toBeTruthy();

    await waitFor("the admitted tasks queued", async () => (await queued(first.taskId)) && queued(second.taskId));
    expect(await queued(third!)).toBe(false);
    const view = await g.admin.getConcurrencyKey({ key });
    expect(view).toMatchObject({ runningTotal: 2, waiting: [third, fourth], waitingTotal: 2, nextLimit: 2 });
    expect([...view.running].sort()).toEqual([first.taskId, second.taskId].sort());
    expect((await g.admin.getQueueStats({})).concurrencyWaitingTasks).toBe(2n);
    expect(await waitingGauge()).toBe(2);
    const waiting = (await g.client.getTask({ taskId: third! })).task;
    expect(waiting).toMatchObject({ concurrencyKey: key, concurrencyLimit: 2, concurrencyWaiting: true });
    expect(waiting?.status?.state).toBe(TaskState.PENDING);

    // Waiting for its key is waiting by design: RequeueTasks refuses it, as it does a delayed task before its time.
    const { outcomes: requeued } = await g.admin.requeueTasks({ taskIds: [third!], stalledForSeconds: 0 });
    expect(requeued[0]).toMatchObject({
      result: RequeueResult.FAILED_PRECONDITION,
      reason: `it waits for a place under its concurrency key ${key}: the gateway queues it when one frees (cancel it instead to drop it)`,
    });
    expect(await queued(third!)).toBe(false);

    // Cancelling a waiting task takes it out of the line without freeing a place.
    await g.client.cancelTask({ taskId: fourth!, reason: "not needed" });
    expect(await g.admin.getConcurrencyKey({ key })).toMatchObject({ runningTotal: 2, waiting: [third] });
    // Cancelling one in the pipeline frees its place: the oldest waiting task is queued.
    await g.client.cancelTask({ taskId: first.taskId });
    await waitFor("the waiting task queued", () => queued(third!));
    expect(await g.admin.getConcurrencyKey({ key })).toMatchObject({ runningTotal: 2, waitingTotal: 0, nextLimit: 0 });
    expect((await g.client.getTask({ taskId: third! })).task?.concurrencyWaiting).toBe(false);
    expect(await queued(fourth!)).toBe(false);
    for (const taskId of [second.taskId, third!]) await g.client.cancelTask({ taskId });
    expect(await g.admin.getConcurrencyKey({ key })).toMatchObject({ runningTotal: 0, waitingTotal: 0 });
    expect((await g.admin.getQueueStats({})).concurrencyWaitingTasks).toBe(0n);
    expect(await waitingGauge()).toBe(0);
  });

  test("GetConcurrencyKey names what is wrong with its request", async () => {
    const refusal = async (request: { key?: string; owner?: string }) => {
      const error = await g.admin.getConcurrencyKey(request).catch((e: unknown) => ConnectError.from(e));
      if (!(error instanceof ConnectError)) throw new Error("answered");
      return { code: error.code, message: error.rawMessage };
    };
    expect(await refusal({})).toEqual({
      code: Code.InvalidArgument,
      message: "key: is required: the concurrency key its tasks were submitted with",
    });
    expect((await refusal({ key: "two words" })).message).toMatch(/^key: must be 1 to 128 letters/);
    expect(await refusal({ key: "k", owner: "shop" })).toEqual({
      code: Code.InvalidArgument,
      message: "owner: applies only with GATEWAY_TASK_ISOLATION=caller: here every caller shares each key",
    });
    expect(await g.admin.getConcurrencyKey({ key: "never-used" })).toMatchObject({
      running: [],
      runningTotal: 0,
      waiting: [],
      waitingTotal: 0,
    });
  });
});

describe("the releaser woken by the status script, not its poll", () => {
  // A poll of ten minutes: a task queued within the test was queued by a wake-up on tasks_delayed_due.
  const g = useGateway(infra, { GATEWAY_DELAYED_POLL_MS: "600000" });

  test("a freed place and a met dependency queue their waiting tasks at once", async () => {
    const key = `woken-${crypto.randomUUID()}`;
    const limited = { type: "sleep", payload: { ms: 60_000 }, concurrencyKey: key, concurrencyLimit: 1 };
    const holder = await g.client.submitTask(limited);
    const next = await g.client.submitTask(limited);
    await waitFor("the holder queued", () => queued(holder.taskId));
    await g.client.cancelTask({ taskId: holder.taskId });
    await waitFor("the next queued", () => queued(next.taskId), { timeoutMs: 10_000 });

    const dependency = await g.client.submitTask({ type: "echo", payload: {} });
    const dependent = await g.client.submitTask({ type: "echo", payload: {}, dependsOn: [dependency.taskId] });
    expect(await queued(dependent.taskId)).toBe(false);
    // The notifier's part, played here: the dependency SUCCEEDED.
    await applyStatus(clients.redis, event({ taskId: dependency.taskId, state: "SUCCEEDED", generation: 0 }));
    await waitFor("the dependent queued", () => queued(dependent.taskId), { timeoutMs: 10_000 });
    await g.client.cancelTask({ taskId: next.taskId });
  });
});

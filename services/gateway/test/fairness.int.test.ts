/**
 * Fairness keys at the gateway, against a real nats-server and redis-server (no stages run, so the tasks stay where
 * the gateway left them): a type's window queues its first tasks on tasks.ingest and holds the rest; each end lets in
 * the task whose key's turn it is (a newcomer before the backlog's next), which the releaser queues at once, woken
 * by the status script; GetTask, GetQueueStats, tm_tasks_waiting and GetFairnessQueue show it; RequeueTasks refuses a
 * waiting task; bad fields are refused, named; a type's own window (GATEWAY_FAIRNESS_WINDOWS) applies to it alone, and
 * one for an unknown type stops the start.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Subjects } from "@tm/flow";
import { RequeueResult, TaskState } from "@tm/proto";
import { useInfra, waitFor } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { startGateway, streamMessagesOf, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);
const queued = async (taskId: string) =>
  (await streamMessagesOf(clients.nc, "TASKS", Subjects.ingest, taskId)).length > 0;

describe("fairness keys", () => {
  // A poll of ten minutes: a task queued within the test was queued by a wake-up on tasks_delayed_due.
  const g = useGateway(infra, { GATEWAY_FAIRNESS_WINDOW: "2", GATEWAY_DELAYED_POLL_MS: "600000" });

  /** tm_tasks_waiting{reason="fairness"} on the gateway's /metrics. */
  async function waitingGauge(): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("tm_tasks_waiting{") && l.includes('reason="fairness"'));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
  }

  test("the window holds a backlog in Redis; each end lets in the key whose turn it is, at once", async () => {
    const tenantA = `a-${crypto.randomUUID()}`;
    const tenantB = `b-${crypto.randomUUID()}`;
    const task = (key: string) => ({ type: "sleep", payload: { ms: 60_000 }, fairnessKey: key });
    const a1 = (await g.client.submitTask(task(tenantA))).taskId;
    const a2 = (await g.client.submitTask(task(tenantA))).taskId;
    // A batch's tasks wait in the order they came.
    const { outcomes } = await g.client.submitTasks({ tasks: [task(tenantA), task(tenantA)] });
    const [a3, a4] = outcomes.map((o) => (o.outcome.case === "accepted" ? o.outcome.value.taskId : ""));
    const b1 = (await g.client.submitTask({ ...task(tenantB), fairnessWeight: 1 })).taskId;
    expect(a3 && a4).toBeTruthy();

    await waitFor("the window's tasks queued", async () => (await queued(a1)) && queued(a2));
    expect(await queued(a3!)).toBe(false);
    expect(await queued(b1)).toBe(false);
    const view = await g.admin.getFairnessQueue({ taskType: "sleep" });
    expect(view).toMatchObject({ window: 2, runningTotal: 2, keysTotal: 2 });
    expect([...view.running].sort()).toEqual([a1, a2].sort());
    // B has had nothing yet: its turn comes first.
    expect(view.keys.map((k) => [k.key, k.waitingTotal, k.nextWeight])).toEqual([
      [tenantB, 1, 1],
      [tenantA, 2, 1],
    ]);
    const stats = await g.admin.getQueueStats({});
    expect(stats.fairnessWaitingTasks).toBe(3n);
    // Where to look: the type's window, at a glance.
    expect(
      stats.fairnessQueues.map(({ taskType, window, runningTotal, keysTotal }) => [
        taskType,
        window,
        runningTotal,
        keysTotal,
      ]),
    ).toEqual([["sleep", 2, 2, 2]]);
    expect(await waitingGauge()).toBe(3);
    const waiting = (await g.client.getTask({ taskId: b1 })).task;
    expect(waiting).toMatchObject({ fairnessKey: tenantB, fairnessWeight: 1, fairnessWaiting: true });
    expect(waiting?.status?.state).toBe(TaskState.PENDING);
    expect((await g.client.getTask({ taskId: a1 })).task).toMatchObject({
      fairnessKey: tenantA,
      fairnessWaiting: false,
    });

    const { outcomes: requeued } = await g.admin.requeueTasks({ taskIds: [b1], stalledForSeconds: 0 });
    expect(requeued[0]).toMatchObject({
      result: RequeueResult.FAILED_PRECONDITION,
      reason: `it waits for its fairness key ${tenantB}'s turn in the sleep window: the gateway queues it then (cancel it instead to drop it)`,
    });

    // Each end lets in one, whose turn it is: B's task before A's third, though A's came first.
    await g.client.cancelTask({ taskId: a1 });
    await waitFor("B's task queued", () => queued(b1), { timeoutMs: 10_000 });
    expect(await queued(a3!)).toBe(false);
    await g.client.cancelTask({ taskId: a2 });
    await waitFor("A's third queued", () => queued(a3!), { timeoutMs: 10_000 });
    expect(await queued(a4!)).toBe(false);
    // A task cancelled while it waits leaves the line.
    await g.client.cancelTask({ taskId: a4! });
    expect(await g.admin.getFairnessQueue({ taskType: "sleep" })).toMatchObject({ runningTotal: 2, keysTotal: 0 });
    expect((await g.admin.getQueueStats({})).fairnessWaitingTasks).toBe(0n);
    expect(await waitingGauge()).toBe(0);
    for (const taskId of [b1, a3!]) await g.client.cancelTask({ taskId });
    expect(await g.admin.getFairnessQueue({ taskType: "sleep" })).toMatchObject({ runningTotal: 0 });
    // A type whose window is empty with no key waiting is left out.
    expect((await g.admin.getQueueStats({})).fairnessQueues).toEqual([]);
  });

  test("bad fairness fields and a bad GetFairnessQueue request are refused, the field named", async () => {
    const refusal = async (call: Promise<unknown>) => {
      const error = await call.catch((e: unknown) => ConnectError.from(e));
      if (!(error instanceof ConnectError)) throw new Error("answered");
      return { code: error.code, message: error.rawMessage };
    };
    expect(await refusal(g.client.submitTask({ type: "echo", fairnessWeight: 3 }))).toEqual({
      code: Code.InvalidArgument,
      message: "fairness_key: is required with fairness_weight (3)",
    });
    expect(await refusal(g.client.submitTask({ type: "echo", fairnessKey: "k", fairnessWeight: 1001 }))).toEqual({
      code: Code.InvalidArgument,
      message: "fairness_weight: 1001 exceeds the maximum of 1000",
    });
    expect((await refusal(g.client.submitTask({ type: "echo", fairnessKey: "two words" }))).message).toMatch(
      /^fairness_key: must be 1 to 128 letters/,
    );
    expect((await refusal(g.admin.getFairnessQueue({ taskType: "no-such-type" }))).message).toMatch(
      /^task_type: unknown task type "no-such-type"/,
    );
    expect(await g.admin.getFairnessQueue({ taskType: "echo" })).toMatchObject({
      window: 2,
      running: [],
      keys: [],
      keysTotal: 0,
    });
  });
});

describe("a type's own window (GATEWAY_FAIRNESS_WINDOWS)", () => {
  const g = useGateway(infra, {
    GATEWAY_FAIRNESS_WINDOW: "5",
    GATEWAY_FAIRNESS_WINDOWS: "sleep=1",
    GATEWAY_DELAYED_POLL_MS: "100",
  });

  test("sleep's window is 1 while other types keep the default", async () => {
    expect((await g.admin.getFairnessQueue({ taskType: "sleep" })).window).toBe(1);
    expect((await g.admin.getFairnessQueue({ taskType: "echo" })).window).toBe(5);
    const task = { type: "sleep", payload: { ms: 60_000 }, fairnessKey: `own-${crypto.randomUUID()}` };
    const first = (await g.client.submitTask(task)).taskId;
    const second = (await g.client.submitTask(task)).taskId;
    expect((await g.client.getTask({ taskId: second })).task?.fairnessWaiting).toBe(true);
    for (const taskId of [first, second]) await g.client.cancelTask({ taskId });
  });
});

test("a bad window, or one for a type the deployment does not run, stops the start, naming the variable", async () => {
  await expect(startGateway(infra, { GATEWAY_FAIRNESS_WINDOWS: "resize=4" })).rejects.toThrow(
    'GATEWAY_FAIRNESS_WINDOWS: "resize" is not a task type (known: echo, sleep, checksum, flaky, fail)',
  );
  await expect(startGateway(infra, { GATEWAY_FAIRNESS_WINDOWS: "sleep=0" })).rejects.toThrow(
    /GATEWAY_FAIRNESS_WINDOWS.*"sleep=0": the window must be a whole number from 1 to 100000/,
  );
  await expect(startGateway(infra, { GATEWAY_FAIRNESS_WINDOW: "0" })).rejects.toThrow(/GATEWAY_FAIRNESS_WINDOW/);
  await expect(startGateway(infra, { GATEWAY_FAIRNESS_WINDOW: "100001" })).rejects.toThrow(
    /GATEWAY_FAIRNESS_WINDOW.*must be at most 100000/,
  );
});

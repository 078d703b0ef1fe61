/**
 * Task dependencies (SubmitTaskRequest.depends_on) against real nats-server and redis-server, with the gateway in this
 * process (no ingest: a task "enters the pipeline" when its tasks.ingest message is in the stream) and the
 * dependencies' terminal statuses applied as the notifier would: a task waits PENDING, unpublished and not stalled,
 * until every dependency SUCCEEDED, then is queued once; one FAILED or CANCELLED dependency cancels it, naming that
 * dependency, and the cancel reaches the tasks waiting for it in turn; a cancelled waiting task is never queued; a
 * submission naming a failed, unknown, repeated or malformed dependency, or too many, is refused naming the field. With
 * DEPENDENCY_POLICY_ALL_FINISHED a task runs once they all finished, whatever the outcome.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type AuditEvent, Subjects, type TaskState } from "@tm/flow";
import {
  DependencyPolicy,
  Priority,
  TaskState as ProtoTaskState,
  ReplayResult,
  type SubmitTaskOutcome,
} from "@tm/proto";
import { appendDeadLetter, applyStatus, Keys, readStatus } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { QueueStats } from "../src/queue-stats.js";
import { countStalledTasks } from "../src/stalled-tasks.js";
import { event, ingestDeadLetter, rejection, streamMessagesOf, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const g = useGateway(infra, { GATEWAY_DELAYED_POLL_MS: "100" });
const clients = useClients(infra);

const ingested = async (taskId: string) =>
  (await streamMessagesOf(clients.nc, "TASKS", Subjects.ingest, taskId)).length;
const audited = async (taskId: string): Promise<AuditEvent[]> =>
  (await streamMessagesOf(clients.nc, "EVENTS", Subjects.audit, taskId)).map((stored) => stored.message);
const submit = async (dependsOn: string[] = [], extra: { delaySeconds?: number; policy?: DependencyPolicy } = {}) =>
  (
    await g.client.submitTask({
      type: "echo",
      priority: Priority.MEDIUM,
      payload: { dependsOn },
      dependsOn,
      ...(extra.policy ? { dependencyPolicy: extra.policy } : {}),
      ...(extra.delaySeconds
        ? { schedule: { case: "delay", value: create(DurationSchema, { seconds: BigInt(extra.delaySeconds) }) } }
        : {}),
    })
  ).taskId;
/** A task's terminal state, as the notifier applies a worker's (or a cancel's) status event. */
const finish = (taskId: string, state: TaskState) =>
  applyStatus(clients.redis, event({ taskId, state, generation: 0 }));
const stateOf = async (taskId: string) => (await g.client.getTask({ taskId })).task?.status?.state;

test("a task waits PENDING, unqueued, until every dependency SUCCEEDED, then is queued once", async () => {
  const [first, second] = [await submit(), await submit()];
  const waiter = await submit([first, second]);
  const { task } = await g.client.getTask({ taskId: waiter });
  expect(task?.status?.state).toBe(ProtoTaskState.PENDING);
  expect(task?.dependsOn).toEqual([first, second]);
  expect(task?.dependenciesUnfinished).toBe(2);
  expect(await ingested(waiter)).toBe(0);
  expect((await g.admin.getQueueStats({})).waitingTasks).toBeGreaterThanOrEqual(1n);
  // Waiting by design is not stalled, however short the threshold.
  const queueStats = new QueueStats(g.gateway.runtime.nats.jsm, ["TASKS", "EVENTS"], ["TASKS"]);
  const stalled = await countStalledTasks(g.gateway.runtime, () => queueStats.read(), {
    afterMs: 1,
    retentionMs: 86_400_000,
  });
  expect(stalled.tasks.map((t) => t.taskId)).not.toContain(waiter);

  await finish(first, "SUCCEEDED");
  expect((await g.client.getTask({ taskId: waiter })).task?.dependenciesUnfinished).toBe(1);
  // One of two done: still waiting (a poll round or two of the releaser would have queued it).
  const halfDoneAt = Date.now();
  await waitFor("two releaser rounds", () => Date.now() - halfDoneAt > 300);
  expect(await ingested(waiter)).toBe(0);

  await finish(second, "SUCCEEDED");
  await waitFor("the waiting task queued", async () => (await ingested(waiter)) > 0);
  expect(await ingested(waiter)).toBe(1);
  expect((await g.client.getTask({ taskId: waiter })).task?.dependenciesUnfinished).toBe(0);
  const released = (await audited(waiter)).find((e) => e.action === "released");
  expect(released?.detail).toMatchObject({ dependsOn: [first, second], generation: 0 });
  expect(await clients.redis.hexists(Keys.waiting, waiter)).toBe(0);
  expect(await clients.redis.exists(Keys.dependents(first), Keys.dependents(second))).toBe(0);
});

test("a dependency that FAILED cancels the task waiting for it, naming it, and the cancel reaches the next in turn", async () => {
  const [ok, bad] = [await submit(), await submit()];
  const child = await submit([ok, bad]);
  const grandchild = await submit([child]);
  await finish(bad, "FAILED");
  await waitFor(
    "both cancelled",
    async () =>
      (await stateOf(child)) === ProtoTaskState.CANCELLED && (await stateOf(grandchild)) === ProtoTaskState.CANCELLED,
  );
  const cancelled = (await audited(child)).find((e) => e.action === "cancelled");
  expect(cancelled?.detail).toMatchObject({ reason: `dependency ${bad} ended FAILED`, from: "PENDING" });
  // Its status says so too, for GetTask and the status stream.
  expect((await readStatus(clients.redis, child))?.error).toBe(`dependency ${bad} ended FAILED`);
  expect((await audited(grandchild)).find((e) => e.action === "cancelled")?.detail).toMatchObject({
    reason: `dependency ${child} ended CANCELLED`,
  });
  // Neither was ever queued, and the other dependency's success later changes nothing.
  await finish(ok, "SUCCEEDED");
  const doneAt = Date.now();
  await waitFor("two releaser rounds", () => Date.now() - doneAt > 300);
  expect(await ingested(child)).toBe(0);
  expect(await ingested(grandchild)).toBe(0);
  expect(await clients.redis.zcard(Keys.dependencyFailed)).toBe(0);
});

test("with DEPENDENCY_POLICY_ALL_FINISHED a task runs once every dependency finished, failed or cancelled ones too", async () => {
  const [ok, bad, dropped] = [await submit(), await submit(), await submit()];
  const after = await submit([ok, bad, dropped], { policy: DependencyPolicy.ALL_FINISHED });
  expect((await g.client.getTask({ taskId: after })).task?.dependencyPolicy).toBe(DependencyPolicy.ALL_FINISHED);
  await finish(bad, "FAILED");
  await finish(dropped, "CANCELLED");
  expect((await g.client.getTask({ taskId: after })).task?.dependenciesUnfinished).toBe(1);
  expect(await stateOf(after)).toBe(ProtoTaskState.PENDING);
  await finish(ok, "SUCCEEDED");
  await waitFor("the task queued", async () => (await ingested(after)) > 0);
  expect(await stateOf(after)).toBe(ProtoTaskState.PENDING); // released, not cancelled (no ingest here to move it on)
  // A failed dependency at submission is finished already: queued at once.
  const late = await submit([bad], { policy: DependencyPolicy.ALL_FINISHED });
  expect(await ingested(late)).toBe(1);
  // The default waits for success: its own GetTask says so.
  const strict = await submit([await submit()]);
  expect((await g.client.getTask({ taskId: strict })).task?.dependencyPolicy).toBe(DependencyPolicy.ALL_SUCCEEDED);
});

test("a waiting task cancelled by its caller is never queued; a dependency done already counts as done", async () => {
  const dependency = await submit();
  const waiter = await submit([dependency]);
  await g.client.cancelTask({ taskId: waiter, reason: "not needed" });
  expect(await clients.redis.hexists(Keys.waiting, waiter)).toBe(0);
  await finish(dependency, "SUCCEEDED");
  const doneAt = Date.now();
  await waitFor("two releaser rounds", () => Date.now() - doneAt > 300);
  expect(await ingested(waiter)).toBe(0);
  expect(await stateOf(waiter)).toBe(ProtoTaskState.CANCELLED);

  // All its dependencies SUCCEEDED before it was submitted: queued at once, as a task without any.
  const after = await submit([dependency]);
  expect(await ingested(after)).toBe(1);
  expect((await g.client.getTask({ taskId: after })).task?.dependenciesUnfinished).toBe(0);
});

test("a waiting task's expiry counts from its release: its message says when that was", async () => {
  const dependency = await submit();
  const { taskId: waiter } = await g.client.submitTask({
    type: "echo",
    dependsOn: [dependency],
    expiresAfter: create(DurationSchema, { seconds: 1n }),
  });
  const waitedFrom = Date.now();
  await waitFor("longer than its expiry", () => Date.now() - waitedFrom > 1_200);
  const releasedAfter = Date.now();
  await finish(dependency, "SUCCEEDED");
  await waitFor("the waiting task queued", async () => (await ingested(waiter)) > 0);
  const [queued] = await streamMessagesOf(clients.nc, "TASKS", Subjects.ingest, waiter);
  expect(Date.parse(queued!.message.runAt ?? "")).toBeGreaterThanOrEqual(releasedAfter - 5);
});

test("a task with a delay and dependencies is queued at the later of the two", async () => {
  const dependency = await submit();
  const waiter = await submit([dependency], { delaySeconds: 2 });
  const submittedAt = Date.now();
  await finish(dependency, "SUCCEEDED");
  await waitFor("the waiting task queued", async () => (await ingested(waiter)) > 0, { timeoutMs: 10_000 });
  expect(Date.now() - submittedAt).toBeGreaterThanOrEqual(1_500);
});

test("replaying a failed dependency revives the tasks its failure cancelled, which wait for it again and then run", async () => {
  const [ok, bad] = [await submit(), await submit()];
  const child = await submit([ok, bad]);
  const grandchild = await submit([child]);
  const unrelated = await submit([bad]);
  await finish(bad, "FAILED");
  await waitFor("the three cancelled", async () =>
    (await Promise.all([child, grandchild, unrelated].map(stateOf))).every((s) => s === ProtoTaskState.CANCELLED),
  );
  // An operator's own cancel is not the failure's: that task stays cancelled. (Cancelled again after the failure's.)
  await clients.redis.set(Keys.cancel(unrelated), "no longer needed");
  await finish(ok, "SUCCEEDED");

  // The failed task's dead letter, as the deadletter service writes it, replayed.
  const letterId = `TASKS:${Date.now()}`;
  await appendDeadLetter(clients.redis, ingestDeadLetter(bad, letterId));
  const [outcome] = (await g.admin.replayDeadLetters({ ids: [letterId] })).outcomes;
  expect(outcome).toMatchObject({
    result: ReplayResult.REPLAYED,
    generation: 1,
    revivedDependents: [child, grandchild],
  });

  // Both PENDING again as generation 1, waiting (the child for the replayed task, the grandchild for the child).
  for (const id of [child, grandchild]) {
    const { task } = await g.client.getTask({ taskId: id });
    expect(task?.status?.state).toBe(ProtoTaskState.PENDING);
    expect(task?.dependenciesUnfinished).toBe(1);
    expect((await audited(id)).find((e) => e.action === "revived")?.detail).toMatchObject({ generation: 1 });
  }
  expect(await clients.redis.exists(Keys.cancel(child))).toBe(0);
  expect(await stateOf(unrelated)).toBe(ProtoTaskState.CANCELLED);

  // The replay succeeds: the child is queued as generation 1, then the grandchild after the child.
  await applyStatus(clients.redis, event({ taskId: bad, state: "SUCCEEDED", generation: 1 }));
  await waitFor("the child queued", async () => (await ingested(child)) > 0);
  const [queued] = await streamMessagesOf(clients.nc, "TASKS", Subjects.ingest, child);
  expect(queued).toMatchObject({ msgId: `${child}:ingest:1`, message: { generation: 1 } });
  expect(await ingested(grandchild)).toBe(0);
  await applyStatus(clients.redis, event({ taskId: child, state: "SUCCEEDED", generation: 1 }));
  await waitFor("the grandchild queued", async () => (await ingested(grandchild)) > 0);
});

/** tm_tasks_waiting{reason} on the gateway's /metrics (undefined while it has none). */
async function waitingGauge(reason: "delayed" | "dependencies"): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("tm_tasks_waiting{") && l.includes(`reason="${reason}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("tm_tasks_waiting counts the delayed tasks and those waiting for dependencies, read at each scrape", async () => {
  const delayed = (await waitingGauge("delayed")) as number;
  const waiting = (await waitingGauge("dependencies")) as number;
  expect([delayed, waiting].every(Number.isInteger)).toBe(true);
  const [later, alsoLater] = [await submit([], { delaySeconds: 3600 }), await submit([], { delaySeconds: 3600 })];
  const after = await submit([later]);
  expect(await waitingGauge("delayed")).toBe(delayed + 2);
  expect(await waitingGauge("dependencies")).toBe(waiting + 1);
  await Promise.all([g.client.cancelTask({ taskId: later }), g.client.cancelTask({ taskId: alsoLater })]);
  await waitFor("the dependent cancelled", async () => (await stateOf(after)) === ProtoTaskState.CANCELLED);
  expect(await waitingGauge("delayed")).toBe(delayed);
  expect(await waitingGauge("dependencies")).toBe(waiting);
});

test("bad dependencies are refused naming the field: failed, unknown, repeated, malformed, too many", async () => {
  const failed = await submit();
  await finish(failed, "CANCELLED");
  expect(await rejection(submit([failed]))).toMatchObject({
    code: Code.FailedPrecondition,
    rawMessage: `depends_on: task ${failed} is CANCELLED, so this task could never run (replay or resubmit that one first)`,
  });
  // A refused task is not listed after it.
  expect((await g.client.getTask({ taskId: failed })).task?.dependentsTotal).toBe(0);
  const unknown = crypto.randomUUID();
  expect(await rejection(submit([unknown]))).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: `depends_on[0]: no task ${unknown} (never submitted, expired, or not yours)`,
  });
  const known = await submit();
  expect(await rejection(submit([known, known]))).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: `depends_on[1]: ${known} is named twice`,
  });
  expect(await rejection(submit(["not-an-id"]))).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: 'depends_on[0]: must be a task id (a UUID), got "not-an-id"',
  });
  expect(
    await rejection(g.client.submitTask({ type: "echo", dependencyPolicy: DependencyPolicy.ALL_FINISHED })),
  ).toMatchObject({ code: Code.InvalidArgument, rawMessage: "dependency_policy: applies only with depends_on" });
  expect(await rejection(submit([known], { policy: 9 as DependencyPolicy }))).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: "dependency_policy: must be DEPENDENCY_POLICY_ALL_SUCCEEDED or DEPENDENCY_POLICY_ALL_FINISHED (got 9)",
  });
  const many = Array.from({ length: 21 }, () => crypto.randomUUID());
  expect(await rejection(submit(many))).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: "depends_on: 21 tasks exceeds the limit of 20",
  });
});

describe("a graph of tasks in one SubmitTasks call (depends_on_batch_items)", () => {
  const outcomeIds = (outcomes: SubmitTaskOutcome[]) =>
    outcomes.map((o) => (o.outcome.case === "accepted" ? o.outcome.value.taskId : ""));

  test("a diamond waits as one submitted task by task would: each runs once the tasks it names succeeded", async () => {
    const outside = await submit();
    const { outcomes } = await g.client.submitTasks({
      tasks: [
        { type: "echo", priority: Priority.MEDIUM },
        { type: "echo", priority: Priority.MEDIUM, dependsOnBatchItems: [0] },
        { type: "echo", priority: Priority.MEDIUM, dependsOnBatchItems: [0] },
        { type: "echo", priority: Priority.MEDIUM, dependsOn: [outside], dependsOnBatchItems: [2, 1] },
      ],
    });
    const [root, left, right, join] = outcomeIds(outcomes) as [string, string, string, string];
    expect(outcomes.map((o) => o.outcome.case)).toEqual(["accepted", "accepted", "accepted", "accepted"]);
    expect(await ingested(root)).toBe(1);
    expect((await g.client.getTask({ taskId: left })).task?.dependsOn).toEqual([root]);
    const { task } = await g.client.getTask({ taskId: join });
    expect(task?.dependsOn).toEqual([outside, right, left]);
    expect(task?.dependenciesUnfinished).toBe(3);
    // Each lists what comes after it.
    const rootTask = (await g.client.getTask({ taskId: root })).task;
    expect([...(rootTask?.dependents ?? [])].sort()).toEqual([left, right].sort());
    expect(rootTask?.dependentsTotal).toBe(2);
    expect((await g.client.getTask({ taskId: outside })).task?.dependents).toEqual([join]);
    expect((await g.client.getTask({ taskId: join })).task?.dependentsTotal).toBe(0);

    await finish(root, "SUCCEEDED");
    await waitFor("both branches queued", async () => (await ingested(left)) + (await ingested(right)) === 2);
    expect(await ingested(join)).toBe(0);
    await Promise.all([finish(left, "SUCCEEDED"), finish(right, "SUCCEEDED"), finish(outside, "SUCCEEDED")]);
    await waitFor("the join queued", async () => (await ingested(join)) > 0);
    expect(await ingested(join)).toBe(1);
    // Still listed once released: the list is of what came after it, not of what waits.
    expect((await g.client.getTask({ taskId: root })).task?.dependentsTotal).toBe(2);
  });

  test("a chain longer than a batch's lanes is accepted in order, each task waiting for the one before it", async () => {
    const tasks = Array.from({ length: 100 }, (_, i) => ({
      type: "echo",
      priority: Priority.MEDIUM,
      dependsOnBatchItems: i === 0 ? [] : [i - 1],
    }));
    const ids = outcomeIds((await g.client.submitTasks({ tasks })).outcomes);
    expect(ids.every((id) => id !== "")).toBe(true);
    const last = (await g.client.getTask({ taskId: ids[99] as string })).task;
    expect(last?.dependsOn).toEqual([ids[98]]);
    expect(last?.dependenciesUnfinished).toBe(1);
  });

  test("a task naming a refused one is refused with it; a retry with the same keys completes the graph", async () => {
    const first = await g.client.submitTasks({
      tasks: [
        { type: "echo", idempotencyKey: "graph-root" },
        { type: "no-such-type", idempotencyKey: "graph-bad" },
        { type: "echo", idempotencyKey: "graph-child", dependsOnBatchItems: [0, 1] },
      ],
    });
    expect(first.outcomes[2]?.outcome).toEqual({
      case: "error",
      value: expect.objectContaining({
        code: Code.FailedPrecondition,
        message: expect.stringMatching(
          /^tasks\[2\]: depends_on_batch_items\[1\]: tasks\[1\] was refused \(type: unknown task type "no-such-type".*\), so this task could never run$/,
        ),
      }),
    });
    const root = outcomeIds(first.outcomes)[0] as string;
    // The client fixes the bad one and sends the batch again: the root is deduplicated, the child waits for it.
    const retry = await g.client.submitTasks({
      tasks: [
        { type: "echo", idempotencyKey: "graph-root" },
        { type: "echo", idempotencyKey: "graph-bad" },
        { type: "echo", idempotencyKey: "graph-child", dependsOnBatchItems: [0, 1] },
      ],
    });
    const [again, fixed, child] = outcomeIds(retry.outcomes);
    expect(again).toBe(root);
    expect((await g.client.getTask({ taskId: child as string })).task?.dependsOn).toEqual([root, fixed]);
    // SubmitTask has no batch to name.
    expect(await rejection(g.client.submitTask({ type: "echo", dependsOnBatchItems: [0] }))).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "depends_on_batch_items: names tasks of the same SubmitTasks call: SubmitTask takes depends_on",
    });
  });
});

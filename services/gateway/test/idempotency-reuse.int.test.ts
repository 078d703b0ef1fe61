/**
 * SubmitTaskRequest.idempotency_key_reuse AFTER_FINISHED against a real nats-server and redis-server: while the key's
 * task is unfinished its id is answered; once it finished (any terminal state, or its records expired) the next
 * submission makes a new task that the key names from then on; submissions racing over a finished task make one new
 * task between them; without it a finished task's id is answered as before; the field without a key, or an unknown
 * value, is INVALID_ARGUMENT naming it.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { IdempotencyKeyReuse, Priority } from "@tm/proto";
import { applyStatus, Keys } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { auditActionsOf, event, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const g = useGateway(infra);
const clients = useClients(infra);

const afterFinished = (idempotencyKey: string, n = 1) => ({
  type: "echo",
  payload: { n },
  idempotencyKey,
  idempotencyKeyReuse: IdempotencyKeyReuse.AFTER_FINISHED,
});

test("while the key's task is unfinished it is answered; once it finished the next submission makes a new task", async () => {
  const key = `sync-${crypto.randomUUID()}`;
  const first = await g.client.submitTask(afterFinished(key));
  expect(first.deduplicated).toBe(false);
  // Unfinished (PENDING: no worker here): the same task.
  expect(await g.client.submitTask(afterFinished(key, 2))).toEqual({
    $typeName: "taskmanager.v1.SubmitTaskResponse",
    taskId: first.taskId,
    deduplicated: true,
    replaced: false,
  });
  for (const state of ["SUCCEEDED", "FAILED", "CANCELLED"] as const) {
    const before = (await g.client.submitTask(afterFinished(key))).taskId;
    await applyStatus(clients.redis, event({ taskId: before, state, attempt: 1 }));
    const next = await g.client.submitTask(afterFinished(key, 3));
    expect(next.deduplicated, state).toBe(false);
    expect(next.taskId).not.toBe(before);
    // The key names the new task now, and the new task is an ordinary one, with its own record.
    expect(await clients.redis.get(Keys.idempotency(key))).toBe(`${next.taskId} saved`);
    expect((await g.client.getTask({ taskId: next.taskId })).task?.payload).toEqual({ n: 3 });
    expect(await g.client.submitTask(afterFinished(key))).toMatchObject({ taskId: next.taskId, deduplicated: true });
  }
});

test("without it, a finished task's id is answered as before; a key's task whose records expired is replaced with it", async () => {
  const key = `plain-${crypto.randomUUID()}`;
  const first = await g.client.submitTask({ type: "echo", idempotencyKey: key });
  await applyStatus(clients.redis, event({ taskId: first.taskId, state: "SUCCEEDED", attempt: 1 }));
  expect(await g.client.submitTask({ type: "echo", idempotencyKey: key })).toMatchObject({
    taskId: first.taskId,
    deduplicated: true,
  });
  // Its records gone (a retention shorter than the key's day): without reuse its id is answered, nothing made; with
  // it, a new task.
  await clients.redis.del(Keys.task(first.taskId), Keys.status(first.taskId));
  expect(await g.client.submitTask({ type: "echo", idempotencyKey: key })).toMatchObject({
    taskId: first.taskId,
    deduplicated: true,
  });
  const replaced = await g.client.submitTask(afterFinished(key));
  expect(replaced.deduplicated).toBe(false);
  expect(replaced.taskId).not.toBe(first.taskId);
});

test("submissions racing over a finished task make one new task between them", async () => {
  const key = `race-${crypto.randomUUID()}`;
  const first = await g.client.submitTask(afterFinished(key));
  await applyStatus(clients.redis, event({ taskId: first.taskId, state: "SUCCEEDED", attempt: 1 }));
  const answers = await Promise.all(Array.from({ length: 8 }, (_, n) => g.client.submitTask(afterFinished(key, n))));
  const ids = new Set(answers.map((answer) => answer.taskId));
  expect(ids.size).toBe(1);
  expect(ids.has(first.taskId)).toBe(false);
  expect(answers.filter((answer) => !answer.deduplicated)).toHaveLength(1);
  // One record made: the other seven found it (unfinished) and answered it.
  const made = await clients.redis.zrange(Keys.taskIndex, 0, -1);
  expect(made.filter((id) => ids.has(id))).toHaveLength(1);
});

test("SubmitTasks takes it per task; without a key, or with a value it does not define, INVALID_ARGUMENT naming it", async () => {
  const key = `batch-${crypto.randomUUID()}`;
  const first = await g.client.submitTask(afterFinished(key));
  await applyStatus(clients.redis, event({ taskId: first.taskId, state: "FAILED", attempt: 1 }));
  // A batch's tasks are submitted together (no order among them): two with the key make one new task between them.
  const { outcomes } = await g.client.submitTasks({ tasks: [afterFinished(key, 1), afterFinished(key, 2)] });
  const answers = outcomes.map((o) => (o.outcome.case === "accepted" ? o.outcome.value : undefined));
  expect(new Set(answers.map((answer) => answer?.taskId)).size).toBe(1);
  expect(answers[0]?.taskId).not.toBe(first.taskId);
  expect(answers.map((answer) => answer?.deduplicated).sort()).toEqual([false, true]);

  const refusal = (request: Parameters<typeof g.client.submitTask>[0]) =>
    g.client.submitTask(request).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
  expect(await refusal({ type: "echo", idempotencyKeyReuse: IdempotencyKeyReuse.AFTER_FINISHED })).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: "idempotency_key_reuse: applies only with an idempotency_key",
  });
  expect(
    await refusal({ type: "echo", idempotencyKey: key, idempotencyKeyReuse: 7 as IdempotencyKeyReuse }),
  ).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage:
      "idempotency_key_reuse: must be IDEMPOTENCY_KEY_REUSE_UNSPECIFIED, _AFTER_FINISHED or _REPLACE_WAITING (got 7)",
  });
});

test("REPLACE_WAITING: the key's task waiting for its time takes the submission's payload, options and time; once released it is answered; once finished a new one", async () => {
  const key = `debounce-${crypto.randomUUID()}`;
  const debounced = (n: number, delaySeconds: bigint) => ({
    type: "echo",
    payload: { n },
    metadata: { edit: String(n) },
    idempotencyKey: key,
    idempotencyKeyReuse: IdempotencyKeyReuse.REPLACE_WAITING,
    schedule: { case: "delay" as const, value: create(DurationSchema, { seconds: delaySeconds }) },
  });
  const first = await g.client.submitTask(debounced(1, 3_600n));
  expect(first).toMatchObject({ deduplicated: false, replaced: false });
  const dueFirst = Number(await clients.redis.zscore(Keys.delayed, first.taskId));
  // The replacement's options too (BullMQ's debounce replaces the job's options): its priority, its own limits, its
  // fairness key.
  const second = await g.client.submitTask({
    ...debounced(2, 7_200n),
    priority: Priority.HIGH,
    maxAttempts: 2,
    fairnessKey: "tenant-2",
  });
  expect(second).toMatchObject({ taskId: first.taskId, deduplicated: true, replaced: true });
  const { task } = await g.client.getTask({ taskId: first.taskId });
  expect(task?.payload).toEqual({ n: 2 });
  expect(task?.metadata).toMatchObject({ edit: "2" });
  expect(task).toMatchObject({ type: "echo", priority: Priority.HIGH, maxAttempts: 2, fairnessKey: "tenant-2" });
  // Not one of another type: a payload checked for one type must not run as another. Nothing changes.
  const otherType = await g.client
    .submitTask({ ...debounced(9, 60n), type: "sleep", payload: { ms: 1 } })
    .catch((error: unknown) => ConnectError.from(error));
  expect(otherType).toMatchObject({
    code: Code.FailedPrecondition,
    rawMessage:
      "idempotency_key: its task waiting for its time is of type echo, not sleep: a replacement (REPLACE_WAITING) must be of the same type",
  });
  expect((await g.client.getTask({ taskId: first.taskId })).task?.payload).toEqual({ n: 2 });
  const dueSecond = Number(await clients.redis.zscore(Keys.delayed, first.taskId));
  expect(dueSecond - dueFirst).toBeGreaterThan(3_500_000);
  expect(timestampDate(task!.runAt!).getTime()).toBe(dueSecond);
  // Submitted and followed in one call, the stream says so on its messages.
  const stream = g.client.submitTaskAndStreamStatus(debounced(5, 7_200n), { signal: AbortSignal.timeout(5_000) });
  for await (const message of stream) {
    expect(message).toMatchObject({ taskId: first.taskId, deduplicated: true, replaced: true });
    break;
  }
  // A replacement that leaves an option unset sets it back to the default.
  expect((await g.client.getTask({ taskId: first.taskId })).task).toMatchObject({
    payload: { n: 5 },
    priority: Priority.MEDIUM,
    maxAttempts: 0,
    fairnessKey: "",
  });
  // Its history says so (the audit event, published before the answer).
  expect(await auditActionsOf(clients.nc, (e) => e.taskId === first.taskId)).toEqual([
    "submitted",
    "replaced",
    "replaced",
  ]);
  // Released (promoted): it runs as it now is, and a later submission is answered, not replacing it.
  await g.client.promoteTask({ taskId: first.taskId });
  await waitFor("released", async () => (await clients.redis.zscore(Keys.delayed, first.taskId)) === null);
  expect(await g.client.submitTask(debounced(3, 60n))).toMatchObject({
    taskId: first.taskId,
    deduplicated: true,
    replaced: false,
  });
  expect((await g.client.getTask({ taskId: first.taskId })).task?.payload).toEqual({ n: 5 });
  // Finished: the next submission is a new task.
  await applyStatus(clients.redis, event({ taskId: first.taskId, state: "SUCCEEDED", attempt: 1 }));
  const next = await g.client.submitTask(debounced(4, 60n));
  expect(next).toMatchObject({ deduplicated: false, replaced: false });
  expect(next.taskId).not.toBe(first.taskId);
});

test("REPLACE_WAITING without run_at or delay is INVALID_ARGUMENT, naming why", async () => {
  const refused = await g.client
    .submitTask({ type: "echo", idempotencyKey: "k", idempotencyKeyReuse: IdempotencyKeyReuse.REPLACE_WAITING })
    .catch((error: unknown) => ConnectError.from(error));
  expect(refused).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage:
      "idempotency_key_reuse: REPLACE_WAITING replaces a task waiting for its time: the submission needs run_at or delay",
  });
});

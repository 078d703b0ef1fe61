/**
 * CancelTask's include_children against a real nats-server and redis-server: a parent's child tasks (parent_task_id),
 * theirs, and so on are cancelled with it, each saying which parent's cancellation it was; a finished one is left as
 * it is; a parent that is already finished is no error then; a cancelled parent takes no more children; and without
 * the flag the children are left running; children submitted during the cascade are refused or found by it; and
 * ListTasks and CancelTasks take a parent as a filter (all of its children, past the 100 GetTask lists), as the dead
 * letters' filter does (a fan-out's failures, replayed in one call).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { TaskState } from "@tm/proto";
import { appendDeadLetter, applyStatus, Keys } from "@tm/store";
import { useClients, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import { event, ingestDeadLetter, rejection, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);
const g = useGateway(infra);

/** A delayed echo task (it stays PENDING while the test reads it), a child of `parent` when given. */
async function submit(parent?: string, dependsOn: string[] = []): Promise<string> {
  const { taskId } = await g.client.submitTask({
    type: "echo",
    schedule: { case: "delay", value: { seconds: 3_600n } },
    ...(parent ? { parentTaskId: parent } : {}),
    dependsOn,
  });
  return taskId;
}

const stateOf = async (taskId: string) => (await g.client.getTask({ taskId })).task?.status;

test("include_children cancels the children and theirs, naming the parent; a finished child is left as it is", async () => {
  const parent = await submit();
  const [first, second, done] = [await submit(parent), await submit(parent), await submit(parent)];
  const grandchild = await submit(first);
  await applyStatus(clients.redis, event({ taskId: done, state: "SUCCEEDED", attempt: 1 }));

  const response = await g.client.cancelTask({ taskId: parent, reason: "wrong input", includeChildren: true });
  expect(response.status?.state).toBe(TaskState.CANCELLED);
  expect(response.childrenCancelled).toBe(3);
  for (const id of [first, second, grandchild]) {
    expect((await stateOf(id))?.state).toBe(TaskState.CANCELLED);
    // Its cancel marker (and audit record) says whose cancellation it was.
    expect(await clients.redis.get(Keys.cancel(id))).toBe(`parent ${parent} cancelled: wrong input`);
  }
  expect((await stateOf(done))?.state).toBe(TaskState.SUCCEEDED);
  // GetTask counts the parent's children by state (its own children only: the grandchild is its child's).
  expect((await g.client.getTask({ taskId: parent })).task?.childrenByState).toEqual({ CANCELLED: 2, SUCCEEDED: 1 });
  expect((await g.client.getTask({ taskId: done })).task?.childrenByState).toEqual({});

  // The cancelled parent takes no more children.
  const refused = await submit(parent).catch((error: unknown) => ConnectError.from(error));
  expect(refused).toBeInstanceOf(ConnectError);
  expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
  expect((refused as ConnectError).rawMessage).toBe(
    `parent_task_id: task ${parent} was cancelled: it takes no more child tasks`,
  );
  // Asked again: the parent is finished, which include_children does not refuse; nothing is left to cancel.
  const again = await g.client.cancelTask({ taskId: parent, includeChildren: true });
  expect(again).toMatchObject({ status: { state: TaskState.CANCELLED }, childrenCancelled: 0 });
});

test("a parent that SUCCEEDED: include_children stops the fan-out it left, without an error", async () => {
  const parent = await submit();
  const child = await submit(parent);
  await applyStatus(clients.redis, event({ taskId: parent, state: "SUCCEEDED", attempt: 1 }));
  const response = await g.client.cancelTask({ taskId: parent, includeChildren: true });
  expect(response).toMatchObject({ status: { state: TaskState.SUCCEEDED }, childrenCancelled: 1 });
  expect((await stateOf(child))?.state).toBe(TaskState.CANCELLED);
  // Without the flag a finished task is still refused, as before.
  const refused = await g.client.cancelTask({ taskId: parent }).catch((error: unknown) => ConnectError.from(error));
  expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
});

test("without include_children a parent's cancellation leaves its children as they are", async () => {
  const parent = await submit();
  const child = await submit(parent);
  const response = await g.client.cancelTask({ taskId: parent });
  expect(response).toMatchObject({ status: { state: TaskState.CANCELLED }, childrenCancelled: 0 });
  expect((await stateOf(child))?.state).toBe(TaskState.PENDING);
});

test("children submitted while their parent is cancelled with include_children: none is left to run", async () => {
  const parent = await submit();
  // Each child waits for 20 tasks (the most it may): checking and registering them keeps its submission a while between the parent's
  // check and its listing under the parent, where a cancellation can land.
  const { outcomes } = await g.client.submitTasks({
    tasks: Array.from({ length: 20 }, () => ({
      type: "echo",
      schedule: { case: "delay", value: { seconds: 3_600n } },
    })),
  });
  const dependsOn = outcomes.map((outcome) =>
    outcome.outcome.case === "accepted" ? outcome.outcome.value.taskId : "",
  );
  // A steady stream of children from 16 submitters, the cancellation landing among them: each child is either
  // refused (FAILED_PRECONDITION) or was listed before the parent's CANCELLED and is then found by the walk. A
  // submitter stops at its first refusal.
  const accepted: string[] = [];
  const refusals: ConnectError[] = [];
  let enough: () => void = () => undefined;
  const someAccepted = new Promise<void>((resolve) => {
    enough = resolve;
  });
  const submitter = async () => {
    for (;;) {
      try {
        accepted.push(await submit(parent, dependsOn));
        if (accepted.length >= 40) enough();
      } catch (error) {
        refusals.push(ConnectError.from(error));
        return;
      }
    }
  };
  const submitters = Array.from({ length: 16 }, submitter);
  const finished = Promise.all(submitters);
  await Promise.race([someAccepted, finished]);
  await g.client.cancelTask({ taskId: parent, includeChildren: true });
  await finished;
  expect(accepted.length).toBeGreaterThanOrEqual(40);
  expect(refusals.map((error) => error.code)).toEqual(refusals.map(() => Code.FailedPrecondition));
  // Every record naming the parent, accepted or refused after its records were saved, is CANCELLED.
  const children: string[] = [];
  for await (const keys of clients.redis.scanStream({ match: "task:*", count: 1_000 })) {
    for (const key of keys as string[]) {
      if ((await clients.redis.hget(key, "parentTaskId")) === parent) children.push(key.slice("task:".length));
    }
  }
  expect(children).toEqual(expect.arrayContaining(accepted));
  const states = await Promise.all(children.map(async (id) => (await stateOf(id))?.state));
  expect(states.filter((state) => state !== TaskState.CANCELLED)).toEqual([]);
});

test("ListTasks and CancelTasks with parent_task_id: a parent's children alone, all of them, with the other filters", async () => {
  const parent = await submit();
  const children = [];
  for (let i = 0; i < 5; i++) children.push(await submit(parent));
  const other = await submit();
  await applyStatus(clients.redis, event({ taskId: children[0]!, state: "SUCCEEDED", attempt: 1 }));

  // Two a page, through every page: the five children, each once, and nothing else.
  const listed: string[] = [];
  let pageToken = "";
  do {
    const page = await g.admin.listTasks({ parentTaskId: parent, pageSize: 2, pageToken });
    listed.push(...page.tasks.map((task) => task.taskId));
    expect(page.tasks.every((task) => task.parentTaskId === parent)).toBe(true);
    pageToken = page.nextPageToken;
  } while (pageToken);
  // (Newest first: the order of their creation times, which tasks submitted within a millisecond may share.)
  expect([...listed].sort()).toEqual([...children].sort());
  const unfinished = await g.admin.listTasks({ parentTaskId: parent, state: TaskState.PENDING });
  expect(unfinished.tasks.map((task) => task.taskId).sort()).toEqual(children.slice(1).sort());
  expect((await g.admin.listTasks({ parentTaskId: other })).tasks).toEqual([]);
  const bad = await g.admin.listTasks({ parentTaskId: "nope" }).catch((error: unknown) => ConnectError.from(error));
  expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
  expect((bad as ConnectError).rawMessage).toBe("parent_task_id: must be a UUID");

  // The parent's id alone is a filter CancelTasks takes: its unfinished children are cancelled, nothing else.
  const response = await g.admin.cancelTasks({ all: true, parentTaskId: parent, reason: "bad batch" });
  expect(response.outcomes.map((outcome) => outcome.taskId).sort()).toEqual(children.slice(1).sort());
  expect((await stateOf(parent))?.state).toBe(TaskState.PENDING);
  expect((await stateOf(other))?.state).toBe(TaskState.PENDING);
  expect((await stateOf(children[0]!))?.state).toBe(TaskState.SUCCEEDED);
});

test("a child's idempotency key is kept as long as its records may be, another task's a day", async () => {
  const parent = await submit();
  const key = `child:${parent}:n:1`;
  await g.client.submitTask({ type: "echo", parentTaskId: parent, idempotencyKey: key });
  await g.client.submitTask({ type: "echo", idempotencyKey: `plain-${parent}` });
  // TASK_RETENTION_SECONDS (a week by default), not the day other keys get: a parent replayed days later is handed
  // the children it had.
  expect(await clients.redis.ttl(`idempotency:${key}`)).toBeGreaterThan(86_400);
  expect(await clients.redis.ttl(`idempotency:plain-${parent}`)).toBeLessThanOrEqual(86_400);
});

test("dead letters by parent and type: a fan-out's failures listed and replayed in one call, no other letter touched", async () => {
  const parent = await submit();
  const [a, b, c] = [await submit(parent), await submit(parent), await submit(parent)];
  const stranger = await submit();
  const letter = (taskId: string, id: string, type = "echo") => {
    const dead = ingestDeadLetter(taskId, id);
    return { ...dead, message: { ...(dead.message as object), type } };
  };
  const tag = crypto.randomUUID().slice(0, 8);
  for (const dead of [
    letter(a!, `A-${tag}`),
    letter(b!, `B-${tag}`, "sleep"),
    letter(stranger, `S-${tag}`),
    { ...letter(c!, `X-${tag}`), taskId: undefined, message: "not a task" },
  ]) {
    await appendDeadLetter(clients.redis, dead);
  }
  for (const taskId of [a!, b!, stranger]) {
    await applyStatus(clients.redis, event({ taskId, state: "FAILED", attempt: 5, error: "enricher unavailable" }));
  }
  const ids = async (filter: { parentTaskId?: string; type?: string }) =>
    (await g.admin.listDeadLetters({ filter, pageSize: 500 })).deadLetters
      .map((d) => d.id)
      .filter((id) => id.endsWith(tag));
  expect((await ids({ parentTaskId: parent })).sort()).toEqual([`A-${tag}`, `B-${tag}`]);
  expect(await ids({ parentTaskId: parent, type: "sleep" })).toEqual([`B-${tag}`]);
  expect((await ids({ type: "echo" })).sort()).toEqual([`A-${tag}`, `S-${tag}`]);
  expect(await ids({ parentTaskId: stranger })).toEqual([]);

  const replayed = await g.admin.replayDeadLetters({ all: true, filter: { parentTaskId: parent } });
  expect(replayed.outcomes.map((outcome) => outcome.id).sort()).toEqual([`A-${tag}`, `B-${tag}`]);
  expect((await ids({})).sort()).toEqual([`S-${tag}`, `X-${tag}`]);

  for (const [filter, message] of [
    [{ parentTaskId: "nope" }, "filter.parent_task_id: must be a UUID"],
    [{ type: "teleport" }, 'filter.type: unknown task type "teleport"'],
  ] as const) {
    const refused = await rejection(g.admin.listDeadLetters({ filter }));
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toContain(message);
  }
});

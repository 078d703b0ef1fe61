/**
 * AdminService.CancelTasks against a real nats-server and redis-server: by id, each task gets its outcome (cancelled,
 * not found, already finished); with `all`, every unfinished task matching the filter is cancelled, 500 per call,
 * `more` telling the caller to call again; a finished task is never touched; bad requests name the field.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { CancelResult, TaskState } from "@tm/proto";
import { applyStatus, isCancelled, Keys, readStatus, saveTask, type TaskRecord } from "@tm/store";
import { useClients, useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import { event, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);
const g = useGateway(infra);

/** `count` tasks tagged `batch` in their metadata, in `state`, saved as the gateway and the stages would leave them,
 *  created one millisecond apart up to `untilMs`. */
async function tasksIn(
  state: "PENDING" | "SCHEDULED" | "SUCCEEDED",
  count: number,
  batch: string,
  untilMs = Date.now(),
): Promise<string[]> {
  const records: TaskRecord[] = Array.from({ length: count }, (_, i) => ({
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "low",
    payload: { i },
    metadata: { batch },
    createdAt: new Date(untilMs - count + i).toISOString(),
    generation: 0,
  }));
  await Promise.all(
    records.map(async (task) => {
      await saveTask(clients.redis, task);
      await applyStatus(clients.redis, event({ taskId: task.taskId, state }));
    }),
  );
  return records.map((task) => task.taskId);
}

test("by id: each task gets its outcome, and only the unfinished one is cancelled", async () => {
  const batch = crypto.randomUUID();
  const [waiting] = await tasksIn("SCHEDULED", 1, batch);
  const [done] = await tasksIn("SUCCEEDED", 1, batch);
  const unknown = crypto.randomUUID();
  const { outcomes, more } = await g.admin.cancelTasks({ taskIds: [waiting!, done!, unknown], reason: "bad batch" });
  expect(more).toBe(false);
  expect(outcomes.map((o) => [o.taskId, CancelResult[o.result], TaskState[o.previousState]])).toEqual([
    [waiting, "CANCELLED", "SCHEDULED"],
    [done, "ALREADY_FINISHED", "SUCCEEDED"],
    [unknown, "NOT_FOUND", "UNSPECIFIED"],
  ]);
  expect(outcomes[1]?.reason).toBe("it is already SUCCEEDED");
  // The reason is the status's error too (GetTask, the status stream), as it is the cancel marker's.
  expect(await readStatus(clients.redis, waiting!)).toMatchObject({ state: "CANCELLED", error: "bad batch" });
  expect(await clients.redis.get(Keys.cancel(waiting!))).toBe("bad batch");
  expect((await readStatus(clients.redis, done!))?.state).toBe("SUCCEEDED");
  expect(await isCancelled(clients.redis, done!)).toBe(false);
});

test("with all: every unfinished task matching the filter, 500 per call, `more` and a token to go on with", async () => {
  const batch = crypto.randomUUID();
  const unfinished = await tasksIn("PENDING", 501, batch);
  const finished = await tasksIn("SUCCEEDED", 3, batch);
  const first = await g.admin.cancelTasks({ all: true, query: batch, reason: "incident 42" });
  expect(first.outcomes).toHaveLength(500);
  expect(first.outcomes.every((o) => o.result === CancelResult.CANCELLED)).toBe(true);
  expect(first.more).toBe(true);
  expect(first.nextPageToken).not.toBe("");
  const second = await g.admin.cancelTasks({ all: true, query: batch, pageToken: first.nextPageToken });
  expect(second.outcomes.map((o) => CancelResult[o.result])).toEqual(["CANCELLED"]);
  expect(second).toMatchObject({ more: false, nextPageToken: "" });
  expect((await g.admin.cancelTasks({ all: true, query: batch })).outcomes).toEqual([]);

  const cancelledIds = new Set([...first.outcomes, ...second.outcomes].map((o) => o.taskId));
  expect(cancelledIds).toEqual(new Set(unfinished));
  for (const taskId of finished) expect((await readStatus(clients.redis, taskId))?.state).toBe("SUCCEEDED");
});

test("dry_run: each task is reported as the call would treat it, and nothing changes", async () => {
  const batch = crypto.randomUUID();
  const unfinished = await tasksIn("SCHEDULED", 3, batch);
  const [done] = await tasksIn("SUCCEEDED", 1, batch);
  const unknown = crypto.randomUUID();
  const byId = await g.admin.cancelTasks({ taskIds: [unfinished[0]!, done!, unknown], dryRun: true });
  expect(byId.outcomes.map((o) => [o.taskId, CancelResult[o.result], TaskState[o.previousState]])).toEqual([
    [unfinished[0], "WOULD_CANCEL", "SCHEDULED"],
    [done, "ALREADY_FINISHED", "SUCCEEDED"],
    [unknown, "NOT_FOUND", "UNSPECIFIED"],
  ]);
  const all = await g.admin.cancelTasks({ all: true, query: batch, dryRun: true });
  expect(new Set(all.outcomes.map((o) => o.taskId))).toEqual(new Set(unfinished));
  expect(all.outcomes.every((o) => o.result === CancelResult.WOULD_CANCEL)).toBe(true);
  expect(all.more).toBe(false);
  for (const taskId of unfinished) {
    expect((await readStatus(clients.redis, taskId))?.state).toBe("SCHEDULED");
    expect(await isCancelled(clients.redis, taskId)).toBe(false);
  }
  // The real call then cancels exactly what the preview listed.
  const real = await g.admin.cancelTasks({ all: true, query: batch });
  expect(new Set(real.outcomes.map((o) => o.taskId))).toEqual(new Set(unfinished));
});

test("with all: a match older than one call's scan (10,000 index entries) is reached by following the token", async () => {
  const batch = crypto.randomUUID();
  const [old] = await tasksIn("SCHEDULED", 1, batch, Date.now() - 60_000);
  // Newer than it, and not matching: more than one call examines.
  await tasksIn("SCHEDULED", 10_001, crypto.randomUUID());
  const first = await g.admin.cancelTasks({ all: true, query: batch });
  expect(first.outcomes).toEqual([]);
  expect(first.more).toBe(true);
  const second = await g.admin.cancelTasks({ all: true, query: batch, pageToken: first.nextPageToken });
  expect(second.outcomes.map((o) => [o.taskId, CancelResult[o.result]])).toEqual([[old, "CANCELLED"]]);
});

test("bad requests are INVALID_ARGUMENT naming the field", async () => {
  const refused = async (request: Parameters<typeof g.admin.cancelTasks>[0]) => {
    const error = await g.admin.cancelTasks(request).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    return error?.rawMessage;
  };
  expect(await refused({})).toMatch(/^task_ids: give the ids of the tasks to cancel/);
  expect(await refused({ all: true })).toMatch(/^all: needs at least one filter field/);
  expect(await refused({ all: true, taskIds: [crypto.randomUUID()] })).toBe("task_ids: give task_ids or all, not both");
  expect(await refused({ type: "echo" })).toMatch(/^all: the filter fields need all: true/);
  expect(await refused({ all: true, state: TaskState.SUCCEEDED })).toBe(
    "state: only unfinished tasks can be cancelled (state SUCCEEDED is finished)",
  );
  expect(await refused({ taskIds: ["nope"] })).toMatch(/^task_ids: each id must be a UUID/);
  expect(await refused({ taskIds: [crypto.randomUUID()], pageToken: "x" })).toMatch(/^page_token: goes with all/);
  expect(await refused({ all: true, type: "echo", pageToken: "nonsense" })).toMatch(/^page_token: is not a token/);
});

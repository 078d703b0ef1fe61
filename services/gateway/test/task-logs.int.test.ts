/**
 * GetTaskLogs against a real nats-server and redis-server: a task's log read a page at a time from a cursor, with its
 * lines' times, levels, attempts and fields; `finished` once the task is; an unknown task NOT_FOUND; a malformed
 * cursor or a page too large INVALID_ARGUMENT naming the field. (What the workers write there:
 * services/worker/test/task-log.int.test.ts; another caller's task: task-isolation.int.test.ts.)
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { appendTaskLog, applyStatus } from "@tm/store";
import { useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import { logEntry as entry } from "../../../pkg/store/test/task-log-entries.js";
import { MAX_LOG_PAGE } from "../src/task-logs.js";
import { event, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const g = useGateway(infra);
const clients = useClients(infra);

test("a task's log a page at a time, then read on from the cursor; finished once the task is", async () => {
  const { taskId } = await g.client.submitTask({ type: "echo", payload: {} });
  const keep = { maxLines: 100, ttlSeconds: 600 };
  await appendTaskLog(
    clients.redis,
    taskId,
    [entry(1, { fields: { part: 7, nested: { of: 12 } } }), entry(2, { level: "warn" }), entry(3, { attempt: 2 })],
    keep,
  );
  // GetTask says how many there are.
  expect((await g.client.getTask({ taskId })).task?.logLines).toBe(3);
  const first = await g.client.getTaskLogs({ taskId, limit: 2 });
  expect(
    first.lines.map((l) => ({
      level: l.level,
      message: l.message,
      attempt: l.attempt,
      time: l.time && timestampDate(l.time).toISOString(),
      fields: l.fields,
    })),
  ).toEqual([
    { level: "info", message: "line 1", attempt: 1, time: entry(1).time, fields: { part: 7, nested: { of: 12 } } },
    { level: "warn", message: "line 2", attempt: 1, time: entry(2).time, fields: undefined },
  ]);
  expect(first).toMatchObject({ total: 3, dropped: 0, finished: false, nextCursor: first.lines[1]?.cursor });
  const second = await g.client.getTaskLogs({ taskId, after: first.nextCursor });
  expect(second.lines.map((l) => [l.attempt, l.message])).toEqual([[2, "line 3"]]);
  // Nothing new yet: the cursor stays, for the next ask.
  const idle = await g.client.getTaskLogs({ taskId, after: second.nextCursor });
  expect(idle).toMatchObject({ lines: [], nextCursor: second.nextCursor, finished: false });
  await appendTaskLog(clients.redis, taskId, [entry(4, { attempt: 2 })], keep);
  await applyStatus(clients.redis, event({ taskId, state: "SUCCEEDED", attempt: 2 }));
  const last = await g.client.getTaskLogs({ taskId, after: idle.nextCursor });
  expect(last.lines.map((l) => l.message)).toEqual(["line 4"]);
  expect(last.finished).toBe(true);
});

test("a task that logged nothing has an empty log; an unknown one is NOT_FOUND", async () => {
  const { taskId } = await g.client.submitTask({ type: "echo", payload: {} });
  expect(await g.client.getTaskLogs({ taskId })).toMatchObject({ lines: [], nextCursor: "", total: 0, dropped: 0 });
  expect((await g.client.getTask({ taskId })).task?.logLines).toBe(0);
  const unknown = crypto.randomUUID();
  const refused = await g.client.getTaskLogs({ taskId: unknown }).catch((error: unknown) => ConnectError.from(error));
  expect(refused).toMatchObject({ code: Code.NotFound, rawMessage: `task ${unknown} not found` });
});

test("a malformed cursor, a page over the limit and a malformed id are INVALID_ARGUMENT, naming the field", async () => {
  const { taskId } = await g.client.submitTask({ type: "echo", payload: {} });
  const refusal = (request: Parameters<typeof g.client.getTaskLogs>[0]) =>
    g.client.getTaskLogs(request).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
  expect(await refusal({ taskId, after: "yesterday" })).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: 'after: "yesterday" is not a log cursor (a line\'s number, e.g. "17")',
  });
  expect(await refusal({ taskId, limit: MAX_LOG_PAGE + 1 })).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: `limit: at most ${MAX_LOG_PAGE} lines a page (got ${MAX_LOG_PAGE + 1})`,
  });
  expect((await refusal({ taskId: "not-an-id" }))?.code).toBe(Code.InvalidArgument);
  // Bad input is told before the task is looked up: an unknown task with a bad cursor is INVALID_ARGUMENT.
  expect((await refusal({ taskId: crypto.randomUUID(), after: "x" }))?.code).toBe(Code.InvalidArgument);
});

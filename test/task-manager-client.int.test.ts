/**
 * TaskManagerClient (@tm/proto) against the whole pipeline, every service its own process: run() resolves a task's
 * result or rejects with its failure; waitFor() follows a task through a gateway restart and gives up on one that
 * stays away (maxOutageMs); submit() rides out a stopped gateway and refuses what no retry can change at once. And a
 * program in any language: SubmitTask and GetTask as JSON over HTTP on the web port, refusals as Connect's errors.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  GatewayOutageError,
  type RetryNotice,
  type SubmittedTask,
  TaskFailedError,
  TaskManagerClient,
  TaskState,
  type TaskStatus,
  WaitTimeoutError,
} from "@tm/proto";
import { appendTaskLog } from "@tm/store";
import { freePort, type SpawnedService, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "./support/pipeline.js";

let pipeline: Pipeline;
let gateway: SpawnedService;
let tm: TaskManagerClient;

/** The gateway's web port: the console's, serving the RPCs over the Connect protocol (JSON over HTTP/1.1) too. */
let webUrl: string;

beforeAll(async () => {
  const webPort = await freePort();
  // The gateway is restarted and its /metrics read: its own process; the rest share one.
  pipeline = await startPipeline({
    ownProcess: ["gateway"],
    perService: { gateway: { GATEWAY_WEB_PORT: String(webPort) } },
  });
  webUrl = `http://127.0.0.1:${webPort}`;
  gateway = pipeline.services.get("gateway")!;
  tm = new TaskManagerClient({ baseUrl: pipeline.gatewayUrl });
}, 90_000);
afterAll(async () => {
  await pipeline?.dispose();
});

/** The gateway's tm_status_streams_open gauge: the status streams it serves now. */
async function openStreams(): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`)).text();
  const line = metrics.split("\n").find((l) => l.startsWith("tm_status_streams_open"));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** The messages of a log's lines (Array.fromAsync is Node 22's). */
async function messagesOf(lines: AsyncIterable<{ message: string }>): Promise<string[]> {
  const messages: string[] = [];
  for await (const line of lines) messages.push(line.message);
  return messages;
}

/** Versions strictly increasing: each status heard once, in order. */
function expectEachOnce(statuses: TaskStatus[]): void {
  const versions = statuses.map((status) => Number(status.version));
  expect(versions).toEqual([...new Set(versions)].sort((a, b) => a - b));
}

test("run resolves with the result; a failed task rejects with a TaskFailedError naming why", async () => {
  const statuses: TaskStatus[] = [];
  const done = await tm.run(
    { type: "echo", payload: { order: 7 }, priority: "high", metadata: { tenant: "acme" } },
    { onStatus: (status) => statuses.push(status) },
  );
  expect(done.result).toEqual({ order: 7 });
  expect(done.task).toMatchObject({ taskId: done.taskId, type: "echo", metadata: { tenant: "acme" } });
  expect(done.task.status?.state).toBe(TaskState.SUCCEEDED);
  expect(statuses.at(-1)?.state).toBe(TaskState.SUCCEEDED);
  expectEachOnce(statuses);

  const failed = await tm.run({ type: "fail", maxAttempts: 2 }).catch((error: unknown) => error);
  expect(failed).toBeInstanceOf(TaskFailedError);
  expect(failed).toMatchObject({ state: "FAILED", attempt: 2, reason: expect.stringContaining("always fails") });
  expect((failed as TaskFailedError).message).toMatch(/^task \S+ \(fail\) ended FAILED: .*always fails/);
});

test("a task cancelled while run waits rejects it as CANCELLED; an unknown one is NOT_FOUND", async () => {
  const cancelled = await tm
    .run(
      { type: "echo", delayMs: 60_000 },
      { onSubmitted: ({ taskId }) => void tm.cancel(taskId, { reason: "not needed" }) },
    )
    .catch((error: unknown) => error);
  expect(cancelled).toBeInstanceOf(TaskFailedError);
  expect(cancelled).toMatchObject({ state: "CANCELLED", attempt: 0, reason: "not needed" });
  expect((cancelled as TaskFailedError).message).toMatch(/ended CANCELLED: not needed$/);
  expect((cancelled as TaskFailedError).task.status?.state).toBe(TaskState.CANCELLED);

  const unknown = await tm.waitFor(crypto.randomUUID()).catch((error: unknown) => error);
  expect(unknown).toBeInstanceOf(ConnectError);
  expect((unknown as ConnectError).code).toBe(Code.NotFound);
});

test("bad input: a field named before anything is sent; the gateway's refusal at once, not retried", async () => {
  await expect(tm.submit({ type: "echo", delayMs: -5 })).rejects.toThrow(
    new TypeError("invalid task request: delayMs must be a whole number ≥ 0 (got -5)"),
  );
  const retries: RetryNotice[] = [];
  const refused = await tm
    .submit({ type: "no-such-type" }, { onRetry: (notice) => retries.push(notice) })
    .catch((error: unknown) => error);
  expect(refused).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("no-such-type") });
  expect(retries).toEqual([]);
  expect(() => new TaskManagerClient({ baseUrl: pipeline.gatewayUrl, retries: -1 })).toThrow(/retries must be/);
});

test("submitMany: one outcome per task in order, across calls; a refusal refuses no other; keys deduplicate", async () => {
  const key = `order-${crypto.randomUUID()}`;
  const outcomes = await tm.submitMany(
    [
      { type: "echo", payload: { n: 1 } },
      { type: "no-such-type" },
      { type: "echo", payload: { n: 3 }, idempotencyKey: key },
    ],
    { batchSize: 2 },
  );
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  const [first, refused, third] = outcomes as [
    PromiseFulfilledResult<SubmittedTask>,
    PromiseRejectedResult,
    PromiseFulfilledResult<SubmittedTask>,
  ];
  expect(refused.reason).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage: expect.stringContaining("no-such-type"),
  });
  expect((await tm.waitFor(first.value.taskId)).result).toEqual({ n: 1 });
  expect((await tm.waitFor(third.value.taskId)).result).toEqual({ n: 3 });
  const [again] = await tm.submitMany([{ type: "echo", payload: { n: 4 }, idempotencyKey: key }]);
  expect(again).toEqual({
    status: "fulfilled",
    value: { taskId: third.value.taskId, deduplicated: true, replaced: false },
  });

  await expect(tm.submitMany([{ type: "echo" }, { type: "echo", priority: "urgent" as "high" }])).rejects.toThrow(
    new TypeError('invalid task request: requests[1]: priority must be "high", "medium" or "low" (got "urgent")'),
  );
});

test("submitMany with dependsOnBatchItems: a graph across calls runs each task after what it waits for", async () => {
  // Calls of two: the join (3) waits for the first two (the call before, named by id) and the third (its own call).
  const outcomes = await tm.submitMany(
    [
      { type: "sleep", payload: { ms: 300 } },
      { type: "echo", payload: { n: 2 } },
      { type: "echo", payload: { n: 3 }, dependsOnBatchItems: [0] },
      { type: "echo", payload: { n: 4 }, dependsOnBatchItems: [0, 1, 2] },
    ],
    { batchSize: 2 },
  );
  const ids = outcomes.map((outcome) => (outcome as PromiseFulfilledResult<SubmittedTask>).value.taskId);
  expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
  // The gateway holds each task until what it waits for SUCCEEDED (services/gateway/test/dependencies.int.test.ts):
  // here, that the list's places became those tasks, by id across calls and by place within one.
  expect((await tm.getTask(ids[2]!)).dependsOn).toEqual([ids[0]]);
  const join = await tm.waitFor(ids[3]!);
  expect(join.result).toEqual({ n: 4 });
  expect([...join.dependsOn].sort()).toEqual([ids[0], ids[1], ids[2]].sort());
  const tasks = await Promise.all(ids.map((id) => tm.getTask(id)));
  expect(tasks.map((task) => task.status?.state)).toEqual(Array(4).fill(TaskState.SUCCEEDED));
});

test("logs reads a task's lines, and with follow the later ones until it has finished", async () => {
  // Delayed: unfinished while it is read. Its lines are stored as a worker stores ctx.log's.
  const { taskId } = await tm.submit({ type: "echo", delayMs: 600_000 });
  const line = (message: string) => ({
    time: new Date().toISOString(),
    level: "info",
    message,
    attempt: 1,
    generation: 0,
  });
  const append = (...messages: string[]) =>
    appendTaskLog(pipeline.redisClient, taskId, messages.map(line), { maxLines: 1_000, ttlSeconds: 3_600 });
  await append("first", "second");
  expect(await messagesOf(tm.logs(taskId))).toEqual(["first", "second"]);

  const seen: string[] = [];
  let heard!: () => void;
  const secondHeard = new Promise<void>((resolve) => {
    heard = resolve;
  });
  const following = (async () => {
    for await (const l of tm.logs(taskId, { follow: true, pollMs: 50 })) {
      seen.push(l.message);
      if (seen.length === 2) heard();
    }
  })();
  await secondHeard;
  await append("third");
  await waitFor("the third line followed", async () => seen.length === 3, { timeoutMs: 10_000, intervalMs: 20 });
  await tm.cancel(taskId);
  await following; // ends once a page read after the task finished comes back empty
  expect(seen).toEqual(["first", "second", "third"]);
  await expect(messagesOf(tm.logs(crypto.randomUUID()))).rejects.toMatchObject({ code: Code.NotFound });
});

test("waitFor's timeout gives up waiting, not the task", async () => {
  const { taskId } = await tm.submit({ type: "sleep", payload: { ms: 1_500 } });
  const early = await tm.waitFor(taskId, { timeoutMs: 100 }).catch((error: unknown) => error);
  expect(early).toBeInstanceOf(WaitTimeoutError);
  expect(early).toMatchObject({ taskId, message: expect.stringContaining("had not finished after 100 ms") });
  expect((await tm.waitFor(taskId)).status?.state).toBe(TaskState.SUCCEEDED);
});

test("waitFor follows a task through a gateway restart, hearing each status once", async () => {
  // A task waiting for its time: its status does not change while the gateway is away, so the re-opened stream's
  // first message repeats the status the follower last heard, which it must skip.
  const { taskId } = await tm.submit({ type: "echo", payload: { n: 1 }, delayMs: 600_000 });
  const statuses: TaskStatus[] = [];
  let heard!: () => void;
  const pending = new Promise<void>((resolve) => {
    heard = resolve;
  });
  const waiting = tm.waitFor(taskId, {
    onStatus: (status) => {
      statuses.push(status);
      heard();
    },
  });
  await pending;
  await gateway.process.stop();
  gateway.process.start();
  await gateway.ready();
  await waitFor("the follower's stream open on the restarted gateway", async () => (await openStreams()) === 1, {
    timeoutMs: 20_000,
    intervalMs: 50,
  });
  await tm.tasks.promoteTask({ taskId });
  const task = await waiting;
  expect(task.status?.state).toBe(TaskState.SUCCEEDED);
  expect(task.result).toEqual({ n: 1 });
  expect(statuses.map((status) => TaskState[status.state])).toEqual([
    "PENDING",
    "INGESTED",
    "SCHEDULED",
    "RUNNING",
    "SUCCEEDED",
  ]);
  expectEachOnce(statuses);
});

test("submit and submitMany retry while the gateway is stopped; a gateway that stays away ends waitFor", async () => {
  const { taskId: earlier } = await tm.submit({ type: "sleep", payload: { ms: 30_000 } });
  await gateway.process.stop();
  try {
    const patient = new TaskManagerClient({ baseUrl: pipeline.gatewayUrl, retries: 20, maxOutageMs: 1_500 });
    const gaveUp = await patient.waitFor(earlier).catch((error: unknown) => error);
    expect(gaveUp).toBeInstanceOf(GatewayOutageError);
    expect(gaveUp).toMatchObject({ taskId: earlier, message: expect.stringContaining("gateway was unavailable") });

    const retries: RetryNotice[] = [];
    let restarted: Promise<void> | undefined;
    const submitted = patient.submit(
      { type: "echo", payload: { after: "restart" } },
      {
        onRetry: (notice) => {
          retries.push(notice);
          // The first refusal seen: bring the gateway back while the submission waits to try again.
          restarted ??= (async () => {
            gateway.process.start();
            await gateway.ready();
          })();
        },
      },
    );
    const { taskId, deduplicated } = await submitted;
    await restarted;
    expect(retries.length).toBeGreaterThan(0);
    expect(deduplicated).toBe(false);
    expect((await patient.waitFor(taskId)).result).toEqual({ after: "restart" });

    // A list while the gateway is stopped again: sent again once it is back, every task taken once.
    await gateway.process.stop();
    restarted = undefined;
    const listRetries: RetryNotice[] = [];
    const listed = await patient.submitMany(
      [
        { type: "echo", payload: { i: 1 } },
        { type: "echo", payload: { i: 2 } },
      ],
      {
        onRetry: (notice) => {
          listRetries.push(notice);
          restarted ??= (async () => {
            gateway.process.start();
            await gateway.ready();
          })();
        },
      },
    );
    await restarted;
    expect(listRetries.length).toBeGreaterThan(0);
    expect(listed.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled"]);
    for (const [i, outcome] of listed.entries()) {
      const { taskId: listedId } = (outcome as PromiseFulfilledResult<SubmittedTask>).value;
      expect((await patient.waitFor(listedId)).result).toEqual({ i: i + 1 });
    }
  } finally {
    if (!gateway.process.running) {
      gateway.process.start();
      await gateway.ready();
    }
    await tm.cancel(earlier).catch(() => undefined);
  }
});

/** POSTs a JSON request to a TaskService RPC on the web port, as curl or any language's HTTP client would. */
async function postJson(method: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${webUrl}/taskmanager.v1.TaskService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

test("any language: SubmitTask and GetTask as JSON over HTTP (the Connect protocol on the web port)", async () => {
  const submitted = await postJson(
    "SubmitTask",
    '{"type": "echo", "payload": {"from": "curl"}, "priority": "PRIORITY_HIGH", "metadata": {"lang": "shell"}}',
  );
  expect(submitted.status).toBe(200);
  const taskId = submitted.json.taskId as string;
  expect(taskId).toMatch(/^[0-9a-f-]{36}$/);
  await waitFor(
    "the task SUCCEEDED, read as JSON",
    async () => {
      const { json } = await postJson("GetTask", JSON.stringify({ taskId }));
      return (json.task as { status?: { state?: string } } | undefined)?.status?.state === "TASK_STATE_SUCCEEDED";
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
  const { json } = await postJson("GetTask", JSON.stringify({ taskId }));
  expect(json.task).toMatchObject({
    taskId,
    type: "echo",
    priority: "PRIORITY_HIGH",
    payload: { from: "curl" },
    result: { from: "curl" },
    metadata: { lang: "shell" },
  });

  // Refusals are Connect's JSON errors: an HTTP status, a code and the gateway's message naming the problem.
  expect(await postJson("SubmitTask", '{"type": "no-such-type"}')).toMatchObject({
    status: 400,
    json: { code: "invalid_argument", message: expect.stringContaining("no-such-type") },
  });
  expect(await postJson("SubmitTask", '{"type": "echo", "delay": "soon"}')).toMatchObject({
    status: 400,
    json: { code: "invalid_argument" },
  });
  expect(await postJson("GetTask", JSON.stringify({ taskId: crypto.randomUUID() }))).toMatchObject({
    status: 404,
    json: { code: "not_found" },
  });
});

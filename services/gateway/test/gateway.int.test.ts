import { Code } from "@connectrpc/connect";
import { CANCEL_SUBJECT, CancelNoticeSchema, type StatusEvent, Subjects, type TaskMessage } from "@tm/flow";
import {
  createHealthClient,
  createTaskClient,
  Priority,
  ServingStatus,
  type StreamTaskStatusResponse,
  type SubmitTaskAndStreamStatusResponse,
  type TaskClient,
  TaskService,
  TaskState,
} from "@tm/proto";
import { applyStatus, Keys, readStatus, saveTask, toStoredStatus } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { event, type Gateway, rejection, startGateway, streamMessagesOf } from "./helpers.js";

const infra = useInfra();
let first: Gateway;
let second: Gateway;
let client: TaskClient;
let secondClient: TaskClient;
let nc: NatsConnection;
let redis: Redis;

beforeAll(async () => {
  [first, second] = await Promise.all([startGateway(infra), startGateway(infra)]);
  client = createTaskClient({ baseUrl: first.baseUrl });
  secondClient = createTaskClient({ baseUrl: second.baseUrl });
  nc = await connect({ servers: infra.nats.url });
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  await Promise.all([first?.stop(), second?.stop()]);
  await nc?.drain();
  redis?.disconnect();
});

/** Every tasks.ingest message currently in the TASKS stream for one task. */
async function ingestMessagesFor(taskId: string): Promise<TaskMessage[]> {
  return (await streamMessagesOf(nc, "TASKS", Subjects.ingest, taskId)).map((stored) => stored.message);
}

async function drain(stream: AsyncIterable<StreamTaskStatusResponse>) {
  const seen: StreamTaskStatusResponse[] = [];
  for await (const message of stream) seen.push(message);
  return seen;
}

/** Each message's status version is greater than the one before: no duplicate, never backwards. */
function expectStrictlyIncreasingVersions(messages: { status?: { version: bigint } | undefined }[]) {
  const versions = messages.map((m) => m.status?.version ?? 0n);
  expect(versions).toEqual([...versions].sort((a, b) => (a < b ? -1 : 1)));
  expect(new Set(versions).size).toBe(versions.length);
}

describe("SubmitTask", () => {
  test("stores the task, its PENDING status and queues one tasks.ingest message", async () => {
    const { taskId, deduplicated } = await client.submitTask({
      type: "echo",
      payload: { hello: "world" },
      priority: Priority.HIGH,
      metadata: { team: "qa" },
    });
    expect(deduplicated).toBe(false);
    const hash = await redis.hgetall(Keys.task(taskId));
    expect(hash).toMatchObject({ taskId, type: "echo", priority: "high", payload: '{"hello":"world"}' });
    expect((await readStatus(redis, taskId))?.state).toBe("PENDING");
    const [message] = await ingestMessagesFor(taskId);
    expect(message).toMatchObject({ taskId, type: "echo", priority: "high", payload: { hello: "world" } });
    expect(message?.metadata).toEqual({ team: "qa" });

    const { task } = await client.getTask({ taskId });
    expect(task?.status?.state).toBe(TaskState.PENDING);
    expect(task?.priority).toBe(Priority.HIGH);
    expect(task?.payload).toEqual({ hello: "world" });
    expect(task?.metadata).toEqual({ team: "qa" });
    expect(task?.createdAt?.seconds).toBeGreaterThan(0n);
    expect(task?.result).toBeUndefined();
  });

  test("a task's own timeout and max_attempts are stored, shown by GetTask and carried to the worker", async () => {
    const { taskId } = await client.submitTask({
      type: "sleep",
      payload: { ms: 10 },
      timeout: { seconds: 2n, nanos: 500_000_000 },
      maxAttempts: 1,
    });
    expect(await redis.hmget(Keys.task(taskId), "timeoutMs", "maxAttempts")).toEqual(["2500", "1"]);
    const [message] = await ingestMessagesFor(taskId);
    expect(message).toMatchObject({ taskId, timeoutMs: 2_500, maxAttempts: 1 });
    const { task } = await client.getTask({ taskId });
    expect(task?.timeout).toMatchObject({ seconds: 2n, nanos: 500_000_000 });
    expect(task?.maxAttempts).toBe(1);

    // Unset, nothing is stored or sent: the worker's and the pipeline's defaults apply.
    const plain = await client.submitTask({ type: "echo" });
    const [plainMessage] = await ingestMessagesFor(plain.taskId);
    expect(plainMessage).not.toHaveProperty("timeoutMs");
    expect(plainMessage).not.toHaveProperty("maxAttempts");
    const plainTask = (await client.getTask({ taskId: plain.taskId })).task;
    expect(plainTask?.maxAttempts).toBe(0);
    expect(plainTask?.timeout).toBeUndefined();

    const refused = await rejection(client.submitTask({ type: "echo", maxAttempts: 9 }));
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toMatch(/^max_attempts: 9 exceeds the pipeline's 5 deliveries per message/);
  });

  test("a task's own retry backoff and expiry are stored, shown by GetTask, and carried to the worker", async () => {
    const retryBackoff = { delay: { nanos: 250_000_000 }, multiplier: 3, maxDelay: { seconds: 4n }, jitter: 0.1 };
    const { taskId } = await client.submitTask({
      type: "flaky",
      payload: { failures: 1 },
      retryBackoff,
      expiresAfter: { seconds: 90n },
    });
    const stored = { delayMs: 250, multiplier: 3, maxDelayMs: 4_000, jitter: 0.1 };
    expect(JSON.parse((await redis.hget(Keys.task(taskId), "retryBackoff"))!)).toEqual(stored);
    expect(await redis.hget(Keys.task(taskId), "expiresAfterMs")).toBe("90000");
    const [message] = await ingestMessagesFor(taskId);
    expect(message).toMatchObject({ taskId, retryBackoff: stored, expiresAfterMs: 90_000 });
    const { task } = await client.getTask({ taskId });
    expect(task?.retryBackoff).toMatchObject({
      delay: { seconds: 0n, nanos: 250_000_000 },
      multiplier: 3,
      maxDelay: { seconds: 4n, nanos: 0 },
      jitter: 0.1,
    });
    expect(task?.expiresAfter).toMatchObject({ seconds: 90n, nanos: 0 });

    // Unset, nothing is stored or sent: the pipeline's FLOW_RETRY_DELAYS_MS apply, and the task never expires.
    const plain = await client.submitTask({ type: "echo" });
    expect(await redis.hexists(Keys.task(plain.taskId), "retryBackoff")).toBe(0);
    expect((await ingestMessagesFor(plain.taskId))[0]).not.toHaveProperty("retryBackoff");
    expect((await ingestMessagesFor(plain.taskId))[0]).not.toHaveProperty("expiresAfterMs");
    expect((await client.getTask({ taskId: plain.taskId })).task?.retryBackoff).toBeUndefined();

    const refused = await rejection(client.submitTask({ type: "echo", retryBackoff: { multiplier: 2 } }));
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toMatch(/^retry_backoff\.delay: is required/);
  });

  test("a repeated idempotency key returns the first task and queues nothing more", async () => {
    const idempotencyKey = `key-${crypto.randomUUID()}`;
    const a = await client.submitTask({ type: "echo", idempotencyKey });
    const tasksBefore = (await redis.keys("task:*")).length;
    const b = await secondClient.submitTask({ type: "echo", idempotencyKey });
    expect(a.deduplicated).toBe(false);
    expect(b).toMatchObject({ taskId: a.taskId, deduplicated: true });
    expect((await ingestMessagesFor(a.taskId)).length).toBe(1);
    expect((await redis.keys("task:*")).length).toBe(tasksBefore);
  });

  test("a retry completes a submission that was interrupted, under the first id, queueing it exactly once", async () => {
    // First attempt died right after claiming the key: nothing else was written.
    const lostKey = `key-${crypto.randomUUID()}`;
    const lostId = crypto.randomUUID();
    await redis.set(Keys.idempotency(lostKey), lostId);
    const resumed = await client.submitTask({ type: "echo", payload: { n: 1 }, idempotencyKey: lostKey });
    expect(resumed).toMatchObject({ taskId: lostId, deduplicated: true });
    expect((await readStatus(redis, lostId))?.state).toBe("PENDING");
    expect((await ingestMessagesFor(lostId)).map((m) => m.payload)).toEqual([{ n: 1 }]);

    // First attempt saved the task and PENDING, but its tasks.ingest publish failed.
    const key = `key-${crypto.randomUUID()}`;
    const taskId = crypto.randomUUID();
    await redis.set(Keys.idempotency(key), taskId);
    const createdAt = new Date().toISOString();
    await saveTask(redis, {
      taskId,
      type: "echo",
      priority: "low",
      payload: { n: 2 },
      metadata: {},
      createdAt,
      generation: 0,
    });
    await applyStatus(redis, event({ taskId, state: "PENDING" }));
    expect(await ingestMessagesFor(taskId)).toHaveLength(0);
    // Retrying completes it once; retrying again and again never queues it twice (same message id, deduplicated).
    for (let i = 0; i < 3; i++) {
      expect(await secondClient.submitTask({ type: "echo", idempotencyKey: key })).toMatchObject({
        taskId,
        deduplicated: true,
      });
    }
    const queued = await ingestMessagesFor(taskId);
    expect(queued.map((m) => [m.payload, m.priority, m.createdAt])).toEqual([[{ n: 2 }, "low", createdAt]]);
  });

  test("a repeat after its task's records expired (kept less than the key) answers its id and submits nothing", async () => {
    const idempotencyKey = `key-${crypto.randomUUID()}`;
    const first = await client.submitTask({ type: "echo", payload: { n: 1 }, idempotencyKey });
    expect(await redis.get(Keys.idempotency(idempotencyKey))).toBe(`${first.taskId} saved`);
    // What TASK_RETENTION_SECONDS (or a succeeded retention) shorter than the key's day does: the records go first.
    await redis.del(Keys.task(first.taskId), Keys.status(first.taskId), Keys.history(first.taskId));
    const again = await secondClient.submitTask({ type: "echo", payload: { n: 1 }, idempotencyKey });
    expect(again).toMatchObject({ taskId: first.taskId, deduplicated: true });
    // Not made again (it would run again): no record, one tasks.ingest message, the first's.
    expect(await redis.exists(Keys.task(first.taskId))).toBe(0);
    expect(await ingestMessagesFor(first.taskId)).toHaveLength(1);
    const missing = await rejection(client.getTask({ taskId: first.taskId }));
    expect(missing.code).toBe(Code.NotFound);
  });

  test.each([
    ["an unknown type", { type: "teleport" }, 'type: unknown task type "teleport"'],
    ["an undefined priority", { type: "echo", priority: 42 as Priority }, "priority:"],
    ["too much metadata", { type: "echo", metadata: { ["k".repeat(200)]: "v" } }, "metadata:"],
  ])("%s is INVALID_ARGUMENT naming the field", async (_name, request, message) => {
    const error = await rejection(client.submitTask(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
  });

  test("gRPC calls are counted and timed by method and status code on /metrics", async () => {
    await client.submitTask({ type: "echo" });
    await rejection(client.submitTask({ type: "teleport" }));
    const metrics = await (await fetch(`http://127.0.0.1:${first.opsPort}/metrics`)).text();
    const count = (code: string) =>
      Number(
        new RegExp(
          `^tm_rpc_server_duration_ms_count\\{(?=[^}]*method="taskmanager\\.v1\\.TaskService/SubmitTask")(?=[^}]*code="${code}")[^}]*\\} (\\d+)$`,
          "m",
        ).exec(metrics)?.[1] ?? 0,
      );
    expect(count("OK")).toBeGreaterThanOrEqual(1);
    expect(count("INVALID_ARGUMENT")).toBeGreaterThanOrEqual(1);
  });

  test("a payload over GATEWAY_MAX_PAYLOAD_BYTES is RESOURCE_EXHAUSTED naming the field and the limit", async () => {
    const error = await rejection(client.submitTask({ type: "echo", payload: { blob: "x".repeat(70_000) } }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toMatch(/^payload: \d+ bytes of JSON exceeds the limit of 65536 bytes$/);
  });
});

describe("GetTask, CancelTask and StreamTaskStatus reject bad ids", () => {
  const unknownId = "00000000-0000-4000-8000-000000000000";
  test.each([
    ["GetTask", (taskId: string) => client.getTask({ taskId })],
    ["CancelTask", (taskId: string) => client.cancelTask({ taskId })],
    ["StreamTaskStatus", (taskId: string) => drain(client.streamTaskStatus({ taskId }))],
  ])("%s: malformed → INVALID_ARGUMENT, unknown → NOT_FOUND", async (_name, call) => {
    const malformed = await rejection(call("not-a-uuid"));
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(malformed.rawMessage).toBe("task_id: must be a UUID");
    const unknown = await rejection(call(unknownId));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toContain(unknownId);
  });
});

describe("StreamTaskStatus", () => {
  test("sends the current status, then strictly newer versions, and ends after a terminal state", async () => {
    const { taskId } = await client.submitTask({ type: "sleep", payload: { ms: 10 } });
    const seen: StreamTaskStatusResponse[] = [];
    // Opened on the SECOND gateway: updates travel through Redis, whichever replica accepted the task.
    const done = (async () => {
      for await (const message of secondClient.streamTaskStatus({ taskId })) seen.push(message);
    })();
    await waitFor("the current status", () => seen.length >= 1);
    expect(seen[0]?.status?.state).toBe(TaskState.PENDING);

    const ingested = event({ taskId, state: "INGESTED" });
    expect(await applyStatus(redis, ingested)).toBe(true);
    // A late and a duplicate update, as a lagging notifier replica might publish them: both must be dropped.
    const stale: StatusEvent = event({ taskId, state: "PENDING" });
    await redis.publish(Keys.statusChannel(taskId), JSON.stringify(toStoredStatus(stale)));
    await redis.publish(Keys.statusChannel(taskId), JSON.stringify(toStoredStatus(ingested)));
    await applyStatus(redis, event({ taskId, state: "RUNNING", attempt: 1, progress: 50 }));
    await applyStatus(redis, event({ taskId, state: "SUCCEEDED", attempt: 1 }));
    await redis.set(
      Keys.result(taskId),
      JSON.stringify({
        taskId,
        type: "sleep",
        output: "done",
        attempts: 1,
        completedAt: "",
        durationMs: 1,
        generation: 0,
      }),
    );
    await done; // the stream ended by itself after SUCCEEDED

    expect(seen.map((m) => m.status?.state)).toEqual([
      TaskState.PENDING,
      TaskState.INGESTED,
      TaskState.RUNNING,
      TaskState.SUCCEEDED,
    ]);
    expectStrictlyIncreasingVersions(seen);
    expect(seen[2]?.status).toMatchObject({ attempt: 1, progress: 50 });

    const { task } = await client.getTask({ taskId });
    expect(task?.status?.state).toBe(TaskState.SUCCEEDED);
    expect(task?.result).toEqual({ value: "done" });
  });

  test("sends each progress report, also those at an unchanged percent, and GetTask shows the last", async () => {
    const { taskId } = await client.submitTask({ type: "sleep", payload: { ms: 10 } });
    const seen: StreamTaskStatusResponse[] = [];
    const done = (async () => {
      for await (const message of secondClient.streamTaskStatus({ taskId })) seen.push(message);
    })();
    await waitFor("the current status", () => seen.length >= 1);
    const report = (number: number, message: string, details?: Record<string, unknown>) =>
      event({ taskId, state: "RUNNING", attempt: 1, progress: 40, report: { number, message, details } });
    expect(await applyStatus(redis, report(1, "reading", { rows: 10 }))).toBe(true);
    expect(await applyStatus(redis, report(2, "writing"))).toBe(true);
    // The first report again (a redelivery): stale, neither stored nor sent.
    expect(await applyStatus(redis, report(1, "reading", { rows: 10 }))).toBe(false);
    await waitFor("both reports streamed", () => seen.length >= 3);
    const { task } = await client.getTask({ taskId });
    expect(task?.status).toMatchObject({ progress: 40, progressReport: 2, progressMessage: "writing" });
    expect(task?.status?.progressDetails).toBeUndefined();
    await applyStatus(redis, event({ taskId, state: "CANCELLED" }));
    await done;
    expect(seen.map((m) => [m.status?.progressReport, m.status?.progressMessage, m.status?.progressDetails])).toEqual([
      [0, "", undefined],
      [1, "reading", { rows: 10 }],
      [2, "writing", undefined],
      [0, "", undefined],
    ]);
  });

  test("a stream of a finished task sends its status and ends", async () => {
    const { taskId } = await client.submitTask({ type: "echo" });
    await client.cancelTask({ taskId });
    const seen = await drain(client.streamTaskStatus({ taskId }));
    expect(seen.map((m) => m.status?.state)).toEqual([TaskState.CANCELLED]);
  });

  test("a client that goes away releases its subscription", async () => {
    const { taskId } = await client.submitTask({ type: "echo" });
    const controller = new AbortController();
    const stream = client.streamTaskStatus({ taskId }, { signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.status?.state).toBe(TaskState.PENDING);
    const channel = Keys.statusChannel(taskId);
    const subscribers = async () => ((await redis.pubsub("NUMSUB", channel)) as [string, number])[1];
    expect(await subscribers()).toBe(1);
    controller.abort();
    await waitFor("the channel to be unsubscribed", async () => (await subscribers()) === 0);
  });
});

describe("SubmitTaskAndStreamStatus", () => {
  /** The task_status:* channels this test's gateways are subscribed to. */
  const statusChannels = async () => ((await redis.pubsub("CHANNELS", "task_status:*")) as string[]).sort();

  test("queues the task as SubmitTask does, sends PENDING with the id first, then every newer update, and ends", async () => {
    const seen: SubmitTaskAndStreamStatusResponse[] = [];
    const done = (async () => {
      for await (const message of client.submitTaskAndStreamStatus({
        type: "echo",
        payload: { hello: "world" },
        priority: Priority.LOW,
        metadata: { team: "qa" },
      })) {
        seen.push(message);
      }
    })();
    await waitFor("the first message", () => seen.length >= 1);
    const taskId = seen[0]?.taskId ?? "";
    expect(seen[0]).toMatchObject({ taskId, deduplicated: false, status: { state: TaskState.PENDING } });
    // What SubmitTask would have written and queued, once.
    expect(await redis.hgetall(Keys.task(taskId))).toMatchObject({ taskId, type: "echo", priority: "low" });
    const queued = await ingestMessagesFor(taskId);
    expect(queued.length).toBe(1);
    expect(queued[0]).toMatchObject({ payload: { hello: "world" }, metadata: { team: "qa" } });
    // The gateway holds the task's channel (opened beside the task's writes) while the stream runs.
    await waitFor("the task's channel subscribed", async () =>
      (await statusChannels()).includes(Keys.statusChannel(taskId)),
    );

    const ingested = event({ taskId, state: "INGESTED" });
    await applyStatus(redis, ingested);
    await redis.publish(Keys.statusChannel(taskId), JSON.stringify(toStoredStatus(ingested))); // a duplicate
    await applyStatus(redis, event({ taskId, state: "RUNNING", attempt: 1 }));
    await applyStatus(redis, event({ taskId, state: "FAILED", attempt: 1, error: "boom" }));
    await done; // ended by itself after the terminal state

    expect(seen.map((m) => m.status?.state)).toEqual([
      TaskState.PENDING,
      TaskState.INGESTED,
      TaskState.RUNNING,
      TaskState.FAILED,
    ]);
    expect(seen.every((m) => m.taskId === taskId && !m.deduplicated)).toBe(true);
    expectStrictlyIncreasingVersions(seen);
    await waitFor(
      "the channel to be unsubscribed",
      async () => !(await statusChannels()).includes(Keys.statusChannel(taskId)),
    );
  });

  test("an invalid submission fails as SubmitTask would, before any message, leaving nothing behind", async () => {
    const tasksBefore = (await redis.keys("task:*")).length;
    const seen: unknown[] = [];
    const error = await rejection(
      (async () => {
        for await (const message of client.submitTaskAndStreamStatus({ type: "no-such-type" })) seen.push(message);
      })(),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^type: /);
    expect(seen).toEqual([]);
    expect((await redis.keys("task:*")).length).toBe(tasksBefore);
    await waitFor("no subscription left behind", async () => (await statusChannels()).length === 0);
  });

  test("a submission that fails once its channel is subscribed leaves no subscription behind", async () => {
    // Redis refuses writes (the task's scripts) but still serves SUBSCRIBE: the failure comes after the subscription.
    await redis.config("SET", "maxmemory", "1");
    try {
      const seen: unknown[] = [];
      const error = await rejection(
        (async () => {
          for await (const message of client.submitTaskAndStreamStatus({ type: "echo" })) seen.push(message);
        })(),
      );
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toContain("Redis unavailable while saving the task");
      expect(seen).toEqual([]);
    } finally {
      await redis.config("SET", "maxmemory", "0");
    }
    await waitFor("no subscription left behind", async () => (await statusChannels()).length === 0);
  });

  test("a repeated idempotency key streams the first task, marked deduplicated, and queues nothing more", async () => {
    const idempotencyKey = `key-${crypto.randomUUID()}`;
    const first = await client.submitTask({ type: "echo", idempotencyKey });
    const iterator = secondClient.submitTaskAndStreamStatus({ type: "echo", idempotencyKey })[Symbol.asyncIterator]();
    const opening = (await iterator.next()).value as SubmitTaskAndStreamStatusResponse;
    expect(opening).toMatchObject({
      taskId: first.taskId,
      deduplicated: true,
      status: { state: TaskState.PENDING },
    });
    await client.cancelTask({ taskId: first.taskId });
    const rest: SubmitTaskAndStreamStatusResponse[] = [];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) rest.push(next.value);
    expect(rest.map((m) => [m.taskId, m.deduplicated, m.status?.state])).toEqual([
      [first.taskId, true, TaskState.CANCELLED],
    ]);
    expect((await ingestMessagesFor(first.taskId)).length).toBe(1);
  });

  test("a client that goes away after the first message releases its subscription", async () => {
    const controller = new AbortController();
    const iterator = client
      .submitTaskAndStreamStatus({ type: "echo" }, { signal: controller.signal })
      [Symbol.asyncIterator]();
    const { taskId } = (await iterator.next()).value as SubmitTaskAndStreamStatusResponse;
    const channel = Keys.statusChannel(taskId);
    await waitFor("the task's channel subscribed", async () => (await statusChannels()).includes(channel));
    controller.abort();
    await waitFor("the channel to be unsubscribed", async () => !(await statusChannels()).includes(channel));
  });
});

describe("CancelTask", () => {
  test("cancels a pending task, marks it, broadcasts a notice; a second cancel is FAILED_PRECONDITION", async () => {
    const { taskId } = await client.submitTask({ type: "sleep", payload: { ms: 60_000 } });
    const notices: unknown[] = [];
    const sub = nc.subscribe(CANCEL_SUBJECT);
    void (async () => {
      for await (const msg of sub) notices.push(CancelNoticeSchema.parse(msg.json()));
    })();
    await nc.flush();

    const { status } = await client.cancelTask({ taskId, reason: "changed my mind" });
    // The answer, the stored status and GetTask name the reason.
    expect(status).toMatchObject({ state: TaskState.CANCELLED, error: "changed my mind" });
    expect(await redis.get(Keys.cancel(taskId))).toBe("changed my mind");
    expect(await readStatus(redis, taskId)).toMatchObject({ state: "CANCELLED", error: "changed my mind" });
    expect((await client.getTask({ taskId })).task?.status?.error).toBe("changed my mind");
    await waitFor("the cancel notice", () => notices.length > 0);
    expect(notices[0]).toMatchObject({ taskId, reason: "changed my mind" });
    sub.unsubscribe();

    const again = await rejection(client.cancelTask({ taskId }));
    expect(again.code).toBe(Code.FailedPrecondition);
    expect(again.rawMessage).toContain("CANCELLED");
  });
});

test("health reports SERVING for the server and TaskService", async () => {
  const health = createHealthClient({ baseUrl: first.baseUrl });
  expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
  expect((await health.check({ service: TaskService.typeName })).status).toBe(ServingStatus.SERVING);
});

test("a GRPC_PORT already in use stops start-up with a clear message", async () => {
  await expect(startGateway(infra, { GRPC_PORT: String(first.started.grpcPort) })).rejects.toThrow(
    `GRPC_PORT ${first.started.grpcPort} is already in use`,
  );
});

test("stopping a gateway ends its open streams with UNAVAILABLE and does not wait for them", async () => {
  const third = await startGateway(infra);
  const { taskId } = await client.submitTask({ type: "echo" });
  const iterator = createTaskClient({ baseUrl: third.baseUrl }).streamTaskStatus({ taskId })[Symbol.asyncIterator]();
  expect((await iterator.next()).value?.status?.state).toBe(TaskState.PENDING);
  const started = Date.now();
  const [ended] = await Promise.all([rejection(iterator.next()), third.stop()]);
  expect(ended.code).toBe(Code.Unavailable);
  expect(ended.rawMessage).toContain("shutting down");
  expect(Date.now() - started).toBeLessThan(5_000);
});

/**
 * SubmitTasks against a real nats-server and redis-server: a batch's tasks are each submitted as SubmitTask submits
 * one (saved PENDING, queued once on tasks.ingest, audited), answered one outcome per task in the request's order;
 * one task's refusal is its own; idempotency keys hold across a retried batch and within one; the batch's size is
 * bounded; the rate limit counts its tasks; and an outage mid-batch loses nothing: after a Redis outage the refused
 * tasks, sent again with their keys, are each queued once; across a NATS restart the batch waits and queues each once.
 */
import { Code } from "@connectrpc/connect";
import { Subjects } from "@tm/flow";
import { createTaskClient, type SubmitTaskOutcome, type SubmitTaskRequest, TaskState } from "@tm/proto";
import { Keys, readStatus } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { rejection, startGateway, storedMessagesOf, useGateway } from "./helpers.js";

const infra = useInfra();
let nc: NatsConnection;
let redis: Redis;

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  redis = new Redis(infra.redis.url);
  // The Redis outage below is on purpose: this client reconnects after it without a word.
  redis.on("error", () => undefined);
});
afterAll(async () => {
  await nc?.close();
  redis?.disconnect();
});

/** How many messages of `subject` a stream holds per key (`keyOf` a message's JSON; undefined: not counted), in one
 *  pass over the stream. */
async function streamCounts<M>(stream: string, subject: string, keyOf: (message: M) => string | undefined) {
  const counts = new Map<string, number>();
  for await (const stored of storedMessagesOf(nc, stream)) {
    if (stored.subject !== subject) continue;
    const key = keyOf(stored.json<M>());
    if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** How many tasks.ingest messages the TASKS stream holds per task id. */
const ingestCounts = () => streamCounts("TASKS", Subjects.ingest, (message: { taskId: string }) => message.taskId);

const accepted = (outcome: SubmitTaskOutcome | undefined) =>
  outcome?.outcome.case === "accepted" ? outcome.outcome.value : undefined;
const refused = (outcome: SubmitTaskOutcome | undefined) =>
  outcome?.outcome.case === "error" ? outcome.outcome.value : undefined;

describe("SubmitTasks", () => {
  const g = useGateway(infra, { GATEWAY_MAX_BATCH_TASKS: "300" });

  test("a batch of 250: one outcome per task in order, each saved PENDING, queued once and audited", async () => {
    const batch = Array.from({ length: 250 }, (_, i) => ({ type: "echo", payload: { i }, metadata: { i: String(i) } }));
    const { outcomes } = await g.client.submitTasks({ tasks: batch });
    expect(outcomes).toHaveLength(250);
    const ids = outcomes.map((outcome) => accepted(outcome)?.taskId ?? "");
    expect(ids.filter((id) => id === "")).toEqual([]);
    expect(new Set(ids).size).toBe(250);
    expect(outcomes.every((outcome) => accepted(outcome)?.deduplicated === false)).toBe(true);
    // In order: the i-th outcome is the i-th task.
    for (const i of [0, 1, 127, 249]) {
      const { task } = await g.client.getTask({ taskId: ids[i]! });
      expect(task?.metadata.i).toBe(String(i));
      expect(task?.status?.state).toBe(TaskState.PENDING);
    }
    const counts = await ingestCounts();
    expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([]);
    // One "submitted" audit event each, published with the task (the audit service, not running here, stores them).
    const submitted = await streamCounts("EVENTS", Subjects.audit, (event: { taskId: string; action: string }) =>
      event.action === "submitted" ? event.taskId : undefined,
    );
    expect(ids.filter((id) => submitted.get(id) !== 1)).toEqual([]);
  });

  test("a task's refusal is its own: SubmitTask's code, its place and field named, the others accepted", async () => {
    const tasks = [
      { type: "echo", payload: { ok: 1 } },
      { type: "no-such-type" },
      { type: "echo", payload: { blob: "x".repeat(70_000) } },
      { type: "echo", schedule: { case: "delay", value: { seconds: BigInt(400_000) } } },
      { type: "echo", payload: { ok: 2 } },
    ] as SubmitTaskRequest[];
    const { outcomes } = await g.client.submitTasks({ tasks });
    expect(outcomes.map((outcome) => outcome.outcome.case)).toEqual([
      "accepted",
      "error",
      "error",
      "error",
      "accepted",
    ]);
    // As SubmitTask refuses each: an unknown type and a delay too far are INVALID_ARGUMENT, a payload over its limit
    // RESOURCE_EXHAUSTED.
    expect(outcomes.map((outcome) => refused(outcome)?.code)).toEqual([
      undefined,
      Code.InvalidArgument,
      Code.ResourceExhausted,
      Code.InvalidArgument,
      undefined,
    ]);
    for (const i of [1, 2, 3]) expect(refused(outcomes[i])?.message).toMatch(new RegExp(`^tasks\\[${i}\\]: `));
    expect(refused(outcomes[1])?.message).toContain("type");
    expect(refused(outcomes[2])?.message).toContain("payload");
    expect(refused(outcomes[3])?.message).toContain("GATEWAY_MAX_DELAY_SECONDS");
    const counts = await ingestCounts();
    for (const i of [0, 4]) expect(counts.get(accepted(outcomes[i])!.taskId)).toBe(1);
  });

  test("idempotency keys: a retried batch answers the same ids, deduplicated, and queues nothing new; a key twice in one batch is one task", async () => {
    const keys = Array.from({ length: 20 }, () => `batch-${crypto.randomUUID()}`);
    const tasks = keys.map((idempotencyKey, i) => ({ type: "echo", payload: { i }, idempotencyKey }));
    const first = await g.client.submitTasks({ tasks });
    const again = await g.client.submitTasks({ tasks });
    const firstIds = first.outcomes.map((outcome) => accepted(outcome)?.taskId);
    expect(again.outcomes.map((outcome) => accepted(outcome)?.taskId)).toEqual(firstIds);
    expect(again.outcomes.every((outcome) => accepted(outcome)?.deduplicated)).toBe(true);

    const twice = `twice-${crypto.randomUUID()}`;
    const { outcomes } = await g.client.submitTasks({
      tasks: [
        { type: "echo", idempotencyKey: twice },
        { type: "echo", idempotencyKey: twice },
      ],
    });
    const [a, b] = outcomes.map(accepted);
    expect(a?.taskId).toBe(b?.taskId);
    expect([a?.deduplicated, b?.deduplicated].sort()).toEqual([false, true]);

    const counts = await ingestCounts();
    expect([...firstIds, a?.taskId].filter((id) => counts.get(id ?? "") !== 1)).toEqual([]);
  });

  test("no tasks, or more than GATEWAY_MAX_BATCH_TASKS: INVALID_ARGUMENT naming the bound, nothing created", async () => {
    const before = await redis.zcard(Keys.taskIndex);
    const empty = await rejection(g.client.submitTasks({ tasks: [] }));
    expect(empty.code).toBe(Code.InvalidArgument);
    expect(empty.rawMessage).toBe("tasks: a batch needs at least one task");
    const tooMany = await rejection(
      g.client.submitTasks({ tasks: Array.from({ length: 301 }, () => ({ type: "echo" })) }),
    );
    expect(tooMany.code).toBe(Code.InvalidArgument);
    expect(tooMany.rawMessage).toContain(
      "301 tasks are more than the 300 one call may carry (GATEWAY_MAX_BATCH_TASKS)",
    );
    expect(await redis.zcard(Keys.taskIndex)).toBe(before);
  });
});

describe("SubmitTasks and the rate limit (api-key callers, 1 task/s, a burst of 5)", () => {
  const KEY = "batcher-key-0123456789abcdef";
  const g = useGateway(
    infra,
    {
      GATEWAY_AUTH_MODE: "api-key",
      GATEWAY_API_KEYS: `batcher:${KEY}`,
      GATEWAY_RATE_LIMIT_PER_SEC: "1",
      GATEWAY_RATE_LIMIT_BURST: "5",
    },
    { apiKey: KEY },
  );

  test("a batch takes one token per task: five pass and empty the bucket; more than the burst can never pass", async () => {
    const tooBig = await rejection(
      g.client.submitTasks({ tasks: Array.from({ length: 6 }, () => ({ type: "echo" })) }),
    );
    expect(tooBig.code).toBe(Code.InvalidArgument);
    expect(tooBig.rawMessage).toContain("a batch of 6 tasks is more than the rate limit allows at once (a burst of 5");
    const { outcomes } = await g.client.submitTasks({ tasks: Array.from({ length: 5 }, () => ({ type: "echo" })) });
    expect(outcomes.filter((outcome) => accepted(outcome))).toHaveLength(5);
    // The batch took all five tokens: the next call, a single task, waits for one to come back.
    const limited = await rejection(g.client.submitTask({ type: "echo" }));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(limited.rawMessage).toMatch(/^rate limit exceeded for caller batcher/);
  });
});

describe("SubmitTasks across a Redis outage", () => {
  test("once a task meets the outage no further one is started; sent again with their keys, each is queued once", async () => {
    const gateway = await startGateway(infra);
    try {
      const client = createTaskClient({ baseUrl: gateway.baseUrl });
      const tasks = Array.from({ length: 150 }, (_, i) => ({
        type: "echo",
        payload: { i },
        idempotencyKey: `outage-${i}-${crypto.randomUUID()}`,
      }));
      await infra.redis.stop();
      let outcomes: SubmitTaskOutcome[];
      try {
        ({ outcomes } = await client.submitTasks({ tasks }));
      } finally {
        await infra.redis.start();
      }
      // Every task refused UNAVAILABLE: the first ones in flight met the outage, the rest were not started.
      expect(outcomes.map((outcome) => refused(outcome)?.code)).toEqual(tasks.map(() => Code.Unavailable));
      const notAttempted = outcomes.filter((outcome) => refused(outcome)?.message.includes("not attempted"));
      expect(notAttempted.length).toBeGreaterThanOrEqual(150 - 64);
      expect(refused(notAttempted[0])?.message).toMatch(
        /^tasks\[\d+\]: not attempted: tasks\[\d+\] met an outage \(Redis/,
      );

      // Sent again once Redis is back: every key names one task, queued once.
      await waitFor(
        "the gateway's Redis connection to be back",
        async () => (await gateway.runtime.redis.ping().catch(() => "")) === "PONG",
      );
      const retried = await client.submitTasks({ tasks });
      const ids = retried.outcomes.map((outcome) => accepted(outcome)?.taskId ?? "");
      expect(ids.filter((id) => id === "")).toEqual([]);
      expect(new Set(ids).size).toBe(150);
      const counts = await ingestCounts();
      expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([]);
      for (const id of ids.slice(0, 5)) expect((await readStatus(redis, id))?.state).toBe("PENDING");
    } finally {
      await gateway.stop();
    }
  });
});

describe("SubmitTasks across a NATS restart", () => {
  test("a batch that meets NATS down waits for it (publishes retried under their ids): every task accepted and queued once", async () => {
    const gateway = await startGateway(infra);
    try {
      const client = createTaskClient({ baseUrl: gateway.baseUrl });
      const tasks = Array.from({ length: 100 }, (_, i) => ({ type: "echo", payload: { i } }));
      // The earlier tests' PubAcks all seen, so what the set holds below is this batch's.
      await waitFor("tasks_unqueued to be empty", async () => (await redis.zcard(Keys.unqueued)) === 0);
      await nc.close();
      await infra.nats.stop();
      let call: Promise<{ outcomes: SubmitTaskOutcome[] }> | undefined;
      try {
        call = client.submitTasks({ tasks });
        // The tasks are saved in Redis (PENDING, entered for the requeue sweeper) and their publishes are waiting.
        await waitFor("the batch's tasks to be saved and waiting for NATS", async () => {
          return (await redis.zcard(Keys.unqueued)) >= 64;
        });
      } finally {
        await infra.nats.start();
      }
      const { outcomes } = await call;
      const ids = outcomes.map((outcome) => accepted(outcome)?.taskId ?? "");
      expect(outcomes.map((outcome) => refused(outcome)?.message).filter(Boolean)).toEqual([]);
      expect(new Set(ids).size).toBe(100);
      nc = await connect({ servers: infra.nats.url });
      const counts = await ingestCounts();
      expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([]);
      // Every PubAck seen: nothing left for the requeue sweeper.
      await waitFor("the batch's tasks to leave tasks_unqueued", async () => (await redis.zcard(Keys.unqueued)) === 0);
    } finally {
      await gateway.stop();
    }
  }, 60_000);
});

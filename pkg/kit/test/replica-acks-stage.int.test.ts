/**
 * REDIS_WAIT_REPLICAS in a stage (rt.consume): a delivery is acked only once a replica holds the handler's writes;
 * with the replica gone it is held (not acked, no attempt spent) and handled again once the replica is back. A
 * handler declared read-only (`writesRedis: false`) is acked without asking the replicas.
 */
import { type Outcome, Subjects, type TaskMessage } from "@tm/flow";
import {
  type RedisServer,
  serviceEnv,
  startRedis,
  useInfra,
  waitCommandCalls,
  waitFor,
  waitForReplicas,
} from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { defineService, type StartedService, startService } from "../src/service.js";

const infra = useInfra();
let replica: RedisServer;
let onReplica: Redis;
let primary: Redis;
const started: StartedService<unknown>[] = [];

beforeAll(async () => {
  replica = await startRedis({ replicaOf: infra.redis.port });
  primary = new Redis(infra.redis.url);
  onReplica = new Redis(replica.url);
  onReplica.on("error", () => undefined); // the second test stops the replica
  await waitForReplicas(infra.redis, 1);
});
afterAll(async () => {
  for (const service of started) await service.stop();
  primary?.disconnect();
  onReplica?.disconnect();
  await replica?.dispose();
});

/** A stage on tasks.ingest whose handler writes (or only reads) <id>:seen-by:<stage>, recording each run and outcome. */
async function stage(name: string, writesRedis: boolean) {
  const runs: string[] = [];
  // Per task: every stage's durable on tasks.ingest receives every test's messages.
  const outcomes = new Map<string, Outcome[]>();
  const publish = { ingest: (_task: TaskMessage) => Promise.resolve() };
  const definition = defineService({
    name,
    opsPort: 0,
    async start(rt) {
      publish.ingest = async (task) => {
        await rt.publisher.publish(Subjects.ingest, task, { msgId: `${name}:${task.taskId}` });
      };
      await rt.consume(
        Subjects.ingest,
        async (task) => {
          runs.push(task.taskId);
          if (writesRedis) await rt.redis.set(`${task.taskId}:seen-by:${name}`, "1");
          else await rt.redis.get(`${task.taskId}:seen-by:${name}`);
        },
        {
          writesRedis,
          hooks: {
            onOutcome: (outcome, ctx) => {
              const id = ctx.taskId ?? "";
              outcomes.set(id, [...(outcomes.get(id) ?? []), outcome]);
            },
          },
        },
      );
    },
  });
  started.push(
    await startService(
      definition,
      serviceEnv(infra, { REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "1000", LOG_LEVEL: "silent" }),
    ),
  );
  const submit = async () => {
    const taskId = crypto.randomUUID();
    const createdAt = new Date().toISOString();
    await publish.ingest({
      taskId,
      type: "echo",
      priority: "medium",
      payload: {},
      metadata: {},
      createdAt,
      generation: 0,
    });
    return taskId;
  };
  return { runs, outcomesOf: (taskId: string) => outcomes.get(taskId) ?? [], submit };
}

test("a writing stage waits for the replica before it acks; a read-only one does not ask", async () => {
  const reader = await stage("replica-acks-reader", false);
  const before = await waitCommandCalls(primary);
  const read = await reader.submit();
  await waitFor("the reader's ack", () => reader.outcomesOf(read).includes("acked"));
  expect(await waitCommandCalls(primary)).toBe(before);

  const writer = await stage("replica-acks-writer", true);
  const taskId = await writer.submit();
  await waitFor("the writer's ack", () => writer.outcomesOf(taskId).includes("acked"));
  expect(await waitCommandCalls(primary)).toBeGreaterThan(before);
  expect(await onReplica.get(`${taskId}:seen-by:replica-acks-writer`)).toBe("1");
});

test("with the replica gone, the delivery is held, then handled again and acked once the replica is back", async () => {
  const writer = await stage("replica-acks-held", true);
  await replica.stop();
  let taskId = "";
  try {
    await waitFor("the primary to see the replica gone", async () =>
      (await primary.info("replication")).includes("connected_slaves:0"),
    );
    taskId = await writer.submit();
    await waitFor("the delivery held twice", () => writer.outcomesOf(taskId).filter((o) => o === "held").length >= 2);
    expect(writer.outcomesOf(taskId)).not.toContain("acked");
  } finally {
    await replica.start();
  }
  await waitFor("the ack", () => writer.outcomesOf(taskId).includes("acked"), { timeoutMs: 20_000 });
  expect(writer.outcomesOf(taskId).filter((o) => o !== "held")).toEqual(["acked"]);
  expect(writer.runs.filter((id) => id === taskId).length).toBeGreaterThanOrEqual(3);
  expect(await onReplica.get(`${taskId}:seen-by:replica-acks-held`)).toBe("1");
});

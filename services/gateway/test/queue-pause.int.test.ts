/**
 * PauseQueue / ResumeQueue against a real redis-server (and nats-server), with the gateway in this process: the pause
 * is stored for the workers with when and by whom, listed by GetQueueStats, kept as first set when repeated, and
 * undone by ResumeQueue; a queue must be named.
 */
import { Code } from "@connectrpc/connect";
import { Priority } from "@tm/proto";
import { Keys, readPausedQueues } from "@tm/store";
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { useGateway } from "./helpers.js";

const infra = useInfra();
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  redis?.disconnect();
});

const g = useGateway(infra);

test("a paused queue is stored for the workers, listed by GetQueueStats, and resumed", async () => {
  const before = Date.now();
  const paused = await g.admin.pauseQueue({ priority: Priority.LOW });
  expect(paused.pausedQueues.map((q) => q.priority)).toEqual([Priority.LOW]);
  const [stored] = await readPausedQueues(redis);
  expect(stored).toMatchObject({ priority: "low" });
  expect(Date.parse(stored!.at)).toBeGreaterThanOrEqual(before - 1_000);

  // Pausing again keeps the first pause; a second queue is listed high to low.
  await g.admin.pauseQueue({ priority: Priority.LOW });
  await g.admin.pauseQueue({ priority: Priority.HIGH });
  expect((await readPausedQueues(redis)).find((q) => q.priority === "low")?.at).toBe(stored!.at);
  const stats = await g.admin.getQueueStats({});
  expect(stats.pausedQueues.map((q) => q.priority)).toEqual([Priority.HIGH, Priority.LOW]);
  expect(stats.pausedQueues[1]?.pausedAt).toBeDefined();

  const resumed = await g.admin.resumeQueue({ priority: Priority.LOW });
  expect(resumed.wasPaused).toBe(true);
  expect(resumed.pausedQueues.map((q) => q.priority)).toEqual([Priority.HIGH]);
  expect((await g.admin.resumeQueue({ priority: Priority.LOW })).wasPaused).toBe(false);
  await g.admin.resumeQueue({ priority: Priority.HIGH });
  expect(await redis.exists(Keys.queuePaused)).toBe(0);
});

test("a queue must be named: UNSPECIFIED or an unknown number is INVALID_ARGUMENT naming priority", async () => {
  for (const priority of [Priority.UNSPECIFIED, 42 as Priority]) {
    await expect(g.admin.pauseQueue({ priority })).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: expect.stringMatching(/^priority: name the queue: PRIORITY_HIGH, PRIORITY_MEDIUM or PRIORITY_LOW/),
    });
  }
  await expect(g.admin.resumeQueue({})).rejects.toMatchObject({ code: Code.InvalidArgument });
});

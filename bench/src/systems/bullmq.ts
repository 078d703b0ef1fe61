/**
 * BullMQ on the same Redis: Queue.add → a no-op processor (concurrency 50, in its own process,
 * hops/bullmq-worker.mjs) → "completed", observed here through QueueEvents.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { ManagedProcess, type RedisServer } from "@tm/testkit";
import { Queue, QueueEvents } from "bullmq";
import { within } from "../load.js";
import type { WatchedProcess } from "../proc.js";
import { type SystemUnderTest, taskBody } from "../system.js";

const QUEUE = "bench";
const WORKER_SCRIPT = fileURLToPath(new URL("../../hops/bullmq-worker.mjs", import.meta.url));

export async function startBullmq(redis: RedisServer, options: { taskTimeoutMs: number }): Promise<SystemUnderTest> {
  const connection = { host: "127.0.0.1", port: redis.port, maxRetriesPerRequest: null };
  const queue = new Queue(QUEUE, { connection });
  const events = new QueueEvents(QUEUE, { connection });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  const waiting = new Map<string, () => void>();
  events.on("completed", ({ jobId }) => {
    waiting.get(jobId)?.();
    waiting.delete(jobId);
  });

  const worker = new ManagedProcess({
    name: "bullmq-worker",
    command: process.execPath,
    args: [WORKER_SCRIPT],
    env: { ...process.env, REDIS_URL: redis.url, BENCH_QUEUE: QUEUE },
  }).start();
  await worker.waitForLine(/ready/, 20_000);

  return {
    name: "bullmq",
    async runOne() {
      const jobId = randomUUID();
      // Registered before add: the completion may be reported before add() resolves.
      const done = new Promise<void>((resolve) => waiting.set(jobId, resolve));
      await queue.add("echo", taskBody(jobId), { jobId, removeOnComplete: { count: 1000 } });
      await within(done, options.taskTimeoutMs, `bullmq job ${jobId}`).finally(() => waiting.delete(jobId));
    },
    processes(): WatchedProcess[] {
      return [
        { role: "bullmq-worker", kind: "system", pid: worker.pid ?? 0 },
        { role: "redis-server", kind: "infra", pid: redis.process.pid ?? 0 },
      ];
    },
    async stop() {
      await worker.stop(5_000);
      await events.close();
      await queue.close();
    },
  };
}

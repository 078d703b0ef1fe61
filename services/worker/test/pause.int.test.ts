/**
 * A paused priority (queue_paused, as AdminService PauseQueue writes it) against a real nats-server and redis-server:
 * none of its tasks starts while the other priorities run; resumed, each runs once, on its first delivery.
 */
import { pauseQueue, resumeQueue } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { enrichedTask, publishTask, StreamReader, startWorker } from "./support.js";

const infra = useInfra();
let nc: NatsConnection;
let jsm: JetStreamManager;
let redis: Redis;
let service: Awaited<ReturnType<typeof startWorker>>;

beforeAll(async () => {
  service = await startWorker(infra, {
    WORKER_CONCURRENCY: "2",
    WORKER_PAUSE_POLL_MS: "100",
    SHUTDOWN_TIMEOUT_MS: "500",
  });
  nc = await connect({ servers: infra.nats.url });
  jsm = await nc.jetstreamManager();
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  await service?.stop();
  await nc?.drain();
  redis?.disconnect();
});

/** The worker's tm_worker_queue_paused gauge for a priority, read from its /metrics. */
async function pausedGauge(priority: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${service.opsPort}/metrics`)).text();
  const match = new RegExp(`^tm_worker_queue_paused\\{[^}]*priority="${priority}"[^}]*\\} (\\d+)`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

test("a paused priority starts none of its tasks while the others run; resumed, each runs once", async () => {
  await pauseQueue(redis, "high", "ops");
  await waitFor("the worker to see the pause", async () => (await pausedGauge("high")) === 1);

  const high = [enrichedTask("echo", { n: 1 }, "high"), enrichedTask("echo", { n: 2 }, "high")];
  for (const task of high) await publishTask(nc, task);
  const low = enrichedTask("echo", { n: 3 }, "low");
  await publishTask(nc, low);

  // The low task, published after the high ones, runs to its end: the worker is taking tasks, only not high ones.
  const events = new StreamReader(jsm, "EVENTS");
  const tasks = new StreamReader(jsm, "TASKS");
  await waitFor("the low task's succeeded audit", async () => {
    await events.refresh();
    return events.audits(low.taskId).some((a) => a.action === "succeeded");
  });
  await tasks.refresh();
  for (const task of high) {
    expect(events.statuses(task.taskId)).toEqual([]);
    expect(tasks.results(task.taskId)).toEqual([]);
  }

  expect((await resumeQueue(redis, "high")).wasPaused).toBe(true);
  await waitFor("both high tasks' succeeded audits", async () => {
    await events.refresh();
    return high.every((task) => events.audits(task.taskId).some((a) => a.action === "succeeded"));
  });
  await tasks.refresh();
  for (const task of high) {
    // Held, not handed back: the first delivery ran it (attempt 1), and it ran once.
    expect(tasks.results(task.taskId)).toHaveLength(1);
    expect(tasks.results(task.taskId)[0]).toMatchObject({ attempts: 1 });
  }
  expect(await pausedGauge("high")).toBe(0);
});

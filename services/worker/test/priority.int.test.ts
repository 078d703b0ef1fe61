import { durableName, provisionStreams, Subjects } from "@tm/flow";
import { startService } from "@tm/kit";
import { useInfra, waitFor } from "@tm/testkit";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { worker } from "../src/service.js";
import { enrichedTask, publishTask, StreamReader } from "./support.js";

const infra = useInfra();
let nc: NatsConnection;
let jsm: JetStreamManager;
let service: Awaited<ReturnType<typeof startService>> | undefined;
const env = () => ({
  NATS_URL: infra.nats.url,
  REDIS_URL: infra.redis.url,
  LOG_LEVEL: "warn",
  OPS_PORT: "0",
  WORKER_CONCURRENCY: "1",
  FLOW_ACK_WAIT_MS: "2000",
  FLOW_RETRY_DELAYS_MS: "100,200,300,400,500",
  SHUTDOWN_TIMEOUT_MS: "300",
});

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  jsm = await nc.jetstreamManager();
  await provisionStreams(jsm);
});
afterAll(async () => {
  await service?.stop();
  await nc?.drain();
});

function meanRank(order: string[], ids: Set<string>): number {
  const ranks = order.flatMap((id, rank) => (ids.has(id) ? [rank] : []));
  return ranks.reduce((sum, rank) => sum + rank, 0) / ranks.length;
}

test("with one slot and a backlog, high tasks finish before low on average, and every low task still finishes", async () => {
  const low = Array.from({ length: 10 }, () => enrichedTask("sleep", { ms: 10 }, "low"));
  const high = Array.from({ length: 10 }, () => enrichedTask("sleep", { ms: 10 }, "high"));
  // Interleaved and published before the worker starts, so the order of arrival favours neither.
  for (let i = 0; i < low.length; i++) {
    await publishTask(nc, low[i] as (typeof low)[number]);
    await publishTask(nc, high[i] as (typeof high)[number]);
  }
  service = await startService(worker, env());
  const tasks = new StreamReader(jsm, "TASKS");
  await waitFor("all 20 results", async () => {
    await tasks.refresh();
    return tasks.resultOrder().length === 20;
  });
  const order = tasks.resultOrder();
  const lowIds = new Set<string>(low.map((t) => t.taskId));
  const highRank = meanRank(order, new Set(high.map((t) => t.taskId)));
  const lowRank = meanRank(order, lowIds);
  expect(highRank).toBeLessThan(lowRank - 4);
  // Not starved: with weights 6:1 a low task runs among the first high ones, not only after all of them.
  const firstLow = order.findIndex((id) => lowIds.has(id));
  expect(firstLow).toBeLessThan(10);
});

test("a delivery waiting for a slot longer than AckWait is kept alive, not redelivered", async () => {
  const long = enrichedTask("sleep", { ms: 2_600 }, "medium");
  const waiting = enrichedTask("echo", { waited: true }, "medium");
  await publishTask(nc, long);
  await publishTask(nc, waiting);
  const tasks = new StreamReader(jsm, "TASKS");
  await waitFor(
    "both results",
    async () => {
      await tasks.refresh();
      return tasks.results(waiting.taskId).length === 1 && tasks.results(long.taskId).length === 1;
    },
    { timeoutMs: 10_000 },
  );
  expect(tasks.results(waiting.taskId)[0]?.attempts).toBe(1);
  const info = await jsm.consumers.info("TASKS", durableName("worker", Subjects.workerMedium));
  expect(info.num_redelivered).toBe(0);
  expect(info.delivered.consumer_seq).toBe(2);
});

test("a replica holds only what it can start (one running + one queued per slot), leaving the backlog to others", async () => {
  const backlog = Array.from({ length: 8 }, () => enrichedTask("sleep", { ms: 1_000 }, "low"));
  for (const task of backlog) await publishTask(nc, task);
  const consumer = durableName("worker", Subjects.workerLow);
  const events = new StreamReader(jsm, "EVENTS");
  await waitFor("the first backlog task RUNNING", async () => {
    await events.refresh();
    return backlog.some((t) => events.statuses(t.taskId).some((s) => s.state === "RUNNING"));
  });
  const info = await jsm.consumers.info("TASKS", consumer);
  const tasks = new StreamReader(jsm, "TASKS");
  await tasks.refresh();
  // Read after the consumer info: at least as many results as had been acked when it was taken (a task is acked
  // after its result is published), so the bound below holds however slowly this machine got here.
  const finished = backlog.filter((t) => tasks.results(t.taskId).length > 0).length;
  // WORKER_CONCURRENCY=1: at most one delivery running and one waiting in the lane; the rest stays in the stream
  // (never delivered), where a second replica would get it at once.
  expect(info.num_ack_pending).toBeLessThanOrEqual(2);
  expect(info.num_pending).toBeGreaterThanOrEqual(backlog.length - 2 - finished);
  expect(finished, "1 s tasks: the check ran while most of the backlog waited").toBeLessThanOrEqual(3);
  // Another replica, with slots for all of it, takes what this one left in the stream: every task runs once.
  const other = await startService(worker, { ...env(), WORKER_CONCURRENCY: String(backlog.length) });
  try {
    await waitFor(
      "the whole backlog done",
      async () => {
        await tasks.refresh();
        return backlog.every((t) => tasks.results(t.taskId).length === 1);
      },
      { timeoutMs: 40_000 },
    );
  } finally {
    await other.stop();
  }
});

test("shutdown hands a running task back at the deadline: NAKed for immediate redelivery, not failed", async () => {
  const task = enrichedTask("sleep", { ms: 20_000 }, "medium");
  await publishTask(nc, task);
  const events = new StreamReader(jsm, "EVENTS");
  await waitFor("RUNNING", async () => {
    await events.refresh();
    return events.statuses(task.taskId).some((s) => s.state === "RUNNING");
  });
  const consumer = durableName("worker", Subjects.workerMedium);
  const deliveredBefore = (await jsm.consumers.info("TASKS", consumer)).delivered.consumer_seq;
  const started = Date.now();
  await service?.stop();
  service = undefined;
  expect(Date.now() - started).toBeLessThan(3_000);
  // NAKed, it is redelivered at once to the next worker, well before AckWait (2 s) would have expired. (Its delivery
  // count may stay 1: nats-server 2.9 decrements it when the redelivery first meets the departed worker's pull.)
  const stoppedAt = Date.now();
  service = await startService(worker, env());
  await waitFor("the task redelivered to the next worker", async () => {
    const info = await jsm.consumers.info("TASKS", consumer);
    return info.delivered.consumer_seq === deliveredBefore + 1 && info.num_ack_pending === 1;
  });
  expect(Date.now() - stoppedAt).toBeLessThan(1_800);
  await events.refresh();
  expect(events.statuses(task.taskId).filter((s) => s.error || s.state === "FAILED")).toHaveLength(0);
});

/**
 * Fault: nats-server comes back without its store (a lost volume, a node replaced with empty storage): every stream
 * and durable consumer is gone while the services stay connected. Each stage notices at its next empty pull that its
 * durable or stream is missing and creates them again, so tasks submitted afterwards flow end to end without
 * restarting anything. Messages that were in the lost store are gone with it: tasks waiting in tasks.schedule then
 * (the scheduler stopped; not stalled while their messages waited) are found stalled afterwards
 * (GATEWAY_STALLED_AFTER_SECONDS=8 here, above the notifier's lag while it creates its durable again), and the
 * gateway requeues them on its own: they run through to SUCCEEDED, once each, with no operator.
 */
import { rmSync } from "node:fs";
import { type AdminClient, createAdminClient, TaskState } from "@tm/proto";
import { Keys } from "@tm/store";
import { waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";
import {
  connectTo,
  exitedServices,
  steadyLoad,
  tasksWithoutOneResult,
  waitAllTerminal,
} from "../support/reliability.js";

let pipeline: Pipeline;
let admin: AdminClient;
const STALLED_AFTER_S = 8;

beforeAll(async () => {
  pipeline = await startPipeline({
    // The scheduler is stopped and started again: its own process; the rest share one.
    ownProcess: ["scheduler"],
    // Counted every 2 s, not 15: the recovery is the same, the wait for it shorter.
    perService: {
      gateway: { GATEWAY_STALLED_AFTER_SECONDS: String(STALLED_AFTER_S), GATEWAY_STALLED_CHECK_SECONDS: "2" },
    },
  });
  admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
}, 90_000);

const stalledCount = async () => Number((await admin.getQueueStats({})).stalledTasks);
afterAll(async () => {
  await pipeline?.dispose();
});

test("after nats-server lost its store, the services create their streams and consumers again and tasks flow", async () => {
  const before = await pipeline.client.submitTask({ type: "echo", payload: { before: true } });
  await waitFor(
    "a task before the loss SUCCEEDED",
    async () => (await pipeline.client.getTask({ taskId: before.taskId })).task?.status?.state === TaskState.SUCCEEDED,
  );

  // Tasks waiting in tasks.schedule, INGESTED: with the scheduler stopped, their messages are only in the store (a
  // paused worker queue would not do: the worker's pull in progress may already hold them). Not stalled while they
  // wait there.
  await pipeline.services.get("scheduler")!.process.stop();
  const waiting = await Promise.all(
    [1, 2, 3, 4, 5].map(async (n) => (await pipeline.client.submitTask({ type: "echo", payload: { n } })).taskId),
  );
  const states = async (ids: string[]) =>
    Promise.all(ids.map(async (taskId) => (await pipeline.client.getTask({ taskId })).task?.status?.state));
  await waitFor("the waiting tasks INGESTED", async () =>
    (await states(waiting)).every((state) => state === TaskState.INGESTED),
  );
  const ingestedAt = Date.now();
  await waitFor("the stall threshold to pass", () => Date.now() - ingestedAt > STALLED_AFTER_S * 1_000 + 500, {
    timeoutMs: STALLED_AFTER_S * 1_000 + 5_000,
  });
  expect(await stalledCount()).toBe(0);

  await pipeline.nats.stop();
  rmSync(pipeline.nats.storeDir, { recursive: true, force: true });
  const restartedAt = Date.now();
  await pipeline.nats.start();
  await pipeline.spawn("scheduler");

  // Submissions retried (same idempotency key) while the gateway answers UNAVAILABLE: no stream takes them yet.
  const load = steadyLoad(pipeline.client, 30, 50);
  const taskIds = await load.accepted;
  expect(await waitAllTerminal(pipeline.redisClient, taskIds, 60_000)).toEqual([]);
  console.log(
    `[reliability] NATS store lost: ${taskIds.length} tasks SUCCEEDED, the last ${Date.now() - restartedAt} ms after ` +
      `the restart; ${load.retriedSubmissions()} submissions retried (${JSON.stringify(load.retryReasons())})`,
  );
  const nc = await connectTo(pipeline.nats.url);
  try {
    expect(await tasksWithoutOneResult(nc, pipeline.redisClient, taskIds)).toEqual([]);
  } finally {
    await nc.close();
  }

  // The waiting tasks' messages went with the store: found stalled by the gateway (every 2 s here), requeued by it as
  // generation 1, and run to SUCCEEDED, once each.
  expect(await waitAllTerminal(pipeline.redisClient, waiting, 60_000)).toEqual([]);
  expect(new Set(await states(waiting))).toEqual(new Set([TaskState.SUCCEEDED]));
  for (const taskId of waiting) {
    expect(await pipeline.redisClient.hmget(Keys.task(taskId), "generation", "autoRequeues")).toEqual(["1", "1"]);
  }
  await waitFor("the automatic requeues audited", async () => {
    const histories = await Promise.all(waiting.map((taskId) => admin.getTaskHistory({ taskId })));
    return histories.every(({ events }) =>
      events.some((e) => e.action === "requeued_stalled" && e.detail?.automatic === true),
    );
  });
  expect(await stalledCount()).toBe(0);
  const check = await connectTo(pipeline.nats.url);
  try {
    expect(await tasksWithoutOneResult(check, pipeline.redisClient, waiting)).toEqual([]);
  } finally {
    await check.close();
  }
  expect(exitedServices(pipeline.services)).toEqual([]);
}, 150_000);

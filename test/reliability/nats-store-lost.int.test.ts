/**
 * Fault: nats-server comes back without its store (a lost volume, a node replaced with empty storage): every stream
 * and durable consumer is gone while the services stay connected. Each stage notices at its next empty pull that its
 * durable or stream is missing and creates them again, so tasks submitted afterwards flow end to end without
 * restarting anything. Messages that were in the lost store are gone with it: tasks waiting in a paused queue then
 * (not stalled while their messages waited) are counted as stalled afterwards (GetQueueStats, GATEWAY_STALLED_AFTER_
 * SECONDS=1 here), and a requeue sends them through to SUCCEEDED, as docs/OPERATIONS.md tells operators to.
 */
import { rmSync } from "node:fs";
import { type AdminClient, createAdminClient, Priority, RequeueResult, TaskState } from "@tm/proto";
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

beforeAll(async () => {
  pipeline = await startPipeline({ perService: { gateway: { GATEWAY_STALLED_AFTER_SECONDS: "1" } } });
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

  // Tasks waiting in a paused queue: SCHEDULED, their messages in the store. Not stalled while they wait there.
  await admin.pauseQueue({ priority: Priority.LOW });
  const worker = pipeline.services.get("worker")!;
  await waitFor("the worker to apply the pause", async () => {
    const text = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text();
    return /^tm_worker_queue_paused\{[^}]*priority="low"[^}]*\} 1/m.test(text);
  });
  const waiting = await Promise.all(
    [1, 2, 3, 4, 5].map(
      async (n) => (await pipeline.client.submitTask({ type: "echo", priority: Priority.LOW, payload: { n } })).taskId,
    ),
  );
  const states = async (ids: string[]) =>
    Promise.all(ids.map(async (taskId) => (await pipeline.client.getTask({ taskId })).task?.status?.state));
  await waitFor("the paused tasks SCHEDULED", async () =>
    (await states(waiting)).every((state) => state === TaskState.SCHEDULED),
  );
  const scheduledAt = Date.now();
  await waitFor("the stall threshold to pass", () => Date.now() - scheduledAt > 1_500);
  expect(await stalledCount()).toBe(0);

  await pipeline.nats.stop();
  rmSync(pipeline.nats.storeDir, { recursive: true, force: true });
  const restartedAt = Date.now();
  await pipeline.nats.start();

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

  // The paused tasks' messages went with the store: counted as stalled, requeued, and run to SUCCEEDED, once each.
  await admin.resumeQueue({ priority: Priority.LOW });
  await waitFor("the lost tasks counted as stalled", async () => (await stalledCount()) === waiting.length);
  const { outcomes } = await admin.requeueTasks({ taskIds: waiting, stalledForSeconds: 1 });
  expect(outcomes.map((o) => o.result)).toEqual(waiting.map(() => RequeueResult.REQUEUED));
  expect(await waitAllTerminal(pipeline.redisClient, waiting, 60_000)).toEqual([]);
  expect(new Set(await states(waiting))).toEqual(new Set([TaskState.SUCCEEDED]));
  expect(await stalledCount()).toBe(0);
  const check = await connectTo(pipeline.nats.url);
  try {
    expect(await tasksWithoutOneResult(check, pipeline.redisClient, waiting)).toEqual([]);
  } finally {
    await check.close();
  }
  expect(exitedServices(pipeline.services)).toEqual([]);
}, 150_000);

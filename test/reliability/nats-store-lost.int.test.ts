/**
 * Fault: nats-server comes back without its store (a lost volume, a node replaced with empty storage): every stream
 * and durable consumer is gone while the services stay connected. Each stage notices at its next empty pull that its
 * durable or stream is missing and creates them again, so tasks submitted afterwards flow end to end without
 * restarting anything. (Messages that were in the lost store are gone with it: their tasks are found with
 * `taskctl ls --stalled-for` and sent again with `taskctl requeue`, docs/OPERATIONS.md.)
 */
import { rmSync } from "node:fs";
import { TaskState } from "@tm/proto";
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

beforeAll(async () => {
  pipeline = await startPipeline();
}, 90_000);
afterAll(async () => {
  await pipeline?.dispose();
});

test("after nats-server lost its store, the services create their streams and consumers again and tasks flow", async () => {
  const before = await pipeline.client.submitTask({ type: "echo", payload: { before: true } });
  await waitFor(
    "a task before the loss SUCCEEDED",
    async () => (await pipeline.client.getTask({ taskId: before.taskId })).task?.status?.state === TaskState.SUCCEEDED,
  );

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
  expect(exitedServices(pipeline.services)).toEqual([]);
}, 150_000);

/**
 * Fault: nats-server restarted (stopped, then started on the same port and store) while tasks flow. Every service
 * reconnects by itself and none exits; submissions that meet the outage are retried by the client with the same
 * idempotency key; every task submitted before, during and after reaches SUCCEEDED with exactly one result.
 */
import { TaskState } from "@tm/proto";
import { waitFor } from "@tm/testkit";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Pipeline, startPipeline } from "../support/pipeline.js";
import {
  connectTo,
  exitedServices,
  steadyLoad,
  tasksWithoutOneResult,
  waitAllTerminal,
} from "../support/reliability.js";

const TASKS = 200;
let pipeline: Pipeline;
let nc: NatsConnection;

beforeAll(async () => {
  // nats-server is restarted, no service: all nine share one process, each reconnecting on its own connection.
  pipeline = await startPipeline({ ownProcess: [] });
}, 90_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

test("a NATS restart under load loses no task and duplicates no result", async () => {
  let restart: Promise<{ stoppedAt: number; readyAt: number }> | undefined;
  const load = steadyLoad(pipeline.client, TASKS, 20, (i) => {
    if (i === 80) {
      restart = (async () => {
        const stoppedAt = Date.now();
        await pipeline.nats.restart();
        return { stoppedAt, readyAt: Date.now() };
      })();
    }
  });
  const { stoppedAt, readyAt } = await (async () => {
    await waitFor("the restart to begin", () => restart !== undefined, { timeoutMs: 30_000 });
    return (await restart) as { stoppedAt: number; readyAt: number };
  })();
  // How long until the whole pipeline flows again: a task submitted the moment NATS is back, to SUCCEEDED.
  const probe = await pipeline.client.submitTask({ type: "echo", payload: { probe: true } });
  await waitFor(
    "the probe task SUCCEEDED",
    async () => (await pipeline.client.getTask({ taskId: probe.taskId })).task?.status?.state === TaskState.SUCCEEDED,
    { timeoutMs: 30_000, intervalMs: 25 },
  );
  const flowingAt = Date.now();
  console.log(
    `[reliability] NATS down ${readyAt - stoppedAt} ms; ready → probe SUCCEEDED ${flowingAt - readyAt} ms; ` +
      `stop → flowing ${flowingAt - stoppedAt} ms`,
  );

  const taskIds = await load.accepted;
  console.log(`[reliability] ${taskIds.length} tasks; ${load.retriedSubmissions()} submissions retried`);
  expect(new Set(taskIds).size).toBe(TASKS);
  expect(await waitAllTerminal(pipeline.redisClient, taskIds, 40_000)).toEqual([]);

  nc = await connectTo(pipeline.nats.url);
  expect(await tasksWithoutOneResult(nc, pipeline.redisClient, taskIds)).toEqual([]);
  expect(exitedServices(pipeline.services)).toEqual([]);
}, 120_000);

/**
 * Fault: a worker holding a fleet-wide slot (WORKER_TYPE_GLOBAL_CONCURRENCY=sleep=1) is killed with SIGKILL while its
 * task runs. Nobody gives the slot back and nobody renews it: after AckWait the task is redelivered to the other
 * worker, which takes the slot once the dead holder's lease (AckWait too) has run out, and runs the task. The result
 * is stored once, the slot is given back at the end, and the next sleep task runs as usual.
 */
import { TaskState } from "@tm/proto";
import { Keys, readResult } from "@tm/store";
import { waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline, stateNames } from "../support/pipeline.js";
import { workerInFlight } from "../support/reliability.js";

const ACK_WAIT_MS = 2_000;
const LIMITS = { WORKER_TYPE_GLOBAL_CONCURRENCY: "sleep=1" };
let pipeline: Pipeline;

beforeAll(async () => {
  // The workers are SIGKILLed and their /metrics read: their own processes; the rest share one.
  pipeline = await startPipeline({
    env: { FLOW_ACK_WAIT_MS: String(ACK_WAIT_MS) },
    perService: { worker: LIMITS },
    ownProcess: ["worker"],
  });
  await pipeline.spawn("worker", LIMITS, "worker-2");
}, 90_000);
afterAll(async () => {
  await pipeline?.dispose();
});

test("the slot of a SIGKILLed worker comes back after its lease: the task runs on the other worker, stored once", async () => {
  const slots = Keys.typeSlots("sleep");
  const { taskId } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 4_000 } });
  const stream = collectStream(pipeline.client, taskId, 50_000);
  const workers = [pipeline.services.get("worker")!, pipeline.services.get("worker-2")!];
  let counts: number[] = [];
  await waitFor("the worker running the task", async () => {
    counts = await Promise.all(workers.map(workerInFlight));
    return counts.includes(1);
  });
  expect(await pipeline.redisClient.zcard(slots), "the running task holds the one slot").toBe(1);
  await workers[counts.indexOf(1)]!.process.kill();

  const updates = await stream;
  expect(stateNames(updates).at(-1), stateNames(updates).join(" → ")).toBe("SUCCEEDED");
  await waitFor("the stored result", async () => (await readResult(pipeline.redisClient, taskId)) !== undefined);
  // The survivor gave its slot back; the dead worker's lease was removed when the survivor took the slot.
  await waitFor("the slot given back", async () => (await pipeline.redisClient.zcard(slots)) === 0);

  const next = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 10 } });
  const nextUpdates = await collectStream(pipeline.client, next.taskId, 20_000);
  expect(nextUpdates.at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
}, 120_000);

/**
 * Fault: a handler that fails. A `flaky` task failing 3 times is retried after each configured delay, the attempt
 * and last error are visible (GetTask and the stream) while it waits, and it ends SUCCEEDED after 4 attempts.
 */
import { Subjects } from "@tm/flow";
import { TaskState } from "@tm/proto";
import { readResult } from "@tm/store";
import { waitFor } from "@tm/testkit";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline, stateNames } from "../support/pipeline.js";
import { actionsOf, connectTo, millis, waitDrained } from "../support/reliability.js";

const DELAYS_MS = [300, 600, 900, 1_200];
/** A slow, shared machine: a redelivery may come this much later than its delay. */
const MARGIN_MS = 2_500;
let pipeline: Pipeline;
let nc: NatsConnection;

beforeAll(async () => {
  // The handler fails, no process: all nine share one.
  pipeline = await startPipeline({ env: { FLOW_RETRY_DELAYS_MS: DELAYS_MS.join(",") }, ownProcess: [] });
  nc = await connectTo(pipeline.nats.url);
}, 90_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

test("a flaky task is retried after each configured delay, visibly, and succeeds on attempt 4", async () => {
  const { taskId } = await pipeline.client.submitTask({ type: "flaky", payload: { failures: 3 } });
  const stream = collectStream(pipeline.client, taskId, 40_000);

  // While it is being retried, GetTask shows the attempt that failed and why.
  await waitFor(
    "a failed attempt visible in GetTask",
    async () => {
      const status = (await pipeline.client.getTask({ taskId })).task?.status;
      return (status?.attempt ?? 0) >= 1 && !!status?.error && status.state !== TaskState.SUCCEEDED;
    },
    { timeoutMs: 20_000, intervalMs: 25 },
  );
  const midway = (await pipeline.client.getTask({ taskId })).task?.status;
  expect(midway?.error).toMatch(/flaky|fail/i);

  const updates = await stream;
  const states = stateNames(updates);
  expect(states.at(-1), states.join(" → ")).toBe("SUCCEEDED");
  expect(updates.at(-1)?.status?.attempt).toBe(4);

  // The stream showed each failed attempt with its error before the next one ran.
  const failed = updates.filter((u) => u.status?.error);
  expect(failed.map((u) => u.status?.attempt)).toEqual(expect.arrayContaining([1, 2, 3]));

  // Real time passing is the property here: attempt n+1 starts no sooner than delay n after attempt n started.
  const runningAt = new Map<number, number>();
  for (const u of updates) {
    if (u.status?.state === TaskState.RUNNING && !runningAt.has(u.status.attempt)) {
      runningAt.set(u.status.attempt, millis(u.status.updatedAt));
    }
  }
  expect([...runningAt.keys()]).toEqual([1, 2, 3, 4]);
  const gaps = [1, 2, 3].map((n) => (runningAt.get(n + 1) as number) - (runningAt.get(n) as number));
  console.log(`[reliability] gaps between RUNNING attempts: ${gaps.join(", ")} ms (delays ${DELAYS_MS.join(", ")})`);
  gaps.forEach((gap, i) => {
    expect(gap).toBeGreaterThanOrEqual(DELAYS_MS[i] as number);
    expect(gap).toBeLessThan((DELAYS_MS[i] as number) + MARGIN_MS);
  });

  await waitFor("the stored result", async () => (await readResult(pipeline.redisClient, taskId)) !== undefined);
  expect((await readResult(pipeline.redisClient, taskId))?.attempts).toBe(4);
  const final = (await pipeline.client.getTask({ taskId })).task?.status;
  expect(final).toMatchObject({ state: TaskState.SUCCEEDED, attempt: 4 });
  // The result-store acks only after publishing its audit event: then the audit consumer has it to drain.
  await waitDrained(nc, "result-store", Subjects.results);
  await waitDrained(nc, "audit", Subjects.audit);
  expect(await actionsOf(pipeline.redisClient, taskId, "attempt_failed")).toHaveLength(3);
  expect(await actionsOf(pipeline.redisClient, taskId, "result_stored")).toHaveLength(1);
});

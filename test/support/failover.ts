/**
 * A Redis failover under load, as the Redis failover tests drive it (test/reliability/redis-*.int.test.ts): status
 * streams opened before it on tasks that finish after it, a steady load of submissions across it (retried with their
 * idempotency keys while the gateway answers UNAVAILABLE), then the checks every such fault must pass: every task
 * SUCCEEDED, every followed stream ending SUCCEEDED (re-opened if the gateway failed it UNAVAILABLE), exactly one
 * result per task, and no service exited.
 */
import type { Redis } from "ioredis";
import { expect } from "vitest";
import { followToEnd, type Pipeline } from "./pipeline.js";
import { connectTo, exitedServices, steadyLoad, tasksWithoutOneResult, waitAllTerminal } from "./reliability.js";

const TASKS = 120;
const FOLLOWED = 10;

/** `failover` runs once 40 submissions were started; `newPrimary` is a client of the server promoted by it. */
export async function failoverUnderLoad(
  pipeline: Pipeline,
  label: string,
  failover: () => Promise<void>,
  newPrimary: Redis,
): Promise<void> {
  const followedIds = await Promise.all(
    Array.from({ length: FOLLOWED }, async () => {
      const { taskId } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 1_500 } });
      return taskId;
    }),
  );
  const streams = followedIds.map((taskId) => followToEnd(pipeline.client, taskId));

  let failedOver: Promise<number> | undefined;
  const load = steadyLoad(pipeline.client, TASKS, 25, (i) => {
    if (i !== 40) return;
    const startedAt = Date.now();
    failedOver = failover().then(() => Date.now() - startedAt);
  });
  const taskIds = [...followedIds, ...(await load.accepted)];
  console.log(
    `[reliability] ${label} in ${await failedOver} ms; ${taskIds.length} tasks, ` +
      `${load.retriedSubmissions()} submissions retried (${JSON.stringify(load.retryReasons())})`,
  );
  expect(((await newPrimary.role()) as unknown[])[0]).toBe("master");

  expect(await waitAllTerminal(newPrimary, taskIds, 60_000)).toEqual([]);
  const followed = await Promise.all(streams);
  for (const [i, { states }] of followed.entries()) {
    expect(states.at(-1), `${followedIds[i]}: ${states.join(" → ")}`).toBe("SUCCEEDED");
  }
  const reopened = followed.filter((f) => f.reopened > 0).length;
  console.log(`[reliability] ${reopened} of ${FOLLOWED} status streams re-opened after UNAVAILABLE`);

  const nc = await connectTo(pipeline.nats.url);
  try {
    expect(await tasksWithoutOneResult(nc, newPrimary, taskIds)).toEqual([]);
  } finally {
    await nc.close();
  }
  expect(exitedServices(pipeline.services)).toEqual([]);
}

/**
 * Redis Sentinel (REDIS_SENTINELS) for the whole pipeline: every service finds the primary through the Sentinel, and
 * a failover under load (the operator's SENTINEL FAILOVER) costs retried submissions, not tasks or results. Status
 * streams opened before it still see SUCCEEDED (the gateway's subscriber connection follows the primary too).
 */
import { waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { followToEnd, type Pipeline, startPipeline } from "../support/pipeline.js";
import {
  connectTo,
  exitedServices,
  steadyLoad,
  tasksWithoutOneResult,
  waitAllTerminal,
} from "../support/reliability.js";

const TASKS = 120;
const FOLLOWED = 10;
let pipeline: Pipeline;
let newPrimary: Redis;
let nc: NatsConnection;

beforeAll(async () => {
  // Every stage waits for the replica to hold its writes before it acks (REDIS_WAIT_REPLICAS): a Sentinel failover
  // promotes a replica that may lack the last second of the primary's writes.
  pipeline = await startPipeline({ redisSentinel: true, env: { REDIS_WAIT_REPLICAS: "1" } });
  newPrimary = new Redis(pipeline.redisHa!.replica.url, { maxRetriesPerRequest: 50 });
}, 90_000);
afterAll(async () => {
  await nc?.close();
  newPrimary?.disconnect();
  await pipeline?.dispose();
});

test("a Sentinel failover under load loses no task and duplicates no result", async () => {
  const { replica, sentinel } = pipeline.redisHa!;
  const followedIds = await Promise.all(
    Array.from({ length: FOLLOWED }, async () => {
      const { taskId } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 1_500 } });
      return taskId;
    }),
  );
  const streams = followedIds.map((taskId) => followToEnd(pipeline.client, taskId));

  let failover: Promise<number> | undefined;
  const load = steadyLoad(pipeline.client, TASKS, 25, (i) => {
    if (i === 40) {
      failover = (async () => {
        const startedAt = Date.now();
        await sentinel.failover();
        await waitFor("the Sentinel to name the replica", async () => (await sentinel.primaryPort()) === replica.port);
        return Date.now() - startedAt;
      })();
    }
  });
  const taskIds = [...followedIds, ...(await load.accepted)];
  console.log(
    `[reliability] Sentinel failover in ${await failover} ms; ${taskIds.length} tasks, ` +
      `${load.retriedSubmissions()} submissions retried (${JSON.stringify(load.retryReasons())})`,
  );

  expect(await waitAllTerminal(newPrimary, taskIds, 60_000)).toEqual([]);
  const followed = await Promise.all(streams);
  for (const [i, { states }] of followed.entries()) {
    expect(states.at(-1), `${followedIds[i]}: ${states.join(" → ")}`).toBe("SUCCEEDED");
  }
  const reopened = followed.filter((f) => f.reopened > 0).length;
  console.log(`[reliability] ${reopened} of ${FOLLOWED} status streams re-opened after UNAVAILABLE`);
  nc = await connectTo(pipeline.nats.url);
  expect(await tasksWithoutOneResult(nc, newPrimary, taskIds)).toEqual([]);
  expect(exitedServices(pipeline.services)).toEqual([]);
}, 150_000);

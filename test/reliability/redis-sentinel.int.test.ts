/**
 * Redis Sentinel (REDIS_SENTINELS) for the whole pipeline: every service finds the primary through the Sentinel, and
 * a failover under load (the operator's SENTINEL FAILOVER) costs retried submissions, not tasks or results. Status
 * streams opened before it still see SUCCEEDED (the gateway's subscriber connection follows the primary too).
 */
import { waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, test } from "vitest";
import { failoverUnderLoad } from "../support/failover.js";
import { type Pipeline, startPipeline } from "../support/pipeline.js";

let pipeline: Pipeline;
let newPrimary: Redis;

beforeAll(async () => {
  // Every stage waits for the replica to hold its writes before it acks (REDIS_WAIT_REPLICAS): a Sentinel failover
  // promotes a replica that may lack the last second of the primary's writes.
  // Redis fails over, no service: all nine share one process, each finding the primary on its own connections.
  pipeline = await startPipeline({ redisSentinel: true, env: { REDIS_WAIT_REPLICAS: "1" }, ownProcess: [] });
  newPrimary = new Redis(pipeline.redisHa!.replica.url, { maxRetriesPerRequest: 50 });
}, 90_000);
afterAll(async () => {
  newPrimary?.disconnect();
  await pipeline?.dispose();
});

test("a Sentinel failover under load loses no task and duplicates no result", async () => {
  const { replica, sentinel } = pipeline.redisHa!;
  await failoverUnderLoad(
    pipeline,
    "Sentinel failover",
    async () => {
      await sentinel.failover();
      await waitFor("the Sentinel to name the replica", async () => (await sentinel.primaryPort()) === replica.port);
    },
    newPrimary,
  );
}, 150_000);

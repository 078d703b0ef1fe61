/**
 * Fault: a managed Redis failover under load, as Sentinel, ElastiCache or a Kubernetes operator makes it: the replica
 * is promoted, the old primary demoted (its open connections stay up and answer writes READONLY) and the address the
 * services use is pointed at the new primary. Every service reconnects on READONLY and carries on against the new
 * primary; no task is lost and no result duplicated; status streams opened before it still see SUCCEEDED.
 */
import { type RedisServer, startRedis, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, test } from "vitest";
import { failoverUnderLoad } from "../support/failover.js";
import { type Pipeline, startPipeline } from "../support/pipeline.js";

let pipeline: Pipeline;
let replica: RedisServer;
let newPrimary: Redis;
let oldPrimary: Redis;

beforeAll(async () => {
  // Redis fails over, no service: all nine share one process, each reconnecting on its own connections.
  [pipeline, replica] = await Promise.all([startPipeline({ redisProxy: true, ownProcess: [] }), startRedis()]);
  oldPrimary = new Redis(pipeline.redis.url);
  newPrimary = new Redis(replica.url, { maxRetriesPerRequest: 50 });
  await newPrimary.replicaof("127.0.0.1", pipeline.redis.port);
  await waitFor("the replica to sync", async () =>
    (await newPrimary.info("replication")).includes("master_link_status:up"),
  );
}, 90_000);
afterAll(async () => {
  oldPrimary?.disconnect();
  newPrimary?.disconnect();
  await Promise.all([pipeline?.dispose(), replica?.dispose()]);
});

test("a Redis failover under load loses no task and duplicates no result", async () => {
  await failoverUnderLoad(
    pipeline,
    "Redis failover",
    async () => {
      // Writes paused until the replica has caught up, then the roles swapped (Redis's FAILOVER, 6.2+); then the
      // address moves to the new primary.
      await oldPrimary.call("FAILOVER", "TO", "127.0.0.1", String(replica.port));
      await waitFor("the old primary to be demoted", async () => (await oldPrimary.role())[0] === "slave");
      pipeline.redisProxy!.retarget(replica.port);
    },
    newPrimary,
  );
}, 150_000);

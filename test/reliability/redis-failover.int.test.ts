/**
 * Fault: a managed Redis failover under load, as Sentinel, ElastiCache or a Kubernetes operator makes it: the replica
 * is promoted, the old primary demoted (its open connections stay up and answer writes READONLY) and the address the
 * services use is pointed at the new primary. Every service reconnects on READONLY and carries on against the new
 * primary; no task is lost and no result duplicated; status streams opened before it still see SUCCEEDED.
 */
import { type RedisServer, startRedis, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import type { NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline, stateNames } from "../support/pipeline.js";
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
let replica: RedisServer;
let newPrimary: Redis;
let oldPrimary: Redis;
let nc: NatsConnection;

beforeAll(async () => {
  [pipeline, replica] = await Promise.all([startPipeline({ redisProxy: true }), startRedis()]);
  oldPrimary = new Redis(pipeline.redis.url);
  newPrimary = new Redis(replica.url, { maxRetriesPerRequest: 50 });
  await newPrimary.replicaof("127.0.0.1", pipeline.redis.port);
  await waitFor("the replica to sync", async () =>
    (await newPrimary.info("replication")).includes("master_link_status:up"),
  );
}, 90_000);
afterAll(async () => {
  await nc?.close();
  oldPrimary?.disconnect();
  newPrimary?.disconnect();
  await Promise.all([pipeline?.dispose(), replica?.dispose()]);
});

test("a Redis failover under load loses no task and duplicates no result", async () => {
  // Status streams opened on the old primary's subscriber connection, for tasks that finish after the failover.
  const followedIds = await Promise.all(
    Array.from({ length: FOLLOWED }, async () => {
      const { taskId } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 1_500 } });
      return taskId;
    }),
  );
  const streams = followedIds.map((taskId) => collectStream(pipeline.client, taskId, 60_000));

  let failover: Promise<number> | undefined;
  const load = steadyLoad(pipeline.client, TASKS, 25, (i) => {
    if (i === 40) {
      failover = (async () => {
        const startedAt = Date.now();
        // Writes paused until the replica has caught up, then the roles swapped (Redis's FAILOVER, 6.2+); then the
        // address moves to the new primary.
        await oldPrimary.call("FAILOVER", "TO", "127.0.0.1", String(replica.port));
        await waitFor("the old primary to be demoted", async () => (await oldPrimary.role())[0] === "slave");
        pipeline.redisProxy!.retarget(replica.port);
        return Date.now() - startedAt;
      })();
    }
  });
  const taskIds = [...followedIds, ...(await load.accepted)];
  console.log(
    `[reliability] Redis failover in ${await failover} ms; ${taskIds.length} tasks, ` +
      `${load.retriedSubmissions()} submissions retried (${JSON.stringify(load.retryReasons())})`,
  );
  expect((await newPrimary.role())[0]).toBe("master");

  expect(await waitAllTerminal(newPrimary, taskIds, 60_000)).toEqual([]);
  for (const [i, updates] of (await Promise.all(streams)).entries()) {
    expect(stateNames(updates).at(-1), `${followedIds[i]}: ${stateNames(updates).join(" → ")}`).toBe("SUCCEEDED");
  }

  nc = await connectTo(pipeline.nats.url);
  expect(await tasksWithoutOneResult(nc, newPrimary, taskIds)).toEqual([]);
  expect(exitedServices(pipeline.services)).toEqual([]);
}, 150_000);

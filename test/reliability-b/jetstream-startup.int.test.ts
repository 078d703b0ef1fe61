/**
 * A service started while its NATS cluster cannot serve JetStream yet (two of three nodes down: no meta leader, so no
 * stream can be created, let alone placed on three peers) waits and retries instead of exiting, and starts once the
 * cluster is whole (pkg/kit/src/jetstream-startup.ts). A permanent problem still fails the start at once: a service
 * whose NATS user may not use JetStream is refused in test/nats-auth.int.test.ts.
 */
import {
  type NatsCluster,
  type NatsServer,
  type RedisServer,
  type SpawnedService,
  spawnService,
  startNatsCluster,
  startRedis,
} from "@tm/testkit";
import { connect } from "nats";
import { afterAll, expect, test } from "vitest";

let cluster: NatsCluster | undefined;
let redis: RedisServer | undefined;
let scheduler: SpawnedService | undefined;
afterAll(async () => {
  await scheduler?.process.stop();
  await cluster?.dispose();
  await redis?.dispose();
});

test("a service waits for a cluster that cannot serve JetStream yet, then starts with R3 streams", {
  timeout: 180_000,
}, async () => {
  [cluster, redis] = await Promise.all([startNatsCluster(3), startRedis()]);
  const [n0, n1, n2] = cluster.nodes as [NatsServer, NatsServer, NatsServer];
  await Promise.all([n1.process.kill(), n2.process.kill()]);

  scheduler = await spawnService(
    "scheduler",
    { NATS_URL: n0.url, REDIS_URL: redis.url, NATS_STREAM_REPLICAS: "3" },
    { waitReady: false },
  );
  await scheduler.process.waitForLine(/JetStream not ready yet; retrying/, 60_000);
  expect(scheduler.process.running).toBe(true);

  n1.process.start();
  n2.process.start();
  await Promise.all([n1.ready(60_000), n2.ready(60_000)]);
  await scheduler.ready(90_000);
  expect(scheduler.process.running).toBe(true);

  const nc = await connect({ servers: cluster.urls });
  try {
    const jsm = await nc.jetstreamManager();
    for (const name of ["TASKS", "EVENTS"]) expect((await jsm.streams.info(name)).config.num_replicas, name).toBe(3);
    expect((await jsm.consumers.info("TASKS", "scheduler-tasks-schedule")).config.durable_name).toBe(
      "scheduler-tasks-schedule",
    );
  } finally {
    await nc.close();
  }
});

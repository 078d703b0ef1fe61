/** INFO read from a real redis-server: memory against maxmemory, the policy, the role and the replicas online. */
import { startRedis, useInfra, waitForReplicas } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { evicts, parseRedisInfo, readRedisServerInfo } from "../src/server-info.js";

const infra = useInfra();
let redis: Redis;

beforeAll(() => {
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  await redis.config("SET", "maxmemory", "0");
  redis?.disconnect();
});

test("no limit, noeviction and no replica by default; then a limit and a replica online", async () => {
  const before = await readRedisServerInfo(redis);
  expect(before).toMatchObject({ maxMemoryBytes: 0, maxMemoryPolicy: "noeviction", role: "master", replicasOnline: 0 });
  expect(before.usedMemoryBytes).toBeGreaterThan(100_000);

  await redis.config("SET", "maxmemory", "734003200"); // 700mb, as k8s sets
  const replica = await startRedis({ replicaOf: infra.redis.port });
  try {
    await waitForReplicas(infra.redis, 1);
    expect(await readRedisServerInfo(redis)).toMatchObject({ maxMemoryBytes: 734_003_200, replicasOnline: 1 });
  } finally {
    await replica.dispose();
  }
});

test("a replica still syncing is not online; eviction policies are told from noeviction", () => {
  const info = parseRedisInfo(
    "# Replication\r\nrole:master\r\nslave0:ip=10.0.0.2,port=6379,state=wait_bgsave,offset=0,lag=0\r\n" +
      "slave1:ip=10.0.0.3,port=6379,state=online,offset=42,lag=0\r\n# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\n",
  );
  expect(info).toEqual({
    usedMemoryBytes: 1024,
    maxMemoryBytes: 0,
    maxMemoryPolicy: "",
    role: "master",
    replicasOnline: 1,
  });
  expect(evicts("noeviction")).toBe(false);
  expect(evicts("allkeys-lru")).toBe(true);
  expect(evicts("volatile-ttl")).toBe(true);
  expect(evicts("")).toBe(false);
});

/**
 * The Redis server's room and replicas, as the gateway reports them: GetQueueStats.redis, and the tm_redis_* gauges
 * its alerts read (RedisMemoryHigh, RedisEvicting), against a real redis-server set as k8s would not want it
 * (an evicting policy) so that every field is exercised.
 */
import { createAdminClient } from "@tm/proto";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { type Gateway, startGateway } from "./helpers.js";

const infra = useInfra();
let redis: Redis;
let gateway: Gateway;

beforeAll(async () => {
  redis = new Redis(infra.redis.url);
  await redis.config("SET", "maxmemory", "734003200");
  await redis.config("SET", "maxmemory-policy", "allkeys-lru");
  gateway = await startGateway(infra);
});
afterAll(async () => {
  await gateway?.stop();
  await redis.config("SET", "maxmemory", "0");
  await redis.config("SET", "maxmemory-policy", "noeviction");
  redis?.disconnect();
});

/** The value of an unlabelled gauge on the gateway's /metrics (undefined while it has none). */
async function gauge(name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("GetQueueStats and the gauges give memory, maxmemory, the policy and the replicas", async () => {
  const stats = await createAdminClient({ baseUrl: gateway.baseUrl }).getQueueStats({});
  expect(stats.redis).toMatchObject({
    maxMemoryBytes: 734_003_200n,
    maxMemoryPolicy: "allkeys-lru",
    replicasOnline: 0,
  });
  expect(stats.redis?.usedMemoryBytes).toBeGreaterThan(0n);

  await waitFor("the first INFO sample", async () => (await gauge("tm_redis_max_memory_bytes")) !== undefined);
  expect(await gauge("tm_redis_max_memory_bytes")).toBe(734_003_200);
  expect(await gauge("tm_redis_evicting")).toBe(1);
  expect(await gauge("tm_redis_replicas_online")).toBe(0);
  expect(await gauge("tm_redis_used_memory_bytes")).toBeGreaterThan(0);
});

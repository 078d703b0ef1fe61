/**
 * Redis Sentinel (REDIS_SENTINELS): a service's client asks the Sentinel for the primary, and after a failover (one
 * forced by an operator, and one after the primary died) it reaches the new primary by itself: writes, scripts and
 * transactions go on. Each test has its own primary, replica and Sentinel.
 */
import { type RedisSentinel, type RedisServer, startRedis, startRedisSentinel, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { expect, test } from "vitest";
import { createLogger } from "../src/logger.js";
import { connectRedis, type Redis as ServiceRedis } from "../src/redis.js";

interface Topology {
  primary: RedisServer;
  replica: RedisServer;
  sentinel: RedisSentinel;
  /** The service's client, given only the Sentinel's address. */
  redis: ServiceRedis;
}

async function withTopology(run: (topology: Topology) => Promise<void>): Promise<void> {
  const primary = await startRedis();
  const replica = await startRedis({ replicaOf: primary.port });
  const sentinel = await startRedisSentinel(primary);
  // The URL's host is not used with Sentinels: only its credentials, database and TLS.
  const redis = connectRedis(
    { url: "redis://not-used.invalid:6379/0", sentinels: [sentinel.address], sentinelMaster: sentinel.master },
    "sentinel-test",
    createLogger("sentinel-test", "silent"),
  );
  try {
    await waitFor("the Sentinel to know the replica", async () => (await healthyReplicas(sentinel)) === 1, {
      timeoutMs: 20_000,
    });
    await run({ primary, replica, sentinel, redis });
  } finally {
    redis.disconnect();
    await sentinel.dispose();
    await Promise.all([primary.dispose(), replica.dispose()]);
  }
}

/** How many replicas the Sentinel knows with a working link to their primary. */
async function healthyReplicas(sentinel: RedisSentinel): Promise<number> {
  const client = new Redis(sentinel.port, "127.0.0.1");
  try {
    const replicas = (await client.call("SENTINEL", "REPLICAS", sentinel.master)) as string[][];
    return replicas.filter((fields) => {
      const field = (name: string) => fields[fields.indexOf(name) + 1];
      return field("flags") === "slave" && field("master-link-status") === "ok";
    }).length;
  } finally {
    client.disconnect();
  }
}

/** The port of the server a client is connected to. */
async function serverPort(redis: ServiceRedis): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(await redis.info("server"))?.[1]);
}

/** Writes through the service's client, then reads them on `server` directly. */
async function writeAndCheck(redis: ServiceRedis, server: RedisServer, tag: string): Promise<void> {
  await redis.set(`${tag}:set`, "1");
  expect(await redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, `${tag}:script`, 5)).toBe(5);
  expect(await redis.multi().set(`${tag}:multi`, "2").incr(`${tag}:script`).exec()).toEqual([
    [null, "OK"],
    [null, 6],
  ]);
  const direct = new Redis(server.url);
  try {
    expect(await direct.mget(`${tag}:set`, `${tag}:multi`, `${tag}:script`)).toEqual(["1", "2", "6"]);
  } finally {
    direct.disconnect();
  }
}

test("the client finds the primary through the Sentinel and follows a forced failover", async () => {
  await withTopology(async ({ primary, replica, sentinel, redis }) => {
    await writeAndCheck(redis, primary, "before");
    await sentinel.failover();
    await waitFor("the Sentinel to name the replica", async () => (await sentinel.primaryPort()) === replica.port, {
      timeoutMs: 20_000,
    });
    await waitFor(
      "the client to be connected to the new primary",
      async () => (await serverPort(redis)) === replica.port,
      {
        timeoutMs: 10_000,
      },
    );
    await writeAndCheck(redis, replica, "after");
  });
}, 60_000);

test("when the primary dies, the client reaches the replica the Sentinel promotes", async () => {
  await withTopology(async ({ primary, replica, sentinel, redis }) => {
    await writeAndCheck(redis, primary, "before");
    await primary.kill();
    // Written while the primary is down: waits in ioredis's queue until the Sentinel has promoted the replica.
    const during = writeAndCheck(redis, replica, "after");
    await waitFor("the Sentinel to promote the replica", async () => (await sentinel.primaryPort()) === replica.port, {
      timeoutMs: 30_000,
    });
    await during;
  });
}, 60_000);

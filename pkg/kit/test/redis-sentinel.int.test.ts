/**
 * Redis Sentinel (REDIS_SENTINELS): a service's client asks the Sentinel for the primary, and after a failover (one
 * forced by an operator, and one after the primary died) it reaches the new primary by itself: writes, scripts and
 * transactions go on; a Sentinel that requires an ACL user is reached with REDIS_SENTINEL_USERNAME and
 * REDIS_SENTINEL_PASSWORD. Each test has its own primary, replica and Sentinel.
 */
import { type RedisSentinel, type RedisServer, startRedis, startRedisSentinel, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { expect, test } from "vitest";
import { baseConfigShape, loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { isOutage } from "../src/outage.js";
import { connectRedis, redisTargetOf, type Redis as ServiceRedis } from "../src/redis.js";

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

/** Writes through the service's client (a plain write, a script and a transaction, each safe to repeat), then reads
 *  them on `server` directly. A write refused as an outage (a command queued when ioredis reconnected through the
 *  Sentinel) is written again, as the services' consume loop and gateway clients do. */
async function writeAndCheck(redis: ServiceRedis, server: RedisServer, tag: string): Promise<void> {
  await asTheServicesDo(() => redis.set(`${tag}:set`, "1"));
  await asTheServicesDo(() => redis.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, `${tag}:script`, "5"));
  await asTheServicesDo(async () => {
    expect(await redis.multi().set(`${tag}:multi`, "2").set(`${tag}:multi2`, "3").exec()).toEqual([
      [null, "OK"],
      [null, "OK"],
    ]);
  });
  const direct = new Redis(server.url);
  try {
    expect(await direct.mget(`${tag}:set`, `${tag}:script`, `${tag}:multi`, `${tag}:multi2`)).toEqual([
      "1",
      "5",
      "2",
      "3",
    ]);
  } finally {
    direct.disconnect();
  }
}

/** Runs `write` again while it fails with an outage (isOutage), for up to 30 s. */
async function asTheServicesDo(write: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await write();
      return;
    } catch (error) {
      if (!isOutage(error) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
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
    // Written while the primary is down: waits in ioredis's queue until the Sentinel has promoted the replica (or is
    // refused as an outage when ioredis reconnects through the Sentinel, and written again).
    const during = writeAndCheck(redis, replica, "after");
    await waitFor("the Sentinel to promote the replica", async () => (await sentinel.primaryPort()) === replica.port, {
      timeoutMs: 30_000,
    });
    await during;
  });
}, 60_000);

test("a Sentinel that requires an ACL user is reached with REDIS_SENTINEL_USERNAME and _PASSWORD; the password alone is refused", async () => {
  const primary = await startRedis();
  const auth = { username: "tm-services", password: "sentinel-secret" };
  const sentinel = await startRedisSentinel(primary, { auth });
  const env = {
    REDIS_URL: "redis://not-used.invalid:6379/0",
    REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
    REDIS_SENTINEL_PASSWORD: auth.password,
  };
  const log = createLogger("sentinel-acl-test", "silent");
  const redis = connectRedis(
    redisTargetOf(loadConfig(baseConfigShape, { ...env, REDIS_SENTINEL_USERNAME: auth.username })),
    "sentinel-acl-test",
    log,
  );
  // Without the user, the password is tried for user default, which this Sentinel turned off.
  const refused = connectRedis(redisTargetOf(loadConfig(baseConfigShape, env)), "sentinel-acl-refused", log);
  const refusals: string[] = [];
  refused.on("error", (error: Error) => refusals.push(error.message));
  try {
    await writeAndCheck(redis, primary, "acl");
    await waitFor("the client without the user refused", () => refusals.some((m) => m.includes("WRONGPASS")));
    expect(refused.status).not.toBe("ready");
  } finally {
    redis.disconnect();
    refused.disconnect();
    await sentinel.dispose();
    await primary.dispose();
  }
}, 60_000);

/**
 * A managed Redis failover behind one address: the replica is promoted, the old primary demoted (it keeps its
 * connections open and answers writes READONLY), and the address now leads to the new primary. The service's client
 * reconnects on READONLY and sends the command again, so writes, scripts and transactions go on against the new
 * primary instead of being held until the service is restarted.
 */
import { type RedisServer, startRedis, TcpProxy, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createLogger } from "../src/logger.js";
import { connectRedis } from "../src/redis.js";

let primary: RedisServer;
let replica: RedisServer;
let proxy: TcpProxy;
const admins: Redis[] = [];

beforeAll(async () => {
  [primary, replica] = await Promise.all([startRedis(), startRedis()]);
  proxy = await TcpProxy.start(primary.port);
});
afterAll(async () => {
  for (const admin of admins) admin.disconnect();
  await proxy?.close();
  await Promise.all([primary?.dispose(), replica?.dispose()]);
});

function admin(server: RedisServer): Redis {
  const client = new Redis(server.url);
  admins.push(client);
  return client;
}

/** Redis's coordinated failover (6.2+), waited for until the roles have swapped. */
async function failover(from: Redis, to: RedisServer): Promise<void> {
  await from.call("FAILOVER", "TO", "127.0.0.1", String(to.port));
  await waitFor("the failover to finish", async () => (await role(from)) === "slave");
}

async function role(client: Redis): Promise<string> {
  return String(((await client.role()) as unknown[])[0]);
}

test("after a failover behind the same address, writes reach the new primary", async () => {
  const oldPrimary = admin(primary);
  const newPrimary = admin(replica);
  await newPrimary.replicaof("127.0.0.1", primary.port);
  await waitFor("the replica to sync", async () =>
    (await newPrimary.info("replication")).includes("master_link_status:up"),
  );

  const log = createLogger("failover-test", "silent");
  const redis = connectRedis(`redis://127.0.0.1:${proxy.port}`, "failover-test", log);
  try {
    await redis.set("before", "1");
    await waitFor("the write to replicate", async () => (await newPrimary.get("before")) === "1");

    // The failover as Sentinel or a managed service makes it: writes paused until the replica has caught up, roles
    // swapped (Redis's FAILOVER), then the address pointed at the new primary.
    await failover(oldPrimary, replica);
    proxy.retarget(replica.port);
    // The service's connection still leads to the old primary, which refuses writes.
    await expect(redis.call("ROLE")).resolves.toSatisfy((reply) => (reply as unknown[])[0] === "slave");

    await redis.set("after", "2");
    const scripted = await redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "counter", 5);
    const transaction = await redis.multi().set("in-multi", "3").incr("counter").exec();

    expect(scripted).toBe(5);
    expect(transaction).toEqual([
      [null, "OK"],
      [null, 6],
    ]);
    // Each landed once, on the new primary.
    expect(await newPrimary.mget("before", "after", "in-multi", "counter")).toEqual(["1", "2", "3", "6"]);
    expect(await role(redis)).toBe("master");
  } finally {
    redis.disconnect();
  }
});

test("a client that ioredis ends without being closed connects again", async () => {
  const server = await startRedis();
  const redis = connectRedis(server.url, "revive-test", createLogger("revive-test", "silent"));
  try {
    await redis.set("revive", "1");
    // A reconnect asked for while one is under way fails inside ioredis's connector, which then ends the client.
    redis.once("connecting", () => redis.disconnect(true));
    const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
    redis.disconnect(true);
    await ended;
    await waitFor("the client to be ready again", () => redis.status === "ready", { timeoutMs: 5_000 });
    expect(await redis.get("revive")).toBe("1");
  } finally {
    redis.disconnect();
    await server.dispose();
  }
});

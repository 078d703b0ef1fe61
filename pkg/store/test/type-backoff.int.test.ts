/**
 * type_backoff:<type> against a real redis-server: a wait is recorded with its TTL, only ever lengthened, and read
 * back for many types in one round trip; an expired one is gone.
 */
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { describeTypeBackoffs, extendTypeBackoff, Keys, readTypeBackoffs } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

test("a wait is recorded with its TTL and who set it; a shorter one does not shorten it, a longer one extends it", async () => {
  expect(await extendTypeBackoff(clients.redis, "flaky", 5_000, "worker-a")).toBe(true);
  expect(await clients.redis.get(Keys.typeBackoff("flaky"))).toBe("worker-a");
  expect(await extendTypeBackoff(clients.redis, "flaky", 1_000, "worker-b")).toBe(false);
  expect(await clients.redis.get(Keys.typeBackoff("flaky"))).toBe("worker-a");
  const left = await readTypeBackoffs(clients.redis, ["flaky", "echo"]);
  expect([...left.keys()]).toEqual(["flaky"]);
  expect(left.get("flaky")).toBeGreaterThan(4_000);
  expect(left.get("flaky")).toBeLessThanOrEqual(5_000);
  expect(await extendTypeBackoff(clients.redis, "flaky", 60_000, "worker-b")).toBe(true);
  expect((await readTypeBackoffs(clients.redis, ["flaky"])).get("flaky")).toBeGreaterThan(50_000);
});

test("a wait that is over is gone: no key, nothing read", async () => {
  await extendTypeBackoff(clients.redis, "echo", 50, "worker-a");
  await waitFor("the back-off to expire", async () => (await clients.redis.exists(Keys.typeBackoff("echo"))) === 0);
  expect(await readTypeBackoffs(clients.redis, ["echo"])).toEqual(new Map());
  expect(await readTypeBackoffs(clients.redis, [])).toEqual(new Map());
});

test("describeTypeBackoffs lists the types backing off with what is left and who set it, in the order asked", async () => {
  await extendTypeBackoff(clients.redis, "sleep", 30_000, "worker-b:7");
  await extendTypeBackoff(clients.redis, "flaky", 10_000, "worker-a:3");
  const records = await describeTypeBackoffs(clients.redis, ["echo", "flaky", "sleep"]);
  expect(records.map(({ type, by }) => ({ type, by }))).toEqual([
    { type: "flaky", by: "worker-a:3" },
    { type: "sleep", by: "worker-b:7" },
  ]);
  expect(records[0]?.remainingMs).toBeGreaterThan(9_000);
  expect(records[1]?.remainingMs).toBeLessThanOrEqual(30_000);
});

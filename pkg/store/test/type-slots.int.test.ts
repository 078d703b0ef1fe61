/**
 * Fleet-wide slots per task type (type_slots:<type>) against a real redis-server: at most the limit are held at once;
 * a holder asking again keeps its own; a released or expired slot can be taken; a renewal extends live leases only.
 */
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { Keys, releaseTypeSlot, renewTypeSlots, takeTypeSlot } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

const take = (holder: string, limit = 2, leaseMs = 30_000, type = "checksum") =>
  takeTypeSlot(clients.redis, type, holder, limit, leaseMs);

test("at most the limit are held; asking again keeps one's own; a released slot goes to the next", async () => {
  expect(await take("a")).toBe(true);
  expect(await take("b")).toBe(true);
  expect(await take("c")).toBe(false);
  expect(await take("a")).toBe(true); // its own, not a third
  expect(await clients.redis.zcard(Keys.typeSlots("checksum"))).toBe(2);
  await releaseTypeSlot(clients.redis, "checksum", "a");
  expect(await take("c")).toBe(true);
  // Types are independent.
  expect(await take("x", 1, 30_000, "sleep")).toBe(true);
});

test("a slot whose lease ran out (its worker died) is taken back by the next take", async () => {
  expect(await take("dead", 1, 100)).toBe(true);
  expect(await take("alive", 1, 100)).toBe(false);
  await waitFor("the dead holder's lease to run out", async () => await take("alive", 1, 30_000), { timeoutMs: 5_000 });
  expect(await clients.redis.zrange(Keys.typeSlots("checksum"), 0, -1)).toEqual(["alive"]);
});

test("renewing extends live leases only, and keeps the key alive", async () => {
  expect(await take("a", 2, 150)).toBe(true);
  expect(await take("b", 2, 150)).toBe(true);
  await releaseTypeSlot(clients.redis, "checksum", "b");
  expect(await renewTypeSlots(clients.redis, "checksum", ["a", "b", "never"], 30_000)).toBe(1);
  const lease = Number(await clients.redis.zscore(Keys.typeSlots("checksum"), "a")) - Date.now();
  expect(lease).toBeGreaterThan(20_000);
  expect(await clients.redis.pttl(Keys.typeSlots("checksum"))).toBeGreaterThan(50_000);
  expect(await renewTypeSlots(clients.redis, "checksum", [], 30_000)).toBe(0);
});

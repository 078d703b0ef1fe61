/**
 * Fleet-wide start reservations per task type (type_rate:<type>) against a real redis-server: a burst starts at once,
 * the rest an interval apart in the order they asked; types are independent; the key expires once the schedule is
 * idle again.
 */
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { beforeEach, expect, test } from "vitest";
import { Keys, reserveTypeStart } from "../src/index.js";

const clients = useClients(useInfra());
beforeEach(async () => {
  await clients.redis.flushdb();
});

/** Reservations sent together, so Redis runs them back to back (within a millisecond or two). */
const reserveMany = (type: string, count: number, perSecond: number, burst: number) =>
  Promise.all(Array.from({ length: count }, () => reserveTypeStart(clients.redis, type, { perSecond, burst })));

const near = (actual: number[], expected: number[]) =>
  expect(
    actual.every((wait, i) => Math.abs(wait - (expected[i] as number)) <= 2),
    `${actual} ≈ ${expected}`,
  ).toBe(true);

test("a burst of three starts at once, then one every 100 ms (10/s), in the order asked", async () => {
  near(await reserveMany("checksum", 6, 10, 3), [0, 0, 0, 100, 200, 300]);
});

test("burst 1 spaces every start; a fractional interval (3/s) does not drift", async () => {
  near(await reserveMany("echo", 4, 3, 1), [0, 333, 667, 1000]);
});

test("each type has its own schedule", async () => {
  near(await reserveMany("a", 2, 1, 1), [0, 1000]);
  near(await reserveMany("b", 2, 1, 1), [0, 1000]);
});

test("the key lives until the schedule is idle again (plus 1 s), then a burst is available again", async () => {
  near(await reserveMany("sleep", 2, 20, 1), [0, 50]);
  const ttl = await clients.redis.pttl(Keys.typeRate("sleep"));
  expect(ttl).toBeGreaterThan(1_000);
  expect(ttl).toBeLessThanOrEqual(1_100);
  await waitFor(
    "the idle schedule's key to expire",
    async () => (await clients.redis.exists(Keys.typeRate("sleep"))) === 0,
    {
      timeoutMs: 5_000,
    },
  );
  near(await reserveMany("sleep", 2, 20, 2), [0, 0]);
});

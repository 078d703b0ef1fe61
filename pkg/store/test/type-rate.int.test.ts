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

/**
 * Reservations sent together, so Redis runs them back to back, and how long that took (ms): each wait is counted from
 * when Redis ran that call, so one run later is shorter by as much.
 */
async function reserveMany(type: string, count: number, perSecond: number, burst: number) {
  const startedAt = performance.now();
  const waits = await Promise.all(
    Array.from({ length: count }, () => reserveTypeStart(clients.redis, type, { perSecond, burst })),
  );
  return { waits, spreadMs: performance.now() - startedAt };
}

/** Each wait is the expected one, less at most the time the calls took to run (and a millisecond of rounding). */
const near = ({ waits, spreadMs }: { waits: number[]; spreadMs: number }, expected: number[]) =>
  expect(
    waits.every((wait, i) => {
      const want = expected[i] as number;
      return wait <= want + 1 && wait >= Math.max(0, want - spreadMs - 1);
    }),
    `${waits} ≈ ${expected} (the calls took ${spreadMs.toFixed(1)} ms)`,
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

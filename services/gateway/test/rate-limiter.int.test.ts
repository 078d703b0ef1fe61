import { type RedisServer, startRedis } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { RateLimiter } from "../src/auth/rate-limiter.js";

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.dispose();
});

async function takeMany(limiter: RateLimiter, caller: string, count: number) {
  return Promise.all(Array.from({ length: count }, () => limiter.take(caller)));
}

test("a caller gets the burst at once, then is refused with the time until the next token", async () => {
  const limiter = new RateLimiter(redis, { perSecond: 10, burst: 5 });
  const decisions = await takeMany(limiter, "burst", 8);
  expect(decisions.filter((decision) => decision.allowed)).toHaveLength(5);
  const refused = decisions.filter((decision) => !decision.allowed);
  expect(refused).toHaveLength(3);
  // At 10 tokens/s the next token is at most 100 ms away.
  for (const decision of refused) expect(decision.retryAfterMs).toBeGreaterThan(0);
  for (const decision of refused) expect(decision.retryAfterMs).toBeLessThanOrEqual(100);
  // The bucket expires once it would be full again: 5 tokens / 10 per s = 500 ms, plus 1 s.
  const ttl = await redis.pttl("ratelimit:burst");
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(1_500);
  // Callers have separate buckets.
  expect((await limiter.take("someone-else")).allowed).toBe(true);
});

test("the bucket refills with time, never beyond the burst", async () => {
  const limiter = new RateLimiter(redis, { perSecond: 20, burst: 3 });
  await takeMany(limiter, "refill", 3);
  expect((await limiter.take("refill")).allowed).toBe(false);
  // A timer is the point here: refilling is a property of real time passing. 400 ms at 20/s would give 8 tokens,
  // capped at the burst of 3.
  await new Promise((resolve) => setTimeout(resolve, 400));
  const afterWait = await takeMany(limiter, "refill", 5);
  expect(afterWait.filter((decision) => decision.allowed).length).toBe(3);
});

test("rate 0 is not a limiter: the guard turns limiting off instead", () => {
  expect(() => new RateLimiter(redis, { perSecond: 0, burst: 1 })).toThrow("perSecond > 0");
});

test("a call costing several tokens (a batch) takes them all or none, and waits for as many as it lacks", async () => {
  const limiter = new RateLimiter(redis, { perSecond: 1, burst: 10 });
  expect((await limiter.take("batch", 7)).allowed).toBe(true);
  // Three left: a cost of 4 is refused whole and takes nothing; the three are still there for a cost of 3.
  const refused = await limiter.take("batch", 4);
  expect(refused.allowed).toBe(false);
  // One token short at 1 token/s: about a second away (less the time since the first take).
  expect(refused.retryAfterMs).toBeGreaterThan(500);
  expect(refused.retryAfterMs).toBeLessThanOrEqual(1_000);
  expect((await limiter.take("batch", 3)).allowed).toBe(true);
  expect((await limiter.take("batch")).allowed).toBe(false);
  // A cost above the burst could never be allowed: refused before Redis is asked.
  expect(limiter.exceedsBurst(11)).toBe(true);
  expect(limiter.exceedsBurst(10)).toBe(false);
  await expect(limiter.take("batch", 11)).rejects.toThrow("a rate-limit cost must be an integer from 1 to the burst");
});

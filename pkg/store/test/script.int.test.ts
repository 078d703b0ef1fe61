/** Lua scripts run by SHA: loaded on first use, and again after Redis forgets them (restart, SCRIPT FLUSH). */
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { luaScript } from "../src/index.js";

const infra = useInfra();
let redis: Redis;
beforeAll(() => {
  redis = new Redis(infra.redis.url);
});
afterAll(() => redis?.disconnect());

const source = `return redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))`;

test("runs by SHA once loaded, and reloads the source after SCRIPT FLUSH", async () => {
  const script = luaScript(source);
  const key = `script-test:${crypto.randomUUID()}`;
  await redis.script("FLUSH");
  expect(await script.run(redis, [key], [2])).toBe(2); // NOSCRIPT → EVAL, which caches it
  expect(await redis.script("EXISTS", script.sha)).toEqual([1]);
  expect(await script.run(redis, [key], [3])).toBe(5); // EVALSHA
  await redis.script("FLUSH");
  expect(await script.run(redis, [key], [4])).toBe(9); // forgotten: loaded again, not an error
});

test("an error raised by the script itself is not mistaken for NOSCRIPT", async () => {
  const failing = luaScript(`return redis.error_reply('boom')`);
  await expect(failing.run(redis, [], [])).rejects.toThrow(/boom/);
});

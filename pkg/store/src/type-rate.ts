/**
 * Fleet-wide start rates per task type (the worker's WORKER_TYPE_RATES): every worker replica asks Redis for its
 * turn before it starts a task of a rate-limited type, so the limit holds however many replicas run.
 *
 * GCRA (the generic cell rate algorithm, as in redis-cell and Rails' and Stripe's limiters): one number per type,
 * the time at which the type's schedule is next free (`tat`). Each call *reserves* a start: it moves `tat` on by one
 * interval (1 / rate) and answers how long the caller waits for its turn, 0 while the type has burst to spare. So a
 * caller is never refused and never polls: it waits exactly its turn, and N callers at once get N turns an interval
 * apart. Reading the Redis server's clock (TIME) keeps replicas whose clocks disagree on one schedule.
 *
 * Key `type_rate:<type>`: string, the type's tat (ms). Its TTL is the time until the schedule is idle again plus
 * 1 s: an expired key and an idle schedule mean the same thing, so a type nobody runs holds no key.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";

// KEYS[1] the type's tat; ARGV[1] interval (ms per start); ARGV[2] burst (starts at once when idle). Returns the
// wait in ms before the reserved start (0: start now).
const RESERVE_START = `
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
tat = tat + interval
local wait = tat - burst * interval - now
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return math.ceil(wait)
`;
const reserveStart = luaScript(RESERVE_START);

export interface TypeRate {
  /** Starts per second, fleet-wide (> 0). */
  perSecond: number;
  /** Starts allowed at once after an idle spell (>= 1); 1 spaces every start by 1 / perSecond. */
  burst: number;
}

/** Reserves one start of `type` under `rate`; resolves to the milliseconds to wait for it (0: now). */
export async function reserveTypeStart(redis: Redis, type: string, rate: TypeRate): Promise<number> {
  const intervalMs = 1000 / rate.perSecond;
  return Number(await reserveStart.run(redis, [Keys.typeRate(type)], [intervalMs, rate.burst]));
}

/**
 * Fleet-wide concurrency per task type (the worker's WORKER_TYPE_GLOBAL_CONCURRENCY): a counting semaphore in Redis,
 * so that at most N tasks of a type run at once across every worker replica.
 *
 * Key `type_slots:<type>`: sorted set, one member per running task of the type (its holder id), scored by when its
 * lease ends (ms, Redis clock). A worker takes a slot before it starts such a task, renews the leases of the slots it
 * holds while they run, and gives a slot back when the task ends. A worker that dies holding slots stops renewing
 * them: each is taken back once its lease has run out (every take first removes expired members), so a crash costs
 * the fleet that slot for at most one lease. The key expires two leases after its last write.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";

const NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`;

// KEYS[1] the type's slots; ARGV[1] holder; ARGV[2] the limit; ARGV[3] lease (ms). Returns 1 when the holder has a
// slot (a holder asking again keeps its own), 0 when all are taken.
const TAKE_SLOT = `${NOW}
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * lease)
  return 1
end
return 0
`;

// KEYS[1] the type's slots; ARGV[1] lease (ms); ARGV[2..] holders. Extends the leases of those still holding a slot
// (a lease that ran out is not revived: its slot may be someone else's now). Returns how many were extended.
const RENEW_SLOTS = `${NOW}
local lease = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
    renewed = renewed + 1
  end
end
if renewed > 0 then redis.call('PEXPIRE', KEYS[1], 2 * lease) end
return renewed
`;

const takeSlot = luaScript(TAKE_SLOT);
const renewSlots = luaScript(RENEW_SLOTS);

/** Takes one of `limit` slots of `type` for `holder` for `leaseMs`; resolves true if it got one. */
export async function takeTypeSlot(
  redis: Redis,
  type: string,
  holder: string,
  limit: number,
  leaseMs: number,
): Promise<boolean> {
  return (await takeSlot.run(redis, [Keys.typeSlots(type)], [holder, limit, leaseMs])) === 1;
}

/** Extends the leases of `holders`' slots of `type`; resolves with how many still held one. */
export async function renewTypeSlots(
  redis: Redis,
  type: string,
  holders: readonly string[],
  leaseMs: number,
): Promise<number> {
  if (holders.length === 0) return 0;
  return Number(await renewSlots.run(redis, [Keys.typeSlots(type)], [leaseMs, ...holders]));
}

/** Gives `holder`'s slot of `type` back. */
export async function releaseTypeSlot(redis: Redis, type: string, holder: string): Promise<void> {
  await redis.zrem(Keys.typeSlots(type), holder);
}

// KEYS[1] the type's slots. Returns how many leases have not run out (on the Redis clock).
const COUNT_SLOTS = `${NOW}
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;
const countSlots = luaScript(COUNT_SLOTS);

/** How many tasks of a type hold a fleet-wide slot now (for operators: AdminService ListTypeLimits). */
export async function countTypeSlots(redis: Redis, type: string): Promise<number> {
  return Number(await countSlots.run(redis, [Keys.typeSlots(type)], []));
}

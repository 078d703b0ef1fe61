/**
 * A per-caller token bucket in Redis, so the limit holds across gateway replicas. One Lua script reads, refills,
 * takes a token and writes back atomically; it uses the Redis server's clock (TIME), so replicas whose clocks
 * disagree still share one bucket correctly.
 *
 * Key `ratelimit:<caller>`: hash {tokens, ts}. Its TTL is the time a bucket takes to refill completely plus 1 s:
 * after that the bucket would be full anyway, so an expired key and a full bucket mean the same thing.
 */
import type { Runtime } from "@tm/kit";
import { Keys, luaScript } from "@tm/store";

type Redis = Runtime["redis"];

// KEYS[1] bucket; ARGV[1] tokens per second; ARGV[2] burst (bucket size); ARGV[3] tokens the call costs (1, or a
// batch's task count; at most the burst). Returns {allowed 0|1, retry after ms}: all of them are taken, or none.
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(bucket[1])
local ts = tonumber(bucket[2])
local cost = tonumber(ARGV[3])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, retry}
`;
const takeToken = luaScript(TAKE_TOKEN);

export interface RateDecision {
  allowed: boolean;
  /** When the next token is due, in milliseconds (0 when allowed). */
  retryAfterMs: number;
}

export interface RateLimit {
  perSecond: number;
  burst: number;
}

export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    readonly limit: RateLimit,
  ) {
    if (limit.perSecond <= 0) throw new Error("a rate limiter needs perSecond > 0 (0 means no limiter at all)");
  }

  /** Takes `cost` tokens (one per call, one per task of a batch) from the caller's bucket, all or none. Rejects when
   *  Redis fails: the caller decides what that means. A cost above the burst could never be allowed: a caller checks
   *  that first (`exceedsBurst`). */
  async take(caller: string, cost = 1): Promise<RateDecision> {
    if (!Number.isInteger(cost) || cost < 1 || this.exceedsBurst(cost)) {
      throw new Error(`a rate-limit cost must be an integer from 1 to the burst (${this.limit.burst}), got ${cost}`);
    }
    const [allowed, retryAfterMs] = (await takeToken.run(
      this.redis,
      [Keys.rateLimit(caller)],
      [this.limit.perSecond, this.limit.burst, cost],
    )) as [number, number];
    return { allowed: allowed === 1, retryAfterMs };
  }

  /** Whether a call costing this much could never be allowed, however long the caller waits. */
  exceedsBurst(cost: number): boolean {
    return cost > this.limit.burst;
  }
}

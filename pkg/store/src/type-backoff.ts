/**
 * Fleet-wide back-offs per task type: a worker whose handler was told by its downstream to wait (RateLimitedError)
 * records that wait here, and every worker starts no task of the type until it is over (BullMQ's `worker.rateLimit`,
 * which is queue-wide). The key's TTL is the wait: Redis ends it, so no worker's clock is involved, and a type no
 * downstream is limiting holds no key.
 *
 * Key `type_backoff:<type>`: string, who set it (for operators); TTL the remaining wait.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";

// KEYS[1] the type's back-off; ARGV[1] the wait (ms), ARGV[2] who. Only lengthens: a shorter wait told to one worker
// does not cut short a longer one told to another. Returns 1 when it set the key.
const EXTEND = luaScript(`
local left = redis.call('PTTL', KEYS[1])
if left >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return 1
`);

/** Records that `type`'s downstream asked for a wait of `waitMs` (≥ 1): no worker starts one until it is over. */
export async function extendTypeBackoff(redis: Redis, type: string, waitMs: number, by: string): Promise<boolean> {
  return (await EXTEND.run(redis, [Keys.typeBackoff(type)], [Math.max(1, Math.ceil(waitMs)), by])) === 1;
}

export interface TypeBackoffRecord {
  type: string;
  remainingMs: number;
  /** The worker that set it last. */
  by: string;
}

/** The back-offs in force among `types`, with who set them (operators' view: ListTypeLimits). One round trip. */
export async function describeTypeBackoffs(redis: Redis, types: readonly string[]): Promise<TypeBackoffRecord[]> {
  const pipeline = redis.pipeline();
  for (const type of types) pipeline.pttl(Keys.typeBackoff(type)).get(Keys.typeBackoff(type));
  const replies = (await pipeline.exec()) ?? [];
  const records: TypeBackoffRecord[] = [];
  for (const [i, type] of types.entries()) {
    const [ttlError, ttl] = replies[2 * i] ?? [];
    const [byError, by] = replies[2 * i + 1] ?? [];
    if (ttlError) throw ttlError;
    if (byError) throw byError;
    if (typeof ttl === "number" && ttl > 0)
      records.push({ type, remainingMs: ttl, by: typeof by === "string" ? by : "" });
  }
  return records;
}

/** The back-offs in force among `types`: type → milliseconds left (types without one are absent). One round trip. */
export async function readTypeBackoffs(redis: Redis, types: readonly string[]): Promise<Map<string, number>> {
  return new Map((await describeTypeBackoffs(redis, types)).map(({ type, remainingMs }) => [type, remainingMs]));
}

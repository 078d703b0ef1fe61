/**
 * ioredis with reconnect-forever and bounded command queueing: while Redis is down commands wait (up to the
 * retry limit) rather than fail at once, so a Redis restart costs latency, not tasks.
 */
import type { RedisOptions } from "ioredis";
import { Redis } from "./ioredis-module.js";
import { LogThrottle } from "./log-throttle.js";
import type { Logger } from "./logger.js";
import { keepRedisCommandContext } from "./redis-context.js";
import { spansRecorded } from "./telemetry.js";

export function connectRedis(url: string, name: string, log: Logger, extra: RedisOptions = {}): Redis {
  // Auto-pipelining (below) would otherwise send a command in the context of another caller: redis-context.ts.
  // Only Redis spans read that context, and they exist only when spans record (telemetry-start.ts).
  if (spansRecorded()) keepRedisCommandContext();
  // Reconnect loops emit an error per attempt; one warning a few seconds is enough.
  const warnings = new LogThrottle(5_000);
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 20,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...extra,
  });
  redis.on("error", (error) => {
    const heldBack = warnings.pass();
    if (heldBack !== undefined) log.warn({ err: error.message, heldBack }, "Redis connection problem");
  });
  redis.on("ready", () => {
    everReady.add(redis);
    log.info("connected to Redis");
  });
  return redis;
}

/** Clients that have been ready once: after that, not being ready means the connection was lost. */
const everReady = new WeakSet<Redis>();

/**
 * True while a client that was connected has lost its connection and not yet got it back. Its commands would then
 * wait in the offline queue through the whole reconnect budget (tens of seconds), longer than a caller should wait
 * to learn that it must retry: callers that answer someone fail fast instead. This covers every state of the
 * reconnect loop, not only "reconnecting": a reconnect attempt passes through "connecting" and "connect" (and stays
 * in "connect" when the port accepts but Redis does not answer). Before the first ready, commands queue as intended:
 * that is start-up, not an outage.
 */
export function redisConnectionLost(redis: Redis): boolean {
  if (redis.status === "ready") return false;
  return everReady.has(redis) || LOST_STATES.has(redis.status);
}
const LOST_STATES = new Set(["reconnecting", "close", "end"]);

export type { Redis };

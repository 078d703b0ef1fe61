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
  const demotions = new LogThrottle(5_000);
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 20,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    reconnectOnError: (error) => {
      if (!answeredReadOnly(error)) return false;
      const heldBack = demotions.pass();
      if (heldBack !== undefined)
        log.warn({ err: error.message, heldBack }, "Redis answered READONLY: reconnecting to reach the primary");
      return RECONNECT_AND_RESEND;
    },
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

/**
 * A managed failover (ElastiCache, Memorystore, Sentinel or an operator behind a DNS name or a Kubernetes Service)
 * demotes the old primary without closing its connections: it goes on answering every write with READONLY for as
 * long as the connection lives, so a service would hold its deliveries (READONLY is an outage, outage.ts) until it was
 * restarted. A new connection to the same address reaches the new primary; the command that met READONLY did not run
 * (nor did a transaction or script that held it: EXECABORT, no write done), so it is sent again once reconnected. A
 * REDIS_URL that names a replica for good therefore retries its writes until a primary answers there, logging this
 * warning every few seconds.
 */
function answeredReadOnly(error: Error): boolean {
  return error.message.startsWith("READONLY");
}
/** ioredis's reconnectOnError answer for "reconnect, then send the failed command again". */
const RECONNECT_AND_RESEND = 2;

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

/**
 * Shares a rate-limited downstream's "wait" across the fleet (type_backoff:<type> in Redis). The worker whose handler
 * was told to wait (RateLimitedError) pauses the type at once and records the wait (`recordBackoff`); every worker
 * reads the back-offs at start and every `pollMs` and pauses each type that has one for what is left of it
 * (TypeLimits.pause, which only lengthens). So one 429 holds back the whole fleet's starts of that type within a poll,
 * instead of every worker spending a call to learn it (BullMQ's `worker.rateLimit` is queue-wide likewise). While
 * Redis cannot be read or written each worker still pauses on what its own handlers are told.
 */
import { type Logger, LogThrottle } from "@tm/kit";
import { extendTypeBackoff, readTypeBackoffs } from "@tm/store";
import type { Redis } from "ioredis";
import { type Follower, pollEvery } from "./poll.js";
import type { TypeLimits } from "./type-limits.js";

export function followTypeBackoffs(
  redis: Redis,
  limits: Pick<TypeLimits, "pause" | "paused">,
  knownTypes: readonly string[],
  pollMs: number,
  log: Logger,
): Follower {
  const started = new LogThrottle(60_000);
  return pollEvery(pollMs, async (stopped) => {
    let left: Map<string, number>;
    try {
      left = await readTypeBackoffs(redis, knownTypes);
    } catch (error) {
      log.debug({ err: error }, "could not read the type back-offs; pausing only on this worker's own");
      return;
    }
    if (stopped()) return;
    const now = Date.now();
    for (const [type, ms] of left) {
      if (!limits.paused(type) && started.pass(type) !== undefined) {
        log.info(
          { type, waitMs: ms },
          "a worker's downstream rate limited this type: none starts here until the wait is over",
        );
      }
      limits.pause(type, now + ms);
    }
  });
}

/** Records a wait a handler was told, for every worker (fire and forget: the local pause is already in force). */
export function recordBackoff(redis: Redis, type: string, waitMs: number, by: string, log: Logger): void {
  extendTypeBackoff(redis, type, waitMs, by).catch((error: unknown) =>
    log.debug({ err: error, type }, "could not share the type's back-off; only this worker pauses it"),
  );
}

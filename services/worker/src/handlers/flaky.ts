import { MAX_RETRY_AFTER_MS, RateLimitedError, RetryAfterError } from "@tm/flow";
import * as z from "zod";
import { defineHandler } from "./types.js";

/**
 * Fails its first `failures` attempts, then succeeds: exercises retries. With `retryAfterMs` each failure asks to be
 * retried that much later (a RetryAfterError, as a handler does when a downstream answers 429 with Retry-After).
 * With `rateLimits` the first that many runs of each attempt are rate limited instead (a RateLimitedError, waiting
 * `retryAfterMs`, default 1 s): they spend no attempt. With `errorDetail` each failure's message carries that text
 * after it, as an HTTP client's error carries a whole response body: exercises long error messages.
 */
export const flaky = defineHandler({
  type: "flaky",
  payload: z.object({
    failures: z.number().int().min(0).max(1_000),
    retryAfterMs: z.number().int().min(0).max(MAX_RETRY_AFTER_MS).optional(),
    rateLimits: z.number().int().min(0).max(1_000).optional(),
    errorDetail: z.string().max(60_000).optional(),
  }),
  run({ failures, retryAfterMs, rateLimits = 0, errorDetail }, { attempt, deferrals }) {
    if (deferrals < rateLimits) {
      throw new RateLimitedError(
        `flaky: run ${deferrals + 1} of attempt ${attempt} is rate limited (planned: ${rateLimits})`,
        retryAfterMs ?? 1_000,
      );
    }
    if (attempt > failures) return { attempts: attempt };
    const message = `flaky: attempt ${attempt} fails (planned failures: ${failures})${errorDetail ? `: ${errorDetail}` : ""}`;
    throw retryAfterMs === undefined ? new Error(message) : new RetryAfterError(message, retryAfterMs);
  },
});

/**
 * A task's own retry backoff (SubmitTaskRequest.retry_backoff), carried in its messages: the wait after failed
 * attempt n is min(maxDelayMs, delayMs × multiplier^(n-1)), shortened by up to `jitter` of it at random (BullMQ's
 * backoff, Temporal's retry policy). Without one, the consumers' FlowSettings.retryDelaysMs apply.
 */
import * as z from "zod";
import { MAX_RETRY_AFTER_MS } from "./errors.js";

/** The longest wait a backoff may ask for: a message waiting out a NAK delay holds a max_ack_pending slot. */
export const MAX_RETRY_BACKOFF_MS = MAX_RETRY_AFTER_MS;

export const RetryBackoffSchema = z
  .object({
    delayMs: z.number().int().min(0).max(MAX_RETRY_BACKOFF_MS),
    multiplier: z.number().min(1).max(100),
    maxDelayMs: z.number().int().min(1).max(MAX_RETRY_BACKOFF_MS),
    jitter: z.number().min(0).max(1),
  })
  .refine((backoff) => backoff.maxDelayMs >= backoff.delayMs, {
    message: "maxDelayMs must be at least delayMs",
    path: ["maxDelayMs"],
  });
export type RetryBackoff = z.infer<typeof RetryBackoffSchema>;

/** The wait after failed attempt `failedAttempt` (1-based); `random` in [0, 1) picks the jitter. */
export function backoffDelayMs(backoff: RetryBackoff, failedAttempt: number, random: () => number = Math.random) {
  // Past ~1,000 doublings the power is Infinity, which the cap absorbs (0 × Infinity would be NaN: a 0 wait stays 0).
  const growth = backoff.multiplier ** (Math.max(failedAttempt, 1) - 1);
  const exact = backoff.delayMs === 0 ? 0 : Math.min(backoff.maxDelayMs, backoff.delayMs * growth);
  return Math.round(exact - exact * backoff.jitter * random());
}

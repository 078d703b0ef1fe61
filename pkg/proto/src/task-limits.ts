/**
 * A task's own limits (timeout, max_attempts, retry_backoff, expires_after) as Task, SubmitTaskRequest and
 * ScheduledTask carry them, from milliseconds. Unset ones are left out (or 0), so the receiver applies its defaults.
 * Shared by the gateway (its answers) and taskctl (its requests).
 */
import { create } from "@bufbuild/protobuf";
import { type Duration, durationFromMs } from "@bufbuild/protobuf/wkt";
import { type RetryBackoff, RetryBackoffSchema } from "./gen/taskmanager/v1/taskmanager_pb.js";

export interface TaskLimitsMs {
  timeoutMs?: number;
  maxAttempts?: number;
  /** Unset multiplier, max delay or jitter: the gateway's defaults (1, 1 h, 0). */
  retryBackoff?: { delayMs: number; multiplier?: number; maxDelayMs?: number; jitter?: number };
  expiresAfterMs?: number;
  heartbeatTimeoutMs?: number;
}

export function taskLimitFields(limits: TaskLimitsMs): {
  timeout?: Duration;
  maxAttempts: number;
  retryBackoff?: RetryBackoff;
  expiresAfter?: Duration;
  heartbeatTimeout?: Duration;
} {
  const backoff = limits.retryBackoff;
  return {
    ...(limits.timeoutMs ? { timeout: durationFromMs(limits.timeoutMs) } : {}),
    maxAttempts: limits.maxAttempts ?? 0,
    ...(backoff
      ? {
          retryBackoff: create(RetryBackoffSchema, {
            delay: durationFromMs(backoff.delayMs),
            multiplier: backoff.multiplier ?? 0,
            ...(backoff.maxDelayMs === undefined ? {} : { maxDelay: durationFromMs(backoff.maxDelayMs) }),
            jitter: backoff.jitter ?? 0,
          }),
        }
      : {}),
    ...(limits.expiresAfterMs ? { expiresAfter: durationFromMs(limits.expiresAfterMs) } : {}),
    ...(limits.heartbeatTimeoutMs ? { heartbeatTimeout: durationFromMs(limits.heartbeatTimeoutMs) } : {}),
  };
}

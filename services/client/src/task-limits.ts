/**
 * A task's own limits as taskctl takes them (--attempt-timeout, --max-attempts, --retry-*, --expires-after), for SubmitTaskRequest
 * and a schedule's task alike. The gateway checks the values and names a field it refuses.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type RetryBackoff, RetryBackoffSchema } from "@tm/proto";

/** --retry-delay, --retry-multiplier, --retry-max-delay, --retry-jitter (unset ones: the gateway's defaults). */
export interface RetryBackoffOption {
  delayMs: number;
  multiplier?: number;
  maxDelayMs?: number;
  jitter?: number;
}

export interface TaskLimitOptions {
  attemptTimeoutMs?: number;
  maxAttempts?: number;
  retryBackoff?: RetryBackoffOption;
  /** --expires-after. */
  expiresAfterMs?: number;
}

export function taskLimitFields(options: TaskLimitOptions): {
  timeout?: ReturnType<typeof durationFromMs>;
  maxAttempts: number;
  retryBackoff?: RetryBackoff;
  expiresAfter?: ReturnType<typeof durationFromMs>;
} {
  const backoff = options.retryBackoff;
  return {
    ...(options.attemptTimeoutMs ? { timeout: durationFromMs(options.attemptTimeoutMs) } : {}),
    maxAttempts: options.maxAttempts ?? 0,
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
    ...(options.expiresAfterMs ? { expiresAfter: durationFromMs(options.expiresAfterMs) } : {}),
  };
}

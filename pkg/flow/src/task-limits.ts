/**
 * A task's own limits (SubmitTaskRequest.timeout, max_attempts, retry_backoff): stored with its record, carried in
 * its messages, kept by replays, requeues and schedules. Unset ones are left out, so the pipeline's defaults apply
 * and a reader can tell "the default" from a value that happens to equal it.
 */
import type { RetryBackoff } from "./retry-backoff.js";

export interface TaskLimits {
  /** The handler timeout per attempt (ms). */
  timeoutMs?: number;
  /** The most attempts, below the consumers' maxDeliver. */
  maxAttempts?: number;
  /** The wait after a failed attempt. */
  retryBackoff?: RetryBackoff;
}

/** The limits `from` sets, and nothing else of it. */
export function taskLimitsOf(from: TaskLimits): TaskLimits {
  return {
    ...(from.timeoutMs ? { timeoutMs: from.timeoutMs } : {}),
    ...(from.maxAttempts ? { maxAttempts: from.maxAttempts } : {}),
    ...(from.retryBackoff ? { retryBackoff: from.retryBackoff } : {}),
  };
}

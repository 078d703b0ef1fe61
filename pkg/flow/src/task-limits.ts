/**
 * A task's own limits (SubmitTaskRequest.timeout, max_attempts, retry_backoff, expires_after, heartbeat_timeout): stored with its record, carried in
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
  /** Not run if no attempt has started this long after it was due (ms). */
  expiresAfterMs?: number;
  /** An attempt reporting no progress for this long is aborted as timed out (ms). */
  heartbeatTimeoutMs?: number;
}

/** The longest expires_after: the task's record lives a week (Bounds.taskTtlSeconds). */
export const MAX_EXPIRES_AFTER_MS = 7 * 24 * 3_600_000;

/**
 * When an unstarted task expires (ms since epoch): `expiresAfterMs` after it was due (a delayed task: its runAt). Only
 * its first generation: a replay or requeue is an operator's explicit decision to run it now. Undefined: never.
 */
export function expiresAtMs(task: {
  expiresAfterMs?: number;
  generation: number;
  createdAt: string;
  runAt?: string;
}): number | undefined {
  if (!task.expiresAfterMs || task.generation !== 0) return undefined;
  return Date.parse(task.runAt ?? task.createdAt) + task.expiresAfterMs;
}

/** When the task expired, if it has by `now` (ms since epoch); undefined while it may still start (or never expires). */
export function expiredAtMs(task: Parameters<typeof expiresAtMs>[0], now = Date.now()): number | undefined {
  const expiresAt = expiresAtMs(task);
  return expiresAt !== undefined && now > expiresAt ? expiresAt : undefined;
}

/** The limits `from` sets, and nothing else of it. */
export function taskLimitsOf(from: TaskLimits): TaskLimits {
  return {
    ...(from.timeoutMs ? { timeoutMs: from.timeoutMs } : {}),
    ...(from.maxAttempts ? { maxAttempts: from.maxAttempts } : {}),
    ...(from.retryBackoff ? { retryBackoff: from.retryBackoff } : {}),
    ...(from.expiresAfterMs ? { expiresAfterMs: from.expiresAfterMs } : {}),
    ...(from.heartbeatTimeoutMs ? { heartbeatTimeoutMs: from.heartbeatTimeoutMs } : {}),
  };
}

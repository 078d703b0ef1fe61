/**
 * A handler failure that retrying cannot fix (a rejected payload, an unknown task type): the message is
 * dead-lettered at once instead of being redelivered.
 */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The most of an error's message that an audit record keeps. A handler's error can carry a whole HTTP response body;
 * kept whole, it would push the audit event past its 16 KiB limit (SIZE_LIMITS.auditDetailBytes) and the event would
 * be refused, and with it a failure's record. 2,048 characters fit even when JSON writes each one as \uXXXX.
 */
export const RECORDED_ERROR_CHARS = 2_048;

/** errorMessage(), cut to RECORDED_ERROR_CHARS: for audit details. */
export function recordedError(error: unknown): string {
  return errorMessage(error).slice(0, RECORDED_ERROR_CHARS);
}

/** The longest wait a RetryAfterError asks for: a message waiting out a NAK delay holds one of its consumer's
 *  max_ack_pending slots (1,000), so a wait of hours belongs in a new task with `run_at`, not in a retry. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * A handler failure that says when to try again (a downstream answered 429 or 503 with Retry-After, a resource is
 * busy): retried like any failure, spending an attempt, but after `retryAfterMs` instead of the configured delay for
 * that attempt (Temporal's next retry delay, Celery's `retry(countdown=…)`). Clamped to MAX_RETRY_AFTER_MS; on the
 * task's last attempt it dead-letters as any failure does.
 */
export class RetryAfterError extends Error {
  override readonly name: string = "RetryAfterError";
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options?: ErrorOptions) {
    super(message, options);
    if (!Number.isFinite(retryAfterMs) || retryAfterMs < 0) {
      throw new RangeError(`${new.target.name}: retryAfterMs must be a finite number ≥ 0, not ${retryAfterMs}`);
    }
    this.retryAfterMs = Math.min(Math.round(retryAfterMs), MAX_RETRY_AFTER_MS);
  }
}

/**
 * A handler failure that says "not now, and not this task's fault": a downstream is rate-limiting the caller (429
 * with Retry-After). Where the consumer can take the delivery back (the worker's dispatcher: ConsumerOptions
 * `deferRateLimited`), it is run again after `retryAfterMs` in the same attempt, without spending one (BullMQ's
 * RateLimitError), and the worker starts no other task of its type meanwhile. Elsewhere, or once a delivery has
 * waited its budget (WORKER_RATE_LIMIT_HOLD_MS), it is retried like a RetryAfterError: an attempt is spent.
 */
export class RateLimitedError extends RetryAfterError {
  override readonly name = "RateLimitedError";
}

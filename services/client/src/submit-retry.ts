/**
 * How taskctl retries a submission the gateway could not take (UNAVAILABLE: a gateway restarting, Redis or NATS
 * briefly unreachable, a connection refused), as Celery's publish retry policy does by default. Every attempt carries
 * the same idempotency key, the user's or one generated for this invocation, so a retry after an attempt that did
 * reach Redis completes that submission (under its task id) instead of creating a second task. A rate limit
 * (RESOURCE_EXHAUSTED with the gateway's `grpc-retry-pushback-ms`) is waited out for as long as the gateway says,
 * within the same number of retries; an error without a pushback (a batch too large) is not retried.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { retryPushbackOf } from "@tm/proto";
import { isConnectionFailure } from "./exit-codes.js";
import { type Io, println } from "./io.js";

/** Waits before retry 1, 2, 3, ...; the last repeats. */
export const RETRY_DELAYS_MS: readonly number[] = [250, 500, 1_000, 2_000, 4_000];
/** Retries after the first attempt unless `--retries` says otherwise: 3.75 s of waiting in all. */
export const DEFAULT_SUBMIT_RETRIES = 4;
export const MAX_SUBMIT_RETRIES = 20;

export function retryDelayMs(retry: number): number {
  return RETRY_DELAYS_MS[Math.min(retry, RETRY_DELAYS_MS.length) - 1] ?? 0;
}

/** The longest pushback waited for: a rate limit further off than this is reported, not slept through. */
export const MAX_PUSHBACK_WAIT_MS = 60_000;

/** A rate limit's wait (RESOURCE_EXHAUSTED with a pushback of at most MAX_PUSHBACK_WAIT_MS), or undefined. */
export function rateLimitWaitMs(error: unknown): number | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.ResourceExhausted) return undefined;
  const pushback = retryPushbackOf(error);
  return pushback !== undefined && pushback <= MAX_PUSHBACK_WAIT_MS ? pushback : undefined;
}

/** How long to wait before retry number `retry` after `error`, or undefined when the error is not one to retry: only
 *  an answer that says "try again" (unavailable, or rate limited with a pushback) is; a rejected request is not. */
export function retryDelayFor(error: unknown, retry: number): number | undefined {
  if (isConnectionFailure(error)) return retryDelayMs(retry);
  if (error instanceof ConnectError && error.code === Code.Unavailable) return retryDelayMs(retry);
  return rateLimitWaitMs(error);
}

export function isRetryableSubmitError(error: unknown): boolean {
  return retryDelayFor(error, 1) !== undefined;
}

/** A key unique to this invocation, recognisable in the task record as taskctl's own. */
export function generatedIdempotencyKey(): string {
  return `taskctl-${crypto.randomUUID()}`;
}

export interface RetryNotice {
  error: unknown;
  /** The attempt about to be made (2 for the first retry). */
  attempt: number;
  attempts: number;
  delayMs: number;
}

/** Runs `call` until it succeeds, fails for good, or `retries` retries are spent. Resolves with the attempts made. */
export async function withSubmitRetries<T>(
  retries: number,
  call: () => Promise<T>,
  onRetry: (notice: RetryNotice) => void,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<{ value: T; attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await call(), attempts: attempt };
    } catch (error) {
      const delayMs = retryDelayFor(error, attempt);
      if (attempt > retries || delayMs === undefined) throw error;
      onRetry({ error, attempt: attempt + 1, attempts: retries + 1, delayMs });
      await sleep(delayMs);
    }
  }
}

/** What submit, submit --watch and demo print before each retry (stderr, so --json output stays parseable). */
export function printRetry(io: Io, { error, attempt, attempts, delayMs }: RetryNotice): void {
  const reason = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
  const what = rateLimitWaitMs(error) === undefined ? "gateway unavailable" : "rate limited";
  println(io.stderr, `${what} (${reason}); retrying in ${delayMs / 1000} s (attempt ${attempt} of ${attempts})`);
}

/**
 * When a call to the gateway is worth making again, and after how long: the policy taskctl and TaskManagerClient
 * share. Only an answer that says "try again" is retried: the gateway unreachable or restarting (UNAVAILABLE, a
 * refused or reset connection), or rate limited with the gateway's `grpc-retry-pushback-ms` (waited for as long as it
 * says, up to MAX_PUSHBACK_WAIT_MS). A refused request (INVALID_ARGUMENT, a batch too large without a pushback, ...)
 * is not: sending it again cannot change the answer. Celery's publish retry policy does the same by default.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { retryPushbackOf } from "./retry-pushback.js";

/** Waits before retry 1, 2, 3, ...; the last repeats. */
export const RETRY_DELAYS_MS: readonly number[] = [250, 500, 1_000, 2_000, 4_000];

/** The longest pushback waited for: a rate limit further off than this is reported, not slept through. */
export const MAX_PUSHBACK_WAIT_MS = 60_000;

const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
]);

/** True when the error (or one of its causes) says the TCP connection itself could not be made. */
export function isConnectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 6; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === "string" && CONNECTION_ERROR_CODES.has(code)) return true;
    if (typeof message === "string" && [...CONNECTION_ERROR_CODES].some((name) => message.includes(name))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

export function retryDelayMs(retry: number): number {
  return RETRY_DELAYS_MS[Math.min(retry, RETRY_DELAYS_MS.length) - 1] ?? 0;
}

/** A rate limit's wait (RESOURCE_EXHAUSTED with a pushback of at most MAX_PUSHBACK_WAIT_MS), or undefined. */
export function rateLimitWaitMs(error: unknown): number | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.ResourceExhausted) return undefined;
  const pushback = retryPushbackOf(error);
  return pushback !== undefined && pushback <= MAX_PUSHBACK_WAIT_MS ? pushback : undefined;
}

/** How long to wait before retry number `retry` after `error`, or undefined when the error is not one to retry. */
export function retryDelayFor(error: unknown, retry: number): number | undefined {
  if (isConnectionFailure(error)) return retryDelayMs(retry);
  if (error instanceof ConnectError && error.code === Code.Unavailable) return retryDelayMs(retry);
  return rateLimitWaitMs(error);
}

export function isRetryableSubmitError(error: unknown): boolean {
  return retryDelayFor(error, 1) !== undefined;
}

export interface RetryNotice {
  error: unknown;
  /** The attempt about to be made (2 for the first retry). */
  attempt: number;
  attempts: number;
  delayMs: number;
}

/** Runs `call` until it succeeds, fails for good, or `retries` retries are spent. Resolves with the attempts made.
 *  `sleep` rejects when the caller gives up (an aborted signal), which ends the retries with its reason. */
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

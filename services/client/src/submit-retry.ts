/**
 * How taskctl retries a submission the gateway could not take (UNAVAILABLE: a gateway restarting, Redis or NATS
 * briefly unreachable, a connection refused), as Celery's publish retry policy does by default. Every attempt carries
 * the same idempotency key, the user's or one generated for this invocation, so a retry after an attempt that did
 * reach Redis completes that submission (under its task id) instead of creating a second task.
 */
import { Code, ConnectError } from "@connectrpc/connect";
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

/** Only an answer that says "try again" is retried; a rejected request (bad type, rate limit, ...) is not. */
export function isRetryableSubmitError(error: unknown): boolean {
  if (isConnectionFailure(error)) return true;
  return error instanceof ConnectError && error.code === Code.Unavailable;
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
      if (attempt > retries || !isRetryableSubmitError(error)) throw error;
      const delayMs = retryDelayMs(attempt);
      onRetry({ error, attempt: attempt + 1, attempts: retries + 1, delayMs });
      await sleep(delayMs);
    }
  }
}

/** What submit, submit --watch and demo print before each retry (stderr, so --json output stays parseable). */
export function printRetry(io: Io, { error, attempt, attempts, delayMs }: RetryNotice): void {
  const reason = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
  println(
    io.stderr,
    `gateway unavailable (${reason}); retrying in ${delayMs / 1000} s (attempt ${attempt} of ${attempts})`,
  );
}

/**
 * How taskctl retries a submission the gateway could not take (UNAVAILABLE: a gateway restarting, Redis or NATS
 * briefly unreachable, a connection refused), with @tm/proto's policy (call-retry.ts), as TaskManagerClient does. Every
 * attempt carries the same idempotency key, the user's or one generated for this invocation, so a retry after an
 * attempt that did reach Redis completes that submission (under its task id) instead of creating a second task.
 */
import { ConnectError } from "@connectrpc/connect";
import { type RetryNotice, rateLimitWaitMs } from "@tm/proto";
import { type Io, println } from "./io.js";

export {
  isRetryableSubmitError,
  MAX_PUSHBACK_WAIT_MS,
  RETRY_DELAYS_MS,
  type RetryNotice,
  rateLimitWaitMs,
  retryDelayFor,
  retryDelayMs,
  withSubmitRetries,
} from "@tm/proto";

/** Retries after the first attempt unless `--retries` says otherwise: 3.75 s of waiting in all. */
export const DEFAULT_SUBMIT_RETRIES = 4;
export const MAX_SUBMIT_RETRIES = 20;

/** A key unique to this invocation, recognisable in the task record as taskctl's own. */
export function generatedIdempotencyKey(): string {
  return `taskctl-${crypto.randomUUID()}`;
}

/** What submit, submit --watch and demo print before each retry (stderr, so --json output stays parseable). */
export function printRetry(io: Io, { error, attempt, attempts, delayMs }: RetryNotice): void {
  const reason = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
  const what = rateLimitWaitMs(error) === undefined ? "gateway unavailable" : "rate limited";
  println(io.stderr, `${what} (${reason}); retrying in ${delayMs / 1000} s (attempt ${attempt} of ${attempts})`);
}

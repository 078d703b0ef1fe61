/**
 * The errors of a handler loaded from WORKER_HANDLER_MODULES, as the pipeline's own classes. Such a module imports
 * nothing from this code base (and a copy of @tm/flow would hold other classes), so it says what its error is by name.
 */
import { PermanentError, RateLimitedError, RetryAfterError } from "@tm/flow";

/**
 * A handler's error as the pipeline's own class when its `name` says it is one: `PermanentError` (not retried),
 * `RetryAfterError` and `RateLimitedError` (with a numeric `retryAfterMs`). Anything else is returned as it is: an ordinary failed attempt. The stack stays the one
 * thrown (where in the module it was thrown); not a `cause`, which the logs would print as a second message.
 */
export function recognisedError(error: unknown): unknown {
  if (error instanceof PermanentError || error instanceof RetryAfterError || !(error instanceof Error)) return error;
  const { retryAfterMs } = error as { retryAfterMs?: unknown };
  const waits = typeof retryAfterMs === "number" && Number.isFinite(retryAfterMs) && retryAfterMs >= 0;
  let recognised: Error;
  if (error.name === "PermanentError") recognised = new PermanentError(error.message);
  else if (error.name === "RetryAfterError" && waits) recognised = new RetryAfterError(error.message, retryAfterMs);
  else if (error.name === "RateLimitedError" && waits) recognised = new RateLimitedError(error.message, retryAfterMs);
  else return error;
  recognised.stack = error.stack;
  return recognised;
}

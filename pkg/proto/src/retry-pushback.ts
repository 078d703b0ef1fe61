/**
 * A server's "retry after this long" on an error, as gRPC defines it (gRFC A6, client retries): the trailer
 * `grpc-retry-pushback-ms`, which grpc-js clients with a retry policy already obey. The gateway sets it on a rate
 * limit's RESOURCE_EXHAUSTED (when the caller's next token is due); taskctl waits that long and sends the call again.
 * An error without it (a batch too large, a payload over its limit) is not one that waiting cures.
 */
import { ConnectError } from "@connectrpc/connect";

export const RETRY_PUSHBACK_HEADER = "grpc-retry-pushback-ms";

/** The metadata for an error after which the caller may retry in `ms` milliseconds. */
export function retryPushback(ms: number): Headers {
  return new Headers({ [RETRY_PUSHBACK_HEADER]: String(Math.max(0, Math.ceil(ms))) });
}

/** The pushback an error carries, in ms; undefined when it has none (or not a well-formed one: gRPC says a client
 *  must then not retry on it). */
export function retryPushbackOf(error: unknown): number | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  const value = error.metadata.get(RETRY_PUSHBACK_HEADER);
  return value !== null && /^\d{1,10}$/.test(value.trim()) ? Number(value) : undefined;
}

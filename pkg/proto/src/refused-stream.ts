/**
 * HTTP/2 REFUSED_STREAM means the server processed none of the call: a stream opened as the server's GOAWAY was on its
 * way (a gateway shutting down), or one over its concurrent-stream limit. gRPC's HTTP/2 mapping makes it UNAVAILABLE,
 * the code clients retry on, and grpc-js does so; connect-node reports it as INTERNAL, because Node surfaces it as a
 * stream error (ERR_HTTP2_STREAM_ERROR) that it does not map. A stream opened on a session that has already received
 * GOAWAY (ERR_HTTP2_GOAWAY_SESSION) never reached the server either. This interceptor gives both the code a caller's
 * retry logic looks for, keeping the Node error as the cause.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The Node error under `error` that shows the server never processed the call, if any. */
export function unprocessedCause(error: unknown): Error | undefined {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 6; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ERR_HTTP2_GOAWAY_SESSION") return cause;
    if (code === "ERR_HTTP2_STREAM_ERROR" && cause.message.includes("REFUSED_STREAM")) return cause;
    cause = cause.cause;
  }
  return undefined;
}

function asUnavailable(error: unknown): unknown {
  if (error instanceof ConnectError && error.code === Code.Unavailable) return error;
  const cause = unprocessedCause(error);
  if (!cause) return error;
  return new ConnectError(
    `the server did not take the call (${cause.message}); it is safe to retry`,
    Code.Unavailable,
    undefined,
    undefined,
    cause,
  );
}

async function* mapStreamErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw asUnavailable(error);
  }
}

export const refusedStreamAsUnavailable: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    return res.stream ? { ...res, message: mapStreamErrors(res.message) } : res;
  } catch (error) {
    throw asUnavailable(error);
  }
};

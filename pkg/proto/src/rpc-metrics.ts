/**
 * RPC server request metrics: @opentelemetry/instrumentation-grpc records spans only and connect-node records
 * nothing, so we time each call ourselves. One histogram, `tm_rpc_server_duration_ms{method, code, server}`: its
 * _count by code is the request and error rate, its buckets the latency (for a server stream, the stream's whole
 * life). `server` tells the two servers of the same handlers apart: `grpc` (grpc-js, grpc-adapter.ts) and `web`
 * (connect-node: Connect, gRPC-Web and gRPC over HTTP/1.1, timed by `rpcMetricsInterceptor`).
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { type Histogram, type MeterProvider, metrics } from "@opentelemetry/api";

/** Which server answered the call. */
export type RpcServer = "grpc" | "web";

let histogram: Histogram | undefined;
let boundTo: MeterProvider | undefined;

/**
 * Created on first use, and again whenever the global meter provider changed since: a meter taken from the API before
 * a provider is registered is a no-op for good (the metrics API has no proxy provider), so a call recorded before
 * the service's telemetry started (a process that serves gRPC before starting a service, as tests do) must not pin it.
 */
function durations(): Histogram {
  const provider = metrics.getMeterProvider();
  if (histogram && boundTo === provider) return histogram;
  boundTo = provider;
  histogram = provider.getMeter("tm.rpc").createHistogram("tm_rpc_server_duration_ms", {
    description: "RPC server calls by method, status code and server, from the request to the last response (ms)",
    unit: "ms",
    advice: { explicitBucketBoundaries: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000] },
  });
  return histogram;
}

/** The status name as gRPC spells it (OK, INVALID_ARGUMENT, ...). */
export function statusName(code: number): string {
  return grpc.status[code] ?? String(code);
}

export function recordServerCall(
  method: DescMethod,
  code: number,
  startedAt: number,
  server: RpcServer = "grpc",
): void {
  durations().record(performance.now() - startedAt, {
    method: `${method.parent.typeName}/${method.name}`,
    code: statusName(code),
    server,
  });
}

/** The code a thrown value ends the call with, as grpc-adapter.ts and connect-node answer it: INTERNAL if unknown. */
function codeOf(error: unknown): number {
  return error instanceof ConnectError ? error.code : grpc.status.INTERNAL;
}

/**
 * For connectNodeAdapter's `interceptors`: records every call the web server hands to a handler in
 * `tm_rpc_server_duration_ms{server="web"}`, with the same method and code values as the gRPC port. A unary call is
 * timed to its response or error; a server stream to its end, as grpc-adapter.ts does: OK when the handler finished,
 * the error's code when it threw, CANCELLED when the client went away (or its deadline passed) first. A request
 * connect-node rejects before it reaches the interceptors (a unary body it cannot decode, an unsupported content
 * type) is not recorded here; the http instrumentation's http_server_request_duration counts it by HTTP status.
 */
export const rpcMetricsInterceptor: Interceptor = (next) => async (request) => {
  const startedAt = performance.now();
  let response: Awaited<ReturnType<typeof next>>;
  try {
    response = await next(request);
  } catch (error) {
    recordServerCall(request.method, codeOf(error), startedAt, "web");
    throw error;
  }
  if (!response.stream) {
    recordServerCall(request.method, grpc.status.OK, startedAt, "web");
    return response;
  }
  return { ...response, message: timedStream(response.message, request.method, request.signal, startedAt) };
};

async function* timedStream<T>(
  messages: AsyncIterable<T>,
  method: DescMethod,
  signal: AbortSignal,
  startedAt: number,
): AsyncGenerator<T> {
  let code: number = grpc.status.OK;
  try {
    yield* messages;
  } catch (error) {
    code = codeOf(error);
    throw error;
  } finally {
    // connect-node aborts the signal before it stops reading a stream the client left, and only after a stream
    // that ended by itself has been recorded here: aborted means the client (or the deadline) ended it.
    recordServerCall(method, signal.aborted ? grpc.status.CANCELLED : code, startedAt, "web");
  }
}

/**
 * gRPC server request metrics: @opentelemetry/instrumentation-grpc records spans only, so the adapter times each
 * call itself. One histogram, `tm_rpc_server_duration_ms{method, code}`: its _count by code is the request and
 * error rate, its buckets the latency (for a server stream, the stream's whole life).
 */
import type { DescMethod } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type Histogram, metrics } from "@opentelemetry/api";

let histogram: Histogram | undefined;

/** Created on first use, so it binds to the meter provider the service registered at start-up. */
function durations(): Histogram {
  histogram ??= metrics.getMeter("tm.rpc").createHistogram("tm_rpc_server_duration_ms", {
    description: "gRPC server calls by method and status code, from the request to the last response (ms)",
    unit: "ms",
    advice: { explicitBucketBoundaries: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000] },
  });
  return histogram;
}

/** The status name as gRPC spells it (OK, INVALID_ARGUMENT, ...). */
export function statusName(code: number): string {
  return grpc.status[code] ?? String(code);
}

export function recordServerCall(method: DescMethod, code: number, startedAt: number): void {
  durations().record(performance.now() - startedAt, {
    method: `${method.parent.typeName}/${method.name}`,
    code: statusName(code),
  });
}

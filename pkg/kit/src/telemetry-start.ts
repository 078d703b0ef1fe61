/**
 * OpenTelemetry start-up, shared by every service. Traces go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
 * (otherwise spans are still created, so trace context propagates and logs carry trace ids); metrics are always
 * readable on the ops server's /metrics (Prometheus format) and also pushed over OTLP when an endpoint is set.
 *
 * Started from telemetry-preload.ts (`node --import @tm/kit/telemetry`) so the instrumentations patch grpc-js,
 * http, ioredis and pino before the app imports them. Idempotent: a second call returns the first handle.
 *
 * Its own module, apart from telemetry.ts (the handle the services read): the SDK, the instrumentations and the
 * exporters are loaded by the preload alone, so a service's bundle does not carry a second copy of them
 * (scripts/bundle.mjs; ~0.6 MB of OpenTelemetry code in each).
 *
 * Fastify is instrumented by @fastify/otel, which patches no module: it is a fastify plugin, and with
 * registerOnInitialization it subscribes to fastify's `fastify.initialization` diagnostics channel and registers
 * itself on every fastify instance as it is created (so before its routes). It gives the http server span its
 * `http.route` (and the span the name `POST /enrich`; http_server_request_duration the `http_route` label) and adds
 * an INTERNAL `request` span with the route's `handler - <name>` span under it.
 */
import { FastifyOtelInstrumentation } from "@fastify/otel";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PinoInstrumentation } from "@opentelemetry/instrumentation-pino";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { type IMetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { redisStatement } from "./redis-statement.js";
import { heldTelemetry, holdTelemetry, type Telemetry } from "./telemetry.js";

export interface TelemetryOptions {
  serviceName: string;
  otlpEndpoint?: string | undefined;
  /** Extra span processors (tests add an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  /** Skip auto-instrumentations (in-process tests). */
  instrument?: boolean;
}

/** Health, readiness and metrics: polled every few seconds by probes and scrapers, never traced. */
const OPS_PATH = /^\/(healthz|readyz|metrics)(?:[/?]|$)/;

export function startTelemetry(options: TelemetryOptions): Telemetry {
  const running = heldTelemetry();
  if (running) return running;

  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const metricReaders: IMetricReader[] = [prometheus];
  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (options.otlpEndpoint) {
    const base = options.otlpEndpoint.replace(/\/$/, "");
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base}/v1/traces` })));
    metricReaders.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
        exportIntervalMillis: 15_000,
      }),
    );
  }
  // Without a span processor NodeSDK registers no tracer provider and every span is a no-op. The instrumentations
  // of calls that carry trace context (gRPC, HTTP) still matter then: they propagate the caller's traceparent, so
  // logs keep their trace ids. Redis carries none, so its instrumentation would only serialize each command, build
  // attributes and wrap the command's callbacks for a span nobody sees: 7–10 % of the notifier's and audit's CPU per
  // message in `pnpm bench --drain` (docs/PERFORMANCE.md). It is installed only when spans record.
  const recordsSpans = spanProcessors.length > 0;
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      [ATTR_SERVICE_VERSION]: process.env.npm_package_version ?? "0.1.0",
    }),
    spanProcessors,
    metricReaders,
    instrumentations:
      options.instrument === false
        ? []
        : [
            new HttpInstrumentation({
              ignoreIncomingRequestHook: (req) => OPS_PATH.test(req.url ?? ""),
            }),
            new FastifyOtelInstrumentation({
              registerOnInitialization: true,
              // Called with the route's options when a route is added (url = "/healthz") and with the request's
              // url for each request: ops routes get neither spans nor wrapped handlers.
              ignorePaths: ({ url }) => OPS_PATH.test(url),
              // A request span and the route handler's span; no span per lifecycle hook (the enricher's metrics
              // onResponse hook would otherwise add one to every request).
              instrumentHooks: false,
            }),
            new UndiciInstrumentation(),
            new GrpcInstrumentation(),
            // Script calls record their keys, not their arguments (task data): redis-statement.ts.
            ...(recordsSpans ? [new IORedisInstrumentation({ dbStatementSerializer: redisStatement })] : []),
            // Our logger adds trace ids itself (logger.ts); the pino instrumentation is kept for log correlation
            // in third-party pino loggers (fastify's).
            new PinoInstrumentation({ disableLogSending: true }),
          ],
  });
  sdk.start();
  const telemetry: Telemetry = {
    prometheus,
    recordsSpans,
    shutdown: () => sdk.shutdown().catch(() => undefined),
  };
  return holdTelemetry(telemetry);
}

/**
 * The process's telemetry handle, as the services read it: the Prometheus exporter the ops server's /metrics
 * serves, whether spans record, and shutdown. telemetry-start.ts (the preload) makes it; kept in a global, so that
 * the preload's bundle and a service's bundle (scripts/bundle.mjs), each with its own copy of this module, share it.
 */
import { metrics } from "@opentelemetry/api";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";

export interface Telemetry {
  prometheus: PrometheusExporter;
  /** Whether spans record (a span processor is installed: an OTLP endpoint, or a test's in-memory exporter). */
  recordsSpans: boolean;
  shutdown(): Promise<void>;
}

const KEY = Symbol.for("@tm/kit/telemetry");
type Holder = { [KEY]?: Telemetry };

/** The handle telemetry-start.ts made (or the fallback below), if any. */
export function heldTelemetry(): Telemetry | undefined {
  return (globalThis as Holder)[KEY];
}

/** Keeps `telemetry` as the process's handle and returns it. */
export function holdTelemetry(telemetry: Telemetry): Telemetry {
  (globalThis as Holder)[KEY] = telemetry;
  return telemetry;
}

/** The running telemetry, or a metrics-only one when the service was started without the preload (tests). */
export function telemetry(serviceName = "unknown"): Telemetry {
  const running = heldTelemetry();
  if (running) return running;
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }),
    readers: [prometheus],
  });
  metrics.setGlobalMeterProvider(provider);
  const handle: Telemetry = {
    prometheus,
    recordsSpans: false,
    shutdown: () => provider.shutdown().catch(() => undefined),
  };
  return holdTelemetry(handle);
}

/** Whether this process's spans record (false before telemetry starts, and when it runs without a span processor). */
export function spansRecorded(): boolean {
  return heldTelemetry()?.recordsSpans === true;
}

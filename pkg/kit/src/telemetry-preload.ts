/**
 * Preloaded with `node --import @tm/kit/telemetry dist/index.js`: registers the ESM loader hook (without it the
 * instrumentations of ESM-imported modules silently do nothing) and starts the SDK before the app is imported.
 */
import { register } from "node:module";
import { createAddHookMessageChannel } from "import-in-the-middle";

// OTEL_SDK_DISABLED=true (the standard variable) skips tracing and the instrumentations entirely; /metrics still
// works (the ops server starts a metrics-only provider) and trace context still propagates through messages.
if (process.env.OTEL_SDK_DISABLED?.toLowerCase() !== "true") {
  // Only the modules an instrumentation hooks (http, @grpc/grpc-js, ioredis, pino) go through the loader's wrapper:
  // each instrumentation's Hook sends its module names over this channel before the app is imported. Without it the
  // hook wraps every ES module the process loads (ours, nats, zod, ...), which made a service's start-up cost about
  // half again as much CPU.
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url, registerOptions);

  const { startTelemetry } = await import("./telemetry.js");
  const { nearestPackageName, resolveServiceName } = await import("./service-name.js");
  // OTEL_SERVICE_NAME when set; otherwise the service this is the entry script of (service-name.ts).
  const entry = process.argv[1];
  const serviceName = resolveServiceName({ env: process.env, entry, packageName: nearestPackageName(entry) });
  const telemetry = startTelemetry({ serviceName, otlpEndpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined });
  // The loader has the instrumentations' module names before the first of those modules can be imported.
  await waitForAllMessagesAcknowledged();

  // Flush spans on the way out; the service's own shutdown also calls this (idempotent).
  process.once("beforeExit", () => void telemetry.shutdown());
}

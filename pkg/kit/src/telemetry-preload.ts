/**
 * Preloaded with `node --import @tm/kit/telemetry dist/bundle/index.js`: starts the SDK, and with it the instrumentations'
 * require hooks, before the app is imported.
 *
 * No ESM loader hook is registered. The instrumented packages are CommonJS (grpc-js, ioredis, pino) or built in
 * (http), and each is patched when it is require()d: ingest requires node:http and node:https, kit requires ioredis
 * (ioredis-module.ts), the gateway requires grpc-js (grpc-server.ts), fastify requires pino and node:http. An ES import
 * of them could only be intercepted by a loader hook (import-in-the-middle), and on Node 20 loader hooks run in a
 * thread with its own V8 isolate for the life of the process: 14–15 MB of RSS in every service for nothing the
 * require hooks do not already do (docs/PERFORMANCE.md, "the ESM loader hook"). The services run bundled
 * (scripts/bundle.mjs), and those three packages stay outside the bundles for this reason: a bundled copy is never
 * require()d, so never patched. test/observability/deployed.int.test.ts checks the grpc, http and ioredis spans and
 * the log correlation of the spawned services.
 */
import { isMainThread } from "node:worker_threads";

// OTEL_SDK_DISABLED=true (the standard variable) skips tracing and the instrumentations entirely; /metrics still
// works (the ops server starts a metrics-only provider) and trace context still propagates through messages.
// Only in the main thread: Node runs a command line's --import in every worker thread too (the worker's handler
// threads), where a second SDK would only cost memory; a thread's work is traced and logged by the worker.
if (isMainThread && process.env.OTEL_SDK_DISABLED?.toLowerCase() !== "true") {
  const { startTelemetry } = await import("./telemetry-start.js");
  const { nearestPackageName, resolveServiceName } = await import("./service-name.js");
  // OTEL_SERVICE_NAME when set; otherwise the service this is the entry script of (service-name.ts).
  const entry = process.argv[1];
  const serviceName = resolveServiceName({ env: process.env, entry, packageName: nearestPackageName(entry) });
  const telemetry = startTelemetry({ serviceName, otlpEndpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined });

  // Flush spans on the way out; the service's own shutdown also calls this (idempotent).
  process.once("beforeExit", () => void telemetry.shutdown());
}

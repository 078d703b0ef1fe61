export * from "./config.js";
export * from "./deadline.js";
export { isTransientJetStreamError, retryWhileJetStreamStarts } from "./jetstream-startup.js";
export * from "./log-throttle.js";
export * from "./logger.js";
export * from "./nats.js";
export * from "./ops-server.js";
export * from "./outage.js";
export * from "./redis.js";
export * from "./reloading-file.js";
export * from "./replica-acks.js";
export * from "./service.js";
export * from "./shutdown.js";
export * from "./stream-limits.js";
export * from "./task-labels.js";
export { spansRecorded, type Telemetry, telemetry } from "./telemetry.js";
// startTelemetry itself is the preload's (telemetry-start.ts: the SDK and the instrumentations), not re-exported here,
// so that a service's bundle does not carry it.
export type { TelemetryOptions } from "./telemetry-start.js";
export { readTlsFiles, type TlsMaterial } from "./tls-files.js";

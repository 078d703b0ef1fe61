export * from "./config.js";
export * from "./logger.js";
export * from "./nats.js";
export * from "./ops-server.js";
export * from "./outage.js";
export * from "./redis.js";
export * from "./service.js";
export * from "./shutdown.js";
export { startTelemetry, type Telemetry, type TelemetryOptions, telemetry } from "./telemetry.js";

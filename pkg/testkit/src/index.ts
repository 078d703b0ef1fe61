export * from "./binaries.js";
export * from "./clients.js";
export * from "./infra.js";
export * from "./nats.js";
export * from "./ports.js";
export * from "./process.js";
export * from "./redis.js";
export * from "./services.js";

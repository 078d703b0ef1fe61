export * from "./consume.js";
export * from "./errors.js";
export * from "./lifecycle.js";
export * from "./publish.js";
export * from "./schemas.js";
export * from "./streams.js";
export * from "./subjects.js";
export * from "./trace.js";

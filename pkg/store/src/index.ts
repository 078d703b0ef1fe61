export * from "./batch.js";
export * from "./keys.js";
export * from "./lists.js";
export * from "./script.js";
export * from "./status.js";
export * from "./task-index.js";
export * from "./tasks.js";
export * from "./unqueued.js";

/**
 * The browser-safe entry of @tm/proto (`@tm/proto/web`): the generated descriptors and pure helpers only, without
 * grpc-js, the node clients or OpenTelemetry, so a web bundle pulls in nothing node-only.
 */
export * from "./concurrency-key.js";
export * from "./gen/taskmanager/v1/admin_pb.js";
export * from "./gen/taskmanager/v1/taskmanager_pb.js";
export { ownTaskTypesText } from "./own-types-text.js";
export { retryBackoffText } from "./retry-backoff-text.js";
export { orderedStateCounts, stateCountsText, stateCountText } from "./state-counts-text.js";
export { isLaterStatus } from "./status-order.js";

/**
 * The client entry of @tm/proto (`@tm/proto/client`): the connect clients and the generated messages, without the
 * grpc-js server adapter, for a process that only calls the gateway (the worker's ctx.submitTask). Its bundle then
 * needs neither grpc-js (kept outside every service bundle) nor the server's code.
 */

export * from "./call-retry.js";
export * from "./client.js";
export * from "./concurrency-key.js";
export * from "./follow-task.js";
export * from "./gen/taskmanager/v1/taskmanager_pb.js";
export { RETRY_PUSHBACK_HEADER, retryPushback, retryPushbackOf } from "./retry-pushback.js";
export { isFinishedState, isLaterStatus } from "./status-order.js";
export { type TaskLimitsMs, taskLimitFields } from "./task-limits.js";
export * from "./task-log-reader.js";
export * from "./task-manager-client.js";
export * from "./task-request.js";

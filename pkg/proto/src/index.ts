export * from "./call-retry.js";
export * from "./client.js";
export * from "./concurrency-key.js";
export * from "./connect-routes.js";
export * from "./follow-task.js";
export type { HealthCheckRequest, HealthCheckResponse } from "./gen/grpc/health/v1/health_pb.js";
export {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
} from "./gen/grpc/health/v1/health_pb.js";
export * from "./gen/taskmanager/v1/admin_pb.js";
export * from "./gen/taskmanager/v1/taskmanager_pb.js";
export * from "./grpc-adapter.js";
export * from "./health.js";
export * from "./own-types-text.js";
export { refusedStreamAsUnavailable, unprocessedCause } from "./refused-stream.js";
export * from "./retry-backoff-text.js";
export * from "./retry-pushback.js";
export { rpcMetricsInterceptor } from "./rpc-metrics.js";
export * from "./state-counts-text.js";
export * from "./status-order.js";
export * from "./task-limits.js";
export * from "./task-log-reader.js";
export * from "./task-manager-client.js";
export * from "./task-request.js";

/**
 * gateway: the gRPC front door (TaskService, AdminService + grpc.health.v1). SubmitTask → Redis task:<id> + PENDING
 * status → tasks.ingest; GetTask and StreamTaskStatus read Redis (the notifier keeps it current); CancelTask marks,
 * records and broadcasts the cancellation on control.cancel. AdminService (admin-service.ts) is the operator's API.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { STREAMS } from "@tm/flow";
import { connectRedis, defineService, type Logger, port, positiveInt } from "@tm/kit";
import { AdminService, addService, HealthRegistry, ServingStatus, TaskService } from "@tm/proto";
import { adminServiceHandlers } from "./admin-service.js";
import { authConfigShape } from "./auth/config.js";
import { createGuard } from "./auth/guard.js";
import { bindGrpc, stopGrpc } from "./grpc-server.js";
import { QueueStats } from "./queue-stats.js";
import { StatusSubscriptions } from "./status-subscriptions.js";
import { taskServiceHandlers } from "./task-service.js";

export const gateway = defineService({
  name: "gateway",
  opsPort: 8080,
  config: {
    GRPC_PORT: port.default(50051),
    GATEWAY_MAX_PAYLOAD_BYTES: positiveInt.default(65_536),
    ...authConfigShape,
  },
  async start(rt) {
    // Authentication and per-caller rate limits on TaskService and AdminService (not on health): see src/auth.
    const guard = await createGuard(rt);
    // A connection in subscriber mode can run nothing but (UN)SUBSCRIBE, hence its own. No offline queue and no
    // auto-resubscribe: while it is down, streams fail fast with UNAVAILABLE instead of waiting on a dead channel.
    const subscriber = connectRedis(rt.config.REDIS_URL, `${rt.name}-subscriber`, rt.log, {
      autoResubscribe: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    await new Promise<void>((resolve) => subscriber.once("ready", () => resolve()));
    const subscriptions = new StatusSubscriptions(subscriber);
    rt.addCheck("redis-subscriber", async () => {
      if (!subscriptions.ready) throw new Error(`subscriber connection is ${subscriber.status}`);
      return true;
    });

    // Server-sent HTTP/2 pings find clients that vanished without closing (half-open TCP), so their streams and
    // subscriptions are released. Pings are not stream data: they do not reset a proxy's stream idle timeout.
    const server = new grpc.Server({ "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000 });
    const health = new HealthRegistry();
    addService(
      server,
      TaskService,
      guard.protect(
        TaskService,
        taskServiceHandlers(rt, subscriptions, { maxPayloadBytes: rt.config.GATEWAY_MAX_PAYLOAD_BYTES }),
      ),
      (method, error) => logFailure(rt.log, method.name, error),
    );
    const queueStats = new QueueStats(rt.nats.jsm, Object.values(STREAMS));
    queueStats.startSampling((error) => rt.log.debug({ err: error }, "could not sample consumer info"));
    addService(
      server,
      AdminService,
      guard.protect(AdminService, adminServiceHandlers(rt, queueStats)),
      (method, error) => logFailure(rt.log, method.name, error),
    );
    health.addTo(server);

    let grpcPort: number;
    try {
      grpcPort = await bindGrpc(server, rt.config.GRPC_PORT);
    } catch (error) {
      subscriber.disconnect();
      throw error;
    }
    rt.onStop("grpc server", async () => {
      // Report NOT_SERVING first so balancers stop sending, then end the streams (clients re-open them on another
      // replica), then let unary calls finish.
      health.shutdown();
      queueStats.stopSampling();
      await subscriptions.close("gateway shutting down; re-open the stream");
      await stopGrpc(server, rt.config.SHUTDOWN_TIMEOUT_MS);
    });
    health.set("", ServingStatus.SERVING);
    health.set(TaskService.typeName, ServingStatus.SERVING);
    health.set(AdminService.typeName, ServingStatus.SERVING);
    rt.log.info({ grpcPort }, "gRPC listening");
    return { grpcPort };
  },
});

const CLIENT_MISTAKES = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.FailedPrecondition,
  Code.Canceled,
  Code.Unauthenticated,
  Code.ResourceExhausted,
]);

/** A client's mistake is routine (debug); anything else means the service or a dependency is in trouble (warn). */
function logFailure(log: Logger, method: string, error: unknown): void {
  if (error instanceof ConnectError && CLIENT_MISTAKES.has(error.code)) {
    log.debug({ method, code: Code[error.code], reason: error.rawMessage }, "call rejected");
  } else {
    log.warn({ err: error, method }, "call failed");
  }
}

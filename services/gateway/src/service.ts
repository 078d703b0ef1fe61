/**
 * gateway: the gRPC front door (TaskService, AdminService + grpc.health.v1). SubmitTask → Redis task:<id> + PENDING
 * status → tasks.ingest; GetTask and StreamTaskStatus read Redis (the notifier keeps it current); CancelTask marks,
 * records and broadcasts the cancellation on control.cancel. AdminService (admin-service.ts) is the operator's API.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { consoleAssetsDir } from "@tm/console";
import { ADVISORY_STREAM, STREAMS } from "@tm/flow";
import {
  connectRedis,
  defineService,
  type Logger,
  nonNegativeInt,
  parsedText,
  port,
  positiveInt,
  redisTargetOf,
} from "@tm/kit";
import {
  AdminService,
  addService,
  connectRoutes,
  HealthRegistry,
  ServingStatus,
  type SubmitTasksRequest,
  TaskService,
} from "@tm/proto";

import * as z from "zod";
import { adminServiceHandlers } from "./admin-service.js";
import { parseCallerList } from "./auth/admin-access.js";
import { authConfigShape } from "./auth/config.js";
import { createGuard } from "./auth/guard.js";
import { isShed, startBacklogShedding } from "./backlog-shedding.js";
import { confirmingWrites } from "./confirm-writes.js";
import { startDelayedReleaser } from "./delayed-releaser.js";
import { fairnessWindows, MAX_FAIRNESS_WINDOW, parseFairnessWindows } from "./fairness-windows.js";
import { bindGrpc, createGrpcServer, stopGrpc } from "./grpc-server.js";
import { exportUnconsumedGauge, QueueStats } from "./queue-stats.js";
import { redisCaller } from "./redis-call.js";
import { startRedisGauges } from "./redis-gauges.js";
import { startRequeueSweeper } from "./requeue-sweeper.js";
import { startScheduleRunner, submitRun } from "./schedule-runner.js";
import { startStalledGauge } from "./stalled-tasks.js";
import { StatusSubscriptions } from "./status-subscriptions.js";
import { taskIsolation } from "./task-isolation.js";
import { taskServiceHandlers } from "./task-service.js";
import { exportWaitingGauge } from "./waiting-gauge.js";
import { createWebServer, listenWeb, stopWeb } from "./web-server.js";

const MAX_DELAY_LIMIT_SECONDS = 3 * 24 * 3600;

export const gateway = defineService({
  name: "gateway",
  opsPort: 8080,
  config: {
    GRPC_PORT: port.default(50051),
    GATEWAY_MAX_PAYLOAD_BYTES: positiveInt.default(65_536),
    /** The most tasks one SubmitTasks call may carry (src/submit-batch.ts). A batch must also fit gRPC's 4 MB message
     *  limit, so large payloads allow fewer. */
    GATEWAY_MAX_BATCH_TASKS: positiveInt.max(10_000, { message: "must be at most 10000" }).default(500),
    /** How long a caller's Redis call may wait for an answer before the caller gets UNAVAILABLE (src/redis-call.ts). */
    GATEWAY_REDIS_TIMEOUT_MS: positiveInt.default(3_000),
    /** How long a new task's tasks.ingest message may stay unacknowledged before the requeue sweeper settles it
     *  (src/requeue-sweeper.ts); it sweeps every third of this. Below three quarters of the duplicate window. */
    GATEWAY_REQUEUE_AFTER_MS: positiveInt.default(30_000),
    /** How often each replica looks for delayed tasks that are due (src/delayed-releaser.ts): their lateness at most. */
    GATEWAY_DELAYED_POLL_MS: positiveInt.default(1_000),
    /** How many tasks of a type with a fairness key may be in the pipeline at once; the others wait in Redis for
     *  their key's turn (pkg/store/src/fairness.ts). A few times the type's workers' concurrency: enough to keep them
     *  busy, small enough that a newcomer's task waits behind few of another key's. Stamped on each task. */
    GATEWAY_FAIRNESS_WINDOW: positiveInt.max(MAX_FAIRNESS_WINDOW, { message: "must be at most 100000" }).default(32),
    /** A type's own window, "resize=4,email=200", for types whose workers run far fewer or far more at once than
     *  the default suits (src/fairness-windows.ts). */
    GATEWAY_FAIRNESS_WINDOWS: parsedText(parseFairnessWindows),
    /** How often each replica runs the recurring schedules that are due (src/schedule-runner.ts). */
    GATEWAY_SCHEDULE_POLL_MS: positiveInt.default(1_000),
    /** How long an unfinished task's status may stay unchanged, with nothing older waiting in its stage's queue,
     *  before it counts as stalled (src/stalled-tasks.ts: tm_tasks_stalled, GetQueueStats). */
    GATEWAY_STALLED_AFTER_SECONDS: positiveInt.default(600),
    /** How many times the gateway requeues one stalled task on its own (src/stalled-tasks.ts); past that the task
     *  stays counted (alert TasksStalled) for an operator. 0: never, only count. */
    GATEWAY_STALLED_REQUEUE_LIMIT: nonNegativeInt.max(100, { message: "must be at most 100" }).default(3),
    /** How often each replica counts the stalled tasks and requeues them (src/stalled-tasks.ts). A count examines up
     *  to 1,000 candidates in Redis; less often for many replicas, more often for a quicker recovery. */
    GATEWAY_STALLED_CHECK_SECONDS: positiveInt.max(3600, { message: "must be at most 3600 (an hour)" }).default(15),
    /** How far ahead a task may be delayed (SubmitTaskRequest.run_at / delay). At most three days, so that a delayed
     *  task is still listed (the task index keeps seven days from submission) for days after it ran. */
    GATEWAY_MAX_DELAY_SECONDS: positiveInt
      .max(MAX_DELAY_LIMIT_SECONDS, { message: "must be at most 259200 (3 days)" })
      .default(86_400),
    /** New submissions are refused (UNAVAILABLE) while a consumer's backlog is at this share of what its stream's
     *  limits keep, before new messages would discard it (src/backlog-shedding.ts); 0: never refused. */
    GATEWAY_SHED_BACKLOG_RATIO: z.coerce
      .number({ message: "must be a number" })
      .min(0, { message: "must be from 0 (off) to 1" })
      .max(1, { message: "must be from 0 (off) to 1" })
      .default(0.8),
    /** How often each replica reads the consumers' backlogs for GATEWAY_SHED_BACKLOG_RATIO. */
    GATEWAY_SHED_CHECK_MS: positiveInt.default(2_000),
    /** The web port: Connect/gRPC-Web API for browsers and the web console (0: a free port). */
    GATEWAY_WEB_PORT: port.default(8090),
    /** Grafana, for the console's "View trace" links (Explore on the Tempo datasource). */
    GATEWAY_CONSOLE_GRAFANA_URL: z
      .string()
      .url({ message: "must be a URL, e.g. http://localhost:3000" })
      .default("http://localhost:3000"),
    ...authConfigShape,
  },
  async start(rt) {
    // Authentication and per-caller rate limits on TaskService and AdminService (not on health): see src/auth.
    const guard = await createGuard(rt, redisCaller(rt.redis, rt.config.GATEWAY_REDIS_TIMEOUT_MS));
    // A connection in subscriber mode can run nothing but (UN)SUBSCRIBE, hence its own. No offline queue and no
    // auto-resubscribe: while it is down, streams fail fast with UNAVAILABLE instead of waiting on a dead channel.
    const subscriber = connectRedis(redisTargetOf(rt.config), `${rt.name}-subscriber`, rt.log, {
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
    const server = createGrpcServer({ "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000 });
    const health = new HealthRegistry();
    const onError = (method: DescMethod, error: unknown) => logFailure(rt.log, method.name, error);
    // Before anything listens: a bad GATEWAY_REQUEUE_AFTER_MS stops the start with its reason.
    const sweeper = startRequeueSweeper(rt, { afterMs: rt.config.GATEWAY_REQUEUE_AFTER_MS });
    // TASKS only: its backlogs are work. EVENTS carries status and audit records; a notifier or audit service far behind
    // loses records (alert BacklogNearStreamLimit), not tasks, and should not stop every submission.
    const shedding = startBacklogShedding(rt.nats.jsm, [STREAMS.tasks], [STREAMS.tasks], {
      shedAt: rt.config.GATEWAY_SHED_BACKLOG_RATIO,
      checkMs: rt.config.GATEWAY_SHED_CHECK_MS,
      log: rt.log,
      meter: rt.meter,
    });
    const releaser = startDelayedReleaser(rt, {
      pollMs: rt.config.GATEWAY_DELAYED_POLL_MS,
      redisTimeoutMs: rt.config.GATEWAY_REDIS_TIMEOUT_MS,
      shedding: () => shedding.refusal(),
    });
    const isolation = taskIsolation(
      rt.config.GATEWAY_TASK_ISOLATION,
      rt.config.GATEWAY_AUTH_MODE,
      parseCallerList("GATEWAY_CHILD_SUBMITTERS", rt.config.GATEWAY_CHILD_SUBMITTERS),
    );
    // Before anything listens: a window for a type the deployment does not run stops the start, naming it.
    const fairnessWindowOf = fairnessWindows(
      rt.config.GATEWAY_FAIRNESS_WINDOW,
      rt.config.GATEWAY_FAIRNESS_WINDOWS,
      rt.config.TASK_TYPES,
    );
    const taskService = taskServiceHandlers(rt, subscriptions, {
      shedding: () => shedding.refusal(),
      releaseDue: () => releaser.release(),
      maxPayloadBytes: rt.config.GATEWAY_MAX_PAYLOAD_BYTES,
      redisTimeoutMs: rt.config.GATEWAY_REDIS_TIMEOUT_MS,
      maxDelaySeconds: rt.config.GATEWAY_MAX_DELAY_SECONDS,
      isolation,
      maxBatchTasks: rt.config.GATEWAY_MAX_BATCH_TASKS,
      fairnessWindowOf,
    });
    // With REDIS_WAIT_REPLICAS, calls that change something answer once replicas hold their writes.
    const confirm = rt.config.REDIS_WAIT_REPLICAS > 0 ? () => rt.confirmRedisWrites() : undefined;
    const taskHandlers = guard.protect(TaskService, confirmingWrites(TaskService, taskService, confirm), {
      // A batch costs one rate-limit token per task (a batch over the maximum is refused unread: one call's token).
      costs: {
        submitTasks: (request: SubmitTasksRequest) =>
          request.tasks.length <= rt.config.GATEWAY_MAX_BATCH_TASKS ? request.tasks.length : 1,
      },
    });
    addService(server, TaskService, taskHandlers, onError);
    const scheduleRunner = startScheduleRunner(rt, {
      pollMs: rt.config.GATEWAY_SCHEDULE_POLL_MS,
      submit: (schedule, dueMs, forMs) => submitRun(taskService.submitTask, schedule, dueMs, undefined, forMs),
    });
    // ADVISORIES too: its one durable (the deadletter service's) shows whether crash advisories wait to be handled.
    const redisGauges = startRedisGauges(rt);
    rt.onStop("Redis gauges", () => redisGauges.stop());
    // TASKS's subjects are queues: one holding messages that no consumer reads is a pool or stage not running.
    const queueStats = new QueueStats(rt.nats.jsm, [...Object.values(STREAMS), ADVISORY_STREAM], [STREAMS.tasks]);
    queueStats.startSampling((error) => rt.log.debug({ err: error }, "could not sample consumer info"));
    exportUnconsumedGauge(rt.meter, queueStats);
    exportWaitingGauge(rt.meter, rt.redis, (error) =>
      rt.log.debug({ err: error }, "could not count the waiting tasks for tm_tasks_waiting"),
    );
    const stalled = {
      afterMs: rt.config.GATEWAY_STALLED_AFTER_SECONDS * 1000,
      retentionMs: rt.config.TASK_RETENTION_SECONDS * 1000,
      routes: rt.config.TASK_ROUTES,
    };
    const stalledGauge = startStalledGauge(
      rt,
      queueStats,
      { ...stalled, requeueLimit: rt.config.GATEWAY_STALLED_REQUEUE_LIMIT, shedding: () => shedding.refusal() },
      rt.config.GATEWAY_STALLED_CHECK_SECONDS * 1000,
    );
    rt.onStop("stalled-task gauge", () => stalledGauge.stop());
    const adminHandlers = guard.protect(
      AdminService,
      confirmingWrites(
        AdminService,
        adminServiceHandlers(rt, queueStats, {
          requeueAfterMs: rt.config.GATEWAY_REQUEUE_AFTER_MS,
          maxPayloadBytes: rt.config.GATEWAY_MAX_PAYLOAD_BYTES,
          runScheduleNow: (schedule, ctx) => submitRun(taskService.submitTask, schedule, Date.now(), { ctx }),
          redisInfo: () => redisGauges.latest(),
          stalled,
          shedding: () => shedding.refusal(),
          isolation,
          fairnessWindowOf,
        }),
        confirm,
      ),
      { admin: true },
    );
    addService(server, AdminService, adminHandlers, onError);
    health.addTo(server);

    // The same (guarded) handlers for browsers, beside the web console: see web-server.ts.
    const web = createWebServer({
      routes: connectRoutes(
        [
          [TaskService, taskHandlers],
          [AdminService, adminHandlers],
        ],
        onError,
      ),
      assetsDir: consoleAssetsDir(),
      consoleConfig: {
        grafanaUrl: rt.config.GATEWAY_CONSOLE_GRAFANA_URL,
        authRequired: rt.config.GATEWAY_AUTH_MODE !== "none",
        taskTypes: rt.config.TASK_TYPES.names,
      },
    });

    let grpcPort: number;
    let webPort: number;
    try {
      grpcPort = await bindGrpc(server, rt.config.GRPC_PORT);
      webPort = await listenWeb(web, rt.config.GATEWAY_WEB_PORT);
    } catch (error) {
      await Promise.all([sweeper.stop(), releaser.stop(), scheduleRunner.stop(), shedding.stop()]);
      subscriber.disconnect();
      server.forceShutdown();
      throw error;
    }
    rt.onStop("grpc server", async () => {
      // Report NOT_SERVING first so balancers stop sending, then end the streams (clients re-open them on another
      // replica), then let unary calls finish.
      health.shutdown();
      queueStats.stopSampling();
      await Promise.all([sweeper.stop(), releaser.stop(), scheduleRunner.stop(), shedding.stop()]);
      await subscriptions.close("gateway shutting down; re-open the stream");
      await Promise.all([stopGrpc(server, rt.config.SHUTDOWN_TIMEOUT_MS), stopWeb(web, rt.config.SHUTDOWN_TIMEOUT_MS)]);
    });
    health.set("", ServingStatus.SERVING);
    health.set(TaskService.typeName, ServingStatus.SERVING);
    health.set(AdminService.typeName, ServingStatus.SERVING);
    rt.log.info({ grpcPort, webPort }, "gRPC and web console listening");
    // submitTask: the TaskService's unguarded SubmitTask, as the schedule runner submits through it (tests run rounds).
    return { grpcPort, webPort, submitTask: taskService.submitTask };
  },
});

const CLIENT_MISTAKES = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.FailedPrecondition,
  Code.Canceled,
  Code.Unauthenticated,
  Code.ResourceExhausted,
]);

/** A client's mistake is routine (debug), and so is a submission shed while a backlog is near its stream's limits (its
 *  start is logged once); anything else means the service or a dependency is in trouble (warn). */
function logFailure(log: Logger, method: string, error: unknown): void {
  if (error instanceof ConnectError && (CLIENT_MISTAKES.has(error.code) || isShed(error))) {
    log.debug({ method, code: Code[error.code], reason: error.rawMessage }, "call rejected");
  } else {
    log.warn({ err: error, method }, "call failed");
  }
}

/**
 * worker: tasks.worker.{high,medium,low} (or its pool's tasks.worker.<priority>.<pool>, WORKER_POOL) → handler registry → tasks.results, events.status (RUNNING with attempt
 * and progress, SUCCEEDED, FAILED), events.audit. High, medium and low share WORKER_CONCURRENCY slots by
 * WORKER_PRIORITY_WEIGHTS; a running task is aborted by a cancel notice, by TASK_TIMEOUT_MS, or by shutdown.
 */
import { DEFAULT_POOL_LABEL, PRIORITIES } from "@tm/flow";
import { ConfigError, defineService } from "@tm/kit";
import {
  isCancelled,
  recordHandBacks,
  redeliveredAttempt,
  releaseTypeSlot,
  renewTypeSlots,
  reserveTypeStart,
  takeTypeSlot,
} from "@tm/store";
import { listenForCancellations, RunningTasks } from "./cancellation.js";
import { gatewayChildSubmitter } from "./child-tasks.js";
import { poolProblem, typeNamesProblem, workerConfig } from "./config.js";
import { followControls } from "./controls.js";
import { PriorityDispatcher } from "./dispatcher.js";
import { FleetSlots } from "./fleet-slots.js";
import { gatewayApiKey } from "./gateway-api-key.js";
import { gatewayTls } from "./gateway-tls.js";
import { loadHandlerModules } from "./handler-modules.js";
import { HandlerThreads, withIsolation } from "./handler-threads.js";
import { handlerRegistry } from "./handlers/index.js";
import { reportPresence } from "./presence.js";
import { createTaskRunner } from "./run-task.js";
import { followRuntimeLimits } from "./runtime-limits.js";
import { followTypeBackoffs, recordBackoff } from "./type-backoffs.js";
import { TypeLimits } from "./type-limits.js";
import { typeLimitSettings } from "./type-limits-config.js";

export const worker = defineService({
  name: "worker",
  opsPort: 8085,
  config: workerConfig,
  async start(rt) {
    const taskTypes = rt.config.TASK_TYPES;
    const typeProblem = typeNamesProblem(rt.config, taskTypes);
    if (typeProblem) throw new ConfigError(typeProblem);
    const pool = rt.config.WORKER_POOL;
    // The metrics say which pool a worker serves, so that a dashboard sums each pool's workers.
    const poolLabel = pool ?? DEFAULT_POOL_LABEL;
    const routes = rt.config.TASK_ROUTES;
    const unroutedPool = poolProblem(pool, routes);
    if (unroutedPool) throw new ConfigError(unroutedPool);
    // The deployment's own types, before anything is consumed: a module that does not check out stops the start.
    // Each where WORKER_TYPE_ISOLATION puts it, else where its handler says.
    const own = withIsolation(
      await loadHandlerModules(rt.config.WORKER_HANDLER_MODULES, taskTypes, {
        maxDeliver: rt.settings.maxDeliver,
        pool,
        routes,
      }),
      rt.config.WORKER_TYPE_ISOLATION,
    );
    const threadsTerminated = rt.meter.createCounter("tm_worker_handler_threads_terminated_total", {
      description:
        "Handler threads terminated because their handler (isolation thread) still ran after its attempt ended",
    });
    // Handlers declared isolation "thread" run their attempts in worker threads (started only if there are some).
    const threads = own.some((handler) => handler.isolation === "thread")
      ? new HandlerThreads({
          maxThreads: rt.config.WORKER_THREADS ?? rt.config.WORKER_CONCURRENCY,
          ...(rt.config.WORKER_THREAD_HEAP_MB === undefined ? {} : { heapMb: rt.config.WORKER_THREAD_HEAP_MB }),
          log: rt.log,
          ...(rt.config.WORKER_TASK_LOG_LEVEL === undefined ? {} : { taskLogLevel: rt.config.WORKER_TASK_LOG_LEVEL }),
          service: rt.name,
          onTerminated: (type) => threadsTerminated.add(1, { type }),
        })
      : undefined;
    const handlers = handlerRegistry(threads ? own.map((handler) => threads.isolated(handler)) : own);
    // The types' own limits (their handlers'), each replaced by a WORKER_TYPE_* entry for the type where there is one.
    const typeSettings = typeLimitSettings(own, rt.config);
    if (own.length > 0) {
      rt.log.info(
        {
          types: own.map((handler) => handler.type),
          inThreads: own.filter((handler) => handler.isolation === "thread").map((handler) => handler.type),
        },
        "handlers loaded from WORKER_HANDLER_MODULES",
      );
    }
    const apiKey = await gatewayApiKey(rt.config, rt.log);
    const tls = gatewayTls(rt.config);
    const running = new RunningTasks();
    const workerId = rt.config.WORKER_ID;
    const maxAbandoned = rt.config.WORKER_MAX_ABANDONED_HANDLERS;
    const runner = createTaskRunner({
      rt,
      running,
      timeoutMs: rt.config.TASK_TIMEOUT_MS,
      handlers,
      workerId,
      taskLogLines: rt.config.WORKER_TASK_LOG_LINES,
      ...(rt.config.WORKER_TASK_LOG_LEVEL === undefined ? {} : { taskLogLevel: rt.config.WORKER_TASK_LOG_LEVEL }),
      ...(rt.config.WORKER_GATEWAY_URL
        ? {
            submitChild: gatewayChildSubmitter({
              baseUrl: rt.config.WORKER_GATEWAY_URL,
              ...(apiKey ? { apiKey } : {}),
              ...(tls ? { tls } : {}),
              batchSize: rt.config.WORKER_CHILD_BATCH_SIZE,
              onRateLimited: (waitMs) =>
                rt.log.debug(
                  { waitMs },
                  "a child task waits out the gateway's rate limit (GATEWAY_RATE_LIMIT_PER_SEC)",
                ),
            }),
          }
        : {}),
      // JavaScript cannot stop a handler that ignores its signal; only a new process frees what those hold.
      onAbandoned: (count) => {
        if (maxAbandoned > 0 && count >= maxAbandoned) {
          rt.restart(`${count} handlers ignored their abort signal and still run (WORKER_MAX_ABANDONED_HANDLERS)`);
        }
      },
    });
    // A slot's lease is AckWait: a worker that dies holding slots loses them about when its deliveries go elsewhere.
    const leaseMs = rt.settings.ackWaitMs;
    // Always there, limits or not: an operator can set fleet-wide limits at run time (runtime-limits.ts).
    const slots = new FleetSlots({
      limits: typeSettings.globalConcurrency,
      store: {
        take: (type, holder, limit) => takeTypeSlot(rt.redis, type, holder, limit, leaseMs),
        renew: (type, holders) => renewTypeSlots(rt.redis, type, holders, leaseMs),
        release: (type, holder) => releaseTypeSlot(rt.redis, type, holder),
      },
      wake: () => dispatcher.wake(),
      log: rt.log,
      renewEveryMs: Math.max(250, Math.floor(leaseMs / 3)),
    });
    slots.start();
    const limits = new TypeLimits({
      concurrency: typeSettings.concurrency,
      rates: typeSettings.rates,
      slots,
      reserve: (type, rate) => reserveTypeStart(rt.redis, type, rate),
      wake: () => dispatcher.wake(),
      log: rt.log,
    });
    const dispatcher: PriorityDispatcher = new PriorityDispatcher({
      rt,
      concurrency: rt.config.WORKER_CONCURRENCY,
      weights: rt.config.WORKER_PRIORITY_WEIGHTS,
      handler: runner.run,
      hooks: runner.hooks,
      limits,
      rateLimitHoldMs: rt.config.WORKER_RATE_LIMIT_HOLD_MS,
      onRateLimited: (type, waitMs) => recordBackoff(rt.redis, type, waitMs, workerId, rt.log),
      recordHandBacks: (deliveries) => recordHandBacks(rt.redis, deliveries),
      attemptOf: ({ taskId, generation }, count) => redeliveredAttempt(rt.redis, taskId, generation, count),
      handBackDeliveries: rt.config.WORKER_HANDBACK_DELIVERIES,
      typeRetryPolicy: handlers,
      pool,
    });
    // A running task is aborted; one whose delivery waits in the dispatcher's buffers is let through to be skipped.
    const cancelSubscription = listenForCancellations(rt.nats.nc, running, rt.log, (taskId) => {
      dispatcher
        .releaseCancelled(taskId, (id) => isCancelled(rt.redis, id))
        .then((released) => {
          if (released) rt.log.info({ taskId }, "cancelled while waiting here: let through to be skipped");
        })
        .catch((error: unknown) =>
          // Redis did not answer: the delivery is skipped when its turn comes, as before.
          rt.log.debug({ err: error, taskId }, "could not check the cancel marker of a waiting task"),
        );
    });
    if (limits.active) {
      rt.log.info(
        {
          concurrency: Object.fromEntries(typeSettings.concurrency),
          rates: Object.fromEntries(typeSettings.rates),
          globalConcurrency: Object.fromEntries(typeSettings.globalConcurrency),
        },
        "per-type limits in force",
      );
    }

    if (threads) {
      rt.meter
        .createObservableGauge("tm_worker_handler_threads", {
          description: "Handler threads alive (handlers declared isolation thread)",
        })
        .addCallback((result) => result.observe(threads.threads));
      rt.meter
        .createObservableGauge("tm_worker_handler_thread_waits", {
          description: "Attempts waiting for a handler thread (every one of WORKER_THREADS busy)",
        })
        .addCallback((result) => result.observe(threads.waiting));
    }
    rt.meter
      .createObservableGauge("tm_worker_in_flight", { description: "Tasks running in this worker process" })
      .addCallback((result) => result.observe(dispatcher.inFlight, { pool: poolLabel }));
    rt.meter
      .createObservableGauge("tm_worker_queued", { description: "Deliveries buffered locally, waiting for a slot" })
      .addCallback((result) => {
        for (const priority of PRIORITIES) result.observe(dispatcher.queued(priority), { priority, pool: poolLabel });
      });
    rt.meter
      .createObservableGauge("tm_worker_type_running", {
        description:
          "Tasks of a type with a per-type limit (WORKER_TYPE_CONCURRENCY, WORKER_TYPE_GLOBAL_CONCURRENCY, " +
          "WORKER_TYPE_RATES) running here",
      })
      .addCallback((result) => {
        for (const type of limits.limitedTypes) result.observe(limits.running(type), { type });
      });
    rt.meter
      .createObservableGauge("tm_worker_type_buffered", {
        description:
          "Deliveries of a type with a per-type limit buffered here, waiting for a slot, its limit or its turn",
      })
      .addCallback((result) => {
        const buffered = dispatcher.bufferedByType();
        for (const type of limits.limitedTypes) result.observe(buffered.get(type) ?? 0, { type });
      });
    rt.meter
      .createObservableGauge("tm_worker_type_limit", {
        description:
          "The per-type limit in force in this worker, by kind: concurrency (WORKER_TYPE_CONCURRENCY, this worker), " +
          "global_concurrency and rate_per_second (fleet-wide: WORKER_TYPE_* or an operator's taskctl limits), paused " +
          "(1 while an operator paused the type); 0: none",
      })
      .addCallback((result) => {
        for (const type of taskTypes.names) {
          const now = limits.limitsOf(type);
          result.observe(now.concurrency ?? 0, { type, kind: "concurrency" });
          result.observe(now.globalConcurrency ?? 0, { type, kind: "global_concurrency" });
          result.observe(now.ratePerSecond ?? 0, { type, kind: "rate_per_second" });
          result.observe(now.paused ? 1 : 0, { type, kind: "paused" });
        }
      });
    rt.meter
      .createObservableGauge("tm_worker_quiet", {
        description: "1 while this worker takes no new tasks (an operator's QuietWorker), else 0",
      })
      .addCallback((result) => result.observe(dispatcher.quiet ? 1 : 0));
    rt.meter
      .createObservableGauge("tm_worker_queue_paused", {
        description: "1 while this worker takes no new tasks of the priority (paused by an operator), else 0",
      })
      .addCallback((result) => {
        for (const priority of PRIORITIES) result.observe(dispatcher.paused(priority) ? 1 : 0, { priority });
      });
    // Read before the consumers start, so a worker started while a queue is paused takes none of its tasks. (Its
    // own quiet mark was cleared by its first report: a new process takes tasks.)
    const presence = reportPresence({
      id: workerId,
      redis: rt.redis,
      running,
      dispatcher,
      concurrency: rt.config.WORKER_CONCURRENCY,
      abandoned: runner.abandoned,
      abandonedHandlers: runner.abandonedHandlers,
      ownTaskTypes: own.map((handler) => handler.type),
      ...(pool === undefined ? {} : { pool }),
      threadTaskTypes: own.filter((handler) => handler.isolation === "thread").map((handler) => handler.type),
      intervalMs: rt.config.WORKER_REPORT_INTERVAL_MS,
      log: rt.log,
    });
    await presence.ready;
    const pauses = followControls(rt.redis, workerId, dispatcher, rt.config.WORKER_PAUSE_POLL_MS, rt.log);
    // Likewise the operators' run-time limits, so a worker started while one is set applies it from its first task.
    const runtimeLimits = followRuntimeLimits(
      rt.redis,
      limits,
      { globalConcurrency: typeSettings.globalConcurrency, rates: typeSettings.rates },
      taskTypes.names,
      rt.config.WORKER_PAUSE_POLL_MS,
      rt.log,
    );
    // And the back-offs other workers' handlers were told (RateLimitedError), so this one does not ask again.
    const backoffs = followTypeBackoffs(rt.redis, limits, taskTypes.names, rt.config.WORKER_PAUSE_POLL_MS, rt.log);
    await Promise.all([pauses.ready, runtimeLimits.ready, backoffs.ready]);

    // Registered before the consumers start so a failed start-up still closes whatever did start.
    rt.onStop("priority dispatcher", async () => {
      pauses.stop();
      runtimeLimits.stop();
      backoffs.stop();
      await dispatcher.stop(rt.config.SHUTDOWN_TIMEOUT_MS);
      // After the attempts ended (a thread still running past its abort's grace was terminated by then).
      await threads?.close();
      cancelSubscription.unsubscribe();
      await presence.stop();
    });
    await dispatcher.start();
    return { dispatcher, limits, workerId };
  },
});

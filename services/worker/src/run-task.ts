/**
 * Running one task delivery: the handler every DeliveryProcessor of the worker is given, and its retry hooks.
 * The DeliveryProcessor owns the ack policy (ack on return, NAK with delay on a throw, dead-letter when exhausted
 * or on a PermanentError, NAK at once when shutting down); this module owns what the task's status says.
 */
import {
  ATTEMPT_FAILED_STEP,
  AttemptsExhaustedError,
  type ConsumerHooks,
  type DeliveryContext,
  type EnrichedTaskMessage,
  errorMessage,
  expiredAtMs,
  MessageValidationError,
  PermanentError,
  type PoolWorkerSubject,
  publishAudit,
  publishExpired,
  publishSkippedSuperseded,
  publishStatus,
  RetryAfterError,
  recordedError,
  Subjects,
} from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { type DependencyOutcome, dependencyOutcomesOf, startedAttempt, whyNotRun } from "@tm/store";
import { type AbandonHooks, untilAborted } from "./abortable.js";
import { type RunningTasks, TaskCancelledError } from "./cancellation.js";
import { attemptChildTasks, type ChildSubmitter, type ChildTasks, unconfiguredChildSubmitter } from "./child-tasks.js";
import { recognisedError } from "./handler-errors.js";
import { handlerFor } from "./handlers/index.js";
import { type TaskContext, type TaskHandler, validatePayload } from "./handlers/types.js";
import { DEFAULT_WORKER_ID } from "./presence.js";
import { ProgressThrottle, type ProgressUpdate, REPORTS_PER_RUN } from "./progress.js";
import {
  AttemptLog,
  attemptLogger,
  DEFAULT_TASK_LOG_LINES,
  LEVEL_VALUES,
  type LineWritingContext,
  TASK_LOG_LINE,
  type TaskLogSettings,
  writeAttemptLine,
} from "./task-log.js";

/** When a task whose type this worker has no handler for is tried again (by any worker). */
export const NO_HANDLER_RETRY_MS = 30_000;

/** How long after its attempt ended a handler still running is reported as ignoring its signal. */
export const ABANDON_GRACE_MS = 1_000;

/** The attempt's last progress report, carried on its failure to the hooks that report it (not enumerable: logs and
 *  dead letters show the error as before). */
const LAST_REPORT = Symbol("lastProgressReport");

function withLastReport(failure: unknown, said: ProgressUpdate | undefined): void {
  if (said && typeof failure === "object" && failure !== null && Object.isExtensible(failure))
    Object.defineProperty(failure, LAST_REPORT, { value: said, enumerable: false });
}

/** The status fields of the failed attempt's last progress report, when it made one. */
function lastReportFields(error: unknown): { progress?: number; report?: ProgressUpdate["report"] } {
  const said = (error as { [LAST_REPORT]?: ProgressUpdate } | null | undefined)?.[LAST_REPORT];
  return said ? { progress: said.percent, report: said.report } : {};
}

export class TaskTimeoutError extends Error {
  override readonly name = "TaskTimeoutError";
}

export interface TaskRunnerOptions {
  rt: Runtime;
  running: RunningTasks;
  timeoutMs: number;
  /** The handler of a task type (the built-in ones by default; the service adds the deployment's own, tests give
   *  their own). */
  handlers?: (type: string) => TaskHandler | undefined;
  /** This worker's id (WORKER_ID), named in the audit records of the runs. */
  workerId?: string;
  /** Told each time a handler is abandoned (it ignored its signal), with how many are now. */
  onAbandoned?: (count: number) => void;
  /** Where ctx.submitTask sends a handler's child tasks (the gateway at WORKER_GATEWAY_URL); unset: every call fails
   *  naming the setting. */
  submitChild?: ChildSubmitter;
  /** The newest ctx.log lines kept with each task (WORKER_TASK_LOG_LINES; DEFAULT_TASK_LOG_LINES by default); 0: none,
   *  ctx.log writes to the worker's log only. */
  taskLogLines?: number;
  /** The least level of a line kept with its task (WORKER_TASK_LOG_LEVEL); unset: the worker's LOG_LEVEL. */
  taskLogLevel?: string;
}

/** A handler running on after its attempt ended (it ignored its AbortSignal). */
export interface AbandonedHandler {
  taskId: string;
  type: string;
  /** When its attempt ended (ms). */
  sinceMs: number;
}

/** The contract's worker subjects, and the worker pools' (tasks.worker.<priority>.<pool>). */
export type WorkerSubject =
  | typeof Subjects.workerHigh
  | typeof Subjects.workerMedium
  | typeof Subjects.workerLow
  | PoolWorkerSubject;

export function createTaskRunner({
  rt,
  running,
  timeoutMs,
  handlers = handlerFor,
  workerId = DEFAULT_WORKER_ID,
  onAbandoned,
  submitChild = unconfiguredChildSubmitter,
  taskLogLines = DEFAULT_TASK_LOG_LINES,
  taskLogLevel,
}: TaskRunnerOptions) {
  const processed = rt.meter.createCounter("tm_tasks_processed_total", {
    description:
      "Task attempts by outcome (succeeded, retried, failed, cancelled, skipped_cancelled, skipped_superseded, expired, handed_back, rate_limited)",
  });
  const abandoned = rt.meter.createUpDownCounter("tm_worker_handlers_abandoned", {
    description:
      "Handlers still running after their attempt ended (timeout, cancel or shutdown): they ignored their AbortSignal",
  });
  // Every type's series from the start, at 0: a dashboard and the alert then see a series, not an absence.
  for (const type of rt.config.TASK_TYPES.names) abandoned.add(0, { type });
  /** Handlers running on after their attempt ended, in this process, with when (the worker's report lists them). */
  const abandonedNow = new Map<EnrichedTaskMessage, AbandonedHandler>();
  const abandonHooks: AbandonHooks<EnrichedTaskMessage> = {
    graceMs: ABANDON_GRACE_MS,
    onIgnored: (task, reason) => {
      abandonedNow.set(task, { taskId: task.taskId, type: task.type, sinceMs: Date.now() - ABANDON_GRACE_MS });
      abandoned.add(1, { type: task.type });
      rt.log.warn(
        { taskId: task.taskId, type: task.type, reason: errorMessage(reason) },
        `a handler ignored its abort signal: still running ${ABANDON_GRACE_MS} ms after its attempt ended; it goes ` +
          "on in the background, its outcome dropped (a handler must stop on ctx.signal)",
      );
      onAbandoned?.(abandonedNow.size);
    },
    onFinishedLate: (task) => {
      abandonedNow.delete(task);
      abandoned.add(-1, { type: task.type });
    },
  };
  const duration = rt.meter.createHistogram("tm_task_duration_ms", {
    description: "Time one attempt of a task's handler ran",
    unit: "ms",
  });
  // Recorded here, where the terminal outcome is decided (SUCCEEDED after its result is published, FAILED when the
  // retries are used up): only the worker sees both, and the task message carries createdAt. A delayed task counts
  // from its release time (runAt): its wait was asked for, and would otherwise swamp the latency the histogram shows.
  const endToEnd = rt.meter.createHistogram("tm_task_end_to_end_ms", {
    description:
      "Time from submission (createdAt; a delayed task: its runAt) to SUCCEEDED or FAILED, queueing and retries included",
    unit: "ms",
    advice: {
      explicitBucketBoundaries: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000],
    },
  });
  const taskLogLinesCounter = rt.meter.createCounter("tm_worker_task_log_lines_total", {
    description:
      "Lines handlers logged with ctx.log, by whether they were kept with their task (stored) or could not be (dropped)",
  });
  const taskLogSettings: TaskLogSettings | undefined =
    taskLogLines > 0
      ? {
          redis: rt.redis,
          maxLines: taskLogLines,
          ttlSeconds: rt.config.TASK_RETENTION_SECONDS,
          log: rt.log,
          onLines: (outcome, lines) => taskLogLinesCounter.add(lines, { outcome }),
          ...(taskLogLevel === undefined ? {} : { minLevel: LEVEL_VALUES[taskLogLevel] }),
        }
      : undefined;
  // The worker's own fields on every line (its service, host): the task's log leaves them out.
  const workerFields = new Set(Object.keys(rt.log.bindings()));
  const count = (task: EnrichedTaskMessage, outcome: string) =>
    processed.add(1, { type: task.type, priority: task.priority, outcome });
  const recordEndToEnd = (task: EnrichedTaskMessage) =>
    endToEnd.record(Math.max(0, Date.now() - Date.parse(task.runAt ?? task.createdAt)), {
      type: task.type,
      priority: task.priority,
    });
  const service = rt.name;

  /** Ends an expired task CANCELLED without running it (a retry due after the expiry too: the error counts the
   *  attempts that failed). */
  async function expire(task: EnrichedTaskMessage, ctx: DeliveryContext, expiresAt: number): Promise<void> {
    const failed = ctx.attempt - 1;
    await publishExpired(rt.publisher, service, task, expiresAt, failed);
    count(task, "expired");
    rt.log.info(
      { taskId: task.taskId, expiresAt, failedAttempts: failed },
      "task expired before it started: cancelled",
    );
  }

  async function run(task: EnrichedTaskMessage, ctx: DeliveryContext): Promise<void> {
    const { taskId, generation } = task;
    const handler = handlers(task.type);
    // The task's own max_attempts, else its type's (the DeliveryProcessor holds deliveries to the same).
    const maxAttempts = task.maxAttempts ?? handler?.maxAttempts;
    // With max_attempts, also the attempt its status says was last started (one round trip with the other reads);
    // not for a deferred delivery resuming, whose attempt that is.
    const [notRun, started] = await Promise.all([
      whyNotRun(rt.redis, taskId, generation),
      maxAttempts && ctx.deferrals === 0 ? startedAttempt(rt.redis, taskId, generation) : undefined,
    ]);
    if (notRun === "cancelled") {
      await publishAudit(rt.publisher, { taskId, service, action: "skipped_cancelled", discriminator: ctx.attempt });
      count(task, "skipped_cancelled");
      return;
    }
    if (notRun === "superseded") {
      // A newer generation runs the task (or has): publish nothing of this one's, whose statuses would be ignored.
      await publishSkippedSuperseded(rt.publisher, service, { taskId, generation }, `${generation}:${ctx.attempt}`);
      count(task, "skipped_superseded");
      return;
    }
    // Worthless this late (SubmitTaskRequest.expires_after): not started, and the task ends here. A deferred delivery
    // (rate limited) resumes an attempt that did start: it is not expired.
    const expiredAt = ctx.deferrals === 0 ? expiredAtMs(task) : undefined;
    if (expiredAt !== undefined) {
      await expire(task, ctx, expiredAt);
      return;
    }
    // An attempt that started and never finished (its worker was SIGKILLed) is usually redelivered with a higher
    // delivery count, which the DeliveryProcessor holds against max_attempts; but nats-server 2.9 can redeliver it
    // with the same count. The stored RUNNING status tells: this delivery is then really attempt started + 1.
    if (maxAttempts && started !== undefined && started >= ctx.attempt && started + 1 > maxAttempts) {
      throw new AttemptsExhaustedError(started + 1, maxAttempts);
    }
    // The gateway and ingest accepted the type (their TASK_TYPES), so a worker that runs it exists or is coming: a
    // rollout that has not reached this one yet. Retried later, likely elsewhere, like Temporal's unregistered
    // activity; if no worker ever runs it, its attempts run out and it is dead-lettered, to replay once one does.
    if (!handler) {
      throw new RetryAfterError(
        `no handler for task type "${task.type}" in this worker (a worker without its WORKER_HANDLER_MODULES or TASK_TYPES?)`,
        NO_HANDLER_RETRY_MS,
      );
    }
    const parsed = await validatePayload(handler.payload, task.payload);
    if ("problems" in parsed) throw new PermanentError(`invalid ${task.type} payload: ${parsed.problems}`);

    // RUNNING goes out while the handler starts, and its PubAck is awaited together with the result's, before
    // SUCCEEDED: a RUNNING that could not be stored still fails the attempt, and a short task waits neither a round
    // trip before it starts nor one between RUNNING and its result. Everything this attempt publishes later
    // (progress, SUCCEEDED, a failed attempt's RUNNING) is written to the same connection after it, and NATS keeps
    // one connection's messages in order.
    const runningPublished = publishStatus(rt.publisher, {
      taskId,
      state: "RUNNING",
      source: service,
      attempt: ctx.attempt,
      progress: 0,
      generation,
    });
    // Awaited below; until then a rejection must not count as unhandled (the handler may throw first).
    runningPublished.catch(() => undefined);

    const controller = new AbortController();
    const startedAt = new Date();
    const forget = running.track(taskId, {
      controller,
      type: task.type,
      priority: task.priority,
      attempt: ctx.attempt,
      startedAtMs: startedAt.getTime(),
    });
    const onShutdown = () => controller.abort(ctx.signal.reason);
    ctx.signal.addEventListener("abort", onShutdown, { once: true });
    // The task's own timeout (SubmitTaskRequest.timeout) when it set one, else its type's, else TASK_TIMEOUT_MS.
    const attemptTimeoutMs = task.timeoutMs ?? handler.timeoutMs ?? timeoutMs;
    const timer = setTimeout(
      () => controller.abort(new TaskTimeoutError(`timed out after ${attemptTimeoutMs} ms`)),
      attemptTimeoutMs,
    );
    // The task's own heartbeat timeout, else its type's: restarted (Timeout.refresh, no new timer) by each report.
    const heartbeatTimeoutMs = task.heartbeatTimeoutMs ?? handler.heartbeatTimeoutMs;
    const heartbeat =
      heartbeatTimeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              controller.abort(
                new TaskTimeoutError(`no progress reported for ${heartbeatTimeoutMs} ms (its heartbeat timeout)`),
              ),
            heartbeatTimeoutMs,
          );
    const progress = new ProgressThrottle(
      ({ percent, report }) => {
        publishStatus(rt.publisher, {
          taskId,
          state: "RUNNING",
          source: service,
          attempt: ctx.attempt,
          progress: percent,
          generation,
          report,
        }).catch((error: unknown) => rt.log.warn({ err: error, taskId }, "progress update not published"));
      },
      undefined,
      undefined,
      (ctx.deferrals || 0) * REPORTS_PER_RUN,
    );

    // ctx.submitTask and ctx.submitTasks share one numbering of the attempt's children. A wait on the gateway's rate
    // limit holds off the heartbeat timeout: the handler is not stuck, the pipeline holds it back.
    let children: ChildTasks | undefined;
    const childTasks = () =>
      (children ??= attemptChildTasks(
        submitChild,
        { taskId, priority: task.priority },
        { signal: controller.signal, keepAlive: () => heartbeat?.refresh() },
      ));
    let dependencies: Promise<DependencyOutcome[]> | undefined;
    // Made with ctx.log, or with a handler thread's first line: most handlers log nothing. Not once the attempt is
    // over (a handler that ignored its abort and logs on: its lines go to the worker's log only).
    let attemptLog: AttemptLog | undefined;
    let attemptOver = false;
    const taskLog = () => {
      if (taskLogSettings && !attemptLog && !attemptOver) {
        attemptLog = new AttemptLog(taskLogSettings, { taskId, attempt: ctx.attempt, generation, omit: workerFields });
      }
      return attemptLog;
    };
    const attemptContext: TaskContext & LineWritingContext = {
      taskId,
      attempt: ctx.attempt,
      deferrals: ctx.deferrals,
      signal: controller.signal,
      // Nothing from an attempt that has ended (a handler that ignored its abort and goes on).
      reportProgress: (percent, message, details) => {
        if (controller.signal.aborted) progress.stop();
        else heartbeat?.refresh();
        progress.report(percent, message, details);
      },
      // Made when first used: most handlers log nothing, and a child logger per task is an allocation each.
      get log() {
        const log = attemptLogger(rt.log, { taskId, type: task.type, attempt: ctx.attempt }, taskLog(), taskLogLevel);
        Object.defineProperty(this, "log", { value: log });
        return log;
      },
      // A handler thread's line (handler-threads.ts): the worker's log, and the task's.
      [TASK_LOG_LINE]: (line: string) => writeAttemptLine(rt.log, taskLog(), line),
      // Made when first used, as log is: most handlers submit nothing.
      get submitTask() {
        return childTasks().submitTask;
      },
      get submitTasks() {
        return childTasks().submitTasks;
      },
      // Read once per attempt; a failed read is not kept, so the handler may ask again.
      dependencies: () =>
        (dependencies ??= dependencyOutcomesOf(rt.redis, taskId).catch((error: unknown) => {
          dependencies = undefined;
          throw error;
        })),
    };
    let output: unknown;
    try {
      // The attempt ends at its signal's abort even when the handler ignores it (abortable.ts).
      output = await untilAborted(handler.run(parsed.value, attemptContext), controller.signal, abandonHooks, task);
    } catch (error) {
      if (controller.signal.reason instanceof TaskCancelledError) return cancelledWhileRunning(task, ctx);
      if (ctx.signal.aborted) count(task, "handed_back");
      // A handler that rejects with something else once aborted still failed because of the abort: say why.
      // A handler module's errors named PermanentError, RetryAfterError or RateLimitedError become the pipeline's own.
      const failure: unknown = controller.signal.aborted ? controller.signal.reason : recognisedError(error);
      // The hooks that report the failure (onRetry's RUNNING, onExhausted's FAILED) repeat where the attempt got to.
      withLastReport(failure, progress.lastSaid());
      throw failure;
    } finally {
      duration.record(Date.now() - startedAt.getTime(), { type: task.type });
      clearTimeout(timer);
      clearTimeout(heartbeat);
      progress.stop();
      ctx.signal.removeEventListener("abort", onShutdown);
      forget();
      // Its lines kept before its outcome is published: whoever sees the outcome finds them (bounded wait).
      attemptOver = true;
      if (attemptLog) await attemptLog.close();
    }
    // Cancelled just as the handler finished: the gateway has already reported CANCELLED, so publish nothing.
    if (controller.signal.reason instanceof TaskCancelledError) return cancelledWhileRunning(task, ctx);

    const completedAt = new Date();
    // Not held back for RUNNING's PubAck: a result stored for an attempt that then fails (its RUNNING refused) is what
    // an attempt that dies between its result and SUCCEEDED leaves too. The retry's result is then deduplicated
    // (same message id), result-store keeps the first of the generation, and SUCCEEDED follows the retry.
    const resultPublished = rt.publisher.publish(
      Subjects.results,
      {
        taskId,
        type: task.type,
        priority: task.priority,
        output,
        attempts: ctx.attempt,
        startedAt: startedAt.toISOString(),
        completedAt: completedAt.toISOString(),
        durationMs: completedAt.getTime() - startedAt.getTime(),
        generation,
      },
      { msgId: `${taskId}:result:${generation}` },
    );
    // A result the contract cannot carry (an output past 256 KiB of JSON) would be refused again by every attempt:
    // the task fails at once, saying why, instead of running its handler FLOW_MAX_DELIVER times.
    const resultAccepted = resultPublished.catch((error: unknown) => {
      throw error instanceof MessageValidationError
        ? new PermanentError(`the handler's result cannot be stored: ${error.problems}`)
        : error;
    });
    await Promise.all([runningPublished, resultAccepted]);
    // The result first: a SUCCEEDED status is then never visible before its result can be fetched. The audit event
    // goes out with the status (one write, one wait): nothing orders those two.
    await Promise.all([
      publishStatus(rt.publisher, { taskId, state: "SUCCEEDED", source: service, attempt: ctx.attempt, generation }),
      publishAudit(rt.publisher, {
        taskId,
        service,
        action: "succeeded",
        detail: { attempts: ctx.attempt, durationMs: completedAt.getTime() - startedAt.getTime(), worker: workerId },
        discriminator: generation,
      }),
    ]);
    count(task, "succeeded");
    recordEndToEnd(task);
  }

  async function cancelledWhileRunning(task: EnrichedTaskMessage, ctx: DeliveryContext): Promise<void> {
    await publishAudit(rt.publisher, {
      taskId: task.taskId,
      service,
      action: "cancelled_while_running",
      detail: { attempt: ctx.attempt, worker: workerId },
      discriminator: ctx.attempt,
    });
    count(task, "cancelled");
  }

  const hooks: ConsumerHooks<WorkerSubject> = {
    async onRetry(task, error, ctx, delayMs) {
      count(task, "retried");
      await publishStatus(rt.publisher, {
        taskId: task.taskId,
        state: "RUNNING",
        source: service,
        attempt: ctx.attempt,
        step: ATTEMPT_FAILED_STEP,
        error: errorMessage(error),
        generation: task.generation,
        ...lastReportFields(error),
      });
      await publishAudit(rt.publisher, {
        taskId: task.taskId,
        service,
        action: "attempt_failed",
        detail: { attempt: ctx.attempt, error: recordedError(error), retryInMs: delayMs, worker: workerId },
        discriminator: ctx.attempt,
      });
    },
    async onDeferred(task, error, ctx, delayMs) {
      count(task, "rate_limited");
      // An audit record only: the status stays RUNNING (this attempt), and a status update for the wait would be
      // ordered after the attempt's progress (statusVersion), hiding the progress its next run reports.
      await publishAudit(rt.publisher, {
        taskId: task.taskId,
        service,
        action: "rate_limited",
        detail: {
          attempt: ctx.attempt,
          error: recordedError(error),
          retryInMs: delayMs,
          deferrals: ctx.deferrals + 1,
          worker: workerId,
        },
        discriminator: `${ctx.attempt}:${ctx.deferrals}`,
      });
    },
    async onExhausted(task, error, ctx) {
      count(task, "failed");
      recordEndToEnd(task);
      await publishStatus(rt.publisher, {
        taskId: task.taskId,
        state: "FAILED",
        source: service,
        attempt: ctx.attempt,
        error: errorMessage(error),
        generation: task.generation,
        ...lastReportFields(error),
      });
      await publishAudit(rt.publisher, {
        taskId: task.taskId,
        service,
        action: "failed",
        detail: { attempts: ctx.attempt, error: recordedError(error), worker: workerId },
        discriminator: task.generation,
      });
    },
  };

  return {
    run,
    hooks,
    abandoned: () => abandonedNow.size,
    /** The abandoned handlers, longest abandoned first, at most `limit`. */
    abandonedHandlers: (limit: number): AbandonedHandler[] =>
      [...abandonedNow.values()].sort((a, b) => a.sinceMs - b.sinceMs).slice(0, limit),
  };
}

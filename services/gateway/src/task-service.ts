/**
 * TaskService handlers. The gateway only records and announces: it writes the task and its PENDING status to Redis,
 * publishes tasks.ingest and returns; the pipeline does the rest and the notifier writes later statuses to Redis,
 * from where any gateway replica can read and stream them.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { isSpanContextValid, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  injectTrace,
  isLaterStatus,
  publishAudit,
  publishStatus,
  StatusEventSchema,
  type StatusUpdate,
  Subjects,
  statusEvent,
  type TaskMessage,
  taskLimitsOf,
} from "@tm/flow";
import { type Runtime, withDeadline } from "@tm/kit";
import { type CallContext, type ServiceHandlers, type TaskService, taskLimitFields } from "@tm/proto";
import {
  addChild,
  applyStatus,
  Bounds,
  childrenSummary,
  concurrencyRedisKey,
  countTaskLog,
  dependentsOf,
  isConcurrencyWaiting,
  isFairnessWaiting,
  markQueued,
  perTurnBatcher,
  readResult,
  readStatus,
  readTask,
  replaceWaiting,
  type StoredStatus,
  saveTask,
  toStoredStatus,
  unfinishedDependencies,
} from "@tm/store";
import { callerOf } from "./auth/caller.js";
import { withBatchDependencies } from "./batch-dependencies.js";
import { cancelDescendants, descendantReason } from "./cancel-children.js";
import { cancelTask } from "./cancel-task.js";
import { dependency } from "./dependencies.js";
import { claimSubmissionKey } from "./idempotency-claim.js";
import { ingestMsgId } from "./ingest-message-id.js";
import {
  dependencyPolicyToProto,
  priorityToProto,
  resultToStruct,
  statusToProto,
  timestampFromIso,
  traceIdOf,
} from "./mapping.js";
import { auditMovedTime, promoteTask } from "./promote-task.js";
import { redisCaller } from "./redis-call.js";
import { releaseTimeOf } from "./release-time.js";
import { requeueWindowMs } from "./requeue-sweeper.js";
import {
  type StatusSubscription,
  type StatusSubscriptions,
  statusSequence,
  unavailable,
} from "./status-subscriptions.js";
import { checkBatchSize, submitEach } from "./submit-batch.js";
import { checkDependencies, dependencyFailed } from "./task-dependencies.js";
import type { TaskIsolation } from "./task-isolation.js";
import { logPageOf, taskLogPage } from "./task-logs.js";
import { parseTaskId, type SubmissionRequest, type ValidSubmission, validateSubmission } from "./validation.js";

export interface TaskServiceOptions {
  maxPayloadBytes: number;
  /** How long a Redis call may take before the caller gets UNAVAILABLE (GATEWAY_REDIS_TIMEOUT_MS). */
  redisTimeoutMs: number;
  /** How far ahead a delayed task may be scheduled (GATEWAY_MAX_DELAY_SECONDS). */
  maxDelaySeconds: number;
  /** GATEWAY_TASK_ISOLATION: with "caller", a caller's tasks and idempotency keys are its own (task-isolation.ts). */
  isolation: TaskIsolation;
  /** GATEWAY_MAX_BATCH_TASKS: the most tasks one SubmitTasks call may carry. */
  maxBatchTasks: number;
  /** GATEWAY_FAIRNESS_WINDOW(S): how many tasks of a type with a fairness key may be in the pipeline at once,
   *  stamped on each such task (pkg/store/src/fairness.ts, src/fairness-windows.ts). */
  fairnessWindowOf: (type: string) => number;
  /** Why new submissions are refused now (a consumer's backlog near its stream's limits: backlog-shedding.ts). */
  shedding?: () => string | undefined;
  /** Runs a round of the delayed-task releaser now, so that a promoted task is queued at once rather than at the next
   *  round (a round claims each due entry atomically, so one beside the timer's releases nothing twice). */
  releaseDue?: () => Promise<unknown>;
}

const tracer = trace.getTracer("@tm/gateway");
/** GetTask lists at most this many of a task's dependents (Task.dependents; dependents_total counts them all). */
const DEPENDENTS_LISTED = 100;

type TaskServiceMethods = typeof TaskService extends { method: infer M } ? M : never;
export type TaskServiceHandlers = ServiceHandlers<TaskServiceMethods>;
type Submission = ReturnType<typeof validateSubmission>;

export function taskServiceHandlers(
  rt: Runtime,
  subscriptions: StatusSubscriptions,
  options: TaskServiceOptions,
): ServiceHandlers<TaskServiceMethods> {
  const submitted = rt.meter.createCounter("tm_tasks_submitted_total", {
    description:
      "SubmitTask and SubmitTaskAndStreamStatus calls accepted, by outcome (accepted, deduplicated, or replaced: a waiting task replaced)",
  });
  const cancelled = rt.meter.createCounter("tm_tasks_cancelled_total", { description: "Tasks cancelled" });
  const shed = rt.meter.createCounter("tm_tasks_shed_total", {
    description:
      "Submissions refused because a consumer's backlog was near its stream's limits (GATEWAY_SHED_BACKLOG_RATIO)",
  });
  const openStreams = rt.meter.createUpDownCounter("tm_status_streams_open", {
    description: "StreamTaskStatus and SubmitTaskAndStreamStatus calls streaming on this replica",
  });

  /** Fails fast with UNAVAILABLE while the connection is lost, or when Redis does not answer in time (redis-call.ts). */
  const redisCall = redisCaller(rt.redis, options.redisTimeoutMs);
  const retentionSeconds = rt.config.TASK_RETENTION_SECONDS;
  /** How long a submission's idempotency key is kept: a day, or for a child task as long as its records may be (a
   *  parent retried or replayed days later is handed the children it had, not a second set; ~90 bytes a key). */
  const idempotencyTtlOf = (submission: Submission) =>
    submission.parentTaskId ? Math.max(Bounds.idempotencyTtlSeconds, retentionSeconds) : Bounds.idempotencyTtlSeconds;
  const requeueWithinMs = requeueWindowMs(rt.settings.duplicateWindowMs);
  /** Takes acknowledged tasks out of tasks_unqueued, one ZREM for the tasks acknowledged in the same turn. */
  const markQueuedBatched = perTurnBatcher(
    (taskIds: readonly string[]) => markQueued(rt.redis, taskIds).then(() => taskIds.map(() => undefined)),
    500,
  );

  /**
   * A child task's parent, checked: a CANCELLED parent refuses it (FAILED_PRECONDITION). With `owned` (the caller is one
   * of GATEWAY_CHILD_SUBMITTERS) answers whose the child is: its parent's submitter (undefined for a parent submitted
   * without authentication: the child is then the worker's); a parent that does not exist (or expired) then refuses
   * the child, NOT_FOUND, since it cannot be said whose it is. Otherwise the parent need not exist: it is a link.
   */
  async function parentOf(parentTaskId: string, owned: boolean): Promise<string | undefined> {
    const [parent, status] = await redisCall("reading the parent task", () =>
      Promise.all([owned ? readTask(rt.redis, parentTaskId) : undefined, readStatus(rt.redis, parentTaskId)]),
    );
    if (status?.state === "CANCELLED") throw parentCancelled(parentTaskId);
    if (!owned) return undefined;
    if (!parent) throw new ConnectError(`parent_task_id: task ${parentTaskId} not found`, Code.NotFound);
    return parent.metadata.submitted_by;
  }

  function parentCancelled(parentTaskId: string): ConnectError {
    return new ConnectError(
      `parent_task_id: task ${parentTaskId} was cancelled: it takes no more child tasks`,
      Code.FailedPrecondition,
    );
  }

  /** The task, when it exists and the caller may see it (another caller's task is NOT_FOUND when isolated). */
  async function requireTask(taskId: string, ctx: CallContext) {
    const task = await redisCall("reading the task", () => readTask(rt.redis, taskId));
    if (!task || !options.isolation.maySee(ctx, task)) {
      throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
    }
    return task;
  }

  /**
   * Records the task and its PENDING status, then queues it on tasks.ingest. Idempotent for one task id.
   * The task is entered in tasks_unqueued with its record and taken out once the stream acknowledged its message:
   * a submission interrupted in between is settled by the requeue sweeper (requeue-sweeper.ts).
   * Two round trips, not four: the task record and the status CAS go to Redis in one pipeline (in that order, so a
   * reader that sees the status finds the task), then the PENDING event and the tasks.ingest message are published
   * together, neither waiting for the other's PubAck. PENDING is already in Redis, so nothing downstream needs the
   * event before the task (the notifier drops it as stale should it come after INGESTED).
   * `alsoPublish` (the "submitted" audit event) goes out in the same write, before tasks.ingest: nats-server stores a
   * client's messages in the order it reads them, so it precedes ingest's "ingested" in the audit stream, and the
   * call waits for one round of PubAcks instead of two. Its failure is the caller's to handle (it is not awaited
   * here).
   * A delayed task (`runAtMs`) is entered in tasks_delayed instead and not published: the delayed-task releaser
   * (delayed-releaser.ts) publishes it when it is due, in the trace it was submitted in. A task with dependencies
   * (`depends_on`) is saved first, registered with them in the same script (task-dependencies.ts), and its status
   * written after: if it waits, its stall clock starts when its records expire (it waits by design until the status
   * script makes it due) and it is not published either; if none is unfinished, it goes on as any other. A task with
   * a concurrency key goes the same way: saved first, admitted under its key's limit in the same script, and, when it
   * must wait for a place, neither published nor counted as stalled (the status script makes it due when one frees);
   * so does a task with a fairness key, let into its type's window or waiting for its turn.
   */
  async function queueTask(
    taskId: string,
    submission: Submission,
    createdAt: string,
    {
      alsoPublish,
      runAtMs,
      beforePublish,
      idempotencyClaim,
    }: {
      alsoPublish?: () => void;
      runAtMs?: number | undefined;
      beforePublish?: Promise<unknown> | undefined;
      /** The idempotency key this submission claimed (as claimed: with a caller's prefix when isolated). */
      idempotencyClaim?: string | undefined;
    } = {},
  ): Promise<StoredStatus | undefined> {
    const { traceparent } = injectTrace();
    const pending: StatusUpdate = { taskId, state: "PENDING", source: rt.name };
    const event = StatusEventSchema.parse(statusEvent(pending));
    const record = { ...submission, taskId, createdAt, traceparent, generation: 0 };
    const claim = idempotencyClaim === undefined ? {} : { idempotencyClaim };
    const save = () =>
      runAtMs === undefined
        ? saveTask(rt.redis, record, { unqueued: true, ttlSeconds: retentionSeconds, ...claim })
        : saveTask(
            rt.redis,
            { ...record, runAt: new Date(runAtMs).toISOString() },
            { delayedUntilMs: runAtMs, ttlSeconds: retentionSeconds, ...claim },
          );
    let waiting = false;
    let listed = true;
    const applied = await redisCall("saving the task", async () => {
      let written: boolean;
      if (submission.dependsOn || submission.concurrencyKey || submission.fairnessKey) {
        const saved = await save();
        if ("refusedBy" in saved) throw dependencyFailed(saved.refusedBy.dependency, saved.refusedBy.state);
        waiting = saved.waitingFor > 0 || saved.waitsFor !== undefined;
        const waitsUntilMs = Date.parse(createdAt) + retentionSeconds * 1000;
        written = await applyStatus(rt.redis, event, retentionSeconds, {
          stallClockFromMs: waiting ? waitsUntilMs : runAtMs,
        });
      } else {
        // A delayed task's stall clock starts at its release time: it waits PENDING by design until then.
        [, written] = await Promise.all([
          save(),
          applyStatus(rt.redis, event, retentionSeconds, { stallClockFromMs: runAtMs }),
        ]);
      }
      // A child is listed under its parent once its records are saved, in a script that reads the parent's state: a
      // parent cancelled since parentOf checked it refuses the listing. So CancelTask's include_children, which
      // cancels the parent and then walks the listing, either finds this child (and its records) or is seen here.
      if (submission.parentTaskId) {
        listed = await addChild(rt.redis, submission.parentTaskId, taskId, Date.parse(createdAt), retentionSeconds);
      }
      // Before the task is queued: a record a failover loses must not be in the stream (nor answered for).
      await rt.confirmRedisWrites();
      return written;
    });
    if (!listed && submission.parentTaskId) {
      // Saved but never queued: cancelled as the cascade would have, its history saying so (a retry with its
      // idempotency key is then answered this task).
      alsoPublish?.();
      await cancelTask(rt, redisCall, taskId, descendantReason(submission.parentTaskId, ""), (from) =>
        cancelled.add(1, { from }),
      );
      throw parentCancelled(submission.parentTaskId);
    }
    const message: TaskMessage = {
      taskId,
      type: submission.type,
      priority: submission.priority,
      payload: submission.payload,
      metadata: submission.metadata,
      createdAt,
      ...taskLimitsOf(submission),
      generation: 0,
    };
    // A lost PENDING event must not fail the call once the task is queued (the client would submit it again): the
    // status is in Redis already, and the later stages' events supersede it.
    const status = applied
      ? publishStatus(rt.publisher, pending).catch((error: unknown) =>
          rt.log.warn({ err: error, taskId }, "could not publish the PENDING event"),
        )
      : undefined;
    alsoPublish?.();
    if (runAtMs !== undefined || waiting) {
      await status;
      return applied ? toStoredStatus(event) : undefined;
    }
    // The combined call's SUBSCRIBE, sent beside the writes above and normally answered by now: held for (at most a
    // Redis timeout) so that no stage can publish a status of the task before the subscription takes it.
    if (beforePublish) {
      await withDeadline(beforePublish, options.redisTimeoutMs, () => new Error("subscription not ready")).catch(
        () => undefined,
      );
    }
    await dependency("NATS", "queueing the task", () =>
      rt.publisher.publish(Subjects.ingest, message, { msgId: ingestMsgId(taskId, 0) }),
    );
    // Not awaited: the task is queued whatever happens to this write. Should it fail, the requeue sweeper finds the
    // entry, sees the task is no longer PENDING (or publishes it again, deduplicated) and removes it.
    markQueuedBatched(taskId).catch((error: unknown) =>
      rt.log.debug({ err: error, taskId }, "could not take the queued task out of tasks_unqueued"),
    );
    await status;
    return applied ? toStoredStatus(event) : undefined;
  }

  /**
   * Completes the submission that owns an idempotency key, if it was interrupted: no task record yet (it failed
   * before saving), or still PENDING within the stream's duplicate window (its tasks.ingest publish may have
   * failed; republishing with the same message id cannot queue it twice). Older PENDING tasks are left to the
   * requeue sweeper, which fails them: outside the window a republish could no longer be deduplicated (the window
   * is requeue-sweeper.ts's, a margin inside the stream's duplicate window). A delayed task's record was saved with
   * its tasks_delayed entry in one script: the releaser queues it (with the status, should that write have failed).
   */
  async function resumeSubmission(
    taskId: string,
    submission: Submission,
    runAtMs: number | undefined,
    claim: { key: string; saved: boolean },
  ): Promise<void> {
    const task = await redisCall("reading the task", () => readTask(rt.redis, taskId));
    if (!task) {
      // Its record was saved once (the key is marked so) and is gone: kept less than its key (TASK_RETENTION_SECONDS,
      // a succeeded retention). Making it again would run it again; the key answers its id, as it promised.
      if (claim.saved) {
        rt.log.info({ taskId }, "an idempotency key's task is gone (its records expired): answered, nothing submitted");
        return;
      }
      await queueTask(taskId, submission, new Date().toISOString(), { runAtMs, idempotencyClaim: claim.key });
      return;
    }
    if (task.runAt || task.dependsOn) return; // the releaser's to queue
    if (task.generation !== 0 || Date.now() - Date.parse(task.createdAt) > requeueWithinMs) return;
    const status = await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
    if (status && status.state !== "PENDING") return;
    // The first submission is what was accepted: requeue it as stored, whatever this retry carried.
    const { type, priority, payload, metadata, parentTaskId } = task;
    await queueTask(
      taskId,
      {
        idempotencyKey: submission.idempotencyKey,
        type,
        priority,
        payload: payload as JsonObject,
        metadata,
        ...taskLimitsOf(task),
        ...(parentTaskId ? { parentTaskId } : {}),
      },
      task.createdAt,
      { idempotencyClaim: claim.key },
    );
  }

  /** Replaces the key's task while it waits for its time (idempotency_key_reuse REPLACE_WAITING), audited
   *  "replaced"; false when it no longer waits (it is then answered as any deduplicated submission). */
  async function replaceWaitingTask(
    taskId: string,
    submission: Submission,
    runAtMs: number,
    caller: string | undefined,
  ): Promise<boolean> {
    const previousRunAtMs = await redisCall("replacing the waiting task", () =>
      replaceWaiting(rt.redis, taskId, {
        submission,
        runAtMs,
        ttlSeconds: retentionSeconds + Math.max(0, Math.ceil((runAtMs - Date.now()) / 1_000)),
      }),
    );
    if (previousRunAtMs === undefined) return false;
    if (typeof previousRunAtMs === "object") {
      throw new ConnectError(
        `idempotency_key: its task waiting for its time is of type ${previousRunAtMs.otherType}, not ` +
          `${submission.type}: a replacement (REPLACE_WAITING) must be of the same type`,
        Code.FailedPrecondition,
      );
    }
    await auditMovedTime(rt, taskId, "replaced", previousRunAtMs, runAtMs, submitterDetail(caller));
    return true;
  }

  /**
   * SubmitTask's work, shared with SubmitTaskAndStreamStatus: validate, claim the idempotency key, queue.
   * `beforeQueueing` runs once a new task's id is known, before anything about it is written (the combined call
   * subscribes to its updates there); what it returns is awaited before the task is queued on tasks.ingest (the
   * subscription then takes every status the stages publish). A deduplicated submission does not call it.
   * `pending` is the PENDING status written for a new task.
   */
  async function submit(
    request: SubmissionRequest,
    ctx: CallContext,
    beforeQueueing?: (taskId: string) => Promise<unknown> | undefined,
  ): Promise<{ taskId: string; deduplicated: boolean; replaced?: boolean; pending?: StoredStatus | undefined }> {
    const valid = validateSubmission(request, options.maxPayloadBytes, rt.settings.maxDeliver, rt.config.TASK_TYPES);
    const caller = callerOf(ctx);
    const runAtMs = releaseTimeOf(request.schedule, Date.now(), options.maxDelaySeconds);
    // After validation (a bad request is told so first), before anything is read or written.
    const refusal = options.shedding?.();
    if (refusal) {
      shed.add(1, { type: valid.type });
      throw new ConnectError(refusal, Code.Unavailable);
    }
    // A worker's child task is its parent's submitter's (GATEWAY_CHILD_SUBMITTERS): whoever sees the parent sees it.
    // A cancelled parent takes no more children (CancelTask's include_children walks those it has).
    const actingFor = valid.parentTaskId
      ? await parentOf(valid.parentTaskId, options.isolation.submitsChildrenForParent(ctx))
      : undefined;
    const owner = actingFor ?? caller;
    const stamped = stampSubmitter(valid, owner, actingFor === undefined ? undefined : caller);
    const submission = withKeyScopes(
      stamped,
      options.isolation.concurrencyScopeOf(owner),
      options.fairnessWindowOf(stamped.type),
    );
    if (submission.dependsOn) {
      const { dependsOn, dependencyPolicy } = submission;
      await checkDependencies(redisCall, rt, { dependsOn, ...(dependencyPolicy ? { dependencyPolicy } : {}) }, (task) =>
        options.isolation.maySee(ctx, task, actingFor),
      );
    }
    const { idempotencyKey } = submission;
    let taskId: string = crypto.randomUUID();
    let idempotencyClaim: string | undefined;
    if (idempotencyKey) {
      const claimedKey = options.isolation.idempotencyKeyOf(ctx, idempotencyKey);
      const claim = await claimSubmissionKey(rt, redisCall, {
        key: claimedKey,
        taskId,
        ttlSeconds: idempotencyTtlOf(submission),
        reuseAfterFinished: submission.idempotencyKeyReuse !== undefined,
      });
      // A debounce: the key's task still waiting for its time takes this submission's payload, metadata and time.
      if (!claim.claimed && submission.idempotencyKeyReuse === "replace-waiting" && runAtMs !== undefined) {
        const replaced = await replaceWaitingTask(claim.owner, submission, runAtMs, caller);
        if (replaced) {
          submitted.add(1, { type: submission.type, priority: submission.priority, outcome: "replaced" });
          return { taskId: claim.owner, deduplicated: true, replaced: true };
        }
      }
      if (!claim.claimed) {
        // A retry of a submission that may have been interrupted: complete it under the first id. Every step
        // is idempotent (task record, status CAS, tasks.ingest deduplicated by its message id), so finishing
        // one that had in fact completed changes nothing, and the key never points at a task left unqueued.
        await resumeSubmission(claim.owner, submission, runAtMs, { key: claimedKey, saved: claim.saved });
        submitted.add(1, { type: submission.type, priority: submission.priority, outcome: "deduplicated" });
        return { taskId: claim.owner, deduplicated: true };
      }
      taskId = claim.owner;
      idempotencyClaim = claimedKey;
    }
    const beforePublish = beforeQueueing?.(taskId);
    // The "submitted" audit event is sent once the task and its PENDING status are in Redis, together with the
    // task's tasks.ingest message. A lost audit event must not turn an accepted task into an error: it is logged.
    // (Should queueing then fail, the history says "submitted" for a task that Redis holds as PENDING: the same
    // state a retry with the idempotency key completes.)
    let audited: Promise<unknown> | undefined;
    const pending = await queueTask(taskId, submission, new Date().toISOString(), {
      alsoPublish: () => {
        audited = publishAudit(rt.publisher, {
          taskId,
          service: rt.name,
          action: "submitted",
          detail: {
            type: submission.type,
            priority: submission.priority,
            ...submitterDetail(actingFor ?? caller),
            ...(actingFor === undefined ? {} : { submittedVia: caller }),
            ...(runAtMs === undefined ? {} : { runAt: new Date(runAtMs).toISOString() }),
          },
        }).catch((error: unknown) =>
          rt.log.warn({ err: error, taskId }, "could not publish the submitted audit event"),
        );
      },
      runAtMs,
      beforePublish,
      idempotencyClaim,
    });
    await audited;
    submitted.add(1, { type: submission.type, priority: submission.priority, outcome: "accepted" });
    // The task's first log line, inside the call's span: the drill-down by task id starts here.
    rt.log.debug({ taskId, type: submission.type, priority: submission.priority }, "task accepted");
    return { taskId, deduplicated: false, pending };
  }

  /**
   * A task's statuses as StreamTaskStatus sends them: the current one, then every newer update, ending after a
   * terminal state. `subscribing` is a subscription the caller already started (else one is opened here); with
   * `after`, statuses up to its version are not sent again (the caller sent it).
   */
  async function* statusesOf(
    taskId: string,
    signal: AbortSignal,
    subscribing: Promise<StatusSubscription> = subscriptions.open(taskId),
    after?: StoredStatus,
  ): AsyncGenerator<StoredStatus> {
    // Subscribed BEFORE reading the current status: an update published in between is then buffered, not lost.
    const subscription = await subscribing;
    openStreams.add(1);
    try {
      const current = await Promise.race([
        redisCall("reading the task status", () => readStatus(rt.redis, taskId)),
        subscription.queue.failed,
      ]);
      if (!current) throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
      for await (const status of statusSequence(current, () => subscription.queue.next(signal))) {
        if (after && !isLaterStatus(after, status)) continue;
        yield status;
      }
    } finally {
      openStreams.add(-1);
      subscription.close();
    }
  }

  return {
    async submitTask(request, ctx) {
      const { taskId, deduplicated, replaced = false } = await submit(request, ctx);
      return { taskId, deduplicated, replaced };
    },

    async submitTasks(request, ctx) {
      checkBatchSize(request.tasks.length, options.maxBatchTasks);
      // One trace per task, as for SubmitTask: each task's trace starts at a span of its own, linked to the batch
      // call's span, instead of every task of the batch sharing the call's trace. A child task (a handler's
      // ctx.submitTasks) continues the call's trace instead, as its parent's attempt's, as SubmitTask's children do.
      const batchSpan = trace.getActiveSpan()?.spanContext();
      const links = batchSpan && isSpanContextValid(batchSpan) ? [{ context: batchSpan }] : [];
      const outcomes = await submitEach(
        request.tasks,
        (task, index, outcomeOf) =>
          tracer.startActiveSpan(
            "SubmitTasks task",
            {
              root: task.parentTaskId === "",
              kind: SpanKind.SERVER,
              links,
              attributes: { "tm.batch.index": index },
            },
            async (span) => {
              try {
                const submitted = await submit(await withBatchDependencies(task, index, outcomeOf), ctx);
                span.setAttribute("task.id", submitted.taskId);
                return {
                  taskId: submitted.taskId,
                  deduplicated: submitted.deduplicated,
                  replaced: submitted.replaced ?? false,
                };
              } catch (error) {
                span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
                // Refusals are the client's to read in the outcome; anything else is a bug worth a line of its own.
                if (!(error instanceof ConnectError))
                  rt.log.error({ err: error }, "submitting a task of a batch failed");
                throw error;
              } finally {
                span.end();
              }
            },
          ),
        { signal: ctx.signal },
      );
      return { outcomes: outcomes.map((outcome) => ({ outcome })) };
    },

    async getTask(request, ctx) {
      const taskId = parseTaskId(request.taskId);
      const task = await requireTask(taskId, ctx);
      const [
        status,
        result,
        dependenciesUnfinished,
        dependents,
        children,
        logLines,
        concurrencyWaiting,
        fairnessWaiting,
      ] = await redisCall("reading the task status", () =>
        Promise.all([
          readStatus(rt.redis, taskId),
          readResult(rt.redis, taskId),
          task.dependsOn ? unfinishedDependencies(rt.redis, taskId) : 0,
          dependentsOf(rt.redis, taskId, DEPENDENTS_LISTED),
          // Listed and counted by state (how far a fan-out got) from one read of the set.
          childrenSummary(rt.redis, taskId, DEPENDENTS_LISTED),
          countTaskLog(rt.redis, taskId),
          task.concurrencyKey ? isConcurrencyWaiting(rt.redis, concurrencyRedisKey(task)!, taskId) : false,
          isFairnessWaiting(rt.redis, task),
        ]),
      );
      return {
        task: {
          taskId,
          type: task.type,
          priority: priorityToProto(task.priority),
          payload: task.payload as JsonObject,
          status: status ? statusToProto(status) : undefined,
          result: result ? resultToStruct(result.output) : undefined,
          createdAt: timestampFromIso(task.createdAt),
          metadata: task.metadata,
          traceId: traceIdOf(task.traceparent),
          runAt: timestampFromIso(task.runAt),
          ...taskLimitFields(task),
          dependsOn: task.dependsOn ?? [],
          dependenciesUnfinished,
          dependencyPolicy: dependencyPolicyToProto(task),
          dependents: dependents.ids,
          dependentsTotal: dependents.total,
          ...(task.succeededRetentionSeconds
            ? { succeededRetention: durationFromMs(task.succeededRetentionSeconds * 1_000) }
            : {}),
          parentTaskId: task.parentTaskId ?? "",
          children: children.ids,
          childrenTotal: children.total,
          childrenByState: children.byState,
          logLines,
          concurrencyKey: task.concurrencyKey ?? "",
          concurrencyLimit: task.concurrencyLimit ?? 0,
          concurrencyWaiting,
          fairnessKey: task.fairnessKey ?? "",
          fairnessWeight: task.fairnessKey ? (task.fairnessWeight ?? 1) : 0,
          fairnessWaiting,
        },
      };
    },

    async *streamTaskStatus(request, ctx) {
      const taskId = parseTaskId(request.taskId);
      // Isolated, whose task it is decides first (one read more); otherwise the status alone answers.
      if (options.isolation.enabled) await requireTask(taskId, ctx);
      for await (const status of statusesOf(taskId, ctx.signal)) yield { taskId, status: statusToProto(status) };
    },

    async *submitTaskAndStreamStatus(request, ctx) {
      // Without the subscriber connection the statuses could not be streamed: refuse before creating anything.
      if (!subscriptions.ready) {
        throw unavailable("status updates unavailable: not connected to Redis; retry the call");
      }
      let subscribing: Promise<StatusSubscription> | undefined;
      try {
        const {
          taskId,
          deduplicated,
          replaced = false,
          pending,
        } = await submit(request, ctx, (newTaskId) => {
          // The SUBSCRIBE goes out beside the task's writes, and the task is queued once it is answered: the stream
          // then has every state the stages publish (INGESTED included), not only the latest when it subscribed.
          // Its round trip overlaps the writes', so it costs the call next to nothing.
          subscribing = subscriptions.open(newTaskId);
          subscribing.catch(() => undefined); // observed by statusesOf; a failed submit only closes it
          return subscribing;
        });
        // A new task's PENDING goes out at once: the client holds the id before anything else can fail, and can
        // resume with StreamTaskStatus rather than submit again.
        if (pending) yield { taskId, deduplicated, replaced, status: statusToProto(pending) };
        for await (const status of statusesOf(taskId, ctx.signal, subscribing, pending)) {
          yield { taskId, deduplicated, replaced, status: statusToProto(status) };
        }
      } finally {
        // statusesOf closes it too when it got that far; closing twice is safe.
        subscribing?.then(
          (subscription) => subscription.close(),
          () => undefined,
        );
      }
    },

    async cancelTask(request, ctx) {
      const taskId = parseTaskId(request.taskId);
      await requireTask(taskId, ctx);
      const count = (from: string) => cancelled.add(1, { from });
      const outcome = await cancelTask(rt, redisCall, taskId, request.reason, count);
      if (!request.includeChildren) {
        if (outcome.result === "already_finished") throw alreadyFinished(taskId, outcome.state ?? "finished");
        return { status: statusToProto(outcome.status) };
      }
      // The parent first: a child submitted from now on is refused (its parent is CANCELLED), and one whose submission
      // was past that check is either listed before the walk reads the listing or refused its listing (queueTask).
      const childrenCancelled = await cancelDescendants(
        rt,
        redisCall,
        taskId,
        request.reason,
        (task) => options.isolation.maySee(ctx, task),
        count,
      );
      const status =
        outcome.result === "cancelled"
          ? outcome.status
          : await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
      return { ...(status ? { status: statusToProto(status) } : {}), childrenCancelled };
    },

    async promoteTask(request, ctx) {
      const taskId = parseTaskId(request.taskId);
      const task = await requireTask(taskId, ctx);
      // Running it now adds its message to TASKS, as a submission does: refused alike while the gateway sheds load
      // (its release would wait anyway; the caller is told, and the task keeps its time).
      const refusal = options.shedding?.();
      if (refusal) throw new ConnectError(refusal, Code.Unavailable);
      const { previousRunAtMs, runAtMs } = await promoteTask(rt, redisCall, task, callerOf(ctx));
      options
        .releaseDue?.()
        .catch((error: unknown) =>
          rt.log.debug({ err: error, taskId }, "the promoted task waits for the next release round"),
        );
      return {
        previousRunAt: timestampFromDate(new Date(previousRunAtMs)),
        runAt: timestampFromDate(new Date(runAtMs)),
      };
    },

    async getTaskLogs(request, ctx) {
      const taskId = parseTaskId(request.taskId);
      // Bad input is told before anything is read.
      const page = logPageOf(request);
      await requireTask(taskId, ctx);
      return taskLogPage(rt, redisCall, taskId, page);
    },
  };
}

/**
 * Records whose the task is as metadata `submitted_by` (the authenticated caller, or for a child task the parent's
 * submitter) and, for a child, the caller that submitted it as `submitted_via`, over any value the client sent (it
 * cannot spoof either).
 */
function stampSubmitter<T extends { metadata: Record<string, string> }>(
  submission: T,
  owner: string | undefined,
  via?: string,
): T {
  if (owner === undefined) return submission;
  const { submitted_via: _spoofed, ...metadata } = submission.metadata;
  return {
    ...submission,
    metadata: { ...metadata, submitted_by: owner, ...(via === undefined ? {} : { submitted_via: via }) },
  };
}

/**
 * A submission's keys placed: its concurrency and fairness keys within `scope` (its owner's, when callers are
 * isolated: two applications naming the same key then get one each), and a fairness key's window stamped on it.
 */
function withKeyScopes(
  submission: ValidSubmission,
  scope: string | undefined,
  fairnessWindow: number,
): ValidSubmission {
  return {
    ...submission,
    ...(submission.concurrencyKey && scope !== undefined ? { concurrencyScope: scope } : {}),
    ...(submission.fairnessKey ? { fairnessWindow, ...(scope === undefined ? {} : { fairnessScope: scope }) } : {}),
  };
}

function submitterDetail(caller: string | undefined): { submittedBy?: string } {
  return caller === undefined ? {} : { submittedBy: caller };
}

function alreadyFinished(taskId: string, state: string): ConnectError {
  return new ConnectError(`task ${taskId} is already ${state} and cannot be cancelled`, Code.FailedPrecondition);
}

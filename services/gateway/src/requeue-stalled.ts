/**
 * Requeue of a stalled task (AdminService.RequeueTasks, `taskctl requeue`, and the gateway's own round over the tasks
 * it counts stalled, stalled-tasks.ts, with `autoLimit`): an unfinished task whose status has not
 * changed for a while (its message lost: discarded by a full stream, a stream restored from an older backup) goes
 * through the pipeline again under its own id, as a new generation, so whoever follows the task sees it finish.
 *
 *   1. checks: the task exists, is unfinished (a FAILED task's way back is its dead letter's replay), and its status
 *      has not changed for `stalledForMs`; or it was failed "not queued" by the requeue sweeper (its submission never
 *      reached the stream: it never ran, has no dead letter, and its cancel marker is the sweeper's, cleared here);
 *   2. starts the new generation in one Redis script (claimRequeue), only if the task's generation and status
 *      version are still the ones checked and no generation of it is being queued (of two operators or replicas
 *      requeuing one task only one does; a task that moved in between is left alone), no cancel was requested, and,
 *      for an automatic requeue, the task's `autoRequeues` is below the limit; the task is entered in tasks_unqueued;
 *   3. audits "requeued_stalled" and queues the generation as a replay does (queue-generation.ts).
 * A task judged stalled that was only slow still runs once if its old message reaches a worker afterwards (the worker
 * skips a message older than the task's generation: whyNotRun); one whose handler was already running runs twice:
 * its older generation's statuses are ignored (versions carry the generation), and its result is replaced by the
 * newer generation's (result-store keeps the latest generation's): the threshold is the operator's guard (the
 * automatic round's is its stricter rule: no message of the stage waiting, no live worker running it).
 */
import { isTerminal, type TaskState } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  claimRequeue,
  concurrencyRedisKey,
  isConcurrencyWaiting,
  isFairnessWaiting,
  readStatus,
  readTask,
  stalledSinceMs,
} from "@tm/store";
import { dependency } from "./dependencies.js";
import { isGenerationNotQueued, queueGeneration } from "./queue-generation.js";
import { NOT_QUEUED_PREFIX } from "./requeue-sweeper.js";

export type RequeueOutcome =
  /** `queuePending`: the generation started but NATS or Redis failed while queueing it (why); the sweeper queues it. */
  | { taskId: string; result: "requeued"; generation: number; previousState: TaskState; queuePending?: string }
  | { taskId: string; result: "not_found"; reason: string }
  | { taskId: string; result: "failed_precondition"; reason: string; previousState?: TaskState }
  /** Redis or NATS did not answer before the generation started (given by the admin call, batch-outcomes.ts). */
  | { taskId: string; result: "unavailable"; reason: string };

export interface RequeueBy {
  /** The authenticated operator (undefined with GATEWAY_AUTH_MODE=none); the audit event names them. */
  caller?: string;
  /** The gateway's own requeue of a task it counted stalled (stalled-tasks.ts), at most this many times per task:
   *  audited with `automatic: true`. */
  autoLimit?: number;
}

export async function requeueStalledTask(
  rt: Runtime,
  taskId: string,
  stalledForMs: number,
  { caller, autoLimit }: RequeueBy = {},
): Promise<RequeueOutcome> {
  const [task, status] = await dependency("Redis", "reading the task", () =>
    Promise.all([readTask(rt.redis, taskId), readStatus(rt.redis, taskId)]),
  );
  if (!task) return { taskId, result: "not_found", reason: "no task with this id (never submitted, or expired)" };
  if (!status) {
    return {
      taskId,
      result: "failed_precondition",
      reason: "it has no status yet: its submission is still being queued (or the requeue sweeper settles it)",
    };
  }
  const previousState = status.state;
  const refuse = (reason: string): RequeueOutcome => ({ taskId, result: "failed_precondition", reason, previousState });
  // Failed by the requeue sweeper because its submission never reached the stream: it never ran and has no dead
  // letter, so this is its way through the pipeline under its own id (no threshold: nothing of it is running).
  const neverQueued = previousState === "FAILED" && status.error.startsWith(NOT_QUEUED_PREFIX);
  if (isTerminal(previousState) && !neverQueued) {
    return refuse(
      previousState === "FAILED"
        ? "it is FAILED: a failed task goes through the pipeline again by replaying its dead letter (taskctl dlq replay)"
        : `it is ${previousState}`,
    );
  }
  const now = Date.now();
  // A delayed task waits PENDING by design: it is not stalled before its time, and its stall counts from then.
  const changedAtMs = stalledSinceMs(task, status);
  if (Number.isNaN(changedAtMs)) return refuse(`its status has no valid time of change ("${status.updatedAt}")`);
  if (previousState === "PENDING" && task.runAt && changedAtMs > now) {
    return refuse(`it is delayed until ${task.runAt}: the gateway queues it then (cancel it instead to drop it)`);
  }
  // Waiting for a place under its concurrency key is waiting by design too: a requeue would run it past its limit.
  const concurrencyKey = previousState === "PENDING" ? concurrencyRedisKey(task) : undefined;
  if (
    concurrencyKey &&
    (await dependency("Redis", "reading the task's concurrency key", () =>
      isConcurrencyWaiting(rt.redis, concurrencyKey, taskId),
    ))
  ) {
    return refuse(
      `it waits for a place under its concurrency key ${task.concurrencyKey}: the gateway queues it when one frees ` +
        "(cancel it instead to drop it)",
    );
  }
  // So is waiting for its fairness key's turn: a requeue would push it past the other keys' tasks.
  if (
    previousState === "PENDING" &&
    task.fairnessKey &&
    (await dependency("Redis", "reading the task's fairness key", () => isFairnessWaiting(rt.redis, task)))
  ) {
    return refuse(
      `it waits for its fairness key ${task.fairnessKey}'s turn in the ${task.type} window: the gateway queues it ` +
        "then (cancel it instead to drop it)",
    );
  }
  const unchangedMs = now - changedAtMs;
  if (!neverQueued && unchangedMs < stalledForMs) {
    return refuse(
      `it is ${previousState} and its status changed ${formatSeconds(unchangedMs)} ago; only tasks stalled for at ` +
        `least ${formatSeconds(stalledForMs)} are requeued (stalled_for_seconds)`,
    );
  }

  const claim = await dependency("Redis", "starting the task's new generation", () =>
    claimRequeue(rt.redis, taskId, task.generation, status.version, now, {
      clearCancelMarker: neverQueued,
      ...(autoLimit === undefined ? {} : { autoLimit }),
    }),
  );
  if (!claim.claimed) {
    if (claim.reason === "expired") return { taskId, result: "not_found", reason: "the task expired meanwhile" };
    return refuse(CLAIM_REFUSALS[claim.reason]);
  }
  const { generation } = claim;
  const audit = {
    taskId,
    service: rt.name,
    action: "requeued_stalled",
    detail: {
      generation,
      previousState,
      unchangedMs,
      ...(caller === undefined ? {} : { requeuedBy: caller }),
      ...(autoLimit === undefined ? {} : { automatic: true }),
    },
    discriminator: generation,
  };
  try {
    await queueGeneration(rt, task, generation, audit, `the requeue of task ${taskId}`);
  } catch (error) {
    // Committed: the sweeper queues it (and audits "requeued"), as for a replay.
    if (!isGenerationNotQueued(error)) throw error;
    return { taskId, result: "requeued", generation, previousState, queuePending: error.rawMessage };
  }
  rt.log.info(
    { taskId, generation, previousState, unchangedMs, automatic: autoLimit !== undefined },
    "stalled task requeued",
  );
  return { taskId, result: "requeued", generation, previousState };
}

const CLAIM_REFUSALS = {
  cancelling: "a cancellation of the task has been requested",
  moved_on:
    "the task moved meanwhile (its status or generation changed, or a generation of it is being queued, or it waits " +
    "for its release as a delayed task)",
  auto_limit: "the gateway has requeued it automatically as often as GATEWAY_STALLED_REQUEUE_LIMIT allows",
} as const;

function formatSeconds(ms: number): string {
  return `${Math.max(0, Math.floor(ms / 1_000))} s`;
}

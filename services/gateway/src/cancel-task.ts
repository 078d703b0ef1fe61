/**
 * Cancelling one task, shared by TaskService.CancelTask (one task, the caller's) and AdminService.CancelTasks (many,
 * an operator's): the cancel marker (every stage checks it before doing work, so a task not yet running never starts),
 * CANCELLED through the status compare-and-set (a terminal state that won the race is reported, not overwritten), a
 * delayed task out of tasks_delayed, the core NATS notice that aborts a running handler, and the audit event.
 * Redis or NATS not answering is UNAVAILABLE naming the step (the marker may then be set already: the task will not
 * start, and a second call finishes the job).
 */
import { CANCEL_SUBJECT, type CancelNotice, isTerminal, publishAudit, type TaskState } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { forgetDelayed, forgetWaiting, markCancelled, readStatus, type StoredStatus } from "@tm/store";
import { recordStatus } from "./record-status.js";
import type { RedisCall } from "./redis-call.js";

export type CancelOutcome =
  | { result: "cancelled"; status: StoredStatus; previousState: TaskState | undefined }
  | { result: "already_finished"; state: TaskState | undefined };

/** A dry run's answer (CancelTasks' dry_run): whether cancelTask would cancel the task, and the state it is in. */
export type CancelPreview = {
  result: "would_cancel" | "already_finished";
  state: TaskState | undefined;
};

/** The longest reason kept (the rest is cut). */
export const MAX_CANCEL_REASON_CHARS = 1_024;

export async function cancelTask(
  rt: Runtime,
  redisCall: RedisCall,
  taskId: string,
  reason: string,
  /** Counts each cancellation by the state it left (tm_tasks_cancelled_total). */
  count: (from: string) => void,
  /** The operator who cancelled it, for the audit event (AdminService.CancelTasks). */
  cancelledBy?: string,
): Promise<CancelOutcome> {
  const current = await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
  if (current && isTerminal(current.state)) return { result: "already_finished", state: current.state };
  const why = reason.slice(0, MAX_CANCEL_REASON_CHARS);
  await redisCall("marking the task cancelled", () =>
    markCancelled(rt.redis, taskId, why, rt.config.TASK_RETENTION_SECONDS),
  );
  const { applied, status } = await recordStatus(
    rt,
    // The reason is the status's error too, as an expiry's is: GetTask, the status stream, taskctl and the console
    // then say why the task was cancelled without reading its history.
    { taskId, state: "CANCELLED", source: rt.name, generation: current?.generation ?? 0, error: why },
    redisCall,
  );
  if (!applied) {
    // A terminal state won the race between our read and our write.
    const winner = await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
    return { result: "already_finished", state: winner?.state };
  }
  // A delayed task leaves tasks_delayed now rather than at its time (where the releaser would drop it): the
  // operators' count of delayed tasks is then right. Its CANCELLED status is what keeps it from running.
  if (current?.state === "PENDING") {
    forgetDelayed(rt.redis, taskId).catch((error: unknown) =>
      rt.log.debug({ err: error, taskId }, "could not take the cancelled task out of tasks_delayed"),
    );
    // Likewise one waiting for its dependencies (else it would leave tasks_waiting when they finish).
    forgetWaiting(rt.redis, taskId).catch((error: unknown) =>
      rt.log.debug({ err: error, taskId }, "could not take the cancelled task out of tasks_waiting"),
    );
  }
  const notice: CancelNotice = { taskId, reason: why, at: new Date().toISOString() };
  // Core NATS, fire-and-forget: a worker that misses it still sees task_cancel:<id> before starting work, so
  // a failed broadcast is logged, not returned (the cancellation itself is already recorded).
  try {
    rt.nats.nc.publish(CANCEL_SUBJECT, JSON.stringify(notice));
  } catch (error) {
    rt.log.warn({ err: error, taskId }, "could not broadcast the cancel notice");
  }
  const from = current?.state ?? "unknown";
  await publishAudit(rt.publisher, {
    taskId,
    service: rt.name,
    action: "cancelled",
    detail: { reason: why, from, ...(cancelledBy === undefined ? {} : { cancelledBy }) },
  }).catch((error: unknown) => rt.log.warn({ err: error, taskId }, "could not publish the cancelled audit event"));
  count(from);
  return { result: "cancelled", status, previousState: current?.state };
}

/** What cancelTask would do to a task, changing nothing: its first step alone. */
export async function previewCancel(rt: Runtime, redisCall: RedisCall, taskId: string): Promise<CancelPreview> {
  const current = await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
  return { result: current && isTerminal(current.state) ? "already_finished" : "would_cancel", state: current?.state };
}

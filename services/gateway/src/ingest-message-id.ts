/**
 * A task's tasks.ingest message, rebuilt from its stored record (a requeue, a replay), and its Nats-Msg-Id: one per
 * generation, so a replay (generation n + 1) is not deduplicated by the stream against the original submission or
 * an earlier replay within the duplicate window.
 */
import { type TaskMessage, taskLimitsOf } from "@tm/flow";
import type { TaskRecord } from "@tm/store";

export function ingestMsgId(taskId: string, generation: number): string {
  return `${taskId}:ingest:${generation}`;
}

/** The message as SubmitTask queued it: the record's fields, with `generation`. */
export function ingestMessageOf(task: TaskRecord, generation: number): TaskMessage {
  return {
    taskId: task.taskId,
    type: task.type,
    priority: task.priority,
    payload: task.payload,
    metadata: task.metadata,
    createdAt: task.createdAt,
    ...(task.runAt ? { runAt: task.runAt } : {}),
    ...taskLimitsOf(task),
    generation,
  };
}

/**
 * The message of a task taken from tasks_delayed at `dueMs`: for a task that waited for dependencies, `runAt` is when it
 * became due (its run_at, if later), so that its expiry and end-to-end latency count from then, as a delayed task's
 * from its time. The releaser passes the entry's time; the requeue sweeper, settling a release cut short, the time its
 * tasks_unqueued entry was made (the release round's, within GATEWAY_DELAYED_POLL_MS of due).
 */
export function releasedMessageOf(task: TaskRecord, generation: number, dueMs: number): TaskMessage {
  const message = ingestMessageOf(task, generation);
  if (task.dependsOn && generation === 0) {
    message.runAt = new Date(Math.max(dueMs, Date.parse(task.runAt ?? "") || 0)).toISOString();
  }
  return message;
}

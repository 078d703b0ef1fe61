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

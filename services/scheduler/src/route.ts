import { type EnrichedTaskMessage, type Subject, workerSubject } from "@tm/flow";

/** Where a task goes next, and under which message id (one per task and replay generation). */
export function routeFor(task: EnrichedTaskMessage): { subject: Subject; msgId: string } {
  return { subject: workerSubject(task.priority), msgId: `${task.taskId}:worker:${task.generation}` };
}

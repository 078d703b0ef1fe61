import { type EnrichedTaskMessage, NO_ROUTES, type Subject, type TaskRoutes } from "@tm/flow";

/**
 * Where a task goes next, and under which message id (one per task and replay generation): its priority's queue of
 * the pool its type is routed to (TASK_ROUTES), or of the default pool.
 */
export function routeFor(
  task: EnrichedTaskMessage,
  routes: TaskRoutes = NO_ROUTES,
): { subject: Subject; msgId: string } {
  return { subject: routes.subjectFor(task.type, task.priority), msgId: `${task.taskId}:worker:${task.generation}` };
}

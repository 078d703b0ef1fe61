/** Every subject the pipeline uses. Services meet only on these. */
export const Subjects = {
  ingest: "tasks.ingest",
  schedule: "tasks.schedule",
  workerHigh: "tasks.worker.high",
  workerMedium: "tasks.worker.medium",
  workerLow: "tasks.worker.low",
  results: "tasks.results",
  status: "events.status",
  audit: "events.audit",
  deadletter: "events.deadletter",
} as const;

export type Subject = (typeof Subjects)[keyof typeof Subjects];

export const PRIORITIES = ["high", "medium", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

/** The worker subject a task of the given priority waits on. */
export function workerSubject(priority: Priority): Subject {
  switch (priority) {
    case "high":
      return Subjects.workerHigh;
    case "medium":
      return Subjects.workerMedium;
    case "low":
      return Subjects.workerLow;
  }
}

export const TASK_SUBJECTS: readonly Subject[] = [
  Subjects.ingest,
  Subjects.schedule,
  Subjects.workerHigh,
  Subjects.workerMedium,
  Subjects.workerLow,
  Subjects.results,
];

export const EVENT_SUBJECTS: readonly Subject[] = [Subjects.status, Subjects.audit, Subjects.deadletter];

export const ALL_SUBJECTS: readonly Subject[] = [...TASK_SUBJECTS, ...EVENT_SUBJECTS];

/**
 * Core NATS subject (outside every stream) on which the gateway broadcasts cancellations, so that whichever worker
 * runs the task aborts its handler. Cancellation is also recorded in Redis (task_cancel:<id>), which every stage
 * checks before doing work, so a worker that misses the broadcast still never starts a cancelled task.
 */
export const CANCEL_SUBJECT = "control.cancel";

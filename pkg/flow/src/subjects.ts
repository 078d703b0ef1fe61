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

/** The contract's subjects. */
export type ContractSubject = (typeof Subjects)[keyof typeof Subjects];

export const PRIORITIES = ["high", "medium", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

/**
 * A worker pool's queue of one priority: tasks.worker.<priority>.<pool>. Task types routed to a pool (TASK_ROUTES)
 * wait there for the workers of that pool (WORKER_POOL), beside the contract's tasks.worker.<priority>, which the
 * other types wait on for the default pool's workers.
 */
export type PoolWorkerSubject = `tasks.worker.${Priority}.${string}`;

export type Subject = ContractSubject | PoolWorkerSubject;

/** The TASKS stream's subject that holds every pool's queues. */
export const POOL_WORKER_SUBJECTS = "tasks.worker.*.*";

/** The contract's worker subject of a priority. */
function defaultWorkerSubject(priority: Priority): ContractSubject {
  switch (priority) {
    case "high":
      return Subjects.workerHigh;
    case "medium":
      return Subjects.workerMedium;
    case "low":
      return Subjects.workerLow;
  }
}

/** The worker subject a task of the given priority waits on: its pool's (TASK_ROUTES), or the default pool's. */
export function workerSubject(priority: Priority, pool?: string): Subject {
  return pool ? `tasks.worker.${priority}.${pool}` : defaultWorkerSubject(priority);
}

const WORKER_SUBJECT = /^tasks\.worker\.(high|medium|low)(?:\.([^.*>\s]+))?$/;

/** A worker subject's priority and pool (undefined: the default pool); undefined for any other subject. */
export function parseWorkerSubject(subject: string): { priority: Priority; pool: string | undefined } | undefined {
  const match = WORKER_SUBJECT.exec(subject);
  if (!match) return undefined;
  return { priority: match[1] as Priority, pool: match[2] };
}

/** The contract subject whose messages a subject carries: a pool's worker subject carries its priority's. */
export function contractSubjectOf(subject: Subject): ContractSubject {
  // Every message decoded by every stage asks: the contract's own subjects answer without the pattern.
  if (CONTRACT_SUBJECTS.has(subject)) return subject as ContractSubject;
  const worker = parseWorkerSubject(subject);
  return worker ? defaultWorkerSubject(worker.priority) : (subject as ContractSubject);
}

const CONTRACT_SUBJECTS: ReadonlySet<string> = new Set(Object.values(Subjects));

/** Whether a subject carries tasks: the contract's task subjects and every pool's worker subjects. */
export function isTaskSubject(subject: string): boolean {
  return (TASK_SUBJECTS as readonly string[]).includes(subject) || parseWorkerSubject(subject) !== undefined;
}

export const TASK_SUBJECTS: readonly ContractSubject[] = [
  Subjects.ingest,
  Subjects.schedule,
  Subjects.workerHigh,
  Subjects.workerMedium,
  Subjects.workerLow,
  Subjects.results,
];

export const EVENT_SUBJECTS: readonly ContractSubject[] = [Subjects.status, Subjects.audit, Subjects.deadletter];

export const ALL_SUBJECTS: readonly ContractSubject[] = [...TASK_SUBJECTS, ...EVENT_SUBJECTS];

/** The TASKS stream's subjects: the contract's, and the worker pools' queues. */
export const TASK_STREAM_SUBJECTS: readonly string[] = [...TASK_SUBJECTS, POOL_WORKER_SUBJECTS];

/**
 * Core NATS subject (outside every stream) on which the gateway broadcasts cancellations, so that whichever worker
 * runs the task aborts its handler. Cancellation is also recorded in Redis (task_cancel:<id>), which every stage
 * checks before doing work, so a worker that misses the broadcast still never starts a cancelled task.
 */
export const CANCEL_SUBJECT = "control.cancel";

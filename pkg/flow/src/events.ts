/**
 * Builders for the events every stage publishes, so that message ids (deduplication) and versions (ordering) are
 * computed the same way everywhere.
 */
import { isTerminal, statusVersion, type TaskState } from "./lifecycle.js";
import type { Publisher } from "./publish.js";
import type { StatusEventInput } from "./schemas.js";
import { Subjects } from "./subjects.js";

export interface StatusUpdate {
  taskId: string;
  state: TaskState;
  /** The stage publishing it (service name). */
  source: string;
  attempt?: number;
  progress?: number;
  /** Orders updates within a RUNNING attempt (defaults to progress); ATTEMPT_FAILED_STEP for a failed attempt. */
  step?: number;
  error?: string;
  generation?: number;
  /** A handler's progress report (RUNNING only): see StatusEventSchema. */
  report?: ProgressReport;
}

/** What a handler's progress report adds to its percent: numbered from 1 within the attempt. */
export interface ProgressReport {
  number: number;
  message?: string;
  details?: Record<string, unknown>;
}

export function statusEvent(update: StatusUpdate): StatusEventInput {
  const attempt = update.attempt ?? 0;
  const progress = isTerminal(update.state)
    ? update.state === "SUCCEEDED"
      ? 100
      : (update.progress ?? 0)
    : (update.progress ?? 0);
  const generation = update.generation ?? 0;
  return {
    taskId: update.taskId,
    state: update.state,
    progress,
    attempt,
    ...(update.error ? { error: update.error.slice(0, 4096) } : {}),
    version: statusVersion({ state: update.state, attempt, step: update.step ?? progress, generation }),
    ...(update.report ? progressFields(update.report) : {}),
    updatedAt: new Date().toISOString(),
    source: update.source,
    generation,
  };
}

function progressFields({ number, message, details }: ProgressReport) {
  return {
    progressReport: number,
    ...(message ? { progressMessage: message } : {}),
    ...(details ? { progressDetails: details } : {}),
  };
}

/** Publishes a status update on events.status; the message id makes a repeated update a no-op. Reports of one version
 *  (messages at an unchanged percent) differ by their number. */
export async function publishStatus(publisher: Publisher, update: StatusUpdate) {
  const event = statusEvent(update);
  const report = event.progressReport ? `:${event.progressReport}` : "";
  await publisher.publish(Subjects.status, event, { msgId: `${update.taskId}:status:${event.version}${report}` });
  return event;
}

export interface AuditRecord {
  taskId?: string;
  service: string;
  action: string;
  detail?: Record<string, unknown>;
  /** Distinguishes repeated actions of one task (e.g. the attempt number); part of the message id. */
  discriminator?: string | number;
}

/** Publishes an audit event on events.audit (deduplicated per task, service, action and discriminator). */
export async function publishAudit(publisher: Publisher, record: AuditRecord) {
  const msgId = `${record.taskId ?? "-"}:audit:${record.service}:${record.action}:${record.discriminator ?? 0}`;
  await publisher.publish(
    Subjects.audit,
    {
      ...(record.taskId ? { taskId: record.taskId } : {}),
      service: record.service,
      action: record.action,
      at: new Date().toISOString(),
      ...(record.detail ? { detail: record.detail } : {}),
    },
    { msgId },
  );
}

/**
 * The audit event of a stage that acknowledges, unhandled, a message of an older generation than its task's (the task
 * was requeued or replayed since: the newer generation's message does the work). `discriminator` defaults to that
 * generation (one event per stage and generation; the worker adds the attempt).
 */
export function publishSkippedSuperseded(
  publisher: Publisher,
  service: string,
  task: { taskId: string; generation: number },
  discriminator: string | number = task.generation,
) {
  return publishAudit(publisher, {
    taskId: task.taskId,
    service,
    action: "skipped_superseded",
    detail: { generation: task.generation },
    discriminator,
  });
}

/**
 * Ends a task that expired before it started (SubmitTaskRequest.expires_after) CANCELLED, its error saying why and
 * counting the attempts that failed, and audits it `expired`. The first stage to see a message past its expiry does
 * it (ingest, the scheduler, the worker), so a stale task is not enriched or queued first. Status first, then the
 * audit event; both are deduplicated should the delivery be redelivered before its ack.
 */
export async function publishExpired(
  publisher: Publisher,
  service: string,
  task: { taskId: string; generation: number; expiresAfterMs?: number },
  expiresAt: number,
  failedAttempts = 0,
): Promise<void> {
  const { taskId, generation } = task;
  const error =
    `expired: not started by ${new Date(expiresAt).toISOString()} (expires_after ${task.expiresAfterMs} ms)` +
    (failedAttempts > 0 ? ` after ${failedAttempts} failed attempt${failedAttempts === 1 ? "" : "s"}` : "");
  await publishStatus(publisher, {
    taskId,
    state: "CANCELLED",
    source: service,
    attempt: failedAttempts,
    error,
    generation,
  });
  await publishAudit(publisher, {
    taskId,
    service,
    action: "expired",
    detail: { expiresAt: new Date(expiresAt).toISOString(), lateMs: Date.now() - expiresAt, failedAttempts },
    discriminator: generation,
  });
}

/**
 * The audit history a dead letter carries: a snapshot of `task_history:<id>` taken when the letter is stored.
 *
 * The stages that fail a task publish its final audit event around the letter: ingest and the worker publish
 * `failed` just before it, and this service's advisory listener publishes `failed_unacknowledged` just after it.
 * The audit service appends events in batches gathered over up to AUDIT_GATHER_MS, so a snapshot taken at once would
 * usually end just before that event. For a letter of a task-path subject that ends its task, the history is read
 * again until it holds one of those events, for at most `waitMs`; any other letter takes the history as it is.
 */
import { type AuditEvent, type DeadLetter, Subjects } from "@tm/flow";

const FINAL_ACTIONS = new Set(["failed", "failed_unacknowledged"]);
/** The subjects of the stages that publish a task's `failed` event before dead-lettering it (ingest, the worker). */
const FAILING_STAGE_SUBJECTS: ReadonlySet<string> = new Set([
  Subjects.ingest,
  Subjects.workerHigh,
  Subjects.workerMedium,
  Subjects.workerLow,
]);

/** Whether the stage that dead-lettered this message publishes a final audit event for the task (see above). */
export function endsWithFailedEvent(letter: Pick<DeadLetter, "reason" | "subject" | "taskId">): boolean {
  return !!letter.taskId && letter.reason !== "invalid" && FAILING_STAGE_SUBJECTS.has(letter.subject);
}

/** A final event after the task's last replay: a replayed task's earlier failure does not count for its new letter. */
function hasFinalEvent(history: readonly AuditEvent[]): boolean {
  for (let i = history.length - 1; i >= 0; i--) {
    const action = history[i]?.action;
    if (action === "replayed") return false;
    if (action !== undefined && FINAL_ACTIONS.has(action)) return true;
  }
  return false;
}

export async function historyForLetter(
  letter: Pick<DeadLetter, "reason" | "subject" | "taskId">,
  read: () => Promise<AuditEvent[]>,
  waitMs: number,
  pollMs = 25,
): Promise<AuditEvent[]> {
  if (!endsWithFailedEvent(letter)) return read();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const history = await read();
    if (hasFinalEvent(history)) return history;
    if (Date.now() + pollMs > deadline) return history;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * Cancellation of running tasks. The gateway broadcasts a CancelNotice on the core NATS subject CANCEL_SUBJECT;
 * each worker process subscribes once (not through a queue group: every replica must hear it, since only the one
 * running the task can abort it) and aborts the AbortController of that task if it is running here, or lets a
 * delivery of it that waits in its buffers through to be skipped.
 */
import { CANCEL_SUBJECT, CancelNoticeSchema, describeIssues } from "@tm/flow";
import type { Logger } from "@tm/kit";
import type { NatsConnection, Subscription } from "nats";

/** The abort reason of a cancelled task, so the runner can tell it from a timeout or a shutdown. */
export class TaskCancelledError extends Error {
  override readonly name = "TaskCancelledError";
}

export class RunningTasks {
  readonly #controllers = new Map<string, AbortController>();

  /** Tracks a running task; the returned function forgets it. */
  track(taskId: string, controller: AbortController): () => void {
    this.#controllers.set(taskId, controller);
    return () => {
      if (this.#controllers.get(taskId) === controller) this.#controllers.delete(taskId);
    };
  }

  /** Aborts the task if it runs here; returns whether it did. */
  cancel(taskId: string, reason: string): boolean {
    const controller = this.#controllers.get(taskId);
    if (!controller) return false;
    controller.abort(new TaskCancelledError(`cancelled${reason ? `: ${reason}` : ""}`));
    return true;
  }
}

/**
 * Aborts a running task on its notice; a task not running here is offered to `notRunning` (the dispatcher lets a
 * queued delivery of it through to be skipped).
 */
export function listenForCancellations(
  nc: NatsConnection,
  running: RunningTasks,
  log: Logger,
  notRunning: (taskId: string) => void = () => undefined,
): Subscription {
  const decoder = new TextDecoder();
  return nc.subscribe(CANCEL_SUBJECT, {
    callback: (error, msg) => {
      if (error) {
        log.warn({ err: error }, "cancel subscription error");
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(decoder.decode(msg.data));
      } catch {
        log.warn({ subject: CANCEL_SUBJECT }, "ignoring a cancel notice that is not JSON");
        return;
      }
      const notice = CancelNoticeSchema.safeParse(body);
      if (!notice.success) {
        log.warn({ problems: describeIssues(notice.error) }, "ignoring an invalid cancel notice");
        return;
      }
      const aborted = running.cancel(notice.data.taskId, notice.data.reason);
      log.debug({ taskId: notice.data.taskId, aborted }, "cancel notice");
      if (!aborted) notRunning(notice.data.taskId);
    },
  });
}

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

/** A running task: what aborts it, and what the worker reports about it (ListWorkers). */
export interface RunningTask {
  controller: AbortController;
  type: string;
  priority: string;
  attempt: number;
  startedAtMs: number;
}

export class RunningTasks {
  readonly #tasks = new Map<string, RunningTask>();

  /** Tracks a running task; the returned function forgets it. */
  track(taskId: string, task: RunningTask): () => void {
    this.#tasks.set(taskId, task);
    return () => {
      if (this.#tasks.get(taskId) === task) this.#tasks.delete(taskId);
    };
  }

  /** Aborts the task if it runs here; returns whether it did. */
  cancel(taskId: string, reason: string): boolean {
    const task = this.#tasks.get(taskId);
    if (!task) return false;
    task.controller.abort(new TaskCancelledError(`cancelled${reason ? `: ${reason}` : ""}`));
    return true;
  }

  get size(): number {
    return this.#tasks.size;
  }

  /** The running tasks, longest running first, at most `max`. */
  list(max: number): Array<{ taskId: string } & Omit<RunningTask, "controller">> {
    return [...this.#tasks]
      .map(([taskId, { type, priority, attempt, startedAtMs }]) => ({ taskId, type, priority, attempt, startedAtMs }))
      .sort((a, b) => a.startedAtMs - b.startedAtMs)
      .slice(0, max);
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

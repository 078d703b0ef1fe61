/**
 * A task's log (GetTaskLogs) as an async iterable of lines, oldest first, a page at a time; with `follow`, the lines
 * it logs from then on too, until it has finished, as `kubectl logs -f`. A page read once the task had finished that
 * comes back empty ends the follow: a worker stores an attempt's lines before its outcome, so none can come after.
 * A follower rides out a gateway that answers UNAVAILABLE (a restart, a Redis failover) for up to `maxOutageMs`.
 * taskctl logs and TaskManagerClient.logs read through it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { TaskClient } from "./client.js";
import type { GetTaskLogsResponse, TaskLogLine } from "./gen/taskmanager/v1/taskmanager_pb.js";

/** Lines asked for per call: the gateway's most. */
export const LOG_PAGE = 1_000;

export interface TaskLogReadOptions {
  /** Go on reading what the task logs until it has finished. */
  follow?: boolean;
  signal?: AbortSignal;
  /** With follow: how often to ask for newer lines (default 1 s). */
  pollMs?: number;
  /** With follow: how long the gateway may answer UNAVAILABLE before the read fails with its error (default 60 s). */
  maxOutageMs?: number;
  /** How long one GetTaskLogs call may take (default 10 s). */
  callTimeoutMs?: number;
  /** Told of the first page: `dropped` of the `total` lines the task logged are no longer kept (past the workers'
   *  WORKER_TASK_LOG_LINES). */
  onFirstPage?: (page: Pick<GetTaskLogsResponse, "dropped" | "total">) => void;
  /** With follow: told once per outage that the gateway answered UNAVAILABLE (the read goes on asking). */
  onUnavailable?: (error: ConnectError) => void;
}

export async function* readTaskLogLines(
  client: TaskClient,
  taskId: string,
  options: TaskLogReadOptions = {},
): AsyncGenerator<TaskLogLine> {
  const { follow = false, signal, pollMs = 1_000, maxOutageMs = 60_000, callTimeoutMs = 10_000 } = options;
  const ask = (after: string) =>
    client.getTaskLogs({ taskId, after, limit: LOG_PAGE }, { timeoutMs: callTimeoutMs, ...(signal ? { signal } : {}) });
  const pause = () =>
    sleep(pollMs, undefined, signal ? { signal } : {}).catch(() => {
      throw signal?.reason;
    });
  let page = await ask("");
  options.onFirstPage?.(page);
  yield* page.lines;
  let unavailableSince: number | undefined;
  let retrying = false;
  while (page.lines.length === LOG_PAGE || (follow && !(page.finished && page.lines.length === 0))) {
    if (retrying || page.lines.length < LOG_PAGE) await pause();
    let next: GetTaskLogsResponse;
    try {
      next = await ask(page.nextCursor);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!follow || !(error instanceof ConnectError) || error.code !== Code.Unavailable) throw error;
      if (unavailableSince === undefined) options.onUnavailable?.(error);
      unavailableSince ??= Date.now();
      if (Date.now() - unavailableSince > maxOutageMs) throw error;
      retrying = true;
      continue;
    }
    unavailableSince = undefined;
    retrying = false;
    page = next;
    yield* page.lines;
  }
}

/**
 * Follows tasks with StreamTaskStatus until each reaches a terminal state. A stream that ends early (a gateway
 * restarting behind Envoy) is resumed; updates already seen (isLaterStatus) are skipped. A task whose status
 * stream the caller already holds (SubmitTaskAndStreamStatus) is followed on it first, and resumed the same way.
 */
import { setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { isLaterStatus, type TaskClient, TaskState, type TaskStatus } from "@tm/proto";
import { CliError, ExitCode, isConnectionFailure } from "./exit-codes.js";
import { isTerminal } from "./render.js";

const MAX_RESUMES = 5;
const RESUME_DELAY_MS = 500;

export type StatusListener = (taskId: string, status: TaskStatus) => void;

/** Status streams already open, by task id: each message carries the task's status. */
export type OpenStreams = ReadonlyMap<string, AsyncIterable<{ status?: TaskStatus | undefined }>>;

export async function followTasks(
  client: TaskClient,
  taskIds: string[],
  onStatus: StatusListener,
  signal?: AbortSignal,
  open?: OpenStreams,
): Promise<Map<string, TaskStatus>> {
  const controller = new AbortController();
  // Every stream (and its resume timer) listens on this one signal: the demo alone follows a dozen tasks.
  setMaxListeners(0, controller.signal);
  const abort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", abort, { once: true });
  try {
    const finals = await Promise.all(
      taskIds.map((taskId) =>
        followOne(client, taskId, onStatus, controller.signal, open?.get(taskId)).catch((error: unknown) => {
          // One failure (e.g. NOT_FOUND) ends the whole watch: stop the other streams too.
          controller.abort(error);
          throw error;
        }),
      ),
    );
    return new Map(taskIds.map((taskId, index) => [taskId, finals[index]!]));
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

async function followOne(
  client: TaskClient,
  taskId: string,
  onStatus: StatusListener,
  signal: AbortSignal,
  opened?: AsyncIterable<{ status?: TaskStatus | undefined }>,
): Promise<TaskStatus> {
  let last: TaskStatus | undefined;
  const seen = (status: TaskStatus | undefined): status is TaskStatus => {
    if (!status || (last && !isLaterStatus(last, status))) return false;
    last = status;
    onStatus(taskId, status);
    return true;
  };
  for (let resume = 0; resume <= MAX_RESUMES; resume++) {
    try {
      const stream = resume === 0 && opened ? opened : client.streamTaskStatus({ taskId }, { signal });
      for await (const message of stream) {
        if (seen(message.status) && isTerminal(message.status.state)) return message.status;
      }
      // The stream ended without a terminal state: ask once, then resume streaming.
      const { task } = await client.getTask({ taskId }, { signal });
      const status = task?.status;
      if (status) {
        seen(status);
        if (isTerminal(status.state)) return status;
      }
    } catch (error) {
      // A gateway restarting or losing Redis ends streams with UNAVAILABLE; re-opening resends the current status.
      const retryable = error instanceof ConnectError && error.code === Code.Unavailable && !isConnectionFailure(error);
      if (!retryable || resume === MAX_RESUMES || signal.aborted) throw error;
      await sleep(RESUME_DELAY_MS * (resume + 1), undefined, { signal });
    }
  }
  throw new CliError(`the status stream of ${taskId} kept ending before the task finished`, ExitCode.ServerError);
}

export function exitCodeForFinalStates(finals: Iterable<TaskStatus>): ExitCode {
  for (const status of finals) if (status.state !== TaskState.SUCCEEDED) return ExitCode.TaskFailed;
  return ExitCode.Ok;
}

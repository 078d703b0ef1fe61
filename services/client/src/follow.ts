/**
 * Follows tasks with StreamTaskStatus until each reaches a terminal state (@tm/proto followTaskStatus: a stream that
 * ends early, a gateway restarting behind Envoy, is resumed for up to a minute of outage; updates already seen are
 * skipped). A task whose status stream the caller already holds (SubmitTaskAndStreamStatus) is followed on it first.
 */
import { setMaxListeners } from "node:events";
import { followTaskStatus, type TaskClient, TaskState, type TaskStatus } from "@tm/proto";
import { ExitCode } from "./exit-codes.js";

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

function followOne(
  client: TaskClient,
  taskId: string,
  onStatus: StatusListener,
  signal: AbortSignal,
  opened?: AsyncIterable<{ status?: TaskStatus | undefined }>,
): Promise<TaskStatus> {
  return followTaskStatus(client, taskId, {
    onStatus: (status) => onStatus(taskId, status),
    signal,
    ...(opened ? { opened } : {}),
    // A gateway never reached is a wrong address or a stack not started: say so now rather than wait a minute.
    failFastIfUnreachable: true,
  });
}

export function exitCodeForFinalStates(finals: Iterable<TaskStatus>): ExitCode {
  for (const status of finals) if (status.state !== TaskState.SUCCEEDED) return ExitCode.TaskFailed;
  return ExitCode.Ok;
}

import type { TaskClient } from "@tm/proto";
import type { ExitCode } from "../exit-codes.js";
import { exitCodeForFinalStates, followTasks, type OpenStreams } from "../follow.js";
import type { Io } from "../io.js";
import { LiveView, viewModeFor } from "../live-view.js";

export interface WatchTarget {
  taskId: string;
  label: string;
  startedAt?: number;
}

/** Shows the tasks live until all have finished; 0 when all SUCCEEDED, 1 otherwise. */
export async function watchTasks(
  io: Io,
  client: TaskClient,
  targets: WatchTarget[],
  json: boolean,
  signal?: AbortSignal,
  open?: OpenStreams,
): Promise<{ exitCode: ExitCode; view: LiveView }> {
  const view = new LiveView(io.stdout, viewModeFor(io.stdout, json, targets.length), targets);
  const finals = await followTasks(
    client,
    targets.map((target) => target.taskId),
    (taskId, status) => view.update(taskId, status),
    signal,
    open,
  );
  return { exitCode: exitCodeForFinalStates(finals.values()), view };
}

export async function watchCommand(io: Io, client: TaskClient, taskIds: string[], json: boolean): Promise<ExitCode> {
  const labels = await Promise.all(
    taskIds.map(async (taskId) => {
      const { task } = await client.getTask({ taskId });
      return { taskId, label: task?.type ?? "" };
    }),
  );
  return (await watchTasks(io, client, labels, json)).exitCode;
}

/**
 * The order of a task's statuses as clients receive them (TaskStatus): a higher version, or the same version with a
 * later progress report (a handler's message at an unchanged percent; TaskStatus.progress_report). What a follower
 * uses to skip what it has already seen (a resumed stream resends the current status). Browser-safe.
 */
import { TaskState, type TaskStatus } from "./gen/taskmanager/v1/taskmanager_pb.js";

export function isLaterStatus(
  current: Pick<TaskStatus, "version" | "progressReport">,
  next: Pick<TaskStatus, "version" | "progressReport">,
): boolean {
  if (next.version !== current.version) return next.version > current.version;
  return next.progressReport > current.progressReport;
}

const FINISHED_STATES: ReadonlySet<TaskState> = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED]);

/** SUCCEEDED, FAILED and CANCELLED: a task in one of them changes no more (unless an operator replays it). */
export function isFinishedState(state: TaskState): boolean {
  return FINISHED_STATES.has(state);
}

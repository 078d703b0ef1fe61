import { TaskState } from "./gen/taskmanager/v1/taskmanager_pb.js";

/** The states in the order a task goes through them. */
const LIFECYCLE = [
  TaskState.PENDING,
  TaskState.INGESTED,
  TaskState.SCHEDULED,
  TaskState.RUNNING,
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
].map((state) => TaskState[state]);

/**
 * Counts by state name (Task.children_by_state) in words, for taskctl get and the console, in the lifecycle's order:
 * "2 pending, 20 running, 80 succeeded, 2 failed". A name this build does not know comes last, as it is.
 */
export function stateCountsText(counts: Readonly<Record<string, number>>): string {
  const known = LIFECYCLE.filter((state) => counts[state]);
  const unknown = Object.keys(counts).filter((state) => !LIFECYCLE.includes(state) && counts[state]);
  return [...known, ...unknown].map((state) => `${counts[state]} ${state.toLowerCase()}`).join(", ");
}

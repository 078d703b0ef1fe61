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

/** Counts by state name (Task.children_by_state) in the lifecycle's order, zeros left out; a name this build does
 *  not know comes last, as it is. */
export function orderedStateCounts(counts: Readonly<Record<string, number>>): Array<[state: string, count: number]> {
  const known = LIFECYCLE.filter((state) => counts[state]);
  const unknown = Object.keys(counts).filter((state) => !LIFECYCLE.includes(state) && counts[state]);
  return [...known, ...unknown].map((state) => [state, counts[state] as number]);
}

/** The counts in words, for taskctl get and the console: "2 pending, 20 running, 80 succeeded, 2 failed". */
export function stateCountText(state: string, count: number): string {
  return `${count} ${state.toLowerCase()}`;
}

export function stateCountsText(counts: Readonly<Record<string, number>>): string {
  return orderedStateCounts(counts)
    .map(([state, count]) => stateCountText(state, count))
    .join(", ");
}

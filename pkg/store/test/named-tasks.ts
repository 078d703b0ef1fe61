/** Tasks a test names: their ids must be UUIDs (the status events' schema), so each name gets one, and ids read back
 *  from Redis are shown by their names. */
import { StatusEventSchema, statusEvent, type TaskState } from "@tm/flow";

export function namedTasks() {
  const ids = new Map<string, string>();
  const names = new Map<string, string>();
  return {
    /** The id of the task named `name` (made on first use). */
    id(name: string): string {
      let value = ids.get(name);
      if (!value) {
        value = crypto.randomUUID();
        ids.set(name, value);
        names.set(value, name);
      }
      return value;
    },
    /** Ids as the names they were made for (an id no test named stays as it is). */
    named: (values: string[]) => values.map((value) => names.get(value) ?? value),
    clear() {
      ids.clear();
      names.clear();
    },
  };
}

/** Task `taskId`'s status event of `state`, as a stage publishes it. */
export function statusOf(taskId: string, state: TaskState) {
  return StatusEventSchema.parse(statusEvent({ taskId, state, source: "test", attempt: 1 }));
}

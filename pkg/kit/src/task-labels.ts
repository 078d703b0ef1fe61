/**
 * The `type` and `priority` metric labels of a message. The message may be anything (a dead letter's body is whatever
 * was published, possibly garbage; an event is no task at all): only the priorities and the task types the
 * deployment runs (built in, or in TASK_TYPES: at most 100) become label values, anything else is "other", so neither
 * a flood of poison messages nor a stray publisher can create unbounded series.
 */
import {
  BUILT_IN_ONLY,
  isTaskSubject,
  PRIORITIES,
  PrioritySchema,
  parseWorkerSubject,
  type Subject,
  type TaskTypes,
} from "@tm/flow";

export const OTHER_LABEL = "other";

export interface TaskLabels {
  type: string;
  priority: string;
}

export function taskLabels(message: unknown, types: TaskTypes = BUILT_IN_ONLY): TaskLabels {
  const body = (typeof message === "object" && message !== null ? message : {}) as {
    type?: unknown;
    priority?: unknown;
  };
  const type = typeof body.type === "string" && types.has(body.type) ? body.type : OTHER_LABEL;
  const priority = PrioritySchema.safeParse(body.priority).data ?? OTHER_LABEL;
  return { type, priority };
}

/**
 * The labels a consumer of `subject` will normally count, for metrics that start every series at zero: every known
 * type at every priority on a task subject (only the subject's own priority on a tasks.worker.<priority>[.<pool>] subject),
 * "other" on an event subject (its messages carry no type or priority). Series for anything else (an unknown type
 * on tasks.ingest) appear when first counted.
 */
export function expectedTaskLabels(subject: Subject, types: TaskTypes = BUILT_IN_ONLY): TaskLabels[] {
  if (!isTaskSubject(subject)) return [{ type: OTHER_LABEL, priority: OTHER_LABEL }];
  const own = parseWorkerSubject(subject)?.priority;
  return types.names.flatMap((type) => (own ? [own] : PRIORITIES).map((priority) => ({ type, priority })));
}

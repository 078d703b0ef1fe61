/**
 * The metric labels of a dead letter. `type` and `priority` come from the dead message's body, which is whatever
 * was published (possibly garbage): @tm/kit's taskLabels keeps only the contract's values and makes anything else
 * "other" (the same rule as tm_tasks_retried_total's labels), so a flood of poison messages cannot create unbounded
 * series.
 */
import { BUILT_IN_ONLY, type DeadLetter, type TaskTypes } from "@tm/flow";
import { taskLabels } from "@tm/kit";

export interface DeadLetterLabels {
  reason: DeadLetter["reason"];
  type: string;
  priority: string;
}

export function deadLetterLabels(letter: DeadLetter, types: TaskTypes = BUILT_IN_ONLY): DeadLetterLabels {
  return { reason: letter.reason, ...taskLabels(letter.message, types) };
}

/**
 * The metric labels of a dead letter. `type` and `priority` come from the dead message's body, which is whatever
 * was published (possibly garbage): only the contract's values become label values, anything else is "other", so a
 * flood of poison messages cannot create unbounded series.
 */
import { type DeadLetter, isKnownTaskType, PrioritySchema } from "@tm/flow";

export interface DeadLetterLabels {
  reason: DeadLetter["reason"];
  type: string;
  priority: string;
}

export function deadLetterLabels(letter: DeadLetter): DeadLetterLabels {
  const body = (typeof letter.message === "object" && letter.message !== null ? letter.message : {}) as {
    type?: unknown;
    priority?: unknown;
  };
  const type = typeof body.type === "string" && isKnownTaskType(body.type) ? body.type : "other";
  const priority = PrioritySchema.safeParse(body.priority).data ?? "other";
  return { reason: letter.reason, type, priority };
}

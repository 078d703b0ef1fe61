/**
 * Smooth weighted round robin (the nginx upstream algorithm) over the three priorities. Each pick adds every
 * eligible priority's weight to its running credit, takes the one with the most credit and charges it the total
 * weight of the eligible ones. Over any window the picks follow the weights and are interleaved (6,3,1 gives
 * H M H L H M H ... rather than six highs in a row), so high goes first yet low is never starved. A priority whose
 * queue is empty is not eligible: its share goes to the others, and it accumulates no credit while empty, so it
 * cannot burst ahead when it refills.
 */
import { PRIORITIES, type Priority } from "@tm/flow";

export type PriorityWeights = Readonly<Record<Priority, number>>;

export const DEFAULT_PRIORITY_WEIGHTS = "6,3,1";

/** Parses "high,medium,low" weights; throws an Error saying what is wrong. */
export function parsePriorityWeights(text: string): PriorityWeights {
  const parts = text.split(",").map((part) => part.trim());
  if (parts.length !== PRIORITIES.length || parts.some((part) => !/^\d{1,6}$/.test(part))) {
    throw new Error('must be three non-negative integers for high,medium,low, e.g. "6,3,1"');
  }
  const numbers = parts.map(Number);
  if (numbers.every((n) => n === 0)) throw new Error("at least one weight must be greater than 0");
  return Object.fromEntries(PRIORITIES.map((priority, i) => [priority, numbers[i] as number])) as PriorityWeights;
}

export class WeightedPicker {
  readonly #credit: Record<Priority, number> = { high: 0, medium: 0, low: 0 };

  constructor(readonly weights: PriorityWeights) {}

  /** The next priority to serve among those for which `hasWork` is true, or undefined if none has work. */
  pick(hasWork: (priority: Priority) => boolean): Priority | undefined {
    const eligible = PRIORITIES.filter(hasWork);
    if (eligible.length === 0) return undefined;
    let total = 0;
    let best: Priority | undefined;
    for (const priority of eligible) {
      total += this.weights[priority];
      this.#credit[priority] += this.weights[priority];
      if (best === undefined || this.#credit[priority] > this.#credit[best]) best = priority;
    }
    // A zero-weight priority is still served when it is the only one with work (best is always set here).
    const chosen = best as Priority;
    this.#credit[chosen] -= total;
    return chosen;
  }
}

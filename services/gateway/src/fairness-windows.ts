/**
 * GATEWAY_FAIRNESS_WINDOW and GATEWAY_FAIRNESS_WINDOWS: how many tasks of a type with a fairness key may be in the
 * pipeline at once (pkg/store/src/fairness.ts), the same for every type or a type's own. Task types differ in what
 * runs them (two GPU workers for one, 200 handlers for another), and a window should be a few times the concurrency
 * of the workers that run the type: one number cannot fit both.
 */
import type { TaskTypes } from "@tm/flow";
import { ConfigError } from "@tm/kit";

/** The largest window, a type's own or the default. */
export const MAX_FAIRNESS_WINDOW = 100_000;

/** "resize=4,email=200": each named type's own window. Throws an Error saying what is wrong. */
export function parseFairnessWindows(text: string): Map<string, number> {
  const windows = new Map<string, number>();
  for (const part of text.split(",").map((p) => p.trim())) {
    if (part === "") continue;
    const match = /^([^=\s]+)\s*=\s*(\S+)$/.exec(part);
    if (!match) throw new Error(`"${part}" must be TYPE=N, e.g. "resize=4"`);
    const [, type, value] = match as unknown as [string, string, string];
    if (windows.has(type)) throw new Error(`"${type}" is named twice`);
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!(n >= 1 && n <= MAX_FAIRNESS_WINDOW)) {
      throw new Error(`"${type}=${value}": the window must be a whole number from 1 to ${MAX_FAIRNESS_WINDOW}`);
    }
    windows.set(type, n);
  }
  return windows;
}

/**
 * The window of each type: its own, else the default. A type the deployment does not run stops the start, naming
 * the variable (a typo would otherwise leave the type at the default unnoticed).
 */
export function fairnessWindows(
  defaultWindow: number,
  own: ReadonlyMap<string, number>,
  taskTypes: TaskTypes,
): (type: string) => number {
  for (const type of own.keys()) {
    if (!taskTypes.has(type)) {
      throw new ConfigError(`GATEWAY_FAIRNESS_WINDOWS: "${type}" is not a task type (known: ${taskTypes})`);
    }
  }
  return (type) => own.get(type) ?? defaultWindow;
}

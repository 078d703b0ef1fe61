import * as z from "zod";
import { abortableDelay, defineHandler } from "./types.js";

const PROGRESS_STEPS = 10;

/**
 * Waits `ms`, reporting progress about ten times (with a message and details: how long it has slept); gives up as soon as its signal aborts. With `ignoreSignal` it waits
 * `ms` whatever its signal says: a handler that does not stop, to try out what the worker does with one (its attempt
 * still ends at the abort; it is counted abandoned, HandlersAbandoned, WORKER_MAX_ABANDONED_HANDLERS).
 */
export const sleep = defineHandler({
  type: "sleep",
  payload: z.object({ ms: z.number().int().min(0).max(600_000), ignoreSignal: z.boolean().optional() }),
  async run({ ms, ignoreSignal }, { signal, reportProgress }) {
    const never = new AbortController().signal;
    for (let step = 1; step <= PROGRESS_STEPS; step++) {
      await abortableDelay(ms / PROGRESS_STEPS, ignoreSignal ? never : signal);
      const sleptMs = Math.round((ms * step) / PROGRESS_STEPS);
      reportProgress((step * 100) / PROGRESS_STEPS, `slept ${sleptMs} of ${ms} ms`, { sleptMs });
    }
    return { sleptMs: ms };
  },
});

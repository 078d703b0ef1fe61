import { z } from "zod";
import { abortableDelay, defineHandler } from "./types.js";

const PROGRESS_STEPS = 10;

/** Waits `ms`, reporting progress about ten times; gives up as soon as its signal aborts. */
export const sleep = defineHandler({
  type: "sleep",
  payload: z.object({ ms: z.number().int().min(0).max(600_000) }),
  async run({ ms }, { signal, reportProgress }) {
    for (let step = 1; step <= PROGRESS_STEPS; step++) {
      await abortableDelay(ms / PROGRESS_STEPS, signal);
      reportProgress((step * 100) / PROGRESS_STEPS);
    }
    return { sleptMs: ms };
  },
});

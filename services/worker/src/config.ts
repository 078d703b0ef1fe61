/** The worker's own environment variables (the base ones come from @tm/kit). */
import { positiveInt } from "@tm/kit";
import { z } from "zod";
import { DEFAULT_PRIORITY_WEIGHTS, parsePriorityWeights } from "./weighted-picker.js";

const priorityWeights = z
  .string()
  .default(DEFAULT_PRIORITY_WEIGHTS)
  .transform((text, ctx) => {
    try {
      return parsePriorityWeights(text);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
      return z.NEVER;
    }
  });

export const workerConfig = {
  /** Tasks run at once by this process. */
  WORKER_CONCURRENCY: positiveInt.default(8),
  /** Share of free slots given to the high, medium and low queues when all have work. */
  WORKER_PRIORITY_WEIGHTS: priorityWeights,
  /** A single attempt running longer than this is aborted and counts as a failed attempt (retried). */
  TASK_TIMEOUT_MS: positiveInt.default(60_000),
  /** How often the paused queues (queue_paused, set by PauseQueue / ResumeQueue) are read: a pause takes effect within it. */
  WORKER_PAUSE_POLL_MS: positiveInt.default(1_000),
};

import { z } from "zod";
import { defineHandler } from "./types.js";

/** Fails its first `failures` attempts, then succeeds: exercises retries. */
export const flaky = defineHandler({
  type: "flaky",
  payload: z.object({ failures: z.number().int().min(0).max(1_000) }),
  run({ failures }, { attempt }) {
    if (attempt <= failures) throw new Error(`flaky: attempt ${attempt} fails (planned failures: ${failures})`);
    return { attempts: attempt };
  },
});

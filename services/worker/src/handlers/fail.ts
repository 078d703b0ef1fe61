import * as z from "zod";
import { defineHandler } from "./types.js";

/** Always fails: exercises exhaustion and dead-lettering. */
export const fail = defineHandler({
  type: "fail",
  payload: z.record(z.string(), z.unknown()),
  run() {
    throw new Error("task type fail always fails");
  },
});

import * as z from "zod";
import { defineHandler } from "./types.js";

/** Returns its payload unchanged. */
export const echo = defineHandler({
  type: "echo",
  payload: z.record(z.string(), z.unknown()),
  run: (payload) => payload,
});

import { createHash } from "node:crypto";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import * as z from "zod";
import { defineHandler } from "./types.js";

const ROUNDS_PER_SLICE = 1_000;

/**
 * CPU work: sha256 applied `rounds` times (each round hashes the previous hex digest). Every slice of rounds it
 * yields to the event loop, so heartbeats, progress and cancellation keep flowing, and checks its signal.
 */
export const checksum = defineHandler({
  type: "checksum",
  payload: z.object({ data: z.string().max(1_000_000), rounds: z.number().int().min(1).max(1_000_000) }),
  async run({ data, rounds }, { signal, reportProgress }) {
    let digest = data;
    for (let done = 0; done < rounds; ) {
      const sliceEnd = Math.min(rounds, done + ROUNDS_PER_SLICE);
      for (; done < sliceEnd; done++) digest = createHash("sha256").update(digest).digest("hex");
      reportProgress((done / rounds) * 100);
      await yieldToEventLoop();
      signal.throwIfAborted();
    }
    return { sha256: digest, rounds };
  },
});

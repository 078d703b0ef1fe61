/**
 * notifier: events.status → Redis hash task_status:<id>, PUBLISHed on the channel of the same name.
 * Applying is a compare-and-set on the version (a Lua script; one call per fetched batch while no span records), so
 * a late, duplicate or redelivered update is ignored and never republished: subscribers (the gateway's
 * StreamTaskStatus) see strictly increasing versions.
 */
import { Subjects } from "@tm/flow";
import { defineService, positiveInt, spansRecorded } from "@tm/kit";
import { STATUS_BATCH_MAX, statusApplier } from "@tm/store";
import { z } from "zod";
import { waitForResult } from "./result-gate.js";

export const notifier = defineService({
  name: "notifier",
  opsPort: 8086,
  config: {
    NOTIFIER_CONCURRENCY: positiveInt.default(64),
    /** How long a SUCCEEDED update waits for its result to be stored before it is applied anyway (0 = no wait). */
    NOTIFIER_RESULT_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(2_000),
  },
  async start(rt) {
    const updates = rt.meter.createCounter("tm_status_updates_total", {
      description: "Status updates consumed, by outcome: applied (newer, stored and published) or ignored (stale)",
    });
    // The deliveries of one fetched batch are handled concurrently: their updates go to Redis as one script call.
    // Not while spans record: a call for many tasks would put their Redis span into one task's trace.
    const applyStatus = statusApplier(rt.redis, { maxBatch: spansRecorded() ? 1 : STATUS_BATCH_MAX });
    await rt.consume(
      Subjects.status,
      async (event, ctx) => {
        if (event.state === "SUCCEEDED" && rt.config.NOTIFIER_RESULT_WAIT_MS > 0) {
          const stored = await waitForResult(
            rt.redis,
            event.taskId,
            event.generation,
            rt.config.NOTIFIER_RESULT_WAIT_MS,
            ctx.signal,
          );
          if (!stored) rt.log.warn({ taskId: event.taskId }, "result not stored in time; applying SUCCEEDED anyway");
        }
        const applied = await applyStatus(event);
        updates.add(1, { state: event.state, outcome: applied ? "applied" : "ignored" });
        if (!applied) rt.log.debug({ taskId: event.taskId, version: event.version }, "stale status update ignored");
      },
      // Per task in stream order: updates published in lifecycle order are applied in that order, so none is
      // dropped as stale merely because a later one was handled concurrently. Tasks are applied concurrently.
      { concurrency: rt.config.NOTIFIER_CONCURRENCY, orderKey: (event) => event.taskId },
    );
  },
});

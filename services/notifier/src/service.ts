/**
 * notifier: events.status → Redis hash task_status:<id>, PUBLISHed on the channel of the same name.
 * Applying is a compare-and-set on the version (a Lua script; one call per fetched batch while no span records), so
 * a late, duplicate or redelivered update is ignored and never republished: subscribers (the gateway's
 * StreamTaskStatus) see strictly increasing versions.
 */
import { Subjects } from "@tm/flow";
import { defineService, positiveInt, spansRecorded } from "@tm/kit";
import { STATUS_BATCH_MAX, type StatusOutcome, statusApplier } from "@tm/store";
import * as z from "zod";
import { applyOnceResultStored, waitForResult } from "./result-gate.js";

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
    const applyStatus = statusApplier(rt.redis, {
      maxBatch: spansRecorded() ? 1 : STATUS_BATCH_MAX,
      ttlSeconds: rt.config.TASK_RETENTION_SECONDS,
      succeededRetentionSeconds: rt.config.TASK_SUCCEEDED_RETENTION_SECONDS ?? 0,
    });
    const warnNotStored = (taskId: string) =>
      rt.log.warn({ taskId }, "result not stored in time; applying SUCCEEDED anyway");
    await rt.consume(
      Subjects.status,
      async (event, ctx) => {
        const maxWaitMs = rt.config.NOTIFIER_RESULT_WAIT_MS;
        let outcome: StatusOutcome;
        if (event.state !== "SUCCEEDED" || maxWaitMs === 0) {
          outcome = await applyStatus({ event });
        } else if (event.generation === 0) {
          // The status script checks that a result is stored: one Redis call on the task's last hop, not two.
          let resultSeen: boolean;
          ({ outcome, resultSeen } = await applyOnceResultStored(
            (requireStoredResult) => applyStatus({ event, requireStoredResult }),
            maxWaitMs,
            ctx.signal,
          ));
          if (!resultSeen) warnNotStored(event.taskId);
        } else {
          // A replayed task's result must be of its own generation: read and compared first (result-gate.ts).
          if (!(await waitForResult(rt.redis, event.taskId, event.generation, maxWaitMs, ctx.signal))) {
            warnNotStored(event.taskId);
          }
          outcome = await applyStatus({ event });
        }
        updates.add(1, { state: event.state, outcome: outcome === "applied" ? "applied" : "ignored" });
        if (outcome !== "applied") {
          rt.log.debug({ taskId: event.taskId, version: event.version }, "stale status update ignored");
        }
      },
      // Per task in stream order: updates published in lifecycle order are applied in that order, so none is
      // dropped as stale merely because a later one was handled concurrently. Tasks are applied concurrently.
      { concurrency: rt.config.NOTIFIER_CONCURRENCY, orderKey: (event) => event.taskId },
    );
  },
});

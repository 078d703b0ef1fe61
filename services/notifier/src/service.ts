/**
 * notifier: events.status → Redis hash task_status:<id>, PUBLISHed on the channel of the same name.
 * applyStatus is a compare-and-set on the version (one Lua script), so a late, duplicate or redelivered update is
 * ignored and never republished: subscribers (the gateway's StreamTaskStatus) see strictly increasing versions.
 */
import { Subjects } from "@tm/flow";
import { defineService, positiveInt } from "@tm/kit";
import { applyStatus } from "@tm/store";

export const notifier = defineService({
  name: "notifier",
  opsPort: 8086,
  config: { NOTIFIER_CONCURRENCY: positiveInt.default(64) },
  async start(rt) {
    const updates = rt.meter.createCounter("tm_status_updates_total", {
      description: "Status updates consumed, by outcome: applied (newer, stored and published) or ignored (stale)",
    });
    await rt.consume(
      Subjects.status,
      async (event) => {
        const applied = await applyStatus(rt.redis, event);
        updates.add(1, { state: event.state, outcome: applied ? "applied" : "ignored" });
        if (!applied) rt.log.debug({ taskId: event.taskId, version: event.version }, "stale status update ignored");
      },
      // Per task in stream order: updates published in lifecycle order are applied in that order, so none is
      // dropped as stale merely because a later one was handled concurrently. Tasks are applied concurrently.
      { concurrency: rt.config.NOTIFIER_CONCURRENCY, orderKey: (event) => event.taskId },
    );
  },
});

/**
 * audit: events.audit → Redis list audit_events (newest first, at most 100,000) and the task's task_history:<id>
 * (oldest first, at most 200, with the task's TTL). The append is idempotent per delivery: the id is the message's
 * stream sequence, so a redelivery after a crash between write and ack is not stored twice.
 */
import { Subjects, streamOf } from "@tm/flow";
import { defineService, positiveInt } from "@tm/kit";
import { appendAudit } from "@tm/store";
import { KeyedQueue } from "./in-order.js";

export const audit = defineService({
  name: "audit",
  opsPort: 8087,
  config: { AUDIT_CONCURRENCY: positiveInt.default(64) },
  async start(rt) {
    const appended = rt.meter.createCounter("tm_audit_events_total", {
      description: "Audit events consumed, by outcome: stored, or duplicate (a redelivery already stored)",
    });
    const stream = streamOf(Subjects.audit);
    const perTask = new KeyedQueue();
    await rt.consume(
      Subjects.audit,
      async (event, ctx) => {
        const append = () => appendAudit(rt.redis, event, `${stream}:${ctx.streamSequence}`);
        // Events without a task touch only audit_events, whose order across concurrent appends is best effort.
        const stored = event.taskId ? await perTask.run(event.taskId, append) : await append();
        appended.add(1, { service: event.service, action: event.action, outcome: stored ? "stored" : "duplicate" });
      },
      { concurrency: rt.config.AUDIT_CONCURRENCY },
    );
  },
});

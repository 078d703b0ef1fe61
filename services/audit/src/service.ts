/**
 * audit: events.audit → Redis list audit_events (newest first, at most 100,000) and the task's task_history:<id>
 * (oldest first, at most 200, with the task's TTL). The append is idempotent per delivery: the id is the message's
 * (its stream sequence and stored time: storedMessageId in @tm/flow), so a redelivery after a crash between write and
 * ack is not stored twice, and an event of a stream created again is not taken for an old one.
 */
import { Subjects } from "@tm/flow";
import { defineService, nonNegativeInt, positiveInt, spansRecorded } from "@tm/kit";
import { AUDIT_BATCH_MAX, auditAppender } from "@tm/store";

export const audit = defineService({
  name: "audit",
  opsPort: 8087,
  config: {
    AUDIT_CONCURRENCY: positiveInt.default(64),
    // Nobody waits on an audit record: events that arrive within this window are handled as one batch (one Redis
    // script call, one write of acks) instead of each waking the process on its own. With 50 ms the service costs
    // about a third less CPU at a paced rate and ~15 % less at saturation (docs/PERFORMANCE.md).
    AUDIT_GATHER_MS: nonNegativeInt.default(50),
  },
  async start(rt) {
    const appended = rt.meter.createCounter("tm_audit_events_total", {
      description: "Audit events consumed, by outcome: stored, or duplicate (a redelivery already stored)",
    });
    // The deliveries of one fetched batch are handled concurrently: their appends go to Redis as one script call.
    // Not while spans record: a call for many tasks would put their Redis span into one task's trace.
    const appendAudit = auditAppender(rt.redis, {
      maxBatch: spansRecorded() ? 1 : AUDIT_BATCH_MAX,
      ttlSeconds: rt.config.TASK_RETENTION_SECONDS,
    });
    await rt.consume(
      Subjects.audit,
      async (event, ctx) => {
        const stored = await appendAudit(event, ctx.messageId);
        appended.add(1, { service: event.service, action: event.action, outcome: stored ? "stored" : "duplicate" });
      },
      // One task's events are appended in stream order (its history reads in order); tasks run concurrently.
      // Events without a task touch only audit_events, whose order across concurrent appends is best effort.
      {
        concurrency: rt.config.AUDIT_CONCURRENCY,
        orderKey: (event) => event.taskId,
        gatherMs: rt.config.AUDIT_GATHER_MS,
      },
    );
  },
});

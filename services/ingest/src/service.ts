/**
 * ingest: tasks.ingest → (enricher over HTTP) → tasks.schedule; status INGESTED, or FAILED once retries run out.
 *
 *   cancelled task                 → audit skipped_cancelled, ack
 *   expired task (expires_after)   → CANCELLED "expired", audit expired, ack: not enriched
 *   an older generation's message  → audit skipped_superseded, ack (the task was requeued or replayed since: the
 *                                    newer generation's message does the work; this one would retry, fail and
 *                                    dead-letter a generation nobody follows)
 *   unknown type / enricher 4xx    → PermanentError: FAILED and dead-lettered ("rejected") after one attempt
 *   enricher 5xx / timeout / down  → retried with the contract's delays (audit enrich_retry per attempt);
 *                                    on the last attempt FAILED and dead-lettered ("exhausted")
 */
import {
  type EnrichedTaskMessage,
  errorMessage,
  expiredAtMs,
  PermanentError,
  publishAudit,
  publishExpired,
  publishSkippedSuperseded,
  publishStatus,
  recordedError,
  Subjects,
  type TaskMessage,
} from "@tm/flow";
import { defineService, positiveInt } from "@tm/kit";
import { whyNotRun } from "@tm/store";
import * as z from "zod";
import { createEnricherClient } from "./enricher-client.js";

export const ingest = defineService({
  name: "ingest",
  opsPort: 8083,
  config: {
    INGEST_CONCURRENCY: positiveInt.default(32),
    ENRICHER_URL: z
      .url({ protocol: /^https?$/, message: "must be an http(s) URL, e.g. http://enricher:8081" })
      .default("http://127.0.0.1:8081"),
    ENRICHER_TIMEOUT_MS: positiveInt.default(2_000),
  },
  async start(rt) {
    const enricher = createEnricherClient({
      baseUrl: rt.config.ENRICHER_URL,
      timeoutMs: rt.config.ENRICHER_TIMEOUT_MS,
      maxSockets: rt.config.INGEST_CONCURRENCY,
    });
    // Added during start, so it runs after the consumers (and their enricher calls) have stopped.
    rt.shutdown.add("enricher connections", () => enricher.close());
    const ingested = rt.meter.createCounter("tm_tasks_ingested_total", {
      description: "Tasks validated, enriched and handed to the scheduler",
    });
    const deliveries = rt.meter.createCounter("tm_ingest_deliveries_total", {
      description: "tasks.ingest deliveries by outcome (acked, retried, dead-lettered, invalid, handed-back)",
    });

    async function handle(task: TaskMessage, signal: AbortSignal): Promise<void> {
      // The cancel and generation check (one Redis round trip) and the enricher call run side by side (one round trip
      // fewer per task); the check still decides first, so a cancelled or superseded task is skipped whatever the
      // enricher answers, and an enrichment made for it meanwhile is simply dropped (enriching has no side effects).
      const checking = whyNotRun(rt.redis, task.taskId, task.generation);
      // A task worthless this late (expires_after) is not enriched: it ends here, after the checks above.
      const expiredAt = expiredAtMs(task);
      const enriching =
        rt.config.TASK_TYPES.has(task.type) && expiredAt === undefined ? enricher.enrich(task, signal) : undefined;
      enriching?.catch(() => undefined); // settled below unless the task is skipped
      const notRun = await checking;
      if (notRun === "cancelled") {
        await publishAudit(rt.publisher, {
          taskId: task.taskId,
          service: rt.name,
          action: "skipped_cancelled",
          discriminator: task.generation,
        });
        return;
      }
      if (notRun === "superseded") {
        await publishSkippedSuperseded(rt.publisher, rt.name, task);
        return;
      }
      if (expiredAt !== undefined) {
        await publishExpired(rt.publisher, rt.name, task, expiredAt);
        rt.log.info({ taskId: task.taskId, expiresAt: expiredAt }, "task expired before it started: cancelled");
        return;
      }
      if (!enriching) {
        throw new PermanentError(`unknown task type "${task.type}" (known: ${rt.config.TASK_TYPES})`);
      }
      const enrichment = await enriching;
      const enriched: EnrichedTaskMessage = { ...task, enrichment };
      // All three go out in one write and are awaited together; a failure of any fails the delivery, and its
      // redelivery republishes them under the same message ids. The status is written first: nats-server stores a
      // client's messages to a single-replica stream in the order it reads them, so INGESTED is on events.status
      // before the scheduler can receive the task. (Across the raft groups of a cluster that is not guaranteed; an
      // overtaken INGESTED is then dropped by the notifier's version check: skipped, never a step backwards.)
      await Promise.all([
        publishStatus(rt.publisher, {
          taskId: task.taskId,
          state: "INGESTED",
          source: rt.name,
          generation: task.generation,
        }),
        rt.publisher.publish(Subjects.schedule, enriched, { msgId: `${task.taskId}:schedule:${task.generation}` }),
        publishAudit(rt.publisher, {
          taskId: task.taskId,
          service: rt.name,
          action: "ingested",
          detail: { payloadBytes: enrichment.payloadBytes },
          discriminator: task.generation,
        }),
      ]);
      ingested.add(1, { type: task.type, priority: task.priority });
    }

    await rt.consume(Subjects.ingest, (task, ctx) => handle(task, ctx.signal), {
      concurrency: rt.config.INGEST_CONCURRENCY,
      // The cancel and generation check only reads.
      writesRedis: false,
      hooks: {
        async onRetry(task, error, ctx, delayMs) {
          rt.log.warn({ taskId: task.taskId, attempt: ctx.attempt, delayMs, err: errorMessage(error) }, "retrying");
          await publishAudit(rt.publisher, {
            taskId: task.taskId,
            service: rt.name,
            action: "enrich_retry",
            detail: { attempt: ctx.attempt, delayMs, error: recordedError(error) },
            discriminator: `${task.generation}:${ctx.attempt}`,
          });
        },
        async onExhausted(task, error, ctx) {
          rt.log.error({ taskId: task.taskId, attempt: ctx.attempt, err: errorMessage(error) }, "task failed");
          await publishStatus(rt.publisher, {
            taskId: task.taskId,
            state: "FAILED",
            source: rt.name,
            attempt: ctx.attempt,
            error: errorMessage(error),
            generation: task.generation,
          });
          await publishAudit(rt.publisher, {
            taskId: task.taskId,
            service: rt.name,
            action: "failed",
            detail: { attempt: ctx.attempt, error: recordedError(error) },
            discriminator: task.generation,
          });
        },
        onOutcome(outcome) {
          deliveries.add(1, { outcome });
        },
      },
    });
  },
});

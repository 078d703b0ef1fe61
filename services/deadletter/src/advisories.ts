/**
 * Covers a crash on the last delivery. A stage that fails a message on its last delivery dead-letters it itself
 * (pkg/flow consume.ts); a stage that dies or hangs on it never can. nats-server then emits a MAX_DELIVERIES
 * advisory (core NATS, not persisted) and leaves the message in the stream, unacknowledged. This listener reads the
 * message back, publishes the dead letter the stage would have written, and fails the task so it does not stay
 * RUNNING forever.
 *
 * A queue group, so that with several deadletter replicas each advisory is handled once.
 */
import { context } from "@opentelemetry/api";
import { extractTrace, publishAudit, publishStatus, Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  AdvisoryError,
  EXHAUSTED_ERROR,
  letterFromAdvisory,
  MAX_DELIVERIES_SUBJECT,
  type OriginalMessage,
  parseAdvisory,
  taskToFail,
} from "./advisory.js";

export const ADVISORY_QUEUE_GROUP = "deadletter";

export interface AdvisoryListener {
  /** Stops taking advisories and waits for the one in hand. */
  stop(): Promise<void>;
}

export function listenForMaxDeliveries(rt: Pick<Runtime, "nats" | "publisher" | "log" | "meter" | "name">) {
  const handled = rt.meter.createCounter("tm_deadletter_advisories_total", {
    description: "MAX_DELIVERIES advisories, by outcome: dead_lettered, invalid or error",
  });
  const subscription = rt.nats.nc.subscribe(MAX_DELIVERIES_SUBJECT, { queue: ADVISORY_QUEUE_GROUP });

  async function handle(data: Uint8Array): Promise<void> {
    const advisory = parseAdvisory(data);
    const original = await readOriginal(advisory.stream, advisory.streamSeq);
    const reconstructed = letterFromAdvisory(advisory, original);
    const { letter } = reconstructed;
    // Continue the task's trace, so the dead letter and the FAILED status show up in it.
    const parent = extractTrace(reconstructed.body as { traceparent?: string } | undefined);
    await context.with(parent, async () => {
      await rt.publisher.publish(Subjects.deadletter, letter, { msgId: `dlq:${letter.id}` });
      const failed = taskToFail(reconstructed);
      if (!failed) return;
      await publishStatus(rt.publisher, {
        taskId: failed.taskId,
        state: "FAILED",
        source: rt.name,
        attempt: advisory.deliveries,
        error: EXHAUSTED_ERROR,
        generation: failed.generation,
      });
      await publishAudit(rt.publisher, {
        taskId: failed.taskId,
        service: rt.name,
        action: "failed_unacknowledged",
        detail: { stream: advisory.stream, consumer: advisory.consumer, streamSeq: advisory.streamSeq },
        discriminator: letter.id,
      });
    });
    rt.log.warn(
      { letterId: letter.id, consumer: advisory.consumer, taskId: letter.taskId },
      "dead-lettered after max deliveries",
    );
  }

  async function readOriginal(stream: string, seq: number): Promise<OriginalMessage | undefined> {
    try {
      const stored = await rt.nats.jsm.streams.getMessage(stream, { seq });
      return { subject: stored.subject, data: stored.data };
    } catch (error) {
      // Gone (aged out, purged): the letter still records which message died, without its body.
      if (/not found/i.test(String((error as Error).message))) return undefined;
      throw error;
    }
  }

  const loop = (async () => {
    for await (const msg of subscription) {
      try {
        await handle(msg.data);
        handled.add(1, { outcome: "dead_lettered" });
      } catch (error) {
        const invalid = error instanceof AdvisoryError;
        handled.add(1, { outcome: invalid ? "invalid" : "error" });
        // An advisory is not redelivered: the message stays in its stream for an operator to find.
        rt.log.error({ err: error, advisory: new TextDecoder().decode(msg.data) }, "could not handle advisory");
      }
    }
  })();

  return {
    async stop() {
      await subscription.drain().catch(() => undefined);
      await loop;
    },
  } satisfies AdvisoryListener;
}

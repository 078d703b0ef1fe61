/**
 * Covers a crash on the last delivery. A stage that fails a message on its last delivery dead-letters it itself
 * (pkg/flow consume.ts); a stage that dies or hangs on it never can. nats-server then emits a MAX_DELIVERIES
 * advisory and leaves the message in the stream, unacknowledged. This listener reads the message back, publishes the
 * dead letter the stage would have written, and fails the task so it does not stay RUNNING forever.
 *
 * The advisory is a core NATS message, gone if nobody listens at that moment; the ADVISORIES stream (pkg/flow)
 * keeps it, and this listener pulls from its durable there: replicas share the durable (each advisory is handled
 * once), an advisory published while no replica runs waits for one, and one whose handling fails (NATS or Redis
 * down) is delivered again after a pause instead of being dropped. Every step is idempotent (the letter's message id
 * is its stream and sequence, the FAILED status and audit event are deduplicated alike), so handling one twice is
 * harmless.
 */
import { context } from "@opentelemetry/api";
import {
  ADVISORY_DURABLE,
  ADVISORY_STREAM,
  DurableWatch,
  extractTrace,
  provisionStreams,
  publishAudit,
  publishStatus,
  Subjects,
} from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { AckPolicy, DeliverPolicy, type JetStreamManager, nanos } from "nats";
import {
  AdvisoryError,
  EXHAUSTED_ERROR,
  letterFromAdvisory,
  type OriginalMessage,
  parseAdvisory,
  taskToFail,
} from "./advisory.js";

/** How often the listener checks that its durable still exists (a consume loop does not notice its deletion). */
const ADVISORY_WATCH_MS = 5_000;

export interface AdvisoryListenerOptions {
  /** How long an advisory whose handling failed waits before it is delivered again (ms). */
  retryDelayMs?: number;
}

export interface AdvisoryListener {
  /** Stops taking advisories and waits for the one in hand. */
  stop(): Promise<void>;
}

export async function listenForMaxDeliveries(
  rt: Pick<Runtime, "nats" | "publisher" | "log" | "meter" | "name"> & Partial<Pick<Runtime, "settings">>,
  { retryDelayMs = 5_000 }: AdvisoryListenerOptions = {},
): Promise<AdvisoryListener> {
  const handled = rt.meter.createCounter("tm_deadletter_advisories_total", {
    description: "MAX_DELIVERIES advisories, by outcome: dead_lettered, invalid or error (retried)",
  });
  // Exported at 0 from the start: the first error is then an increase the alert sees, not a new series.
  for (const outcome of ["dead_lettered", "invalid", "error"]) handled.add(0, { outcome });
  await provisionAdvisoryConsumer(rt.nats.jsm);
  const consumer = await rt.nats.js.consumers.get(ADVISORY_STREAM, ADVISORY_DURABLE);
  let messages = await consumer.consume({ max_messages: 16 });
  let stopping = false;
  // The durable (or the stream) deleted, or lost with NATS's store: a consume loop does not notice, it just receives
  // nothing. Checked every few seconds: created again, and the loop below starts a new consume on it.
  const watch = new DurableWatch(consumer);
  const watching = setInterval(() => {
    void (async () => {
      if (!(await watch.gone())) return;
      rt.log.warn(
        "the ADVISORIES durable or its stream is gone (deleted, or NATS lost its store): creating them again",
      );
      await provisionStreams(rt.nats.jsm, rt.settings);
      await provisionAdvisoryConsumer(rt.nats.jsm);
      await messages.close();
    })().catch((error: unknown) => rt.log.debug({ err: error }, "could not create the ADVISORIES durable again"));
  }, ADVISORY_WATCH_MS);
  watching.unref();

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
      return { subject: stored.subject, data: stored.data, storedAtMs: Date.parse(stored.timestamp) };
    } catch (error) {
      // Gone (aged out, purged): the letter still records which message died, without its body.
      if (/not found/i.test(String((error as Error).message))) return undefined;
      throw error;
    }
  }

  async function consumeUntilClosed(): Promise<void> {
    for await (const msg of messages) {
      try {
        await handle(msg.data);
        msg.ack();
        handled.add(1, { outcome: "dead_lettered" });
      } catch (error) {
        if (error instanceof AdvisoryError) {
          // Not something a retry can fix: dropped, and said so.
          msg.term();
          handled.add(1, { outcome: "invalid" });
          rt.log.error({ err: error, advisory: new TextDecoder().decode(msg.data) }, "malformed advisory dropped");
        } else {
          msg.nak(retryDelayMs);
          handled.add(1, { outcome: "error" });
          rt.log.warn({ err: error }, `could not handle an advisory; retrying in ${retryDelayMs} ms`);
        }
      }
    }
  }

  const loop = (async () => {
    for (;;) {
      await consumeUntilClosed().catch((error: unknown) => rt.log.warn({ err: error }, "advisory consume ended"));
      if (stopping) return;
      // Closed by the watch after the durable was created again (or ended otherwise): consume it anew, shortly.
      await new Promise((resolve) => setTimeout(resolve, 250));
      messages = await consumer.consume({ max_messages: 16 }).catch(() => messages);
    }
  })();

  return {
    async stop() {
      stopping = true;
      clearInterval(watching);
      await messages.close().catch(() => undefined);
      await loop;
    },
  } satisfies AdvisoryListener;
}

/** The durable on ADVISORIES: delivered until handled (no MaxDeliver), AckWait 30 s for a handler cut short. */
async function provisionAdvisoryConsumer(jsm: JetStreamManager): Promise<void> {
  const config = {
    durable_name: ADVISORY_DURABLE,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_deliver: -1,
    max_ack_pending: 64,
  };
  const existing = await jsm.consumers.info(ADVISORY_STREAM, ADVISORY_DURABLE).catch(() => undefined);
  if (existing) return;
  await jsm.consumers.add(ADVISORY_STREAM, config).catch(async (error: unknown) => {
    // Another replica created it meanwhile (2.10+ refuses a second create whose config differs in any detail).
    if (!(await jsm.consumers.info(ADVISORY_STREAM, ADVISORY_DURABLE).catch(() => undefined))) throw error;
  });
}

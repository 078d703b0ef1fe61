/**
 * Publishing with the contract's guarantees: the body is validated, a Nats-Msg-Id is set so a retried publish is
 * deduplicated by the stream, and the trace context travels in the body and as a header. Transient failures (a
 * reconnecting client, a stream leader election) are retried with the same message id until a deadline.
 */
import { type Context, context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { NatsConnection, PubAck } from "nats";
import { errorMessage } from "./errors.js";
import { type EncodedHeaders, encodeHeaders } from "./headers.js";
import { JetStreamPublisher } from "./jetstream-publisher.js";
import { type MessageFor, type MessageInputFor, validateMessage } from "./schemas.js";
import type { Subject } from "./subjects.js";
import { injectTrace } from "./trace.js";

const tracer = trace.getTracer("@tm/flow");
const encoder = new TextEncoder();

export interface PublishOptions {
  /** Deduplication id, unique per (task, stage): e.g. `${taskId}:schedule`. */
  msgId: string;
  /** The trace context to publish in, when not the active one: e.g. a stored task's, extracted from its traceparent
   *  (an explicit parent also holds without a context manager, where `context.with` changes nothing). */
  parent?: Context;
}

export interface PublisherOptions {
  /** The publishing service, set as span attribute `tm.service` (tells services apart when several share a
   *  process, as in tests; deployed, the resource's service.name says the same). */
  service?: string;
  /** Total time to keep retrying a failing publish before giving up (ms). */
  retryDeadlineMs?: number;
  /** PubAck timeout of one attempt (ms). */
  ackTimeoutMs?: number;
}

export interface Publisher {
  publish<S extends Subject>(subject: S, message: MessageInputFor<S>, options: PublishOptions): Promise<PubAck>;
}

export function createPublisher(nc: NatsConnection, options: PublisherOptions = {}): Publisher {
  const retryDeadlineMs = options.retryDeadlineMs ?? 30_000;
  // A PubAck normally takes about a millisecond. A request sent around a reconnect can be lost without an error,
  // and only this timeout notices it: 1 s (not nats.js's 5 s) took the first task after a NATS restart from
  // 5.2 s to 1.2 s. A spurious timeout costs only a retry that the stream deduplicates by message id.
  const ackTimeoutMs = options.ackTimeoutMs ?? 1_000;

  const settings: PublishSettings = {
    jetstream: new JetStreamPublisher(nc),
    service: options.service,
    ackTimeoutMs,
    retryDeadlineMs,
  };
  return {
    publish(subject, message, { msgId, parent = context.active() }) {
      // startSpan, not startActiveSpan: nothing below reads the active context, and making the span active costs an
      // AsyncLocalStorage.run per publish (3 to 4 per delivered message). The trace context put in the message is the
      // publish span's when it records, and the caller's (which a non-recording span carries) when it does not.
      const span = tracer.startSpan(`${subject} publish`, { kind: SpanKind.PRODUCER }, parent);
      return publishInSpan(settings, span, trace.setSpan(parent, span), subject, message, msgId);
    },
  };
}

interface PublishSettings {
  jetstream: JetStreamPublisher;
  service: string | undefined;
  ackTimeoutMs: number;
  retryDeadlineMs: number;
}

async function publishInSpan<S extends Subject>(
  settings: PublishSettings,
  span: Span,
  spanContext: Context,
  subject: S,
  message: MessageInputFor<S>,
  msgId: string,
): Promise<PubAck> {
  // Attributes only for a span that records (a no-op span, without a trace exporter, would drop them).
  if (span.isRecording()) {
    span.setAttributes({
      "messaging.system": "nats",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": subject,
      "messaging.message.id": msgId,
      ...taskAttributes(message),
      ...(settings.service ? { "tm.service": settings.service } : {}),
    });
  }
  try {
    const carrier = injectTrace(spanContext);
    const body: MessageFor<S> = validateMessage(subject, { ...message, ...carrier });
    const data = encoder.encode(JSON.stringify(body));
    if (span.isRecording()) span.setAttribute("messaging.message.body.size", data.byteLength);
    // Nats-Msg-Id in the block: the stream deduplicates a retried publish by it.
    const hdrs = encodeHeaders(
      carrier.tracestate
        ? [
            ["traceparent", carrier.traceparent],
            ["tracestate", carrier.tracestate],
            ["Nats-Msg-Id", msgId],
          ]
        : [
            ["traceparent", carrier.traceparent],
            ["Nats-Msg-Id", msgId],
          ],
    );
    const ack = await publishWithRetry(settings, subject, data, hdrs);
    if (ack.duplicate) span.setAttribute("messaging.nats.duplicate", true);
    return ack;
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
    throw error;
  } finally {
    span.end();
  }
}

/** `task.id` on the span when the message is about one task, so TraceQL `{ span.task.id = "…" }` finds it. */
function taskAttributes(message: unknown): { "task.id"?: string } {
  const taskId = (message as { taskId?: unknown }).taskId;
  return typeof taskId === "string" ? { "task.id": taskId } : {};
}

async function publishWithRetry(
  { jetstream, ackTimeoutMs, retryDeadlineMs }: PublishSettings,
  subject: string,
  data: Uint8Array,
  hdrs: EncodedHeaders,
): Promise<PubAck> {
  const deadline = Date.now() + retryDeadlineMs;
  let delay = 100;
  for (;;) {
    try {
      // The same headers, so the same Nats-Msg-Id, on every try: the stream stores the message once.
      return await jetstream.publish(subject, data, hdrs, ackTimeoutMs);
    } catch (error) {
      if (!isTransientNatsError(error) || Date.now() + delay > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

/** Errors the NATS client (nats.js's NatsError) or our JetStream publisher raises: only theirs can mean a NATS outage. */
const NATS_ERROR_NAMES: ReadonlySet<string> = new Set(["NatsError", "JetStreamPublishError"]);

/** Failures that a retry with the same message id can fix: no responders (leader election), timeouts, and a
 *  connection that is reconnecting. Only a NATS client's error counts: a task handler's own "Request timeout" (or a
 *  fetch's TimeoutError, or the worker's heartbeat timeout) is the task's failure, retried as an attempt, not an
 *  outage held without one. */
export function isTransientNatsError(error: unknown): boolean {
  const e = error as { name?: string; code?: string; message?: string };
  if (!NATS_ERROR_NAMES.has(String(e?.name ?? ""))) return false;
  const code = String(e?.code ?? "");
  return (
    code === "503" ||
    code === "TIMEOUT" ||
    code === "DISCONNECT" ||
    /no responders|timeout|disconnect|reconnect/i.test(String(e?.message))
  );
}

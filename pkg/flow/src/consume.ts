/**
 * The consume loop every service uses: a durable pull consumer, bounded concurrency, validation, and the ack
 * policy of the contract.
 *
 *   handler resolves            → ack
 *   body fails its schema       → dead-letter (reason "invalid") and term: never retried
 *   handler throws PermanentError → onExhausted hook, dead-letter ("rejected"), term
 *   handler throws, deliveries left → onRetry hook, NAK with the delay for this attempt (a RetryAfterError's own
 *                                  delay if it gives one, else the message's own backoff: retryDelayOf)
 *   handler throws on the last delivery → onExhausted hook, dead-letter ("exhausted"), term
 *   process dies mid-handler    → no ack: redelivered after AckWait (heartbeats keep long handlers alive)
 *   handler fails with an outage → held: retried in place with back-off (heartbeats go on) until the dependency is
 *                                  back, for up to outageHoldMs; no attempt is spent (see isOutage below)
 *   handler throws RateLimitedError → deferred, when the caller takes it back (deferRateLimited): neither acked nor
 *                                  NAKed, the caller runs it again later in the same attempt; otherwise as RetryAfterError
 *
 * If dead-lettering itself fails, the message is NAKed rather than lost; should that happen on the last delivery,
 * the server's MAX_DELIVERIES advisory still reports it (the deadletter service listens for it).
 */
import { context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "nats";
import { DurableWatch } from "./durable-watch.js";
import { errorMessage, PermanentError, RateLimitedError, RetryAfterError } from "./errors.js";
import { jsonWithinBytes } from "./json-size.js";
import { KeyedQueue } from "./keyed-queue.js";
import type { Publisher } from "./publish.js";
import { decodeMessage, type MessageFor, MessageValidationError, SIZE_LIMITS } from "./schemas.js";
import {
  DEFAULT_FLOW_SETTINGS,
  durableName,
  type FlowSettings,
  isMissingStreamOrConsumer,
  serverMaxDeliver,
  storedMessageId,
  streamOf,
} from "./streams.js";
import type { Subject } from "./subjects.js";
import { extractTrace, traceIdOf } from "./trace.js";

const tracer = trace.getTracer("@tm/flow");
const RAW_LIMIT = 16 * 1024;

/**
 * What a dead letter keeps of the message that died, within SIZE_LIMITS.deadLetterMessageBytes. A task message can be
 * larger (its payload alone may reach 256 KiB): it is kept without its payload (the task's record in Redis keeps that,
 * and a replay reads it from there), or failing that as truncated text. A letter refused for its size could not be
 * published, and the message would be redelivered instead of dead-lettered.
 */
export function letterMessage(message: unknown): { message: unknown } | { raw: string } {
  if (jsonWithinBytes(message, SIZE_LIMITS.deadLetterMessageBytes)) return { message };
  if (typeof message === "object" && message !== null && "payload" in message) {
    const { payload: _left, ...rest } = message as Record<string, unknown>;
    if (jsonWithinBytes(rest, SIZE_LIMITS.deadLetterMessageBytes)) return { message: rest };
  }
  return { raw: JSON.stringify(message).slice(0, RAW_LIMIT) };
}

export interface DeliveryContext {
  subject: Subject;
  /** 1 on the first delivery. */
  attempt: number;
  /** The deliveries this message may use: the consumer's maxDeliver, or fewer (ConsumerOptions.attemptsOf). */
  maxDeliver: number;
  /** True when this is the last delivery the message may use: a failure dead-letters it. */
  lastAttempt: boolean;
  streamSequence: number;
  /** The message's id across stream incarnations (storedMessageId): what dead letters and redelivery markers use. */
  readonly messageId: string;
  /** The task the message is about, when it names one (for logs). */
  taskId: string | undefined;
  /** How many times this delivery was deferred (a RateLimitedError) and taken up again: > 0 means its attempt had
   *  already started. */
  deferrals: number;
  /** Milliseconds since this delivery was first deferred (0 if never): what its deferrals have cost so far. */
  deferredMs: number;
  /** Milliseconds the message waited in the stream before this delivery. */
  waitedMs: number;
  /** When handling began (ms since epoch), for processing-time metrics. */
  receivedAt: number;
  /** Aborted when the consumer stops and in-flight work runs past the shutdown deadline. */
  signal: AbortSignal;
  span: Span;
  traceId: string | undefined;
}

export type MessageHandler<S extends Subject> = (message: MessageFor<S>, ctx: DeliveryContext) => Promise<void>;

export interface ConsumerHooks<S extends Subject> {
  /** A delivery failed and will be retried after `delayMs` (e.g. report the error on the task's status). */
  onRetry?(message: MessageFor<S>, error: unknown, ctx: DeliveryContext, delayMs: number): Promise<void>;
  /** The handler was rate limited and the delivery is deferred for `delayMs`, its attempt not spent (an audit record). */
  onDeferred?(message: MessageFor<S>, error: RateLimitedError, ctx: DeliveryContext, delayMs: number): Promise<void>;
  /** The message is about to be dead-lettered (e.g. mark the task FAILED). */
  onExhausted?(message: MessageFor<S>, error: unknown, ctx: DeliveryContext): Promise<void>;
  /** Any outcome, for metrics and logs. */
  onOutcome?(outcome: Outcome, ctx: DeliveryContext, error?: unknown): void;
}

export type Outcome = "acked" | "retried" | "dead-lettered" | "invalid" | "handed-back" | "held" | "deferred";

export interface ConsumerOptions<S extends Subject> {
  js: JetStreamClient;
  publisher: Publisher;
  /** The service name: with the subject it names the durable consumer. */
  service: string;
  subject: S;
  handler: MessageHandler<S>;
  /** Messages handled at once by this process. */
  concurrency?: number;
  settings?: FlowSettings;
  hooks?: ConsumerHooks<S>;
  /** Messages with the same key are handled one after another in stream order (e.g. by task id). */
  orderKey?: (message: MessageFor<S>) => string | undefined;
  /**
   * Whether an error means "a dependency is down", not "this message failed": Redis or NATS unreachable. Such a
   * delivery is held and its handler run again once the outage passes (up to settings.outageHoldMs), instead of
   * being NAKed: a redelivery would spend one of the message's maxDeliver attempts, and an outage longer than the
   * retry delays would dead-letter healthy messages.
   */
  isOutage?: (error: unknown) => boolean;
  /**
   * Runs after the handler succeeded, before the ack: e.g. waits until Redis replicas hold the handler's writes. An
   * outage error from it is held like the handler's own (the handler runs again, so its writes must be idempotent).
   */
  confirmWrites?: () => Promise<void>;
  /**
   * Called when a pull finds this durable or its stream gone (deleted by an operator, or a nats-server restarted
   * without its store): it should create them again (provisionStreams, provisionConsumer), and consumption resumes.
   * Without it such a consumer retries its pull forever, receiving nothing.
   */
  recreate?: () => Promise<void>;
  /**
   * For a consumer whose latency does not matter (audit): deliveries that arrive within this many milliseconds of
   * the first are started together when the window closes (or as soon as half the slots are gathered), instead of
   * each as it arrives. At a paced rate each delivery would otherwise wake the process on its own; gathered, they are
   * decoded, handled, written to Redis (one batched script call) and acked (one socket write) in one go, as at
   * saturation. Slots are taken on arrival, so a window holds at most half the `concurrency`; it is capped at a third
   * of AckWait (the heartbeat interval), since gathered deliveries get no heartbeat yet. 0 or unset: each delivery
   * starts at once.
   */
  gatherMs?: number;
  /**
   * The most deliveries a message may use when fewer than the consumer's maxDeliver (a task's max_attempts). Its
   * last one is then handled as the server's last (a failure dead-letters it), and a delivery past it (the last one
   * was interrupted: a crash, a shutdown) is dead-lettered without running the handler.
   */
  attemptsOf?: (message: MessageFor<S>) => number | undefined;
  /**
   * On a redelivery only: the message's attempt when that is not its delivery count (the worker's: deliveries a
   * stopping or quiet worker handed back without starting them are not attempts). At least 1; a failed call leaves the
   * delivery count (never more runs than asked).
   */
  attemptOf?: (message: MessageFor<S>, deliveryCount: number) => Promise<number>;
  /**
   * The wait before the redelivery that follows failed delivery `attempt` when the message sets its own (a task's
   * retry_backoff); undefined: settings.retryDelaysMs. A handler's RetryAfterError still comes first.
   */
  retryDelayOf?: (message: MessageFor<S>, attempt: number) => number | undefined;
  /**
   * Offered a delivery whose handler threw a RateLimitedError: true takes it back, to run it again through
   * `process` after the error's wait (the delivery is then neither acked nor NAKed, so no attempt is spent, and the
   * caller keeps it alive with working()); false (its wait budget is spent) retries it as a RetryAfterError. Without
   * it, always the latter: a plain consume loop has nowhere to keep a delivery.
   */
  deferRateLimited?: (msg: JsMsg, message: MessageFor<S>, error: RateLimitedError, ctx: DeliveryContext) => boolean;
}

/**
 * A delivery past its message's own attempt limit (ConsumerOptions.attemptsOf): the handler is not run again, and
 * the message is dead-lettered as exhausted at once, whatever attempt the server counts (a handler may throw it too).
 */
export class AttemptsExhaustedError extends Error {
  override readonly name = "AttemptsExhaustedError";
  /** `attempt` would be this delivery's attempt; attempt - 1 started and did not finish. */
  constructor(attempt: number, maxAttempts: number) {
    super(
      `attempt ${attempt} is past the task's limit of ${maxAttempts} (max_attempts): attempt ${attempt - 1} was ` +
        "interrupted (its process stopped or crashed), and the task is not run again",
    );
  }
}

const OUTAGE_FIRST_PAUSE_MS = 100;
const OUTAGE_MAX_PAUSE_MS = 2_000;

/**
 * The delivered message's storedMessageId. Its stored time is read to the ms from the ack subject's nanoseconds as
 * text: nats.js's `timestampNanos` is a float that can round up into the next ms, and the deadletter service derives
 * the same id from the stored message's RFC 3339 time (truncated), so the two must agree exactly.
 */
export function messageIdOf(msg: DeliveredMessage, subject: Subject): string {
  return storedMessageId(streamOf(subject), msg.info.streamSequence, storedAtMsOf(msg));
}

/** A delivered JsMsg: its implementation also has the ack subject (`reply`), which the JsMsg type leaves out. */
type DeliveredMessage = Pick<JsMsg, "info"> & { reply?: string };

function storedAtMsOf(msg: DeliveredMessage): number {
  // $JS.ACK[.<domain>.<account hash>].<stream>.<consumer>.<deliveries>.<stream seq>.<consumer seq>.<ns>.<pending>...
  const tokens = (msg.reply ?? "").split(".");
  const nanos = tokens[tokens.length === 9 ? 7 : 9];
  if (nanos && /^\d+$/.test(nanos)) return Number(BigInt(nanos) / 1_000_000n);
  return Math.floor(msg.info.timestampNanos / 1e6);
}

/** Delay before the redelivery that follows failed delivery number `attempt` (1-based). */
export function retryDelayFor(attempt: number, delays: readonly number[]): number {
  if (delays.length === 0) return 0;
  return delays[Math.min(Math.max(attempt, 1), delays.length) - 1] as number;
}

/** Handles one delivery per the ack policy above. Exposed so a service with its own dispatch (the worker's weighted
 *  priorities) reuses exactly the same policy. */
export class DeliveryProcessor<S extends Subject> {
  readonly #options: Required<Pick<ConsumerOptions<S>, "service" | "subject" | "settings">> & ConsumerOptions<S>;
  readonly #abort = new AbortController();
  readonly #consumerName: string;
  readonly #ordered = new KeyedQueue();
  /** Deliveries deferred at least once: when first, and how many times. */
  readonly #deferred = new WeakMap<JsMsg, { since: number; count: number }>();

  constructor(options: ConsumerOptions<S>) {
    this.#options = { settings: DEFAULT_FLOW_SETTINGS, ...options };
    this.#consumerName = durableName(options.service, options.subject);
  }

  /** Tells in-flight handlers to give up (used after the shutdown deadline). */
  abort(reason = "consumer stopping"): void {
    this.#abort.abort(new Error(reason));
  }

  async process(msg: JsMsg): Promise<Outcome> {
    const { subject, settings, hooks } = this.#options;
    let message: MessageFor<S>;
    try {
      message = decodeMessage(subject, msg.data);
    } catch (error) {
      if (!(error instanceof MessageValidationError)) throw error;
      // Dead-lettering a large invalid body can take a while on a busy machine: keep the delivery alive meanwhile,
      // or AckWait would redeliver it and it would be reported twice.
      const keepAlive = setInterval(() => msg.working(), Math.max(250, Math.floor(settings.ackWaitMs / 3)));
      try {
        return await this.#rejectInvalid(msg, error);
      } finally {
        clearInterval(keepAlive);
      }
    }

    // Asked only on a redelivery: the first delivery is attempt 1 and costs nothing more.
    const { deliveryCount } = msg.info;
    const attempt =
      deliveryCount > 1 && this.#options.attemptOf
        ? Math.max(1, await this.#options.attemptOf(message, deliveryCount).catch(() => deliveryCount))
        : deliveryCount;
    const parent = extractTrace(message as { traceparent?: string }, msg.headers);
    const receivedAt = Date.now();
    const storedAt = msg.info.timestampNanos / 1e6;
    const waitedMs = Math.max(0, receivedAt - storedAt);
    const taskId = (message as { taskId?: string }).taskId ?? "";
    // The time the message sat in the stream (queueing, or a retry's back-off), as its own span from the stream's
    // timestamp to receipt: in Tempo the gap between a publish and its process span then has a name and a length.
    // Attributes are built only for spans that record: without a trace exporter (the SDK then installs no tracer
    // provider) every span is a no-op, and two attribute objects per delivery were a visible share of a stage's CPU.
    const startTime = Math.min(storedAt, receivedAt);
    const wait = tracer.startSpan(`${subject} wait`, { kind: SpanKind.INTERNAL, startTime }, parent);
    const common = wait.isRecording() ? this.#spanAttributes(msg, taskId, attempt, waitedMs) : undefined;
    if (common) wait.setAttributes(common);
    wait.end(receivedAt);
    return tracer.startActiveSpan(`${subject} process`, { kind: SpanKind.CONSUMER }, parent, async (span) => {
      if (span.isRecording()) {
        span.setAttributes({
          ...(common ?? this.#spanAttributes(msg, taskId, attempt, waitedMs)),
          "messaging.operation.type": "process",
          "messaging.operation.name": "process",
          "messaging.nats.stream_sequence": msg.info.streamSequence,
        });
      }
      const maxAttempts = Math.min(settings.maxDeliver, this.#options.attemptsOf?.(message) ?? settings.maxDeliver);
      const deferred = this.#deferred.get(msg);
      const ctx: DeliveryContext = {
        subject,
        attempt,
        maxDeliver: maxAttempts,
        // The server's own limit counts deliveries: its last one is the last whatever the attempt.
        lastAttempt: attempt >= maxAttempts || msg.info.deliveryCount >= serverMaxDeliver(settings),
        streamSequence: msg.info.streamSequence,
        // Parsed from the ack subject only when read: the audit service and dead letters need it, most stages not.
        get messageId() {
          return messageIdOf(msg, subject);
        },
        taskId: taskId || undefined,
        deferrals: deferred?.count ?? 0,
        deferredMs: deferred ? receivedAt - deferred.since : 0,
        waitedMs,
        receivedAt,
        signal: this.#abort.signal,
        span,
        traceId: traceIdOf((message as { traceparent?: string }).traceparent) ?? span.spanContext().traceId,
      };
      if (attempt > maxAttempts) {
        const error = new AttemptsExhaustedError(attempt, maxAttempts);
        span.recordException(error);
        try {
          return await this.#fail(msg, message, error, ctx);
        } finally {
          span.end();
        }
      }
      // Keep a long handler's delivery alive; if this process dies the heartbeats stop and AckWait redelivers.
      const heartbeat = setInterval(() => msg.working(), Math.max(250, Math.floor(settings.ackWaitMs / 3)));
      heartbeat.unref();
      try {
        const key = this.#options.orderKey?.(message);
        const { handler, confirmWrites } = this.#options;
        const run = confirmWrites
          ? async () => {
              await handler(message, ctx);
              await confirmWrites();
            }
          : () => handler(message, ctx);
        const handle = () => this.#holdingThroughOutages(run, ctx);
        if (key === undefined) await handle();
        else await this.#ordered.run(key, handle);
        msg.ack();
        hooks?.onOutcome?.("acked", ctx);
        return "acked";
      } catch (error) {
        span.recordException(error as Error);
        if (
          error instanceof RateLimitedError &&
          !this.#abort.signal.aborted &&
          this.#options.deferRateLimited?.(msg, message, error, ctx)
        ) {
          // Not a failure: the span says why this run ended, and the next run of the delivery gets its own span.
          span.addEvent("deferred: rate limited", { "tm.retry_after_ms": error.retryAfterMs });
          this.#deferred.set(msg, { since: deferred?.since ?? Date.now(), count: ctx.deferrals + 1 });
          await hooks?.onDeferred?.(message, error, ctx, error.retryAfterMs).catch(() => undefined);
          hooks?.onOutcome?.("deferred", ctx, error);
          return "deferred";
        }
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
        if (this.#abort.signal.aborted) {
          msg.nak();
          hooks?.onOutcome?.("handed-back", ctx, error);
          return "handed-back";
        }
        return await this.#fail(msg, message, error, ctx);
      } finally {
        clearInterval(heartbeat);
        span.end();
      }
    });
  }

  #spanAttributes(msg: JsMsg, taskId: string, attempt: number, waitedMs: number) {
    return {
      "messaging.system": "nats",
      "messaging.destination.name": this.#options.subject,
      "messaging.consumer.group.name": this.#consumerName,
      "messaging.message.id": msg.headers?.get("Nats-Msg-Id") ?? "",
      "messaging.nats.delivery_count": attempt,
      "messaging.nats.waited_ms": Math.round(waitedMs),
      "task.id": taskId,
      "tm.service": this.#options.service,
    };
  }

  /** Runs the handler; while it fails with an outage, waits (with back-off) and runs it again. The delivery's
   *  heartbeats go on meanwhile, so the message stays with this consumer and keeps its attempt count. */
  async #holdingThroughOutages(run: () => Promise<void>, ctx: DeliveryContext): Promise<void> {
    const { isOutage, settings, hooks } = this.#options;
    if (!isOutage || settings.outageHoldMs <= 0) return run();
    const holdUntil = Date.now() + settings.outageHoldMs;
    let pause = OUTAGE_FIRST_PAUSE_MS;
    for (;;) {
      try {
        return await run();
      } catch (error) {
        const signal = this.#abort.signal;
        if (!isOutage(error) || signal.aborted || Date.now() + pause > holdUntil) throw error;
        ctx.span.addEvent("held: dependency unavailable", { "exception.message": errorMessage(error) });
        hooks?.onOutcome?.("held", ctx, error);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, pause);
          function done() {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            resolve();
          }
          signal.addEventListener("abort", done, { once: true });
        });
        if (signal.aborted) throw error;
        pause = Math.min(pause * 2, OUTAGE_MAX_PAUSE_MS);
      }
    }
  }

  async #fail(msg: JsMsg, message: MessageFor<S>, error: unknown, ctx: DeliveryContext): Promise<Outcome> {
    const { settings, hooks } = this.#options;
    const permanent = error instanceof PermanentError;
    if (!permanent && !ctx.lastAttempt && !(error instanceof AttemptsExhaustedError)) {
      const delayMs =
        error instanceof RetryAfterError
          ? error.retryAfterMs
          : (this.#options.retryDelayOf?.(message, ctx.attempt) ?? retryDelayFor(ctx.attempt, settings.retryDelaysMs));
      await hooks?.onRetry?.(message, error, ctx, delayMs).catch(() => undefined);
      msg.nak(delayMs);
      hooks?.onOutcome?.("retried", ctx, error);
      return "retried";
    }
    try {
      await hooks?.onExhausted?.(message, error, ctx);
      await this.#deadLetter(msg, {
        reason: permanent ? "rejected" : "exhausted",
        error: errorMessage(error),
        attempts: ctx.attempt,
        message,
        taskId: (message as { taskId?: string }).taskId,
        traceparent: (message as { traceparent?: string }).traceparent,
      });
      // No reason argument: nats-server 2.9 ignores a "+TERM <reason>" ack entirely (the message stays pending).
      msg.term();
      hooks?.onOutcome?.("dead-lettered", ctx, error);
      return "dead-lettered";
    } catch {
      // Could not record the failure: keep the message; the advisory covers the very last delivery.
      msg.nak(retryDelayFor(ctx.attempt, settings.retryDelaysMs));
      hooks?.onOutcome?.("retried", ctx, error);
      return "retried";
    }
  }

  async #rejectInvalid(msg: JsMsg, error: MessageValidationError): Promise<Outcome> {
    const text = new TextDecoder().decode(msg.data);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const candidate = parsed as { taskId?: unknown; traceparent?: unknown } | undefined;
    const taskId = typeof candidate?.taskId === "string" && isUuid(candidate.taskId) ? candidate.taskId : undefined;
    try {
      await this.#deadLetter(msg, {
        reason: "invalid",
        error: error.message,
        attempts: msg.info.deliveryCount,
        ...(parsed !== undefined && text.length <= RAW_LIMIT ? { message: parsed } : { raw: text.slice(0, RAW_LIMIT) }),
        taskId,
        traceparent: msg.headers?.get("traceparent") || undefined,
      });
      msg.term();
      this.#options.hooks?.onOutcome?.("invalid", this.#bareContext(msg), error);
      return "invalid";
    } catch {
      msg.nak(retryDelayFor(msg.info.deliveryCount, this.#options.settings.retryDelaysMs));
      return "retried";
    }
  }

  async #deadLetter(
    msg: JsMsg,
    fields: {
      reason: "invalid" | "exhausted" | "rejected";
      error: string;
      /** The attempts the message had (deliveries, less those handed back unstarted). */
      attempts: number;
      message?: unknown;
      raw?: string;
      taskId: string | undefined;
      traceparent: string | undefined;
    },
  ): Promise<void> {
    const { subject } = this.#options;
    const id = messageIdOf(msg, subject);
    await this.#options.publisher.publish(
      "events.deadletter",
      {
        id,
        subject,
        consumer: this.#consumerName,
        reason: fields.reason,
        error: fields.error.slice(0, 8192),
        attempts: fields.attempts,
        at: new Date().toISOString(),
        ...(fields.taskId ? { taskId: fields.taskId } : {}),
        ...(fields.message !== undefined ? letterMessage(fields.message) : {}),
        ...(fields.raw !== undefined ? { raw: fields.raw } : {}),
      },
      { msgId: `dlq:${id}` },
    );
  }

  #bareContext(msg: JsMsg): DeliveryContext {
    const { subject } = this.#options;
    return {
      subject,
      attempt: msg.info.deliveryCount,
      maxDeliver: this.#options.settings.maxDeliver,
      lastAttempt: msg.info.deliveryCount >= serverMaxDeliver(this.#options.settings),
      streamSequence: msg.info.streamSequence,
      get messageId() {
        return messageIdOf(msg, subject);
      },
      taskId: undefined,
      deferrals: 0,
      deferredMs: 0,
      waitedMs: 0,
      receivedAt: Date.now(),
      signal: this.#abort.signal,
      span: trace.getSpan(context.active()) ?? trace.wrapSpanContext({ traceId: "", spanId: "", traceFlags: 0 }),
      traceId: undefined,
    };
  }
}

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

/** A counting semaphore: at most `limit` holders at once. */
export class Slots {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(readonly limit: number) {
    this.#free = limit;
  }
  get inUse(): number {
    return this.limit - this.#free;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
  /** Resolves when nothing is held. */
  async idle(): Promise<void> {
    while (this.inUse > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Runs one durable consumer, pulling only what it can start at once: each pull asks for as many messages as there
 * are free slots, so no delivery waits in this process without being worked on (its AckWait would run out and it
 * would be delivered twice), and a replica never hoards messages another replica could run. It pulls once at least
 * half the slots are free, so that a busy consumer does not issue a pull for every handler that ends.
 * The consumer must exist (provisionConsumer) before start().
 */
export class Consumer<S extends Subject> {
  readonly processor: DeliveryProcessor<S>;
  readonly #options: ConsumerOptions<S>;
  readonly #slots: Slots;
  #batch: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  /** Wakes the pull loop when a slot frees (a plain callback list: an EventTarget dispatch per message costs more). */
  #onSlotFreed: Array<() => void> = [];
  /** Deliveries waiting for the gather window to close (gatherMs), and its timer. */
  #gathered: JsMsg[] = [];
  #gatherTimer: NodeJS.Timeout | undefined;

  constructor(options: ConsumerOptions<S>) {
    this.#options = options;
    this.#slots = new Slots(options.concurrency ?? 16);
    this.processor = new DeliveryProcessor(options);
  }

  get inFlight(): number {
    return this.#slots.inUse;
  }

  get durable(): string {
    return durableName(this.#options.service, this.#options.subject);
  }

  async start(): Promise<void> {
    const { js, subject } = this.#options;
    // Gathered deliveries get no heartbeat yet: a window is kept well inside AckWait whatever was configured.
    const ackWaitMs = (this.#options.settings ?? DEFAULT_FLOW_SETTINGS).ackWaitMs;
    const gatherMs = Math.min(this.#options.gatherMs ?? 0, Math.floor(ackWaitMs / 3));
    const consumer = await js.consumers.get(streamOf(subject), this.durable);
    const { recreate } = this.#options;
    const watch = new DurableWatch(consumer);
    this.#loop = (async () => {
      while (!this.#stopping) {
        await this.#freeSlot();
        if (this.#stopping) break;
        try {
          // expires: how long an idle pull waits for messages before the next one is issued (nats.js minimum 1 s).
          this.#batch = await consumer.fetch({ max_messages: this.#slots.limit - this.#slots.inUse, expires: 5_000 });
          // stop() may have run while this pull was being issued: end it now rather than wait out its expiry.
          if (this.#stopping) this.#batch.stop();
          let received = 0;
          for await (const msg of this.#batch) {
            received++;
            if (this.#stopping) {
              msg.nak(); // hand it back at once rather than waiting out AckWait
              continue;
            }
            await this.#slots.acquire();
            if (gatherMs > 0) this.#gather(msg, gatherMs);
            else this.#dispatch(msg);
          }
          // An empty pull may be a durable deleted under it (DurableWatch): then create it again.
          if (received === 0 && recreate && !this.#stopping && (await watch.gone())) await recreate().catch(() => {});
        } catch (error) {
          if (this.#stopping) break;
          // The durable or its stream is gone: create them again. Otherwise NATS is unavailable or reconnecting: try
          // again shortly (the connection reconnects by itself).
          if (recreate && isMissingStreamOrConsumer(error)) await recreate().catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    })();
  }

  #dispatch(msg: JsMsg): void {
    void this.processor
      .process(msg)
      .catch(() => msg.nak())
      .finally(() => {
        this.#slots.release();
        this.#wakePuller();
      });
  }

  #gather(msg: JsMsg, windowMs: number): void {
    this.#gathered.push(msg);
    // A batch of half the slots starts at once: a window that always ran its full length would cap the consumer at
    // concurrency ÷ window messages a second (64 per 50 ms: 1,280/s), and the other half can gather meanwhile.
    if (this.#gathered.length >= Math.max(1, Math.floor(this.#slots.limit / 2))) this.#startGathered();
    else this.#gatherTimer ??= setTimeout(() => this.#startGathered(), windowMs);
  }

  #startGathered(): void {
    clearTimeout(this.#gatherTimer);
    this.#gatherTimer = undefined;
    const gathered = this.#gathered;
    this.#gathered = [];
    for (const msg of gathered) this.#dispatch(msg);
  }

  /**
   * Ends the pull in progress so that a new one is issued at once. After a reconnect the server that held the
   * pull request may be gone (restarted, or another cluster node): without this the consumer would sit idle until
   * the old request's expiry.
   */
  repull(): void {
    this.#batch?.stop();
  }

  async #freeSlot(): Promise<void> {
    // Pull only once half the slots are free: a pull is a request and a subscription on the server, and pulls of a
    // few messages each cost nats-server about three times the CPU per message of pulls of 32 or more.
    const minPull = Math.max(1, Math.floor(this.#slots.limit / 2));
    while (!this.#stopping && this.#slots.inUse > this.#slots.limit - minPull) {
      await new Promise<void>((resolve) => this.#onSlotFreed.push(resolve));
    }
  }

  #wakePuller(): void {
    if (this.#onSlotFreed.length === 0) return;
    const waiting = this.#onSlotFreed;
    this.#onSlotFreed = [];
    for (const wake of waiting) wake();
  }

  /**
   * Stops pulling, lets in-flight handlers finish until `deadlineMs`, then aborts them (their messages are NAKed
   * and redelivered elsewhere). Idempotent.
   */
  stop(deadlineMs = 10_000): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#wakePuller();
      this.#batch?.stop();
      // What was taken is handled: gathered deliveries start now rather than when their window closes.
      this.#startGathered();
      const finished = this.#slots.idle();
      const timedOut = await Promise.race([
        finished.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), deadlineMs).unref()),
      ]);
      if (timedOut) {
        this.processor.abort("shutdown deadline passed");
        await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
      }
      await this.#loop?.catch(() => undefined);
    })();
    return this.#stopped;
  }
}

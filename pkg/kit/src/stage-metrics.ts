/**
 * Metrics every consuming stage reports the same way (names are the catalogue in docs/OBSERVABILITY.md):
 *   tm_stage_processing_ms{stage,subject,outcome}  histogram of handling time per delivery
 *   tm_tasks_retried_total{stage,subject,type,priority}  deliveries NAKed for a retry (type, priority: task-labels.ts)
 *   tm_deliveries_held_total{stage,subject}         handler runs that failed on an outage and were retried in place
 *   tm_tasks_dead_lettered_total{subject,reason}    messages given up on
 *   tm_consumer_pending{consumer}                   messages waiting in the stream for this consumer
 *   tm_consumer_ack_pending{consumer}               delivered but not yet acknowledged
 *   tm_consumer_backlog_limit_ratio{consumer}       how close the oldest unacknowledged message is to being discarded
 *                                                   by the stream's limits (1 = next to go; stream-limits.ts)
 */
import type { Meter, ObservableResult } from "@opentelemetry/api";
import type { ConsumerHooks, DeliveryContext, Outcome, Subject, TaskTypes } from "@tm/flow";
import { PermanentError, streamOf } from "@tm/flow";
import type { JetStreamManager, StreamInfo } from "nats";
import type { Logger } from "./logger.js";
import { consumerBacklogLimitRatio, oldestUnackedAgeMs } from "./stream-limits.js";
import { expectedTaskLabels, OTHER_LABEL, type TaskLabels, taskLabels } from "./task-labels.js";

const POLL_MS = 5_000;

interface ConsumerLag {
  pending: number;
  ackPending: number;
  limitRatio: number;
}

export interface ConsumerMetricsOptions {
  /** How often each watched consumer's info is read (ms). */
  pollMs?: number;
}

export class ConsumerMetrics {
  readonly processing;
  readonly retried;
  readonly held;
  readonly deadLettered;
  readonly #lag = new Map<string, ConsumerLag>();
  readonly #pollMs: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #watched: Array<{ jsm: JetStreamManager; subject: Subject; durable: string }> = [];

  constructor(meter: Meter, options: ConsumerMetricsOptions = {}) {
    this.#pollMs = options.pollMs ?? POLL_MS;
    this.processing = meter.createHistogram("tm_stage_processing_ms", {
      description: "Time a stage spent handling one delivery",
      unit: "ms",
      advice: { explicitBucketBoundaries: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000] },
    });
    this.retried = meter.createCounter("tm_tasks_retried_total", {
      description: "Deliveries NAKed for a retry, by task type and priority (other: not a task, or not a known one)",
    });
    this.held = meter.createCounter("tm_deliveries_held_total", {
      description: "Handler runs that failed because Redis or NATS was down and were retried in place",
    });
    this.deadLettered = meter.createCounter("tm_tasks_dead_lettered_total", {
      description: "Messages dead-lettered (invalid, rejected or exhausted)",
    });
    const pending = meter.createObservableGauge("tm_consumer_pending", {
      description: "Messages in the stream not yet delivered to the consumer",
    });
    const ackPending = meter.createObservableGauge("tm_consumer_ack_pending", {
      description: "Messages delivered to the consumer and not yet acknowledged",
    });
    const limitRatio = meter.createObservableGauge("tm_consumer_backlog_limit_ratio", {
      description:
        "How close the consumer's oldest unacknowledged message is to being discarded by its stream's limits " +
        "(MaxMsgs, MaxBytes, MaxAge; discard old): 1 = it is the next to go, lost without a dead letter",
    });
    pending.addCallback((result: ObservableResult) => {
      for (const [consumer, lag] of this.#lag) result.observe(lag.pending, { consumer });
    });
    ackPending.addCallback((result: ObservableResult) => {
      for (const [consumer, lag] of this.#lag) result.observe(lag.ackPending, { consumer });
    });
    limitRatio.addCallback((result: ObservableResult) => {
      for (const [consumer, lag] of this.#lag) result.observe(lag.limitRatio, { consumer });
    });
  }

  /** Polls the consumer's info in the background (a scrape must not wait on JetStream round trips). */
  watch(jsm: JetStreamManager, subject: Subject, durable: string): void {
    this.#watched.push({ jsm, subject, durable });
    if (this.#timer) return;
    const poll = async () => {
      // Each stream's info once per round, and only when a consumer of it has a backlog.
      const streams = new Map<string, Promise<StreamInfo>>();
      for (const { jsm: m, subject: s, durable: d } of this.#watched) {
        try {
          this.#lag.set(d, await readLag(m, streamOf(s), d, streams));
        } catch {
          // NATS unavailable: keep the last figures; readiness reports the outage.
        }
      }
    };
    void poll();
    this.#timer = setInterval(() => void poll(), this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}

async function readLag(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  streams: Map<string, Promise<StreamInfo>>,
): Promise<ConsumerLag> {
  const info = await jsm.consumers.info(stream, durable);
  const unacknowledged = info.num_pending + info.num_ack_pending;
  let limitRatio = 0;
  if (unacknowledged > 0) {
    let streamInfo = streams.get(stream);
    if (!streamInfo) {
      streamInfo = jsm.streams.info(stream);
      streams.set(stream, streamInfo);
    }
    const [streamState, oldestAgeMs] = await Promise.all([streamInfo, oldestUnackedAgeMs(jsm, info)]);
    limitRatio = consumerBacklogLimitRatio(info, streamState, oldestAgeMs);
  }
  return { pending: info.num_pending, ackPending: info.num_ack_pending, limitRatio };
}

const NOT_A_TASK: TaskLabels = { type: OTHER_LABEL, priority: OTHER_LABEL };

/**
 * Wraps a consumer's hooks so every outcome is measured and logged (one line per delivery with taskId, subject and
 * attempt; it runs inside the delivery's span, so the line carries its trace_id), keeping the service's own hooks.
 *
 * onOutcome gets no message, so the retry counter's type and priority are taken from the message in onRetry (and
 * onExhausted: when dead-lettering fails the delivery is NAKed, reported "retried" without an onRetry) and kept
 * with the delivery's context until its outcome, where the retry is counted as before.
 */
export function withStageMetrics<S extends Subject>(
  metrics: ConsumerMetrics,
  stage: string,
  subject: S,
  hooks: ConsumerHooks<S> = {},
  log?: Logger,
  types?: TaskTypes,
): ConsumerHooks<S> {
  // Counters start at zero for this consumer, so the series exist before the first retry or outage: rate() and
  // alerts then see a rise from 0 instead of a series appearing out of nowhere (or never, in a healthy run).
  for (const labels of expectedTaskLabels(subject, types)) metrics.retried.add(0, { stage, subject, ...labels });
  metrics.held.add(0, { stage, subject });
  const labelsOf = new WeakMap<DeliveryContext, TaskLabels>();
  return {
    ...hooks,
    async onRetry(message, error, ctx, delayMs) {
      labelsOf.set(ctx, taskLabels(message, types));
      await hooks.onRetry?.(message, error, ctx, delayMs);
    },
    async onExhausted(message, error, ctx) {
      labelsOf.set(ctx, taskLabels(message, types));
      await hooks.onExhausted?.(message, error, ctx);
    },
    onOutcome(outcome: Outcome, ctx, error) {
      if (outcome === "held") {
        // Not the delivery's end: it goes on, and its final outcome is recorded then.
        metrics.held.add(1, { stage, subject });
        log?.warn(
          { taskId: ctx.taskId, subject, attempt: ctx.attempt, err: error },
          "dependency unavailable: holding the delivery",
        );
        hooks.onOutcome?.(outcome, ctx, error);
        return;
      }
      const ms = Date.now() - ctx.receivedAt;
      metrics.processing.record(ms, { stage, subject, outcome });
      if (log) logOutcome(log, outcome, { taskId: ctx.taskId, subject, attempt: ctx.attempt, outcome, ms }, error);
      if (outcome === "retried") metrics.retried.add(1, { stage, subject, ...(labelsOf.get(ctx) ?? NOT_A_TASK) });
      if (outcome === "dead-lettered" || outcome === "invalid") {
        const reason = outcome === "invalid" ? "invalid" : error instanceof PermanentError ? "rejected" : "exhausted";
        metrics.deadLettered.add(1, { subject, reason });
      }
      hooks.onOutcome?.(outcome, ctx, error);
    },
  };
}

function logOutcome(log: Logger, outcome: Outcome, fields: Record<string, unknown>, error: unknown): void {
  if (outcome === "acked") log.debug(fields, "delivery handled");
  // The downstream said "later": expected under a quota, and audited per task (the worker's `rate_limited`).
  else if (outcome === "deferred") log.info({ ...fields, err: error }, "delivery deferred: rate limited");
  else if (outcome === "retried" || outcome === "handed-back")
    log.warn({ ...fields, err: error }, `delivery ${outcome}`);
  else log.error({ ...fields, err: error }, `delivery ${outcome}`);
}

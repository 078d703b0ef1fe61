/**
 * The metric catalogue: every metric the dashboards and alert rules may query, as the services expose it on
 * /metrics (OpenTelemetry Prometheus exporter: a counter gets `_total` only if its name lacks it, a histogram is
 * exposed as _bucket/_sum/_count, attributes become labels, no unit suffix is appended). docs/OBSERVABILITY.md
 * renders the same list for people; keep the two in step.
 */
export type MetricKind = "counter" | "histogram" | "gauge";

export interface MetricDefinition {
  name: string;
  kind: MetricKind;
  labels: readonly string[];
  services: readonly string[];
  help: string;
  /** Exported only in this case (the known run of test/observability/metrics.int.test.ts does not have it; the
   *  test named here checks the series instead). */
  onlyWhen?: { condition: string; checkedBy: string };
}

const STAGES = ["ingest", "scheduler", "worker", "result-store", "notifier", "audit", "deadletter"] as const;

export const METRIC_CATALOGUE: readonly MetricDefinition[] = [
  {
    name: "tm_tasks_submitted_total",
    kind: "counter",
    labels: ["type", "priority", "outcome"],
    services: ["gateway"],
    help: "SubmitTask calls accepted; outcome accepted | deduplicated (idempotency key seen before) | replaced (a waiting task replaced)",
  },
  {
    name: "tm_tasks_requeued_total",
    kind: "counter",
    labels: ["outcome"],
    services: ["gateway"],
    help: "Submissions whose tasks.ingest message was never acknowledged, settled by the requeue sweeper; outcome requeued | not_queued (too old to requeue: FAILED)",
  },
  {
    name: "tm_schedule_runs_total",
    kind: "counter",
    labels: ["outcome"],
    services: ["gateway"],
    help: "Runs of recurring schedules by a gateway replica; outcome submitted | failed (retried next round) | rejected (refused by SubmitTask's checks: that time skipped) | overlapped | missed (later than its starting deadline: skipped)",
  },
  {
    name: "tm_tasks_delayed_released_total",
    kind: "counter",
    labels: ["outcome"],
    services: ["gateway"],
    help: "Delayed tasks taken from tasks_delayed when due; outcome released (queued) | dropped (cancelled or expired meanwhile) | returned (the publish failed: released again next round)",
  },
  {
    name: "tm_tasks_delayed_release_lateness_ms",
    kind: "histogram",
    labels: [],
    services: ["gateway"],
    help: "How long after its time a delayed task was queued, in milliseconds",
  },
  {
    name: "tm_tasks_processed_total",
    kind: "counter",
    labels: ["type", "priority", "outcome"],
    services: ["worker"],
    help: "Task attempts by outcome: succeeded, retried, failed, cancelled, skipped_cancelled, skipped_superseded, expired, handed_back, rate_limited",
  },
  {
    name: "tm_tasks_scheduled_total",
    kind: "counter",
    labels: ["type", "priority", "pool"],
    services: ["scheduler"],
    help: "Tasks routed to a worker queue",
  },
  {
    name: "tm_tasks_retried_total",
    kind: "counter",
    labels: ["stage", "subject", "type", "priority"],
    services: STAGES,
    help: "Deliveries NAKed for a later retry, per consuming stage, by task type and priority (other: not a known task)",
  },
  {
    name: "tm_deliveries_held_total",
    kind: "counter",
    labels: ["stage", "subject"],
    services: STAGES,
    help: "Handler runs that failed because Redis or NATS was down and were retried in place (no attempt spent)",
  },
  {
    name: "tm_tasks_dead_lettered_total",
    kind: "counter",
    labels: ["subject", "reason"],
    services: STAGES,
    help: "Messages given up on; reason invalid | rejected (permanent error) | exhausted (retries used up)",
  },
  {
    name: "tm_task_duration_ms",
    kind: "histogram",
    labels: ["type"],
    services: ["worker"],
    help: "Time one attempt of a task's handler ran, in milliseconds",
  },
  {
    name: "tm_task_end_to_end_ms",
    kind: "histogram",
    labels: ["type", "priority"],
    services: ["worker"],
    help: "Time from submission (task createdAt; a delayed task: its runAt) to SUCCEEDED or FAILED (recorded by the worker), in milliseconds",
  },
  {
    name: "tm_stage_processing_ms",
    kind: "histogram",
    labels: ["stage", "subject", "outcome"],
    services: STAGES,
    help: "Time a stage spent handling one delivery (receive to ack/nak), in milliseconds",
  },
  {
    name: "tm_consumer_pending",
    kind: "gauge",
    labels: ["consumer"],
    services: STAGES,
    help: "Messages in the stream not yet delivered to this durable consumer (backlog)",
  },
  {
    name: "tm_consumer_ack_pending",
    kind: "gauge",
    labels: ["consumer"],
    services: STAGES,
    help: "Messages delivered to this consumer and not yet acknowledged (being worked on or stuck)",
  },
  {
    name: "tm_consumer_backlog_limit_ratio",
    kind: "gauge",
    labels: ["consumer"],
    services: STAGES,
    help:
      "How close this consumer's oldest unacknowledged message is to being discarded by its stream's limits " +
      "(MaxMsgs, MaxBytes, MaxAge; discard old): 1 = next to go",
  },
  {
    name: "tm_deadletter_advisories_total",
    kind: "counter",
    labels: ["outcome"],
    services: ["deadletter"],
    help: "MAX_DELIVERIES advisories handled from the ADVISORIES stream: dead_lettered, invalid, error (retried)",
  },
  {
    name: "tm_worker_in_flight",
    kind: "gauge",
    labels: ["pool"],
    services: ["worker"],
    help: "Tasks running in this worker process right now",
  },
  {
    name: "tm_redis_used_memory_bytes",
    kind: "gauge",
    labels: [],
    services: ["gateway"],
    help: "Memory the Redis server uses (INFO used_memory), read every 15 s",
  },
  {
    name: "tm_redis_max_memory_bytes",
    kind: "gauge",
    labels: [],
    services: ["gateway"],
    help: "The Redis server's maxmemory (0: no limit); at it, under noeviction, writes are refused",
  },
  {
    name: "tm_redis_evicting",
    kind: "gauge",
    labels: [],
    services: ["gateway"],
    help: "1 when Redis's maxmemory-policy deletes keys to make room (task records among them), else 0",
  },
  {
    name: "tm_tasks_stalled",
    kind: "gauge",
    labels: [],
    services: ["gateway"],
    help:
      "Unfinished tasks whose status has not changed for GATEWAY_STALLED_AFTER_SECONDS while their stage's queue " +
      "holds nothing older (their message is lost), left after the gateway's own requeues: an operator's to look at",
  },
  {
    name: "tm_gateway_shedding",
    kind: "gauge",
    labels: [],
    services: ["gateway"],
    help:
      "1 while this gateway refuses new submissions because a consumer's backlog is near its stream's limits " +
      "(GATEWAY_SHED_BACKLOG_RATIO), else 0",
  },
  {
    name: "tm_tasks_shed_total",
    kind: "counter",
    labels: ["type"],
    services: ["gateway"],
    help: "Submissions refused because a consumer's backlog was near its stream's limits (GATEWAY_SHED_BACKLOG_RATIO)",
    onlyWhen: {
      condition: "a gateway refused a submission while shedding load",
      checkedBy: "services/gateway/test/backlog-shedding.int.test.ts",
    },
  },
  {
    name: "tm_tasks_waiting",
    kind: "gauge",
    labels: ["reason"],
    services: ["gateway"],
    help:
      "Tasks held PENDING before they are queued: reason = delayed (their run_at not reached yet), dependencies " +
      "(their depends_on not all finished) or concurrency (waiting for a place under their concurrency key)",
  },
  {
    name: "tm_queue_unconsumed_messages",
    kind: "gauge",
    labels: ["subject"],
    services: ["gateway"],
    help:
      "Messages on a task queue (a subject of TASKS) that no consumer reads: a worker pool (TASK_ROUTES) none of " +
      "whose workers has started, or a stage not deployed; they wait for its first consumer",
    onlyWhen: {
      condition: "a task queue holds messages no consumer reads",
      checkedBy: "services/gateway/test/stalled.int.test.ts",
    },
  },
  {
    name: "tm_tasks_stalled_requeued_total",
    kind: "counter",
    labels: ["state"],
    services: ["gateway"],
    help:
      "Stalled tasks the gateway requeued on its own (GATEWAY_STALLED_REQUEUE_LIMIT), by the state they were stalled " +
      "in: each is a task whose queued message was lost",
  },
  {
    name: "tm_redis_replicas_online",
    kind: "gauge",
    labels: [],
    services: ["gateway"],
    help: "Replicas of the Redis server past their first sync (what REDIS_WAIT_REPLICAS waits for)",
  },
  {
    name: "tm_worker_quiet",
    kind: "gauge",
    labels: [],
    services: ["worker"],
    help: "1 while this worker takes no new tasks (an operator's QuietWorker), else 0",
  },
  {
    name: "tm_worker_handler_threads_terminated_total",
    kind: "counter",
    labels: ["type"],
    services: ["worker"],
    help: "Handler threads terminated because their handler (isolation thread) still ran after its attempt ended",
    onlyWhen: {
      condition: "a handler thread was terminated",
      checkedBy: "services/worker/test/handler-threads.int.test.ts",
    },
  },
  {
    name: "tm_worker_task_log_lines_total",
    kind: "counter",
    labels: ["outcome"],
    services: ["worker"],
    help: "Lines handlers logged with ctx.log, by whether they were kept with their task (stored) or could not be (dropped)",
    onlyWhen: {
      condition: "a handler logged with ctx.log",
      checkedBy: "services/worker/test/task-log.int.test.ts",
    },
  },
  {
    name: "tm_worker_handlers_abandoned",
    kind: "gauge",
    labels: ["type"],
    services: ["worker"],
    help: "Handlers still running after their attempt ended (timeout, cancel or shutdown): they ignored their AbortSignal",
  },
  {
    name: "tm_worker_type_running",
    kind: "gauge",
    labels: ["type"],
    services: ["worker"],
    help: "Tasks of a type with a per-type limit (WORKER_TYPE_CONCURRENCY, WORKER_TYPE_GLOBAL_CONCURRENCY, WORKER_TYPE_RATES) running in this worker",
  },
  {
    name: "tm_worker_type_buffered",
    kind: "gauge",
    labels: ["type"],
    services: ["worker"],
    help: "Deliveries of a type with a per-type limit buffered in this worker, waiting for a slot, its limit or its turn",
  },
  {
    name: "tm_worker_type_limit",
    kind: "gauge",
    labels: ["type", "kind"],
    services: ["worker"],
    help:
      "The per-type limit in force in this worker, by kind: concurrency (this worker), global_concurrency and " +
      "rate_per_second (fleet-wide, WORKER_TYPE_* or an operator's run-time limit), paused (1 while an operator " +
      "paused the type); 0: none",
  },
  {
    name: "tm_status_updates_total",
    kind: "counter",
    labels: ["state", "outcome"],
    services: ["notifier"],
    help: "Status events consumed; outcome applied (newer version stored and published) | ignored (stale)",
  },
  {
    name: "http_server_request_duration",
    kind: "histogram",
    // http_route is set by @fastify/otel (pkg/kit/src/telemetry-start.ts) for a request a route matched; a request no
    // route matched (a 404), and every request to the gateway's web port (connect-node, no fastify), has a series
    // without it (checked by test/observability/metrics.int.test.ts against a live /metrics).
    labels: [
      "http_request_method",
      "http_response_status_code",
      "http_route",
      "network_protocol_version",
      "url_scheme",
    ],
    services: ["enricher", "result-store", "gateway"],
    help: "@opentelemetry/instrumentation-http 0.223 (stable semconv): HTTP server request duration, in SECONDS",
  },
  ...(["not_after", "not_before"] as const).map(
    (bound): MetricDefinition => ({
      name: `tm_credential_${bound}_timestamp_seconds`,
      kind: "gauge",
      labels: ["credential"],
      services: ["gateway", ...STAGES],
      help:
        bound === "not_after"
          ? "When a credential file the service connects with stops being valid (credential: nats_creds, nats_tls_ca, " +
            "nats_tls_cert, redis_tls_ca, redis_tls_cert; a certificate's notAfter, a JWT's exp), Unix seconds"
          : "When that credential became valid (notBefore, a JWT's iat), Unix seconds: with not-after, its lifetime",
      onlyWhen: {
        condition: "the service uses TLS files or NATS_CREDS_FILE",
        checkedBy: "pkg/kit/test/nats-tls.int.test.ts, pkg/kit/test/nats-creds.int.test.ts",
      },
    }),
  ),
  {
    name: "up",
    kind: "gauge",
    labels: ["job", "instance", "service"],
    services: ["prometheus"],
    help: "Prometheus scrape health: 1 when the last scrape of the target succeeded",
  },
];

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** The catalogue entry a series name belongs to (tm_task_duration_ms_bucket → tm_task_duration_ms), if any. */
export function findMetric(seriesName: string): MetricDefinition | undefined {
  const exact = METRIC_CATALOGUE.find((m) => m.name === seriesName && m.kind !== "histogram");
  if (exact) return exact;
  const base = seriesName.replace(HISTOGRAM_SERIES, "");
  if (base === seriesName) return undefined;
  return METRIC_CATALOGUE.find((m) => m.name === base && m.kind === "histogram");
}

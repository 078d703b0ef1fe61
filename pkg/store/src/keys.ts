/**
 * The Redis keys of the contract, and the bounds that keep each one from growing without limit.
 *
 *   task:<id>           hash: the task as submitted            TTL taskTtlSeconds
 *                       (plus `generation`, bumped by each replay or requeue, and `autoRequeues`, the gateway's own
 *                       requeues of it as stalled)
 *   task_status:<id>    hash: the latest status; also the pub/sub channel of its updates   TTL taskTtlSeconds
 *   task_result:<id>    string: the stored result (JSON)        TTL taskTtlSeconds
 *   task_history:<id>   list: the task's audit events           TTL taskTtlSeconds, at most HISTORY_MAX
 *   task_cancel:<id>    string: set when a cancel was requested TTL taskTtlSeconds
 *   task_logs:<id>      list: the lines its handler logged (ctx.log)   TTL taskTtlSeconds, at most the workers'
 *                       WORKER_TASK_LOG_LINES (task-logs.ts)
 *   idempotency:<key>   string: task id of the first submission, "<id> saved" once its record is; TTL a day (a child task's: its retention)
 *                       (isolated callers, GATEWAY_TASK_ISOLATION=caller: idempotency:caller:<caller>:<key>)
 *   audit_events        list: every audit event, newest first   at most AUDIT_EVENTS_MAX
 *   dead_letter         list: every dead letter, newest first   at most DEAD_LETTER_MAX
 *   task_index          sorted set: task id scored by createdAt (ms), for listing and search
 *                       entries older than taskTtlSeconds are removed on every write (ZREMRANGEBYSCORE), so it
 *                       holds at most the tasks submitted within one task TTL
 *   tasks_unqueued      sorted set: ids of tasks whose tasks.ingest PubAck was not seen yet, scored by createdAt (ms),
 *                       or by the time of the replay for a replayed generation
 *                       an entry is removed once its message is acknowledged, or by the gateway's requeue sweeper
 *                       (which queues or fails it), and entries older than taskTtlSeconds are trimmed on every save
 *   tasks_unfinished    sorted set: ids of unfinished tasks, scored by when their stall clock started (ms): their
 *                       status's last change, or a delayed task's release time (the gateway's stalled-task count)
 *                       the status script adds an entry on each non-terminal status it applies and removes it on a
 *                       terminal one, in the same call; entries of tasks that expired unfinished (older than
 *                       taskTtlSeconds) are trimmed by the gateway's count
 *   tasks_delayed       sorted set: ids of delayed tasks not yet released, scored by the time they are due (ms)
 *                       an entry is moved to tasks_unqueued when due (the gateway's releaser), or removed by a cancel;
 *                       bounded by the gateway's maximum delay (entries due more than taskTtlSeconds ago are trimmed)
 *   schedules           hash: schedule id → the recurring task's schedule (JSON)   one field per schedule (capped)
 *   schedule_next       sorted set: schedule id → when it runs next (ms)           one entry per schedule
 *   schedule_last_run   hash: schedule id → JSON {at, taskId, runs} of its latest run   one field per schedule
 *   schedule_paused     hash: schedule id → JSON {at, by} while it is paused         one field per schedule
 *   requeue_sweep_lease string: the gateway replica running this round of the requeue sweep   TTL one sweep interval
 *   queue_paused        hash: priority → JSON {at, by} for each worker queue an operator paused (at most three fields)
 *   ratelimit:<caller>  hash {tokens, ts}: the gateway's token bucket per authenticated caller (one Lua script)
 *                       TTL burst / rate + 1 s (the time to refill completely; an expired bucket is a full one)
 *   type_rate:<type>    string: the next free start time (ms) of a task type with a fleet-wide start rate
 *                       (the workers' WORKER_TYPE_RATES, one Lua script per start)   TTL until idle again + 1 s
 *   type_slots:<type>   sorted set: holder → lease end (ms) for each running task of a type with a fleet-wide
 *                       concurrency limit (WORKER_TYPE_GLOBAL_CONCURRENCY)   at most the limit's members (expired ones
 *                       removed on every take); TTL two leases after the last write
 *   type_limits         hash: task type → JSON {globalConcurrency?, rate?, paused?, at, by}, the fleet-wide limits
 *                       operators set at run time (taskctl limits set|pause), read by every worker   at most one field
 *                       per task type
 *   type_backoff:<type> string: the worker that last heard a task type's downstream say "rate limited, wait"
 *                       (RateLimitedError); every worker starts none of the type while it exists   TTL that wait
 *   workers             sorted set: worker id (host:pid) → when it last reported (ms)   ids not reported within
 *                       three report intervals are trimmed on every report, so at most the live workers
 *   worker:<id>         string: the worker's latest report (JSON: its tasks running, buffered, paused queues)
 *                       TTL three report intervals (WORKER_REPORT_INTERVAL_MS)
 *   worker_quiet:<id>   string: JSON {at, by} while an operator keeps the worker from taking new tasks (QuietWorker)
 *                       TTL its report's, renewed by every report; removed when the worker starts or stops
 *   tasks_expiring      sorted set: ids of tasks that SUCCEEDED with a retention shorter than taskTtlSeconds, scored by
 *                       when their records expire (ms); the status script takes due ones out of it and out of
 *                       task_index, two for each task it shortens, so it holds about the tasks within that retention
 *   concurrency_running:<key>  sorted set: the tasks of a concurrency key in the pipeline (released, not finished) →
 *                       when each was released or last found unfinished (ms)   at most the key's limit; TTL
 *                       taskTtlSeconds from the last write
 *   concurrency_waiting:<key>  sorted set: the tasks of a concurrency key waiting PENDING for a place, by priority,
 *                       then in the order they came to wait → the priority's band plus createdAt (ms), or just after
 *                       the one before in the band when that is not earlier
 *   tasks_concurrency_waiting  sorted set: every concurrency key's waiting tasks, scored alike   trimmed of entries
 *                       older than taskTtlSeconds on every entry
 *   fairness_running:<type>  sorted set: the type's tasks with a fairness key in the pipeline → when each was released
 *                       or last found unfinished (ms)   at most the type's window; TTL taskTtlSeconds from the last write
 *   fairness_waiting:<type>:<key>  sorted set: a fairness key's tasks waiting PENDING for a place in their type's
 *                       window, by priority, then in the order they came   TTL taskTtlSeconds from the last write
 *   fairness_keys:<type>  sorted set: the type's fairness keys with tasks waiting → the virtual start of their next
 *                       task   at most the keys waiting; TTL taskTtlSeconds from the last write
 *   fairness_clock:<type>, fairness_tag:<type>:<key>  strings: the type's virtual clock, a key's earliest next start
 *                       TTL taskTtlSeconds (the clock), an hour (a tag) from the last write (fairness.ts)
 *   fairness_types      set: the task types whose tasks took a fairness window   at most the deployment's types
 *   tasks_fairness_waiting  sorted set: every type's tasks waiting for a fairness window   trimmed of entries older
 *                       than taskTtlSeconds on every entry
 *   tasks_delayed_due   pub/sub channel: a task the status script made due now (the gateways' releasers run a round)
 *                       a submitted backlog's size; TTL taskTtlSeconds from the last write (concurrency-keys.ts)
 *   task_handbacks:<id> hash: generation → deliveries of the task a worker handed back unstarted (stopping, quiet),
 *                       which are not attempts (hand-backs.ts)   TTL taskTtlSeconds from the last hand-back
 */
export const Keys = {
  task: (id: string) => `task:${id}`,
  status: (id: string) => `task_status:${id}`,
  /** The pub/sub channel has the same name as the status hash (the contract). */
  statusChannel: (id: string) => `task_status:${id}`,
  result: (id: string) => `task_result:${id}`,
  history: (id: string) => `task_history:${id}`,
  cancel: (id: string) => `task_cancel:${id}`,
  logs: (id: string) => `task_logs:${id}`,
  idempotency: (key: string) => `idempotency:${key}`,
  auditEvents: "audit_events",
  deadLetter: "dead_letter",
  taskIndex: "task_index",
  unqueued: "tasks_unqueued",
  delayed: "tasks_delayed",
  unfinished: "tasks_unfinished",
  schedules: "schedules",
  scheduleNext: "schedule_next",
  scheduleLastRun: "schedule_last_run",
  schedulePaused: "schedule_paused",
  requeueSweepLease: "requeue_sweep_lease",
  queuePaused: "queue_paused",
  rateLimit: (caller: string) => `ratelimit:${caller}`,
  typeRate: (type: string) => `type_rate:${type}`,
  typeSlots: (type: string) => `type_slots:${type}`,
  typeLimits: "type_limits",
  typeBackoff: (type: string) => `type_backoff:${type}`,
  workers: "workers",
  worker: (id: string) => `worker:${id}`,
  workerQuiet: (id: string) => `worker_quiet:${id}`,
  handBacks: (id: string) => `task_handbacks:${id}`,
  /** Tasks waiting for this one (SubmitTaskRequest.depends_on): task id → its release time (ms, 0 for none). */
  dependents: (id: string) => `task_dependents:${id}`,
  dependentIds: (id: string) => `task_dependent_ids:${id}`,
  /** The child tasks a task's handler submitted (SubmitTaskRequest.parent_task_id) → when each was created (ms). */
  children: (id: string) => `task_children:${id}`,
  /** Tasks waiting for dependencies: task id → how many have not SUCCEEDED yet. */
  waiting: "tasks_waiting",
  /** Tasks whose dependency ended FAILED or CANCELLED, for the gateway to cancel: "<task> <dependency> <state>" → when (ms). */
  dependencyFailed: "tasks_dependency_failed",
  /** Tasks kept a shorter time once they SUCCEEDED (succeeded retention) → when their records expire (ms): their
   *  task_index entries are taken out then (the status script, as it shortens others). */
  expiring: "tasks_expiring",
  /** A concurrency key's tasks in the pipeline → when each was released or last checked (ms) (concurrency-keys.ts). */
  concurrencyRunning: (key: string) => `concurrency_running:${key}`,
  /** Pub/sub channel: tasks were made due in tasks_delayed by the status script; the gateways' releasers run a round. */
  delayedDueChannel: "tasks_delayed_due",
  /** Every concurrency key's waiting tasks (their count: operators' view). */
  concurrencyWaitingAll: "tasks_concurrency_waiting",
  /** A concurrency key's tasks waiting PENDING for a place, in the order they came to wait. */
  concurrencyWaiting: (key: string) => `concurrency_waiting:${key}`,
  /** A task type's tasks with a fairness key in the pipeline → when each was released or last checked (ms) (fairness.ts). */
  fairnessRunning: (type: string) => `fairness_running:${type}`,
  /** A fairness key's tasks waiting PENDING for a place in their type's window, in the order they came. */
  fairnessWaiting: (type: string, key: string) => `fairness_waiting:${type}:${key}`,
  /** A type's fairness keys with tasks waiting → the virtual start of their next task (lowest served next). */
  fairnessKeys: (type: string) => `fairness_keys:${type}`,
  /** A type's virtual clock: the start of the last task let in. */
  fairnessClock: (type: string) => `fairness_clock:${type}`,
  /** Every type's tasks waiting for a fairness window (their count: operators' view). */
  fairnessWaitingAll: "tasks_fairness_waiting",
  /** The task types whose tasks took a fairness window (GetQueueStats's fairness_queues). */
  fairnessTypes: "fairness_types",
} as const;

export const Bounds = {
  taskTtlSeconds: 7 * 24 * 3600,
  idempotencyTtlSeconds: 24 * 3600,
  historyMax: 200,
  auditEventsMax: 100_000,
  deadLetterMax: 100_000,
} as const;

/**
 * Tables for the operator commands (stats, ls, history, dlq, workers, concurrency, fairness): aligned columns, long
 * cells cut with "…", times relative to `now`. Pure, so the exact output is unit-tested.
 */
import { durationMs, type Timestamp, timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type AuditEntry,
  CancelResult,
  type CancelTaskOutcome,
  type DeadLetterEntry,
  type DiscardOutcome,
  DiscardResult,
  type GetConcurrencyKeyResponse,
  type GetFairnessQueueResponse,
  type GetQueueStatsResponse,
  ownTaskTypesText,
  type PausedQueue,
  Priority,
  type RedisStats,
  type ReplayOutcome,
  ReplayResult,
  type RequeueOutcome,
  RequeueResult,
  type Schedule,
  ScheduleOverlap,
  type Task,
  TaskState,
  type WorkerInfo,
} from "@tm/proto";
import { displayedProgress, stateName } from "./render.js";

export interface Column {
  header: string;
  /** Cells longer than this are cut with "…". */
  max?: number;
  align?: "left" | "right";
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, Math.max(0, max - 1))}…` : text;
}

/** Aligned columns separated by two spaces; trailing spaces trimmed. */
export function table(columns: Column[], rows: string[][]): string {
  const cells = rows.map((row) => row.map((cell, i) => truncate(cell.replace(/\s+/g, " "), columns[i]?.max ?? 80)));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (columns[i]?.align === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join("\n");
}

/** "just now", "42s ago", "5m ago", "3h ago", "2d ago" ("in 5m" for a clock ahead of ours). */
export function relativeTime(ms: number, now: number): string {
  const delta = now - ms;
  const abs = Math.abs(delta);
  if (abs < 1000) return "just now";
  const [value, unit] =
    abs < 60_000
      ? [Math.floor(abs / 1000), "s"]
      : abs < 3_600_000
        ? [Math.floor(abs / 60_000), "m"]
        : abs < 86_400_000
          ? [Math.floor(abs / 3_600_000), "h"]
          : [Math.floor(abs / 86_400_000), "d"];
  return delta >= 0 ? `${value}${unit} ago` : `in ${value}${unit}`;
}

export function formatAge(ms: number): string {
  if (ms <= 0) return "-";
  return relativeTime(0, ms).replace(" ago", "");
}

function when(timestamp: Timestamp | undefined, now: number): string {
  return timestamp ? relativeTime(timestampMs(timestamp), now) : "-";
}

export function priorityName(priority: Priority): string {
  return (Priority[priority] ?? String(priority)).toLowerCase();
}

export function renderStats(stats: GetQueueStatsResponse): string {
  const consumers = table(
    [
      { header: "CONSUMER", max: 40 },
      { header: "SUBJECT", max: 24 },
      { header: "PENDING", align: "right" },
      { header: "IN FLIGHT", align: "right" },
      { header: "REDELIVERED", align: "right" },
      { header: "WAITING", align: "right" },
      { header: "OLDEST", align: "right" },
      { header: "LIMIT", align: "right" },
      { header: "RATE/S", align: "right" },
    ],
    stats.consumers.map((c) => [
      c.name,
      c.subject || "-", // a consumer of a whole stream (the deadletter service's on ADVISORIES)
      String(c.pending),
      String(c.ackPending),
      String(c.redelivered),
      String(c.waiting),
      formatAge(Number(c.oldestUnackedAgeMs)),
      // Share of the stream's limits the backlog spans: at 100 % its oldest messages are being discarded.
      `${Math.round(c.backlogLimitRatio * 100)}%`,
      c.processedPerSecond.toFixed(1),
    ]),
  );
  const states = stats.tasksByState.map((s) => `${stateName(s.state).toLowerCase()} ${s.count}`).join(", ") || "none";
  const counted = stats.tasksByStateTruncated ? ` (newest ${stats.tasksCounted} tasks)` : "";
  // Submissions saved but not yet in the TASKS stream: a few in flight is normal, overdue ones await the sweeper.
  const overdue = stats.unqueuedOverdue > 0n ? ` (${stats.unqueuedOverdue} overdue: the requeue sweeper's)` : "";
  // Delayed tasks waiting for their time; overdue ones mean no gateway is releasing them.
  const delayedOverdue =
    stats.delayedOverdue > 0n ? ` (${stats.delayedOverdue} overdue by over a minute: is any gateway running?)` : "";
  return [
    consumers,
    "",
    // The answering gateway refuses new submissions (load shedding): the first thing to see.
    ...(stats.shedding ? [`WARNING: submissions refused: ${stats.shedding}`, ""] : []),
    `dead letters  ${stats.deadLetters}`,
    `unqueued submissions  ${stats.unqueuedSubmissions}${overdue}`,
    `delayed tasks  ${stats.delayedTasks}${delayedOverdue}`,
    ...(stats.waitingTasks > 0n ? [`waiting tasks  ${stats.waitingTasks} (for their dependencies)`] : []),
    ...(stats.concurrencyWaitingTasks > 0n
      ? [`waiting tasks  ${stats.concurrencyWaitingTasks} (for a place under their concurrency key)`]
      : []),
    ...(stats.fairnessWaitingTasks > 0n
      ? [`waiting tasks  ${stats.fairnessWaitingTasks} (for their fairness key's turn in their type's window)`]
      : []),
    // Where to look next: each type's window (taskctl fairness <type> lists its keys).
    ...stats.fairnessQueues.map(
      (queue) =>
        `fairness       ${queue.taskType}: ${queue.runningTotal} of ${queue.window} places taken, ` +
        `${queue.keysTotal === 0 ? "no key" : `${queue.keysTotal} key${queue.keysTotal === 1 ? "" : "s"}`} waiting`,
    ),
    `stalled tasks  ${renderStalled(stats)}`,
    ...stats.unconsumedQueues.map(renderUnconsumed),
    `tasks${counted}  ${states}`,
    ...(stats.pausedQueues.length > 0 ? [`paused queues  ${renderPausedQueues(stats.pausedQueues, Date.now())}`] : []),
    ...(stats.redis ? [`redis  ${renderRedisStats(stats.redis)}`] : []),
  ].join("\n");
}

/** A queue no consumer reads: its tasks wait for the first consumer (a worker pool's first worker, say). */
export function renderUnconsumed(queue: GetQueueStatsResponse["unconsumedQueues"][number]): string {
  const oldest = queue.oldestAgeMs > 0n ? `, oldest ${formatAge(Number(queue.oldestAgeMs))}` : "";
  return (
    `unconsumed queue  ${queue.subject}: ${queue.messages} messages${oldest}, no consumer reads it ` +
    "(no worker of its pool or no stage for it has started; they wait for the first)"
  );
}

/**
 * "0", or "3 (unchanged for 10m with nothing older queued: their messages are lost; ...)": tasks only a requeue
 * moves on (the gateway's GATEWAY_STALLED_AFTER_SECONDS), which `ls --stalled` lists.
 */
export function renderStalled(
  stats: Pick<GetQueueStatsResponse, "stalledTasks" | "stalledTasksExaminedAll" | "stalledAfterSeconds">,
): string {
  if (stats.stalledTasks === 0n) return "0";
  const after = formatAge(stats.stalledAfterSeconds * 1000);
  const count = `${stats.stalledTasks}${stats.stalledTasksExaminedAll ? "" : "+"}`;
  return (
    `${count} (unchanged for ${after} with nothing older in their queues: their messages are lost; ` +
    "taskctl ls --stalled lists them, taskctl requeue --all-stalled sends them through)"
  );
}

/** "512 MB of 700 MB (73 %), noeviction, 1 replica online", with a warning where writes or records are at risk. */
export function renderRedisStats(redis: RedisStats): string {
  const mb = (bytes: bigint) => `${Math.round(Number(bytes) / 1_048_576)} MB`;
  const share = redis.maxMemoryBytes > 0n ? Number(redis.usedMemoryBytes) / Number(redis.maxMemoryBytes) : 0;
  const memory =
    redis.maxMemoryBytes > 0n
      ? `${mb(redis.usedMemoryBytes)} of ${mb(redis.maxMemoryBytes)} (${Math.round(share * 100)} %)`
      : `${mb(redis.usedMemoryBytes)}, no maxmemory`;
  const replicas = `${redis.replicasOnline} replica${redis.replicasOnline === 1 ? "" : "s"} online`;
  const warnings = [
    ...(share >= 0.8 ? ["near maxmemory: writes are refused at it"] : []),
    ...(redis.maxMemoryPolicy && redis.maxMemoryPolicy !== "noeviction"
      ? [`${redis.maxMemoryPolicy} may delete task records: use noeviction`]
      : []),
  ];
  return [memory, redis.maxMemoryPolicy || "policy unknown", replicas, ...warnings.map((w) => `WARNING ${w}`)].join(
    ", ",
  );
}

/** "high (since 2m ago, by ops), low (since 1h ago)", or "none". */
export function renderPausedQueues(paused: PausedQueue[], now: number): string {
  if (paused.length === 0) return "none";
  return paused
    .map((queue) => {
      const name = priorityName(queue.priority);
      const since = queue.pausedAt ? `since ${when(queue.pausedAt, now)}` : "";
      const details = [since, queue.pausedBy ? `by ${queue.pausedBy}` : ""].filter(Boolean).join(", ");
      return details ? `${name} (${details})` : name;
    })
    .join(", ");
}

export function renderTasks(tasks: Task[], now: number): string {
  if (tasks.length === 0) return "no tasks match";
  return table(
    [
      { header: "ID", max: 36 },
      { header: "TYPE", max: 12 },
      { header: "PRIORITY" },
      { header: "STATE" },
      { header: "ATTEMPT", align: "right" },
      { header: "PROGRESS", max: 32 },
      { header: "CREATED" },
      { header: "ERROR", max: 48 },
    ],
    tasks.map((task) => [
      task.taskId,
      task.type,
      priorityName(task.priority),
      task.status ? stateName(task.status.state) : "unknown",
      String(task.status?.attempt ?? 0),
      progressCell(task.status),
      when(task.createdAt, now),
      task.status?.error ?? "",
    ]),
  );
}

/** How far a task got, with its handler's last message (a failed one: where its last attempt got to); empty for a
 *  task that reported nothing. */
function progressCell(status: Task["status"]): string {
  if (!status) return "";
  const percent = displayedProgress(status);
  if (percent === 0 && !status.progressMessage) return "";
  return status.progressMessage ? `${percent}% ${status.progressMessage}` : `${percent}%`;
}

export function renderHistory(events: AuditEntry[], now: number): string {
  if (events.length === 0) return "no events recorded";
  return table(
    [
      { header: "WHEN" },
      { header: "AT" },
      { header: "SERVICE", max: 14 },
      { header: "ACTION", max: 28 },
      { header: "DETAIL", max: 80 },
    ],
    events.map((event) => [
      when(event.at, now),
      event.at ? new Date(timestampMs(event.at)).toISOString() : "-",
      event.service,
      event.action,
      event.detail ? JSON.stringify(event.detail) : "",
    ]),
  );
}

export function renderDeadLetters(letters: DeadLetterEntry[], now: number): string {
  if (letters.length === 0) return "no dead letters";
  return table(
    [
      { header: "ID", max: 24 },
      { header: "TASK", max: 36 },
      { header: "SUBJECT", max: 20 },
      { header: "REASON" },
      { header: "ATTEMPTS", align: "right" },
      { header: "WHEN" },
      { header: "ERROR", max: 60 },
    ],
    letters.map((letter) => [
      letter.id,
      letter.taskId || "-",
      letter.subject,
      letter.reason,
      String(letter.attempts),
      when(letter.at, now),
      letter.error,
    ]),
  );
}

export function replayResultName(result: ReplayResult): string {
  return (ReplayResult[result] ?? String(result)).toLowerCase();
}

export function renderReplay(outcomes: ReplayOutcome[], more: boolean): string {
  if (outcomes.length === 0) return "no dead letters to replay";
  const rows = table(
    [{ header: "ID", max: 24 }, { header: "TASK", max: 36 }, { header: "RESULT" }, { header: "DETAIL", max: 80 }],
    outcomes.map((o) => [
      o.id,
      o.taskId || "-",
      replayResultName(o.result),
      o.result === ReplayResult.REPLAYED ? `${generationDetail(o)}${revivedDetail(o.revivedDependents)}` : o.reason,
    ]),
  );
  return more ? `${rows}\nmore dead letters match: run the command again` : rows;
}

/** The tasks a replay revived (those its failure had cancelled), when it revived any. */
function revivedDetail(revived: readonly string[]): string {
  if (revived.length === 0) return "";
  return `; revived ${revived.length} task${revived.length === 1 ? "" : "s"} it had cancelled: ${revived.join(", ")}`;
}

export function renderDiscard(outcomes: DiscardOutcome[], more: boolean): string {
  if (outcomes.length === 0) return "no dead letters to discard";
  const rows = table(
    [{ header: "ID", max: 24 }, { header: "TASK", max: 36 }, { header: "RESULT" }, { header: "DETAIL", max: 80 }],
    outcomes.map((o) => [o.id, o.taskId || "-", (DiscardResult[o.result] ?? String(o.result)).toLowerCase(), o.reason]),
  );
  return more ? `${rows}\nmore dead letters match: run the command again` : rows;
}

export function renderRequeue(outcomes: RequeueOutcome[]): string {
  return table(
    [{ header: "TASK", max: 36 }, { header: "WAS" }, { header: "RESULT" }, { header: "DETAIL", max: 100 }],
    outcomes.map((o) => [
      o.taskId,
      o.previousState === TaskState.UNSPECIFIED ? "-" : stateName(o.previousState).toLowerCase(),
      (RequeueResult[o.result] ?? String(o.result)).toLowerCase(),
      o.result === RequeueResult.REQUEUED ? generationDetail(o) : o.reason,
    ]),
  );
}

/** `taskctl requeue --all-stalled`: one row per task handled, then the count (and, cut short by an outage, that it was). */
export function renderRequeuedStalled(outcomes: RequeueOutcome[], stopped: boolean): string {
  if (outcomes.length === 0) return "no stalled task (none whose message is lost: taskctl stats counts them)";
  const done = outcomes.filter((o) => o.result === RequeueResult.REQUEUED).length;
  return `${renderRequeue(outcomes)}\n${done} requeued${stopped ? "; stopped by an outage: run the command again for the rest" : ""}`;
}

/** `taskctl cancel --all`: one row per task handled, then the count (and, cut short by an outage, that it was). */
export function renderCancelled(outcomes: CancelTaskOutcome[], stopped: boolean, dryRun = false): string {
  if (outcomes.length === 0) return "no unfinished task matches";
  const rows = table(
    [{ header: "TASK", max: 36 }, { header: "WAS" }, { header: "RESULT" }, { header: "DETAIL", max: 100 }],
    outcomes.map((o) => [
      o.taskId,
      o.previousState === TaskState.UNSPECIFIED ? "-" : stateName(o.previousState).toLowerCase(),
      (CancelResult[o.result] ?? String(o.result)).toLowerCase(),
      o.reason,
    ]),
  );
  const done = outcomes.filter(
    (o) => o.result === (dryRun ? CancelResult.WOULD_CANCEL : CancelResult.CANCELLED),
  ).length;
  const summary = dryRun ? `${done} would be cancelled (dry run: nothing was cancelled)` : `${done} cancelled`;
  return `${rows}\n${summary}${stopped ? "; stopped by an outage: run the command again for the rest" : ""}`;
}

/** A replayed or requeued item's detail: its generation, and whether the requeue sweeper still has to queue it. */
function generationDetail(o: { generation: number; queuePending: boolean; reason: string }): string {
  return o.queuePending
    ? `generation ${o.generation}, queued by the requeue sweeper once NATS answers (${o.reason})`
    : `generation ${o.generation}`;
}

/** `taskctl schedule ls`: one row per schedule. */
export function renderSchedules(schedules: Schedule[], now: number): string {
  if (schedules.length === 0) return "no schedules";
  return table(
    [
      { header: "ID", max: 64 },
      { header: "CRON" },
      { header: "TZ" },
      { header: "TASK", max: 96 },
      { header: "NEXT" },
      { header: "LAST" },
      { header: "LAST TASK", max: 36 },
      { header: "BY" },
    ],
    schedules.map((schedule) => [
      schedule.id,
      schedule.cron,
      schedule.timezone || "UTC",
      // A schedule that skips runs while its previous task runs, or runs later than its deadline, says so.
      `${schedule.task?.type ?? "?"} ${priorityName(schedule.task?.priority ?? Priority.MEDIUM)}` +
        scheduleNotes(schedule, now),
      schedule.paused
        ? "paused"
        : schedule.nextRunAt
          ? relativeTime(timestampMs(schedule.nextRunAt), now)
          : schedule.ended
            ? "ended"
            : "never",
      schedule.lastRunAt ? relativeTime(timestampMs(schedule.lastRunAt), now) : "-",
      schedule.lastTaskId || "-",
      schedule.createdBy || "-",
    ]),
  );
}

/** A schedule's start or end, to the minute: "2027-01-31T12:00Z". */
function minuteOf(timestamp: Timestamp): string {
  return `${timestampDate(timestamp).toISOString().slice(0, 16)}Z`;
}

/** " (skips overlaps, deadline 10m, 2 of 5 runs, until …)": what a schedule skips or is limited to, if anything. */
function scheduleNotes(schedule: Schedule, now: number): string {
  const notes = [
    ...(schedule.overlap === ScheduleOverlap.SKIP ? ["skips overlaps"] : []),
    ...(schedule.startingDeadline ? [`deadline ${formatAge(durationMs(schedule.startingDeadline))}`] : []),
    ...(schedule.maxRuns > 0 ? [`${schedule.runs} of ${schedule.maxRuns} runs`] : []),
    ...(schedule.startAt && timestampMs(schedule.startAt) > now ? [`from ${minuteOf(schedule.startAt)}`] : []),
    ...(schedule.endAt ? [`until ${minuteOf(schedule.endAt)}`] : []),
  ];
  return notes.length > 0 ? ` (${notes.join(", ")})` : "";
}

/**
 * `taskctl concurrency <key>`: the key's counts on one line, then the ids of its tasks in the pipeline and of those
 * waiting in the order they get a place (the gateway lists the first 100 of each; "… and N more" for the rest):
 *   concurrency key tenant-7: 2 in the pipeline, 13 waiting (the next is admitted under a limit of 2)
 *   running  <id> <id>
 *   waiting  <id> <id> … and 11 more
 */
export function renderConcurrencyKey(key: string, view: GetConcurrencyKeyResponse, owner?: string): string {
  const name = `concurrency key ${key}${owner ? ` (owner ${owner})` : ""}`;
  if (view.runningTotal === 0 && view.waitingTotal === 0) {
    return `${name}: no task in the pipeline, none waiting`;
  }
  const waiting =
    view.waitingTotal === 0
      ? "none waiting"
      : `${view.waitingTotal} waiting${view.nextLimit > 0 ? ` (the next is admitted under a limit of ${view.nextLimit})` : ""}`;
  return [
    `${name}: ${view.runningTotal} in the pipeline, ${waiting}`,
    ...(view.runningTotal > 0 ? [`running  ${idsAndMore(view.running, view.runningTotal)}`] : []),
    ...(view.waitingTotal > 0 ? [`waiting  ${idsAndMore(view.waiting, view.waitingTotal)}`] : []),
  ].join("\n");
}

/**
 * `taskctl fairness <type>`: the type's window on one line, the ids of the tasks in it, then the keys with tasks
 * waiting in the order they are served (the gateway lists the first 100 of each; "… and N more" for the rest):
 *   fairness window of sleep: 2 of 32 places taken, 3 keys waiting
 *   running  <id> <id>
 *
 *   KEY       WAITING  NEXT START  WEIGHT
 *   tenant-b        1           4
 *   tenant-a      120         4.5
 *   …
 *   the first key is served next; each task let in moves its key's next start on by 1 / its weight (clock 4)
 */
export function renderFairnessQueue(taskType: string, view: GetFairnessQueueResponse): string {
  const summary =
    `fairness window of ${taskType}: ${view.runningTotal} of ${view.window} places taken, ` +
    (view.keysTotal === 0 ? "no key waiting" : `${view.keysTotal} key${view.keysTotal === 1 ? "" : "s"} waiting`);
  const running = view.runningTotal > 0 ? [`running  ${idsAndMore(view.running, view.runningTotal)}`] : [];
  if (view.keysTotal === 0) return [summary, ...running].join("\n");
  const keys = table(
    // A key is shown whole (with GATEWAY_TASK_ISOLATION=caller, "caller:<submitter>:<key>"): it is what to look for.
    [
      { header: "KEY", max: 256 },
      { header: "WAITING", align: "right" },
      { header: "NEXT START", align: "right" },
      // The next task's (each carries its own): how far its turn moves the key's next start on.
      { header: "WEIGHT", align: "right" },
    ],
    view.keys.map((key) => [
      key.key,
      String(key.waitingTotal),
      virtualTime(key.nextStart),
      key.nextWeight > 0 ? String(key.nextWeight) : "—",
    ]),
  );
  const more = view.keysTotal - view.keys.length;
  return [
    summary,
    ...running,
    "",
    keys,
    ...(more > 0 ? [`… and ${more} more key${more === 1 ? "" : "s"}`] : []),
    // The numbers mean little alone: what orders them, and where the type's virtual clock is.
    `the first key is served next; each task let in moves its key's next start on by 1 / its weight ` +
      `(clock ${virtualTime(view.clock)})`,
  ].join("\n");
}

/** A fairness queue's virtual time (a count of turns, fractions for weights above 1), to three decimals at most. */
function virtualTime(value: number): string {
  return String(Number(value.toFixed(3)));
}

/** "a b c", or "a b c … and 7 more" when `total` exceeds the ids listed. */
function idsAndMore(ids: readonly string[], total: number): string {
  const more = total - ids.length;
  return [...ids, ...(more > 0 ? [`… and ${more} more`] : [])].join(" ");
}

/** How long a task has run: "<1s", "42s", "5m", "3h". */
function ranFor(ms: number): string {
  return ms < 1_000 ? "<1s" : formatAge(ms);
}

/** `taskctl workers`: one row per live worker, then one per task running (longest running first). */
/** "taking tasks", "quiet by ops", or on the way: "quieting" (asked, not applied yet) / "resuming". */
export function workerState(worker: Pick<WorkerInfo, "quiet" | "quietRequested">): string {
  const by = worker.quietRequested?.by ? ` by ${worker.quietRequested.by}` : "";
  if (worker.quietRequested) return worker.quiet ? `quiet${by}` : `quieting${by}`;
  return worker.quiet ? "resuming" : "taking tasks";
}

export function renderWorkers(workers: WorkerInfo[], now: number): string {
  if (workers.length === 0) return "no live workers (none reported within the last three report intervals)";
  // The deployment's own task types, only where some worker runs any (a rollout shows which have a new one yet).
  const ownTypes = workers.some((worker) => worker.ownTaskTypes.length > 0);
  // The pool each serves (WORKER_POOL), only where some worker serves one.
  const pools = workers.some((worker) => worker.pool !== "");
  const workerTable = table(
    [
      { header: "WORKER", max: 60 },
      { header: "STARTED" },
      { header: "SEEN" },
      { header: "RUNNING", align: "right" },
      { header: "QUEUED", align: "right" },
      { header: "PAUSED" },
      { header: "STATE" },
      ...(pools ? [{ header: "POOL", max: 32 }] : []),
      ...(ownTypes ? [{ header: "OWN TYPES", max: 60 }] : []),
    ],
    workers.map((worker) => [
      worker.id,
      when(worker.startedAt, now),
      when(worker.seenAt, now),
      `${worker.runningCount}/${worker.concurrency}${worker.abandoned ? ` +${worker.abandoned} abandoned` : ""}`,
      String(worker.queued),
      worker.pausedQueues.map(priorityName).join(",") || "-",
      workerState(worker),
      ...(pools ? [worker.pool || "default"] : []),
      ...(ownTypes ? [ownTaskTypesText(worker, ",") || "-"] : []),
    ]),
  );
  const running = workers
    .flatMap((worker) => worker.running.map((task) => ({ worker: worker.id, task })))
    .sort((a, b) => timestampMs(a.task.startedAt!) - timestampMs(b.task.startedAt!));
  const abandoned = renderAbandoned(workers, now);
  if (running.length === 0) return `${workerTable}\n\nno task running${abandoned}`;
  const taskTable = table(
    [
      { header: "TASK", max: 36 },
      { header: "TYPE", max: 12 },
      { header: "PRIORITY" },
      { header: "ATTEMPT", align: "right" },
      { header: "RUNNING FOR" },
      { header: "WORKER", max: 60 },
    ],
    running.map(({ worker, task }) => [
      task.taskId,
      task.type,
      priorityName(task.priority),
      String(task.attempt),
      task.startedAt ? ranFor(now - timestampMs(task.startedAt)) : "-",
      worker,
    ]),
  );
  const listed = running.length;
  const total = workers.reduce((sum, worker) => sum + worker.runningCount, 0);
  const more = total > listed ? `\n(${total - listed} more running: a worker lists its 100 longest running)` : "";
  return `${workerTable}\n\n${taskTable}${more}${abandoned}`;
}

/** The handlers running on after their attempt ended, longest first (empty when there are none). */
function renderAbandoned(workers: WorkerInfo[], now: number): string {
  const handlers = workers
    .flatMap((worker) => worker.abandonedHandlers.map((handler) => ({ worker: worker.id, handler })))
    .sort((a, b) => timestampMs(a.handler.since!) - timestampMs(b.handler.since!));
  if (handlers.length === 0) return "";
  const abandonedTable = table(
    [
      { header: "TASK", max: 36 },
      { header: "TYPE", max: 12 },
      { header: "ABANDONED FOR" },
      { header: "WORKER", max: 60 },
    ],
    handlers.map(({ worker, handler }) => [
      handler.taskId,
      handler.type,
      handler.since ? ranFor(now - timestampMs(handler.since)) : "-",
      worker,
    ]),
  );
  const listed = handlers.length;
  const total = workers.reduce((sum, worker) => sum + worker.abandoned, 0);
  const more = total > listed ? `\n(${total - listed} more: a worker lists its 20 longest abandoned)` : "";
  return `\n\nabandoned handlers (they ignore their abort signal; a worker restart frees them):\n${abandonedTable}${more}`;
}

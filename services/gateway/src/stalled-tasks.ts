/**
 * Stalled tasks: unfinished tasks that nothing will move on. A task's message can be lost with the stream that held
 * it (a full stream discards its oldest messages, nats-server came back without its store, a stream restored from
 * an older backup); its status then stays where it was, and only a requeue (requeue-stalled.ts) moves it again. This
 * finds them, for the `tm_tasks_stalled` gauge (alert TasksStalled) and GetQueueStats, and requeues them: each gateway
 * replica counts every GATEWAY_STALLED_CHECK_SECONDS (STALLED_SAMPLE_INTERVAL_MS by default) and requeues what it found, at most GATEWAY_STALLED_REQUEUE_LIMIT
 * times per task (then the task stays counted, for an operator: a message lost again and again is a fault to look at,
 * not to loop on). Of replicas that find one task at once, one requeues it (claimRequeue).
 *
 * A task counts when its status has not changed for GATEWAY_STALLED_AFTER_SECONDS (a delayed task's clock starts at
 * its release time; a RUNNING task with its own timeout also waits that timeout and a minute, as its handler may still
 * be running) and its message cannot still be waiting: the queue of its stage (tasks.ingest for PENDING,
 * tasks.schedule for INGESTED, its priority's worker queue, of its type's pool, for SCHEDULED and RUNNING) holds nothing older than its
 * last change. A queue no consumer reads (a worker pool none of whose workers has started yet) keeps its messages for
 * the first consumer: its oldest message counts as waiting, so such a task waits, uncounted and not requeued. A backlog, a paused queue or type, a retry's back-off and a running handler all keep the task's
 * message unacknowledged in that queue, so none of them counts, however long it lasts; a message of the queue
 * stored within QUEUE_CLOCK_MARGIN_MS after the change counts as the task's own (clocks of hosts differ). The
 * status events' queue (events.status, the notifier's) counts as every task's: while it holds events older than a
 * task's last change, that task's status may only lag (the notifier down, say, while the stages went on), so it is
 * not counted, let alone requeued; nor is a task whose result is stored (it finished; its status lags), nor one a
 * live worker reports running (workers list at most 100 running tasks each).
 *
 * The candidates come from tasks_unfinished, longest unmoved first (a range read, not a walk over every task), and
 * at most EXAMINED_MAX of them are read per count: past that, the count is a lower bound (`examinedAll` false).
 */
import { NO_ROUTES, type Priority, Subjects, type TaskRoutes, type TaskState, workerSubject } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  forgetUnfinished,
  type IndexCursor,
  type IndexedTask,
  Keys,
  listWorkers,
  matchesFilter,
  readIndexedTasks,
  resultStored,
  stallClockMs,
  type TaskFilter,
  type TaskPage,
  trimUnfinished,
  unfinishedAfter,
  unfinishedBefore,
} from "@tm/store";
import type { Redis } from "ioredis";
import type { QueueSnapshot, QueueStats } from "./queue-stats.js";
import { requeueStalledTask } from "./requeue-stalled.js";
import { everyInterval } from "./rounds.js";

export const EXAMINED_MAX = 1_000;
export const QUEUE_CLOCK_MARGIN_MS = 60_000;
export const STALLED_SAMPLE_INTERVAL_MS = 15_000;

export interface StalledCount {
  /** Stalled tasks found. */
  stalled: number;
  /** Whether every candidate was examined (else `stalled` is a lower bound). */
  examinedAll: boolean;
  /** The stalled tasks found, longest unmoved first, with how often the gateway requeued each on its own. */
  tasks: StalledTask[];
}

export interface StalledTask {
  taskId: string;
  state: TaskState;
  autoRequeues: number;
}

/** The states a task can stall in: those stageSubjectOf has a queue for. */
export const STALLABLE_STATES = ["PENDING", "INGESTED", "SCHEDULED", "RUNNING"] as const satisfies readonly TaskState[];

/**
 * The subject whose queue holds the message that moves a task on from `state`; undefined for a finished task. `pool`:
 * the worker pool its type is routed to (TASK_ROUTES), if any.
 */
export function stageSubjectOf(state: TaskState, priority: Priority, pool?: string): string | undefined {
  switch (state) {
    case "PENDING":
      return Subjects.ingest;
    case "INGESTED":
      return Subjects.schedule;
    case "SCHEDULED":
    case "RUNNING":
      return workerSubject(priority, pool);
    default:
      return undefined;
  }
}

/**
 * Whether a task unchanged for `unchangedMs` is stalled, given the age of the oldest message its stage's queue still
 * holds unacknowledged (0: none).
 */
export function isStalled(unchangedMs: number, afterMs: number, oldestWaitingAgeMs: number): boolean {
  if (unchangedMs < afterMs) return false;
  return oldestWaitingAgeMs === 0 || unchangedMs > oldestWaitingAgeMs + QUEUE_CLOCK_MARGIN_MS;
}

/**
 * How long a task in `state` must stay unchanged to count: GATEWAY_STALLED_AFTER_SECONDS, or for a RUNNING task with
 * its own timeout longer than that, the timeout and a minute. Its handler may be running still though its message is
 * gone (the stream lost under it), and ends, with a status, within its timeout: requeued before, it would run twice.
 * (The workers' TASK_TIMEOUT_MS is not known here: GATEWAY_STALLED_AFTER_SECONDS must exceed it, docs/OPERATIONS.md.)
 */
export function stallThresholdMs(state: TaskState, afterMs: number, taskTimeoutMs: number | undefined): number {
  if (state !== "RUNNING" || taskTimeoutMs === undefined) return afterMs;
  return Math.max(afterMs, taskTimeoutMs + QUEUE_CLOCK_MARGIN_MS);
}

/**
 * The oldest waiting message's age per subject: the oldest unacknowledged over the consumers reading it (a subject may
 * have several), or, on a subject no consumer reads (a worker pool none of whose workers started yet), its oldest
 * message: it waits for the first consumer, which starts there.
 */
export function oldestWaitingBySubject({
  consumers,
  unconsumed,
}: Pick<QueueSnapshot, "consumers" | "unconsumed">): Map<string, number> {
  const oldest = new Map<string, number>();
  for (const consumer of consumers) {
    oldest.set(consumer.subject, Math.max(oldest.get(consumer.subject) ?? 0, consumer.oldestUnackedAgeMs));
  }
  for (const queue of unconsumed)
    oldest.set(queue.subject, Math.max(oldest.get(queue.subject) ?? 0, queue.oldestAgeMs));
  return oldest;
}

interface Candidate {
  taskId: string;
  state?: string;
  updatedAt?: string;
  type?: string;
  priority?: string;
  runAt?: string;
  timeoutMs?: string;
  autoRequeues?: string;
  generation: number;
  /** A result of its current generation (or a later one) is stored. */
  hasResult: boolean;
}

async function readCandidates(redis: Redis, taskIds: readonly string[]): Promise<Candidate[]> {
  const pipeline = redis.pipeline();
  for (const taskId of taskIds) {
    pipeline.hmget(Keys.status(taskId), "state", "updatedAt");
    pipeline.hmget(Keys.task(taskId), "priority", "runAt", "timeoutMs", "autoRequeues", "generation", "type");
    pipeline.exists(Keys.result(taskId));
  }
  const replies = (await pipeline.exec()) ?? [];
  const candidates = taskIds.map((taskId, i) => {
    const [statusError, status] = replies[3 * i] ?? [];
    const [taskError, task] = replies[3 * i + 1] ?? [];
    const [resultError, hasResult] = replies[3 * i + 2] ?? [];
    if (statusError) throw statusError;
    if (taskError) throw taskError;
    if (resultError) throw resultError;
    const [state, updatedAt] = (status as (string | null)[]) ?? [];
    const [priority, runAt, timeoutMs, autoRequeues, generation, type] = (task as (string | null)[]) ?? [];
    return {
      taskId,
      state: state ?? undefined,
      updatedAt: updatedAt ?? undefined,
      type: type ?? undefined,
      priority: priority ?? undefined,
      runAt: runAt ?? undefined,
      timeoutMs: timeoutMs ?? undefined,
      autoRequeues: autoRequeues ?? undefined,
      generation: Number(generation ?? 0) || 0,
      hasResult: hasResult === 1,
    };
  });
  // A result of an earlier generation (the task requeued or replayed since) does not say this one finished. Rare: read
  // only for a task that has both a result and a later generation (resultStored then reads the result's generation).
  for (const candidate of candidates) {
    if (candidate.hasResult && candidate.generation > 0) {
      candidate.hasResult = await resultStored(redis, candidate.taskId, candidate.generation);
    }
  }
  return candidates;
}

/** GATEWAY_STALLED_AFTER_SECONDS and the task retention, in ms. */
export interface StalledOptions {
  afterMs: number;
  retentionMs: number;
  /** TASK_ROUTES: which worker queue a task of a routed type waits on. */
  routes?: TaskRoutes;
}

/** Whole milliseconds from a stored number field, or undefined (absent, zero or garbled). */
function storedMs(text: string | undefined): number | undefined {
  const value = Number(text);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

/** What the rule needs besides a candidate's own fields: the queues' state, the tasks live workers run, the times. */
interface Judging {
  oldestWaiting: Map<string, number>;
  routes: TaskRoutes;
  runningInWorkers: Set<string>;
  afterMs: number;
  nowMs: number;
}

/** Reads what the rule needs (the consumers, and the live workers' reports: a ZRANGE and an MGET). */
async function judging(
  redis: Redis,
  queues: () => Promise<QueueSnapshot>,
  afterMs: number,
  nowMs: number,
  routes: TaskRoutes = NO_ROUTES,
): Promise<Judging> {
  const [snapshot, workers] = await Promise.all([queues(), listWorkers(redis)]);
  const runningInWorkers = new Set(workers.flatMap((worker) => worker.running.map((task) => task.taskId)));
  return { oldestWaiting: oldestWaitingBySubject(snapshot), runningInWorkers, afterMs, nowMs, routes };
}

/** Whether a candidate is stalled by the rule above, or `gone` (expired, or finished without the status script). */
function judge(candidate: Candidate, rule: Judging): "stalled" | "gone" | "moving" {
  const { oldestWaiting, afterMs, nowMs } = rule;
  const { state, updatedAt, priority } = candidate;
  if (!state || !updatedAt || !priority) return "gone"; // expired between the index and its records
  const pool = candidate.type === undefined ? undefined : rule.routes.poolOf(candidate.type);
  const subject = stageSubjectOf(state as TaskState, priority as Priority, pool);
  if (!subject) return "gone";
  // Its result is stored: it finished, and its status lags (its last events not applied yet, or lost).
  if (candidate.hasResult) return "moving";
  // A live worker says it runs it (its report, every 5 s): whatever the clocks say, it is not lost. This, not the
  // times, is what keeps a running handler from being requeued when a host's clock is off by more than the margin.
  if (rule.runningInWorkers.has(candidate.taskId)) return "moving";
  // A delayed task still PENDING waits by design until its release time.
  const clockMs = stallClockMs(state, updatedAt, candidate.runAt);
  if (!Number.isFinite(clockMs)) return "moving";
  const thresholdMs = stallThresholdMs(state as TaskState, afterMs, storedMs(candidate.timeoutMs));
  // Status events not applied yet (the notifier behind or down) may be any task's: a status can be that stale.
  const waitingMs = Math.max(oldestWaiting.get(subject) ?? 0, oldestWaiting.get(Subjects.status) ?? 0);
  return isStalled(nowMs - clockMs, thresholdMs, waitingMs) ? "stalled" : "moving";
}

/**
 * Counts the stalled tasks now, against the consumers' state (QueueStats.read), which is asked for only when some task
 * is a candidate: usually none is, and a count is then two Redis commands. Also tidies the index: entries of tasks
 * that expired unfinished (past the retention) or whose records are gone are removed.
 */
export async function countStalledTasks(
  rt: Pick<Runtime, "redis">,
  queues: () => Promise<QueueSnapshot>,
  { afterMs, retentionMs, routes }: StalledOptions,
  nowMs = Date.now(),
): Promise<StalledCount> {
  await trimUnfinished(rt.redis, nowMs - retentionMs);
  const { total, taskIds } = await unfinishedBefore(rt.redis, nowMs - afterMs, EXAMINED_MAX);
  if (total === 0) return { stalled: 0, examinedAll: true, tasks: [] };
  const rule = await judging(rt.redis, queues, afterMs, nowMs, routes);
  const gone: string[] = [];
  const tasks: StalledTask[] = [];
  for (const candidate of await readCandidates(rt.redis, taskIds)) {
    const verdict = judge(candidate, rule);
    if (verdict === "gone") gone.push(candidate.taskId);
    if (verdict !== "stalled") continue;
    tasks.push({
      taskId: candidate.taskId,
      state: candidate.state as TaskState,
      autoRequeues: storedMs(candidate.autoRequeues) ?? 0,
    });
  }
  await forgetUnfinished(rt.redis, gone);
  return { stalled: tasks.length, examinedAll: total <= taskIds.length, tasks };
}

/** Candidates read per round trip while listing. */
const LIST_BATCH = 200;

/**
 * ListTasks with `stalled`: the tasks countStalledTasks counts, longest unmoved first, that also match `filter`, from
 * `cursor` (exclusive; a clock and task id of tasks_unfinished) on. One call examines at most EXAMINED_MAX candidates;
 * `next` is set when more may follow. Read only (the count tidies the index).
 */
export async function listStalledTasks(
  rt: Pick<Runtime, "redis">,
  queues: () => Promise<QueueSnapshot>,
  { afterMs, routes }: Pick<StalledOptions, "afterMs" | "routes">,
  page: { filter: TaskFilter; pageSize: number; cursor?: IndexCursor | undefined },
  nowMs = Date.now(),
): Promise<TaskPage> {
  const tasks: IndexedTask[] = [];
  let rule: Judging | undefined;
  let cursor = page.cursor;
  let examined = 0;
  while (examined < EXAMINED_MAX) {
    const limit = Math.min(LIST_BATCH, EXAMINED_MAX - examined);
    const entries = await unfinishedAfter(rt.redis, nowMs - afterMs, cursor, limit);
    if (entries.length === 0) return { tasks };
    rule ??= await judging(rt.redis, queues, afterMs, nowMs, routes);
    const verdicts = (
      await readCandidates(
        rt.redis,
        entries.map((entry) => entry.taskId),
      )
    ).map((candidate) => judge(candidate, rule!) === "stalled");
    const stalledIds = entries.filter((_, i) => verdicts[i]).map((entry) => entry.taskId);
    const records = new Map<string, IndexedTask | undefined>(
      (await readIndexedTasks(rt.redis, stalledIds)).map((record, i) => [stalledIds[i]!, record]),
    );
    for (const [i, entry] of entries.entries()) {
      examined++;
      cursor = entry;
      const record = records.get(entry.taskId);
      if (record && matchesFilter(record, page.filter)) tasks.push(record);
      if (tasks.length === page.pageSize) {
        const exhausted = entries.length < limit && i === entries.length - 1;
        return exhausted ? { tasks } : { tasks, next: entry };
      }
    }
    if (entries.length < limit) return { tasks };
  }
  return cursor ? { tasks, next: cursor } : { tasks };
}

export interface AutoRequeueRound {
  /** Tasks requeued. */
  requeued: number;
  /** Stalled tasks left alone: requeued GATEWAY_STALLED_REQUEUE_LIMIT times already, or moved meanwhile. */
  skipped: number;
}

/**
 * Requeues the stalled tasks a count found (longest unmoved first, one at a time), each unless the gateway has
 * requeued it `limit` times already. Each is checked again as requeue-stalled.ts checks an operator's (unchanged for
 * `afterMs`, not moved since): a task that moved since the count is left alone. An outage ends the round; the next
 * count finds what is left. `onRequeued` is told each requeue's previous state.
 */
export async function requeueStalledTasks(
  rt: Runtime,
  stalled: readonly StalledTask[],
  { afterMs, limit }: { afterMs: number; limit: number },
  onRequeued: (previousState: TaskState) => void = () => undefined,
): Promise<AutoRequeueRound> {
  const round: AutoRequeueRound = { requeued: 0, skipped: 0 };
  for (const task of stalled) {
    if (task.autoRequeues >= limit) {
      round.skipped += 1;
      continue;
    }
    const outcome = await requeueStalledTask(rt, task.taskId, afterMs, { autoLimit: limit });
    if (outcome.result === "requeued") {
      round.requeued += 1;
      onRequeued(outcome.previousState);
      rt.log.warn(
        { taskId: task.taskId, generation: outcome.generation, previousState: outcome.previousState, automatic: true },
        "requeued a stalled task: its message was lost",
      );
    } else {
      round.skipped += 1;
      rt.log.debug({ taskId: task.taskId, outcome }, "stalled task not requeued");
    }
  }
  return round;
}

export interface StalledGauge {
  /** The latest count (less what its round requeued), or undefined while none succeeded lately. */
  latest(): StalledCount | undefined;
  stop(): Promise<void>;
}

/** StalledOptions, and how often the gateway requeues one task on its own (GATEWAY_STALLED_REQUEUE_LIMIT, 0: never). */
export interface StalledWatchOptions extends StalledOptions {
  requeueLimit: number;
  /** Why the gateway sheds load now (backlog-shedding.ts): its own requeues wait meanwhile, as submissions do (each
   *  adds a message to the stream whose limits are near). */
  shedding?: () => string | undefined;
}

/** One round: counts the stalled tasks and requeues them (unless `requeueLimit` is 0, or the gateway sheds load);
 *  what is left stalled after it. */
export async function stalledRound(
  rt: Runtime,
  queueStats: QueueStats,
  options: StalledWatchOptions,
  onRequeued: (state: TaskState) => void = () => undefined,
): Promise<StalledCount> {
  const found = await countStalledTasks(rt, () => queueStats.read(), options);
  if (options.requeueLimit === 0 || found.tasks.length === 0 || options.shedding?.()) return found;
  const round = await requeueStalledTasks(
    rt,
    found.tasks,
    { afterMs: options.afterMs, limit: options.requeueLimit },
    onRequeued,
  );
  return { ...found, stalled: found.stalled - round.requeued };
}

/**
 * Counts every `intervalMs` (GATEWAY_STALLED_CHECK_SECONDS; one count at a time), requeues what it found (unless `requeueLimit` is 0),
 * and exports `tm_tasks_stalled`: the tasks left stalled after the round, left out while a count fails rather than
 * showing a stale value (every replica exports the same: the alert takes the max); and
 * `tm_tasks_stalled_requeued_total{state}`, the gateway's own requeues by the state each task was stalled in.
 */
export function startStalledGauge(
  rt: Runtime,
  queueStats: QueueStats,
  options: StalledWatchOptions,
  intervalMs = STALLED_SAMPLE_INTERVAL_MS,
): StalledGauge {
  let latest: StalledCount | undefined;
  const requeued = rt.meter.createCounter("tm_tasks_stalled_requeued_total", {
    description:
      "Stalled tasks the gateway requeued on its own (GATEWAY_STALLED_REQUEUE_LIMIT), by the state they were stalled " +
      "in: each is a task whose queued message was lost",
  });
  // Every series from the start at 0, so that increase() sees the first requeue.
  for (const state of STALLABLE_STATES) requeued.add(0, { state });
  const count = async () => {
    try {
      latest = await stalledRound(rt, queueStats, options, (state) => requeued.add(1, { state }));
    } catch (error) {
      latest = undefined;
      throw error;
    }
  };
  void count().catch(() => undefined); // the first count at once: the gauge has a value from the first scrape on
  const rounds = everyInterval(intervalMs, count, (error) =>
    rt.log.debug({ err: error }, "could not count (or requeue) the stalled tasks"),
  );
  rt.meter
    .createObservableGauge("tm_tasks_stalled", {
      description:
        "Unfinished tasks whose status has not changed for GATEWAY_STALLED_AFTER_SECONDS while their stage's queue " +
        "holds nothing older (their message is lost), left after the gateway's own requeues: an operator's to look at",
    })
    .addCallback((result) => {
      if (latest) result.observe(latest.stalled);
    });
  return { latest: () => latest, stop: () => rounds.stop() };
}

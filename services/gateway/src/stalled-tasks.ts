/**
 * Stalled tasks: unfinished tasks that nothing will move on. A task's message can be lost with the stream that held
 * it (a full stream discards its oldest messages, nats-server came back without its store, a stream restored from
 * an older backup); its status then stays where it was, and only an operator's requeue (requeue-stalled.ts) moves
 * it again. This finds them, for the `tm_tasks_stalled` gauge (alert TasksStalled) and GetQueueStats.
 *
 * A task counts when its status has not changed for GATEWAY_STALLED_AFTER_SECONDS (a delayed task's clock starts at
 * its release time) and its message cannot still be waiting: the queue of its stage (tasks.ingest for PENDING,
 * tasks.schedule for INGESTED, its priority's worker queue for SCHEDULED and RUNNING) holds nothing older than its
 * last change. A backlog, a paused queue or type, a retry's back-off and a running handler all keep the task's
 * message unacknowledged in that queue, so none of them counts, however long it lasts; a message of the queue
 * stored within QUEUE_CLOCK_MARGIN_MS after the change counts as the task's own (clocks of hosts differ).
 *
 * The candidates come from tasks_unfinished, longest unmoved first (a range read, not a walk over every task), and
 * at most EXAMINED_MAX of them are read per count: past that, the count is a lower bound (`examinedAll` false).
 */
import { type Priority, Subjects, type TaskState, workerSubject } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { forgetUnfinished, Keys, stallClockMs, trimUnfinished, unfinishedBefore } from "@tm/store";
import type { Redis } from "ioredis";
import type { ConsumerSnapshot, QueueStats } from "./queue-stats.js";
import { everyInterval } from "./rounds.js";

export const EXAMINED_MAX = 1_000;
export const QUEUE_CLOCK_MARGIN_MS = 60_000;
export const STALLED_SAMPLE_INTERVAL_MS = 15_000;

export interface StalledCount {
  /** Stalled tasks found. */
  stalled: number;
  /** Whether every candidate was examined (else `stalled` is a lower bound). */
  examinedAll: boolean;
}

/** The subject whose queue holds the message that moves a task on from `state`; undefined for a finished task. */
export function stageSubjectOf(state: TaskState, priority: Priority): string | undefined {
  switch (state) {
    case "PENDING":
      return Subjects.ingest;
    case "INGESTED":
      return Subjects.schedule;
    case "SCHEDULED":
    case "RUNNING":
      return workerSubject(priority);
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

/** The oldest unacknowledged message's age per subject, over the consumers reading it (a subject may have several). */
export function oldestWaitingBySubject(consumers: readonly ConsumerSnapshot[]): Map<string, number> {
  const oldest = new Map<string, number>();
  for (const consumer of consumers) {
    oldest.set(consumer.subject, Math.max(oldest.get(consumer.subject) ?? 0, consumer.oldestUnackedAgeMs));
  }
  return oldest;
}

interface Candidate {
  taskId: string;
  state?: string;
  updatedAt?: string;
  priority?: string;
  runAt?: string;
}

async function readCandidates(redis: Redis, taskIds: readonly string[]): Promise<Candidate[]> {
  const pipeline = redis.pipeline();
  for (const taskId of taskIds) {
    pipeline.hmget(Keys.status(taskId), "state", "updatedAt");
    pipeline.hmget(Keys.task(taskId), "priority", "runAt");
  }
  const replies = (await pipeline.exec()) ?? [];
  return taskIds.map((taskId, i) => {
    const [statusError, status] = replies[2 * i] ?? [];
    const [taskError, task] = replies[2 * i + 1] ?? [];
    if (statusError) throw statusError;
    if (taskError) throw taskError;
    const [state, updatedAt] = (status as (string | null)[]) ?? [];
    const [priority, runAt] = (task as (string | null)[]) ?? [];
    return {
      taskId,
      state: state ?? undefined,
      updatedAt: updatedAt ?? undefined,
      priority: priority ?? undefined,
      runAt: runAt ?? undefined,
    };
  });
}

/** GATEWAY_STALLED_AFTER_SECONDS and the task retention, in ms. */
export interface StalledOptions {
  afterMs: number;
  retentionMs: number;
}

/**
 * Counts the stalled tasks now, against the consumers' state (QueueStats.read), which is asked for only when some task
 * is a candidate: usually none is, and a count is then two Redis commands. Also tidies the index: entries of tasks
 * that expired unfinished (past the retention) or whose records are gone are removed.
 */
export async function countStalledTasks(
  rt: Pick<Runtime, "redis">,
  consumers: () => Promise<readonly ConsumerSnapshot[]>,
  { afterMs, retentionMs }: StalledOptions,
  nowMs = Date.now(),
): Promise<StalledCount> {
  await trimUnfinished(rt.redis, nowMs - retentionMs);
  const { total, taskIds } = await unfinishedBefore(rt.redis, nowMs - afterMs, EXAMINED_MAX);
  if (total === 0) return { stalled: 0, examinedAll: true };
  const oldestWaiting = oldestWaitingBySubject(await consumers());
  const gone: string[] = [];
  let stalled = 0;
  for (const candidate of await readCandidates(rt.redis, taskIds)) {
    const { state, updatedAt, priority } = candidate;
    if (!state || !updatedAt || !priority) {
      gone.push(candidate.taskId); // expired between the index and its records
      continue;
    }
    const subject = stageSubjectOf(state as TaskState, priority as Priority);
    if (!subject) {
      gone.push(candidate.taskId);
      continue;
    }
    // A delayed task still PENDING waits by design until its release time.
    const clockMs = stallClockMs(state, updatedAt, candidate.runAt);
    if (!Number.isFinite(clockMs)) continue;
    if (isStalled(nowMs - clockMs, afterMs, oldestWaiting.get(subject) ?? 0)) stalled += 1;
  }
  await forgetUnfinished(rt.redis, gone);
  return { stalled, examinedAll: total <= taskIds.length };
}

export interface StalledGauge {
  /** The latest count, or undefined while none succeeded lately. */
  latest(): StalledCount | undefined;
  stop(): Promise<void>;
}

/**
 * Counts every STALLED_SAMPLE_INTERVAL_MS (one count at a time) and exports `tm_tasks_stalled`, left out while a count
 * fails rather than showing a stale value. Every gateway replica exports the same value: the alert takes the max.
 */
export function startStalledGauge(
  rt: Runtime,
  queueStats: QueueStats,
  options: StalledOptions,
  intervalMs = STALLED_SAMPLE_INTERVAL_MS,
): StalledGauge {
  let latest: StalledCount | undefined;
  const count = async () => {
    try {
      latest = await countStalledTasks(rt, () => queueStats.read(), options);
    } catch (error) {
      latest = undefined;
      throw error;
    }
  };
  void count().catch(() => undefined); // the first count at once: the gauge has a value from the first scrape on
  const rounds = everyInterval(intervalMs, count, (error) =>
    rt.log.debug({ err: error }, "could not count the stalled tasks"),
  );
  rt.meter
    .createObservableGauge("tm_tasks_stalled", {
      description:
        "Unfinished tasks whose status has not changed for GATEWAY_STALLED_AFTER_SECONDS while their stage's queue " +
        "holds nothing older: their message is lost, and only a requeue moves them on",
    })
    .addCallback((result) => {
      if (latest) result.observe(latest.stalled);
    });
  return { latest: () => latest, stop: () => rounds.stop() };
}

/**
 * The task index (sorted set task_index: task id scored by createdAt in ms), walked newest first to list and
 * search tasks. Filters other than the time range need the task and status hashes, read with one pipeline per
 * batch, so a call costs O(tasks examined): fine up to tens of thousands of tasks; one call examines at most
 * `scanLimit` entries and hands back a cursor to continue from.
 */
import { isTerminal, type Priority, type TaskState } from "@tm/flow";
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { parseStatusHash, type StoredStatus } from "./status.js";
import { parseTaskHash, type TaskRecord } from "./tasks.js";

export interface TaskFilter {
  state?: TaskState;
  type?: string;
  priority?: Priority;
  /** Inclusive. */
  createdAfterMs?: number;
  /** Exclusive. */
  createdBeforeMs?: number;
  /** Case-insensitive: a task id prefix, or text inside a metadata key or value. */
  query?: string;
  /** Only unfinished tasks whose status last changed at or before this time (ms): stalled ones. */
  changedBeforeMs?: number;
  /** Only unfinished tasks (no status yet, or one that is not terminal). */
  unfinished?: boolean;
  /** Only the children of this task: walked from its task_children set instead of the whole index. */
  parentTaskId?: string;
}

/** Where a walk stopped: the last index entry examined. */
export interface IndexCursor {
  scoreMs: number;
  taskId: string;
}

export interface IndexedTask {
  task: TaskRecord;
  status: StoredStatus | undefined;
}

export interface TaskPage {
  tasks: IndexedTask[];
  /** Set when the index may hold more matching tasks. */
  next?: IndexCursor;
}

const BATCH = 200;
export const DEFAULT_SCAN_LIMIT = 10_000;

/**
 * When an unfinished task's stall clock started: its status's last change, or, for a delayed task still PENDING, its
 * release time when that is later (it waits by design until then). NaN when the status has no valid time.
 */
export function stalledSinceMs(task: TaskRecord, status: StoredStatus): number {
  return stallClockMs(status.state, status.updatedAt, task.runAt);
}

/** stalledSinceMs from the fields it reads: the status's state and time of change, and the task's runAt if any. */
export function stallClockMs(state: string, updatedAt: string, runAt: string | undefined): number {
  const changedMs = Date.parse(updatedAt);
  if (state !== "PENDING" || !runAt) return changedMs;
  return Math.max(Date.parse(runAt) || changedMs, changedMs);
}

export function matchesFilter(entry: IndexedTask, filter: TaskFilter): boolean {
  const { task, status } = entry;
  if (filter.state && status?.state !== filter.state) return false;
  if (filter.unfinished && status && isTerminal(status.state)) return false;
  if (filter.type && task.type !== filter.type) return false;
  if (filter.priority && task.priority !== filter.priority) return false;
  if (filter.parentTaskId && task.parentTaskId !== filter.parentTaskId) return false;
  if (filter.changedBeforeMs !== undefined) {
    if (!status || isTerminal(status.state) || !(stalledSinceMs(task, status) <= filter.changedBeforeMs)) return false;
  }
  if (filter.query) {
    const needle = filter.query.toLowerCase();
    const inMetadata = Object.entries(task.metadata).some(
      ([key, value]) => key.toLowerCase().includes(needle) || value.toLowerCase().includes(needle),
    );
    if (!task.taskId.toLowerCase().startsWith(needle) && !inMetadata) return false;
  }
  return true;
}

/** Lists tasks newest first, from `cursor` (exclusive) when given. A parent's children are walked in its
 *  task_children set, scored by creation time as the index is, so the same cursors serve both. */
export async function listIndexedTasks(
  redis: Redis,
  filter: TaskFilter,
  pageSize: number,
  cursor?: IndexCursor,
  scanLimit = DEFAULT_SCAN_LIMIT,
): Promise<TaskPage> {
  const min = filter.createdAfterMs === undefined ? "-inf" : String(filter.createdAfterMs);
  // A task whose status last changed by T was created by T: the walk starts there, skipping newer tasks for free.
  const createdBeforeMs =
    filter.changedBeforeMs === undefined
      ? filter.createdBeforeMs
      : Math.min(filter.createdBeforeMs ?? Number.POSITIVE_INFINITY, filter.changedBeforeMs + 1);
  // The walk position: entries at `max` with an id >= `afterId` were already examined (equal scores come in
  // descending id order from ZREVRANGEBYSCORE).
  let max = cursor ? String(cursor.scoreMs) : createdBeforeMs === undefined ? "+inf" : `(${createdBeforeMs}`;
  let afterId = cursor?.taskId;
  const index = filter.parentTaskId ? Keys.children(filter.parentTaskId) : Keys.taskIndex;
  let offset = 0;
  let examined = 0;
  const tasks: IndexedTask[] = [];
  let last: IndexCursor | undefined;

  while (examined < scanLimit) {
    const reply = await redis.zrevrangebyscore(index, max, min, "WITHSCORES", "LIMIT", offset, BATCH);
    if (reply.length === 0) return { tasks };
    const entries: IndexCursor[] = [];
    for (let i = 0; i < reply.length; i += 2) {
      const taskId = reply[i]!;
      const scoreMs = Number(reply[i + 1]);
      if (afterId !== undefined && String(scoreMs) === max && taskId >= afterId) continue;
      entries.push({ taskId, scoreMs });
    }
    const fullBatch = reply.length === BATCH * 2;
    if (entries.length === 0) {
      // Only already-examined ties at this score: step over them.
      if (!fullBatch) return { tasks };
      offset += BATCH;
      continue;
    }
    const records = await readIndexedTasks(
      redis,
      entries.map((entry) => entry.taskId),
    );
    for (const [index, entry] of entries.entries()) {
      examined++;
      last = entry;
      const record = records[index]!;
      if (record && matchesFilter(record, filter)) tasks.push(record);
      if (tasks.length === pageSize || examined >= scanLimit) {
        const exhausted = !fullBatch && index === entries.length - 1;
        return exhausted ? { tasks } : { tasks, next: entry };
      }
    }
    if (!fullBatch) return { tasks };
    max = String(last!.scoreMs);
    afterId = last!.taskId;
    offset = 0;
  }
  return last ? { tasks, next: last } : { tasks };
}

/** Reads task and status hashes for the ids in one pipeline; undefined where the task record has expired. */
export async function readIndexedTasks(redis: Redis, taskIds: string[]): Promise<(IndexedTask | undefined)[]> {
  const pipeline = redis.pipeline();
  for (const taskId of taskIds) pipeline.hgetall(Keys.task(taskId)).hgetall(Keys.status(taskId));
  const replies = (await pipeline.exec()) ?? [];
  return taskIds.map((_, index) => {
    const [taskError, taskHash] = replies[index * 2] ?? [];
    const [statusError, statusHash] = replies[index * 2 + 1] ?? [];
    if (taskError || statusError) throw taskError ?? statusError;
    const task = parseTaskHash(taskHash as Record<string, string>);
    return task ? { task, status: parseStatusHash(statusHash as Record<string, string>) } : undefined;
  });
}

export interface StateCounts {
  counts: Map<TaskState, number>;
  counted: number;
  /** Entries in the whole index. */
  indexed: number;
}

/**
 * Tasks by state among the newest `newest` tasks: one ZREVRANGE and pipelined HGETs (~10 ms per 10,000 tasks).
 * Counting on read keeps the writers untouched; beyond `newest` the count says it is partial.
 */
export async function countTaskStates(redis: Redis, newest = DEFAULT_SCAN_LIMIT): Promise<StateCounts> {
  const [ids, indexed] = await Promise.all([
    redis.zrevrange(Keys.taskIndex, 0, newest - 1),
    redis.zcard(Keys.taskIndex),
  ]);
  const pipeline = redis.pipeline();
  for (const taskId of ids) pipeline.hget(Keys.status(taskId), "state");
  const replies = (await pipeline.exec()) ?? [];
  const counts = new Map<TaskState, number>();
  for (const [error, state] of replies) {
    if (error) throw error;
    const hash = parseStatusHash({ state: state as string });
    if (hash) counts.set(hash.state, (counts.get(hash.state) ?? 0) + 1);
  }
  return { counts, counted: ids.length, indexed };
}

/**
 * tasks_unfinished: every unfinished task, scored by when its stall clock started (its status's last change, or a
 * delayed task's release time). The status script keeps it (status.ts), so finding the tasks that stopped moving is
 * a range read instead of a walk over every task in the index (task-index.ts, `ls --stalled-for`).
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import type { IndexCursor } from "./task-index.js";

export interface UnfinishedBefore {
  /** How many unfinished tasks have not moved since before the time asked. */
  total: number;
  /** The first of them, longest unmoved first (at most the limit asked). */
  taskIds: string[];
}

/** The unfinished tasks whose stall clock started at or before `beforeMs`: their count, and the first `limit`. */
export async function unfinishedBefore(redis: Redis, beforeMs: number, limit: number): Promise<UnfinishedBefore> {
  const [total, taskIds] = await Promise.all([
    redis.zcount(Keys.unfinished, "-inf", beforeMs),
    redis.zrangebyscore(Keys.unfinished, "-inf", beforeMs, "LIMIT", 0, limit),
  ]);
  return { total, taskIds };
}

/** Removes entries whose clock started before `beforeMs` (tasks that expired unfinished); answers how many. */
export async function trimUnfinished(redis: Redis, beforeMs: number): Promise<number> {
  return redis.zremrangebyscore(Keys.unfinished, "-inf", `(${beforeMs}`);
}

/**
 * Removes tasks from the index (their records are gone, or they finished without the status script), and from
 * tasks_waiting: a task that waited for a dependency which never finished leaves it with its records.
 */
export async function forgetUnfinished(redis: Redis, taskIds: readonly string[]): Promise<void> {
  if (taskIds.length === 0) return;
  const replies = await redis
    .pipeline()
    .zrem(Keys.unfinished, ...taskIds)
    .hdel(Keys.waiting, ...taskIds)
    .exec();
  const failed = replies?.find(([error]) => error)?.[0];
  if (failed) throw failed;
}

/**
 * The next `limit` entries whose stall clock started at or before `beforeMs`, longest unmoved first, after `cursor`
 * (exclusive) when given: entries at the cursor's score with an id up to the cursor's were read already (equal scores
 * come in ascending id order). Fewer than `limit` means the end was reached.
 */
export async function unfinishedAfter(
  redis: Redis,
  beforeMs: number,
  cursor: IndexCursor | undefined,
  limit: number,
): Promise<IndexCursor[]> {
  const entries: IndexCursor[] = [];
  let offset = 0;
  while (entries.length < limit) {
    const batch = limit - entries.length;
    const reply = await redis.zrangebyscore(
      Keys.unfinished,
      cursor ? cursor.scoreMs : "-inf",
      beforeMs,
      "WITHSCORES",
      "LIMIT",
      offset,
      batch,
    );
    for (let i = 0; i < reply.length; i += 2) {
      const entry = { taskId: reply[i]!, scoreMs: Number(reply[i + 1]) };
      if (cursor && entry.scoreMs === cursor.scoreMs && entry.taskId <= cursor.taskId) continue;
      entries.push(entry);
    }
    if (reply.length < batch * 2) break;
    offset += batch;
  }
  return entries;
}

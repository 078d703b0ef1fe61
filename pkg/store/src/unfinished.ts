/**
 * tasks_unfinished: every unfinished task, scored by when its stall clock started (its status's last change, or a
 * delayed task's release time). The status script keeps it (status.ts), so finding the tasks that stopped moving is
 * a range read instead of a walk over every task in the index (task-index.ts, `ls --stalled-for`).
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";

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

/** Removes tasks from the index (their records are gone, or they finished without the status script). */
export async function forgetUnfinished(redis: Redis, taskIds: readonly string[]): Promise<void> {
  if (taskIds.length > 0) await redis.zrem(Keys.unfinished, ...taskIds);
}

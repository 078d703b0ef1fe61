/**
 * tasks_unqueued: new submissions whose tasks.ingest message has not been acknowledged by the stream yet. The task
 * is entered with its record (saveTask `unqueued`), removed when the PubAck arrives, and what stays longer belongs
 * to a submission that was interrupted in between (the gateway crashed, NATS was down): the gateway's requeue
 * sweeper finds it here, without walking every task.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { scoredMembers } from "./scored.js";

export interface UnqueuedEntry {
  taskId: string;
  /** When its message was first published, in ms: the task's createdAt, or the time of its replay. */
  createdMs: number;
}

/** Removes tasks from tasks_unqueued (their message is in the stream, or the sweeper has settled them). */
export async function markQueued(redis: Redis, taskIds: readonly string[]): Promise<void> {
  if (taskIds.length > 0) await redis.zrem(Keys.unqueued, ...taskIds);
}

/** The oldest entries created before `beforeMs`, at most `limit`. */
export async function unqueuedBefore(redis: Redis, beforeMs: number, limit: number): Promise<UnqueuedEntry[]> {
  const reply = await redis.zrangebyscore(Keys.unqueued, "-inf", `(${beforeMs}`, "WITHSCORES", "LIMIT", 0, limit);
  return scoredMembers(reply).map(({ member, score }) => ({ taskId: member, createdMs: score }));
}

/** How many entries there are, and how many of them were created before `overdueBeforeMs` (operators' view). */
export async function countUnqueued(
  redis: Redis,
  overdueBeforeMs: number,
): Promise<{ total: number; overdue: number }> {
  const [total, overdue] = await Promise.all([
    redis.zcard(Keys.unqueued),
    redis.zcount(Keys.unqueued, "-inf", `(${overdueBeforeMs}`),
  ]);
  return { total, overdue };
}

/**
 * Takes the sweep lease for `ttlMs` unless another replica holds it: one replica sweeps per round, so a task is
 * requeued (and audited) once rather than by every replica.
 */
export async function claimSweepLease(redis: Redis, owner: string, ttlMs: number): Promise<boolean> {
  return (await redis.set(Keys.requeueSweepLease, owner, "PX", ttlMs, "NX")) === "OK";
}

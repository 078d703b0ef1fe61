/**
 * The child tasks of a task: those submitted with its id as parent_task_id (a handler's ctx.submitTask), listed in
 * task_children:<parent>, scored by creation time, for GetTask and the console to show. A listing only: nothing is
 * decided on it, so it is written beside the child's record rather than in its script.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { liveTasksOf } from "./task-dependencies.js";

/** Lists `childId` under its parent. The set lives `ttlSeconds` from its latest child (a task's records' TTL), and
 *  no shorter than the parent's records unless the parent SUCCEEDED with a shorter retention (the status script
 *  shortens it with them). */
export async function addChild(
  redis: Redis,
  parentId: string,
  childId: string,
  createdMs: number,
  ttlSeconds: number,
): Promise<void> {
  const key = Keys.children(parentId);
  await redis.multi().zadd(key, createdMs, childId).expire(key, ttlSeconds).exec();
}

/** A task's children: the first `limit` that still exist, oldest first, and how many in all. */
export function childrenOf(redis: Redis, parentId: string, limit: number): Promise<{ ids: string[]; total: number }> {
  return liveTasksOf(redis, Keys.children(parentId), limit);
}

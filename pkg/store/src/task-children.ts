/**
 * The child tasks of a task: those submitted with its id as parent_task_id (a handler's ctx.submitTask), listed in
 * task_children:<parent>, scored by creation time, for GetTask, the console and CancelTask's include_children (which
 * walks it). Written once the child's records are saved, refused by a CANCELLED parent.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";
import { liveTasksOf } from "./task-dependencies.js";

// KEYS[1] task_children:<parent>, KEYS[2] the parent's status; ARGV[1] the child's creation time (ms), ARGV[2] its id,
// ARGV[3] the set's TTL (s). 0, listing nothing, when the parent is CANCELLED: read in the same script as the write, so
// a cascade (which cancels the parent, then reads this set) either lists the child or is seen by it.
const ADD_CHILD = luaScript(`
if redis.call('HGET', KEYS[2], 'state') == 'CANCELLED' then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`);

/** Lists `childId` under its parent, unless the parent is CANCELLED (false: the child must not go on). The set lives
 *  `ttlSeconds` from its latest child (a task's records' TTL), and no shorter than the parent's records unless the
 *  parent SUCCEEDED with a shorter retention (the status script shortens it with them). */
export async function addChild(
  redis: Redis,
  parentId: string,
  childId: string,
  createdMs: number,
  ttlSeconds: number,
): Promise<boolean> {
  const listed = await ADD_CHILD.run(
    redis,
    [Keys.children(parentId), Keys.status(parentId)],
    [createdMs, childId, ttlSeconds],
  );
  return listed === 1;
}

/** A task's children: the first `limit` that still exist, oldest first, and how many in all. */
export function childrenOf(redis: Redis, parentId: string, limit: number): Promise<{ ids: string[]; total: number }> {
  return liveTasksOf(redis, Keys.children(parentId), limit);
}

/** The most children whose states one read counts (GetTask's children_by_state). */
export const MAX_COUNTED_CHILDREN = 10_000;

/** How many of a task's children are in each state, among the first `limit` (oldest first); a child whose status
 *  expired is not counted. One ZRANGE and one pipeline of HGETs: ~10 ms per 10,000 children. */
export async function childStateCounts(
  redis: Redis,
  parentId: string,
  limit = MAX_COUNTED_CHILDREN,
): Promise<Record<string, number>> {
  const ids = await redis.zrange(Keys.children(parentId), 0, limit - 1);
  if (ids.length === 0) return {};
  const states = redis.pipeline();
  for (const id of ids) states.hget(Keys.status(id), "state");
  const counts: Record<string, number> = {};
  for (const [error, state] of (await states.exec()) ?? []) {
    if (error) throw error;
    if (typeof state === "string" && state !== "") counts[state] = (counts[state] ?? 0) + 1;
  }
  return counts;
}

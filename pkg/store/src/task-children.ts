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

/** What GetTask shows of a task's children. */
export interface ChildrenSummary {
  /** The first `listed` whose records still exist, oldest first. */
  ids: string[];
  /** How many the set lists in all (less those found gone). */
  total: number;
  /** How many of the first `counted` are in each state; a child whose status expired is not counted. */
  byState: Record<string, number>;
}

/**
 * A task's children for GetTask, one read of the set serving both the listing and the counts: a ZRANGE of the first
 * `counted` and a ZCARD, then one pipeline of an HGET of each one's state (50–100 ms per 10,000 children on the 2-core
 * VM, mostly the client's; docs/PERFORMANCE.md, session 40); for a task without children, the first round trip only. A
 * child without a status is looked at again (an EXISTS of its record, a third round trip only then): one whose record
 * is gone too expired, and is taken out of the set, as childrenOf does; one still saving its status is listed.
 */
export async function childrenSummary(
  redis: Redis,
  parentId: string,
  listed: number,
  counted = MAX_COUNTED_CHILDREN,
): Promise<ChildrenSummary> {
  const key = Keys.children(parentId);
  const [ids, total] = await Promise.all([redis.zrange(key, 0, Math.max(listed, counted) - 1), redis.zcard(key)]);
  if (ids.length === 0) return { ids: [], total, byState: {} };
  const states = redis.pipeline();
  for (const id of ids) states.hget(Keys.status(id), "state");
  const byState: Record<string, number> = {};
  const stateless = new Set<string>();
  for (const [i, [error, state]] of ((await states.exec()) ?? []).entries()) {
    if (error) throw error;
    const id = ids[i] as string;
    if (typeof state !== "string" || state === "") stateless.add(id);
    else if (i < counted) byState[state] = (byState[state] ?? 0) + 1;
  }
  const gone = new Set<string>();
  if (stateless.size > 0) {
    const records = redis.pipeline();
    for (const id of stateless) records.exists(Keys.task(id));
    const found = (await records.exec()) ?? [];
    for (const [i, id] of [...stateless].entries()) {
      const [error, exists] = found[i] ?? [null, 0];
      if (error) throw error;
      if (exists !== 1) gone.add(id);
    }
    if (gone.size > 0) await redis.zrem(key, ...gone);
  }
  return { ids: ids.filter((id) => !gone.has(id)).slice(0, listed), total: total - gone.size, byState };
}

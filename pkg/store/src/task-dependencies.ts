/**
 * Task dependencies (SubmitTaskRequest.depends_on): a task that waits for others is saved with its dependencies
 * registered (saveTask, one script that also refuses it if one of them already FAILED or was CANCELLED), and the
 * status script settles the waiting tasks when a dependency reaches a terminal state (status.ts):
 *
 *   - `task_dependents:<dep>` (hash): the tasks waiting for <dep> → each one's release time (ms; 0 for none);
 *   - `tasks_waiting` (hash): each waiting task → how many of its dependencies have not SUCCEEDED yet; at 0 it goes
 *     to tasks_delayed, due at once (or at its release time), and the gateway's releaser queues it;
 *   - `tasks_dependency_failed` (sorted set, by when; members "<task> <dependency> <state>"): tasks one of whose
 *     dependencies ended FAILED or CANCELLED, which the gateway cancels (and the cancel settles the tasks waiting for them in turn);
 *   - `task_dependent_ids:<dep>` (sorted set, by submission time; TTL the dependents' records'): every task that named
 *     <dep> in its depends_on, waiting or not, so that a task lists what comes after it (GetTask's `dependents`).
 */
import type { TaskState } from "@tm/flow";
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { scoredMembers } from "./scored.js";
import { luaScript } from "./script.js";
import { readStatus } from "./status.js";
import { readResult, readTask, type TaskRecord } from "./tasks.js";
import { REGISTER_WAITING } from "./waiting-lua.js";

/** What one of a task's dependencies came to, as the task's handler reads it (the worker's ctx.dependencies()). */
export interface DependencyOutcome {
  taskId: string;
  /** SUCCEEDED; FAILED or CANCELLED for a task run once they all finished whatever the outcome; undefined when its
   *  records expired (TASK_RETENTION_SECONDS). */
  state: TaskState | undefined;
  /** What its handler returned, when it SUCCEEDED and the result is still stored. */
  result?: unknown;
  /** Why it FAILED, or was CANCELLED. */
  error?: string;
}

/**
 * The outcomes of the tasks `taskId` waited for (its depends_on), in their order: a handler's way to the results of
 * the tasks before it (Celery's chain hands the previous result on). Two round trips: the task's record, then each
 * dependency's status and result together. [] for a task without dependencies.
 */
export async function dependencyOutcomesOf(redis: Redis, taskId: string): Promise<DependencyOutcome[]> {
  const dependsOn = (await readTask(redis, taskId))?.dependsOn ?? [];
  return Promise.all(
    dependsOn.map(async (id): Promise<DependencyOutcome> => {
      const [status, stored] = await Promise.all([readStatus(redis, id), readResult(redis, id)]);
      return {
        taskId: id,
        state: status?.state,
        ...(status?.state === "SUCCEEDED" && stored ? { result: stored.output } : {}),
        ...(status?.error && status.state !== "SUCCEEDED" ? { error: status.error } : {}),
      };
    }),
  );
}

/** How many of a waiting task's dependencies have not SUCCEEDED yet (0: none, or it does not wait). */
export async function unfinishedDependencies(redis: Redis, taskId: string): Promise<number> {
  return Number((await redis.hget(Keys.waiting, taskId)) ?? 0);
}

/** Rounds of dropping expired tasks before liveTasksOf answers with what it has. */
const LISTED_READ_ROUNDS = 3;

/**
 * The tasks that named `taskId` in their depends_on: the first `limit`, oldest first, and how many in all. A dependent
 * whose records expired (its own retention, shorter after it SUCCEEDED, may end before the set's) is dropped from
 * task_dependent_ids as it is read: a task id is never reused, so one found gone stays gone. Those past the first
 * `limit` are counted as they are, expired or not.
 */
export async function dependentsOf(
  redis: Redis,
  taskId: string,
  limit: number,
): Promise<{ ids: string[]; total: number }> {
  return liveTasksOf(redis, Keys.dependentIds(taskId), limit);
}

/**
 * The task ids of a sorted set listing tasks (task_dependent_ids, task_children): the first `limit` whose records
 * still exist, in the set's order, and how many in all; those found expired are taken out of the set as they are read.
 */
export async function liveTasksOf(redis: Redis, key: string, limit: number): Promise<{ ids: string[]; total: number }> {
  for (let round = 1; ; round++) {
    const [ids, total] = await Promise.all([redis.zrange(key, 0, limit - 1), redis.zcard(key)]);
    const exists = redis.pipeline();
    for (const id of ids) exists.exists(Keys.task(id));
    const found = ((await exists.exec()) ?? []).map(([error, count]) => error !== null || count === 1);
    const gone = ids.filter((_, i) => !found[i]);
    if (gone.length === 0) return { ids, total };
    await redis.zrem(key, ...gone);
    if (round === LISTED_READ_ROUNDS || total <= ids.length)
      return { ids: ids.filter((_, i) => found[i]), total: total - gone.length };
  }
}

/** Takes a task out of tasks_waiting (it was cancelled while waiting): true when it was there. */
export async function forgetWaiting(redis: Redis, taskId: string): Promise<boolean> {
  return (await redis.hdel(Keys.waiting, taskId)) === 1;
}

/** A task one of whose dependencies ended FAILED or CANCELLED. */
export interface DependencyFailure {
  taskId: string;
  dependency: string;
  state: string;
  /** When the status script found it (ms). */
  atMs: number;
  /** Its tasks_dependency_failed member ("<task> <dependency> <state>"). */
  member: string;
}

/** Up to `limit` tasks whose dependency failed, oldest first. */
export async function dependencyFailures(redis: Redis, limit: number): Promise<DependencyFailure[]> {
  const reply = await redis.zrange(Keys.dependencyFailed, 0, limit - 1, "WITHSCORES");
  return scoredMembers(reply).map(({ member, score }) => {
    const [taskId = "", dependency = "", state = ""] = member.split(" ");
    return { taskId, dependency, state, atMs: score, member };
  });
}

/** Takes a failure out of tasks_dependency_failed once its task was cancelled (or had finished). */
export async function forgetDependencyFailure(redis: Redis, failure: Pick<DependencyFailure, "member">): Promise<void> {
  await redis.zrem(Keys.dependencyFailed, failure.member);
}

/** The cancel reason the gateway gives a task whose dependency ended FAILED or CANCELLED (tasks_dependency_failed). */
export function dependencyCancelReason(dependency: string, state: string): string {
  return `${dependencyCancelPrefix(dependency)}${state}`;
}

/** What every such reason for `dependency` starts with, whatever the state (a revival's check). */
function dependencyCancelPrefix(dependency: string): string {
  return `dependency ${dependency} ended `;
}

// Revives a task that was CANCELLED because a dependency failed (its cancel marker says "dependency <cause> ended …"),
// once that dependency was replayed: a new generation of it (revivedGeneration), its cancel marker cleared, waiting
// again for its dependencies as saveTask would register it (task_dependents of each unfinished one, tasks_waiting
// with their count; none unfinished: due at once in tasks_delayed). Nothing is written when it is not so cancelled, or
// when another dependency FAILED or was CANCELLED (it could never run; unless it runs once they all finished).
// KEYS: task:<id>, task_status:<id>, task_cancel:<id>, tasks_waiting, tasks_delayed, then per dependency its
// task_status and task_dependents. ARGV: the task id, the expected reason's prefix, now (ms), the TTL (s).
// Answers {generation, waiting}, or {0, why}.
const REVIVE = luaScript(`${REGISTER_WAITING}
if redis.call('HGET', KEYS[2], 'state') ~= 'CANCELLED' then return {0, 'not cancelled'} end
local reason = redis.call('GET', KEYS[3])
if not reason or string.sub(reason, 1, #ARGV[2]) ~= ARGV[2] then return {0, 'cancelled for another reason'} end
local finishing = redis.call('HGET', KEYS[1], 'dependencyPolicy') == 'all-finished'
if not finishing then
  for i = 6, #KEYS, 2 do
    local state = redis.call('HGET', KEYS[i], 'state')
    if state == 'FAILED' or state == 'CANCELLED' then return {0, 'another dependency is ' .. state} end
  end
end
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'revivedGeneration', generation)
redis.call('DEL', KEYS[3])
local waiting = registerWaiting(ARGV[1], '0', ARGV[4], finishing, 6, 2)
if waiting > 0 then
  redis.call('HSET', KEYS[4], ARGV[1], waiting)
else
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
end
return {generation, waiting}
`);

export type Revival = { revived: true; generation: number; waitingFor: number } | { revived: false; why: string };

/**
 * Revives `task` (its record as read), CANCELLED because `cause` failed, now that `cause` was replayed (see REVIVE):
 * the caller then writes the new generation's PENDING status.
 */
export async function reviveDependent(
  redis: Redis,
  task: Pick<TaskRecord, "taskId" | "dependsOn">,
  cause: string,
  ttlSeconds: number,
): Promise<Revival> {
  const dependencies = task.dependsOn ?? [];
  const reply = (await REVIVE.run(
    redis,
    [
      Keys.task(task.taskId),
      Keys.status(task.taskId),
      Keys.cancel(task.taskId),
      Keys.waiting,
      Keys.delayed,
      ...dependencies.flatMap((id) => [Keys.status(id), Keys.dependents(id)]),
    ],
    [task.taskId, dependencyCancelPrefix(cause), Date.now(), ttlSeconds],
  )) as [number, number | string];
  const [generation, detail] = reply;
  return generation > 0
    ? { revived: true, generation, waitingFor: Number(detail) }
    : { revived: false, why: String(detail) };
}

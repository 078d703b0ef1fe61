/**
 * tasks_delayed: delayed tasks (SubmitTask's run_at or delay) waiting for their time, scored by it (ms). saveTask
 * enters a task here instead of in tasks_unqueued; when it is due, `releaseDue` moves it to tasks_unqueued in one
 * script, and the releaser then publishes its tasks.ingest message. From that move on it is an ordinary submission
 * awaiting its PubAck: a releaser that dies or meets a NATS outage before the PubAck leaves the entry to the requeue
 * sweeper, which queues it exactly once (the stream deduplicates by message id) or fails it. So the move, not the
 * publish, is what takes a task out of this set, and only one replica can make it.
 */
import type { Redis } from "ioredis";
import { CONCURRENCY_LUA } from "./concurrency-keys.js";
import { FAIRNESS_LUA } from "./fairness.js";
import { Bounds, Keys } from "./keys.js";
import { scoredMembers } from "./scored.js";
import { luaScript } from "./script.js";
import { REPLACEABLE_FIELDS, recordFields, type TaskRecord } from "./tasks.js";

export interface DelayedEntry {
  taskId: string;
  /** When it was due (ms). */
  dueMs: number;
}

// KEYS: tasks_delayed, tasks_unqueued, tasks_unfinished. ARGV: now (ms), limit, the task retention (s). Due entries,
// oldest first, each moved to tasks_unqueued scored by now: the time its publish starts, from which the sweeper counts
// the stream's duplicate window. One with a concurrency key (its record's) is first admitted under its key's limit
// (concurrency-keys.ts): one that must wait is taken out of tasks_delayed into its key's waiting set instead, and
// not answered (the status script makes it due again when a place frees). Then one with a fairness key is let into
// its type's window, or waits for its turn (fairness.ts) the same way.
const RELEASE_DUE = luaScript(`
local delayedKey = KEYS[1]
local unfinishedKey = KEYS[3]
${CONCURRENCY_LUA}
${FAIRNESS_LUA}
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local released = {}
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZREM', KEYS[1], id)
  local concurrencyKey = concurrencyKeyOf('task:' .. id)
  local limit = concurrencyKey and tonumber(redis.call('HGET', 'task:' .. id, 'concurrencyLimit'))
  local admitted = true
  if limit then
    -- Ordered among the key's waiting tasks by the time it was due (the record's createdAt is ISO 8601 text).
    admitted = concurrencyAdmit(id, concurrencyKey, limit, now, tonumber(ARGV[3]), tonumber(due[i + 1]))
  end
  local fairness = admitted and fairnessOf('task:' .. id)
  if fairness then
    admitted = fairnessAdmit(id, fairness.queue, fairness.key, fairness.window, fairness.weight, now,
      tonumber(ARGV[3]), tonumber(due[i + 1]))
  end
  if admitted then
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    released[#released + 1] = id
    released[#released + 1] = due[i + 1]
  end
end
return released
`);

/**
 * Moves up to `limit` tasks due at `nowMs` from tasks_delayed to tasks_unqueued; returns them, oldest first. A task of
 * a concurrency key that must wait for a place, or of a fairness key that must wait for its turn, is moved to its
 * key's waiting set instead, and not returned.
 */
export async function releaseDue(
  redis: Redis,
  nowMs: number,
  limit: number,
  retentionSeconds: number = Bounds.taskTtlSeconds,
): Promise<DelayedEntry[]> {
  const reply = (await RELEASE_DUE.run(
    redis,
    [Keys.delayed, Keys.unqueued, Keys.unfinished],
    [nowMs, limit, retentionSeconds],
  )) as string[];
  return scoredMembers(reply).map(({ member, score }) => ({ taskId: member, dueMs: score }));
}

// KEYS: tasks_delayed, task:<id>, tasks_unfinished. ARGV: id, now (ms), now (ISO). A task still waiting (and still
// recorded) becomes due now, its record's runAt with it (expires_after and the end-to-end latency count from it), and
// its stall clock with it (it was its old time); answers its old time.
const PROMOTE = luaScript(`
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or redis.call('EXISTS', KEYS[2]) == 0 then return false end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], 'runAt', ARGV[3])
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[1])
return due
`);

/** Makes a delayed task due at `nowMs` (PromoteTask): the time it was due before, or undefined when it is not
 *  waiting in tasks_delayed (not delayed, released already, or cancelled). */
export async function promoteDelayed(redis: Redis, taskId: string, nowMs: number): Promise<number | undefined> {
  const due = (await PROMOTE.run(
    redis,
    [Keys.delayed, Keys.task(taskId), Keys.unfinished],
    [taskId, nowMs, new Date(nowMs).toISOString()],
  )) as string | null;
  return due === null ? undefined : Number(due);
}

// KEYS: tasks_delayed, task:<id>, tasks_unfinished. ARGV: id, the new time (ms), the new time (ISO), the record's TTL
// (s) from now, the submission's type, then the replaceable fields' names and values as the new submission has them.
// A task still waiting for its time (and still recorded, and not one waiting for dependencies) takes the new fields
// (those the submission left unset go: they are defaults again) and time, its record kept at least until then plus
// its retention, its stall clock moved with it; answers its old time. One of another type is left as it is: answers
// {'type', its type}.
const REPLACE_WAITING = luaScript(`
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or redis.call('EXISTS', KEYS[2]) == 0 or redis.call('HEXISTS', KEYS[2], 'dependsOn') == 1 then
  return false
end
local waitingType = redis.call('HGET', KEYS[2], 'type')
if waitingType ~= ARGV[5] then return {'type', waitingType} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HDEL', KEYS[2], ${REPLACEABLE_FIELDS.map((name) => `'${name}'`).join(", ")})
redis.call('HSET', KEYS[2], 'runAt', ARGV[3], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[2], ARGV[4], 'GT')
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[1])
return due
`);

/**
 * Replaces a delayed task that still waits for its time (SubmitTaskRequest.idempotency_key_reuse REPLACE_WAITING,
 * a debounce) with `submission`: its REPLACEABLE_FIELDS (payload, metadata, priority, its own limits, its
 * concurrency and fairness keys; those `submission` leaves unset go back to the defaults), and its time, moved to
 * `runAtMs`; the record lives at least `ttlSeconds` from now. Its id, type, trace and the rest stay. The time it was
 * due before, or undefined when it no longer waits (released already, cancelled, gone) or waits for dependencies: one
 * script, so a releaser that took it first wins and the caller is told. A waiting task of another type than the
 * submission's is not touched: `{ otherType }` (a payload checked for one type must not run as another).
 */
export async function replaceWaiting(
  redis: Redis,
  taskId: string,
  {
    submission,
    runAtMs,
    ttlSeconds,
  }: {
    submission: Omit<TaskRecord, "taskId" | "createdAt" | "generation">;
    runAtMs: number;
    ttlSeconds: number;
  },
): Promise<number | undefined | { otherType: string }> {
  const fields = recordFields({ ...submission, taskId, createdAt: "", generation: 0 });
  const replaced = REPLACEABLE_FIELDS.flatMap((name) => (fields[name] === undefined ? [] : [name, fields[name]]));
  const due = (await REPLACE_WAITING.run(
    redis,
    [Keys.delayed, Keys.task(taskId), Keys.unfinished],
    [taskId, runAtMs, new Date(runAtMs).toISOString(), ttlSeconds, submission.type, ...replaced],
  )) as string | null | [string, string];
  if (Array.isArray(due)) return { otherType: due[1] };
  return due === null ? undefined : Number(due);
}

/** Takes a task out of tasks_delayed (it was cancelled): true when it was there. */
export async function forgetDelayed(redis: Redis, taskId: string): Promise<boolean> {
  return (await redis.zrem(Keys.delayed, taskId)) === 1;
}

/** How many delayed tasks wait, and how many of them were due before `overdueBeforeMs` (operators' view). */
export async function countDelayed(redis: Redis, overdueBeforeMs: number): Promise<{ total: number; overdue: number }> {
  const [total, overdue] = await Promise.all([
    redis.zcard(Keys.delayed),
    redis.zcount(Keys.delayed, "-inf", `(${overdueBeforeMs}`),
  ]);
  return { total, overdue };
}

// A released task whose publish failed goes back to tasks_delayed, due at once, unless the requeue sweeper settled
// its tasks_unqueued entry meanwhile (the sweeper then owns it).
const RETURN_TO_DELAYED = luaScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 1
end
return 0
`);

/** Puts a released task back in tasks_delayed, due at `dueMs`, if it is still in tasks_unqueued: true when it was. */
export async function returnToDelayed(redis: Redis, taskId: string, dueMs: number): Promise<boolean> {
  return (await RETURN_TO_DELAYED.run(redis, [Keys.unqueued, Keys.delayed], [taskId, dueMs])) === 1;
}

/** Whether any delayed task is due at `nowMs` (one cheap read before a round does more). */
export async function anyDelayedDue(redis: Redis, nowMs: number): Promise<boolean> {
  return (await redis.zrangebyscore(Keys.delayed, "-inf", nowMs, "LIMIT", 0, 1)).length > 0;
}

/**
 * Fairness keys (SubmitTaskRequest.fairness_key and fairness_weight): a task type's spare capacity shared between
 * tenants in proportion to their weights, whatever each one's backlog. Temporal's fairness keys, BullMQ Pro's group
 * round robin; concurrency keys cap a tenant, fairness keys divide what the others leave.
 *
 * A JetStream stream is first in, first out: once one tenant's 10,000 tasks are in it, the next tenant's task waits
 * behind all of them. So a task type's tasks with a fairness key enter the pipeline through a window: at most
 * `window` of them (GATEWAY_FAIRNESS_WINDOW, stamped on each task's record) are in the pipeline at once, from their
 * release into it to their end. The others wait in Redis, one waiting set per key, and each place that frees goes to
 * the key whose turn it is: start-time fair queueing, with a virtual clock per type.
 *
 *   fairness_running:<type>         sorted set: the type's tasks in the window → when each was released, or last
 *                                   found still unfinished (ms)
 *   fairness_waiting:<type>:<key>   sorted set: the key's tasks waiting PENDING for a place, by priority, then in the
 *                                   order they came (as a concurrency key's: concurrency-keys.ts)
 *   fairness_keys:<type>            sorted set: the keys with tasks waiting → the virtual start of their next task;
 *                                   the lowest is served next
 *   fairness_clock:<type>           string: the virtual start of the last task let in
 *   fairness_tag:<type>:<key>       string: the virtual time the key's next task may start at, at the earliest (its
 *                                   last task's start + 1 / weight); TTL TAG_TTL_SECONDS from its last task
 *   fairness_types                  set: the types whose tasks took a fairness window (GetQueueStats sums them up)
 *   tasks_fairness_waiting          sorted set: every type's waiting tasks (their count: GetQueueStats,
 *                                   tm_tasks_waiting{reason="fairness"}); trimmed of entries older than the retention
 *
 * Each task let in moves its key's tag on by 1 / weight: a key of weight 3 is served three times for each time a key
 * of weight 1 is, while both wait. A key that comes to wait starts at the clock or its own tag, whichever is later:
 * idle time earns no credit, and a key that submits one task each time its last one was let in cannot jump the queue.
 * A type is a queue of its own (its tasks are what one pool of workers runs): the type name has no ':', so the Redis
 * key names cannot collide.
 *
 * Entry and exit are Lua in the scripts that already make those moves, as for concurrency keys: saveTask and the
 * delayed-task releaser let a task in (`fairnessAdmit`, after its concurrency key, if any, gave it a place), the
 * status script takes it out on its terminal state and lets the next ones in (`fairnessRelease`). Places whose tasks
 * ended without a terminal state through the status script (records expired) are taken back as concurrency keys'
 * are (`concurrencyPrune`).
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";
import type { TaskRecord } from "./tasks.js";

/** How long a key's tag outlives its last task let in. A tag is never more than one turn ahead of the clock when it
 *  is written (the clock moves to each start let in), so once other keys have had a turn it no longer matters: an
 *  hour keeps what protects against a key rejoining right after its turn, and bounds the tags to the keys active in
 *  the last hour (a million tenants each kept a week would be ~100 MB). */
export const TAG_TTL_SECONDS = 3_600;

/** The most tasks one call lets in (a window raised by thousands with a backlog waiting would otherwise let them all
 *  in within one script, holding Redis); the rest go in as those end, each end calling again. */
export const RELEASES_PER_CALL_MAX = 100;

/**
 * Lua shared by the scripts. Needs CONCURRENCY_LUA before it (its `roomIn`, `leaveLine`, `releaseFromLine`,
 * `concurrencyPrune`, `waitInOrder` and `exactNumber`) and the locals `delayedKey` and `unfinishedKey` of the
 * including script.
 *
 * `fairnessOf(taskKey)`: the task's type, its key within its scope, its window and weight; false without a key.
 *
 * `fairnessRelease(queue, now, ttl)`: while the window has room for the next task (its own record's window), lets in
 * the head of the key with the lowest start, making it due now in tasks_delayed and saying so on tasks_delayed_due;
 * at most RELEASES_PER_CALL_MAX per call.
 *
 * `fairnessAdmit(id, queue, key, window, weight, now, ttl, arrivalMs)`: true when task `id` may be queued now (it
 * holds a place: taken now, or already); false when it waits (and may be let in at once by the same call, through
 * tasks_delayed). A task is let in directly only when no task of its type waits.
 */
export const FAIRNESS_LUA = `
local function fairnessOf(taskKey)
  local fields = redis.call('HMGET', taskKey, 'fairnessKey', 'fairnessScope', 'type', 'fairnessWindow', 'fairnessWeight')
  if not fields[1] then return false end
  local key = fields[1]
  if fields[2] then key = fields[2] .. ':' .. fields[1] end
  return {queue = fields[3], key = key, window = tonumber(fields[4]) or 1, weight = tonumber(fields[5]) or 1}
end
-- The task let in starts at 'start': the clock moves there, and the key's next task may start 1 / weight later.
local function fairnessCharge(queue, key, start, weight, ttl)
  local clock = tonumber(redis.call('GET', 'fairness_clock:' .. queue)) or 0
  if start > clock then redis.call('SET', 'fairness_clock:' .. queue, exactNumber(start), 'EX', ttl) end
  local nextStart = start + 1 / weight
  local tagTtl = math.min(ttl, ${TAG_TTL_SECONDS})
  redis.call('SET', 'fairness_tag:' .. queue .. ':' .. key, exactNumber(nextStart), 'EX', tagTtl)
  return nextStart
end
local function fairnessStartOf(queue, key)
  local clock = tonumber(redis.call('GET', 'fairness_clock:' .. queue)) or 0
  local tag = tonumber(redis.call('GET', 'fairness_tag:' .. queue .. ':' .. key)) or 0
  return math.max(clock, tag)
end
local function fairnessRelease(queue, now, ttl)
  local keys = 'fairness_keys:' .. queue
  local running = 'fairness_running:' .. queue
  local pruned = false
  for _ = 1, ${RELEASES_PER_CALL_MAX} do
    local first = redis.call('ZRANGE', keys, 0, 0, 'WITHSCORES')
    if not first[1] then return end
    local key, start = first[1], tonumber(first[2])
    local waiting = 'fairness_waiting:' .. queue .. ':' .. key
    local head = redis.call('ZRANGE', waiting, 0, 0)[1]
    if not head then
      redis.call('ZREM', keys, key)
    else
      local fields = redis.call('HMGET', 'task:' .. head, 'fairnessWindow', 'fairnessWeight')
      local window = tonumber(fields[1])
      if not window then
        -- Its record is gone: it can no longer run.
        leaveLine(head, waiting, 'tasks_fairness_waiting')
      else
        local room
        room, pruned = roomIn(running, window, now, pruned)
        if not room then return end
        releaseFromLine(head, waiting, 'tasks_fairness_waiting', running, now, ttl)
        local nextStart = fairnessCharge(queue, key, start, tonumber(fields[2]) or 1, ttl)
        if redis.call('ZCARD', waiting) == 0 then
          redis.call('ZREM', keys, key)
        else
          redis.call('ZADD', keys, exactNumber(nextStart), key)
        end
      end
    end
  end
end
local function fairnessAdmit(id, queue, key, window, weight, now, ttl, arrivalMs)
  local running = 'fairness_running:' .. queue
  local keys = 'fairness_keys:' .. queue
  if redis.call('ZSCORE', running, id) then return true end
  redis.call('SADD', 'fairness_types', queue)
  if redis.call('ZCARD', keys) == 0 and roomIn(running, window, now, false) then
    redis.call('ZADD', running, now, id)
    redis.call('EXPIRE', running, ttl)
    fairnessCharge(queue, key, fairnessStartOf(queue, key), weight, ttl)
    return true
  end
  local waiting = 'fairness_waiting:' .. queue .. ':' .. key
  local score = waitInOrder(waiting, id, arrivalMs, ttl)
  if not redis.call('ZSCORE', keys, key) then
    redis.call('ZADD', keys, exactNumber(fairnessStartOf(queue, key)), key)
  end
  redis.call('EXPIRE', keys, ttl)
  redis.call('ZADD', 'tasks_fairness_waiting', 'NX', score, id)
  redis.call('ZREMRANGEBYSCORE', 'tasks_fairness_waiting', '-inf', now - ttl * 1000)
  redis.call('ZADD', unfinishedKey, 'XX', now + ttl * 1000, id)
  -- Room freed without a release (pruned above, or a lower window of those waiting) goes to whose turn it is.
  fairnessRelease(queue, now, ttl)
  return false
end
-- A task's end: its place given back (or its wait ended: cancelled while waiting; a key left with none waiting leaves
-- the queue, so that the operators' count of keys waiting is exact), and the next ones let in.
local function fairnessEnd(id, fairness, now, ttl)
  local waiting = 'fairness_waiting:' .. fairness.queue .. ':' .. fairness.key
  redis.call('ZREM', 'fairness_running:' .. fairness.queue, id)
  if redis.call('ZREM', waiting, id) == 1 and redis.call('ZCARD', waiting) == 0 then
    redis.call('ZREM', 'fairness_keys:' .. fairness.queue, fairness.key)
  end
  redis.call('ZREM', 'tasks_fairness_waiting', id)
  fairnessRelease(fairness.queue, now, ttl)
end
`;

/** The key a task waits under within its type: its fairness key, within its scope when it has one (the submitter's,
 *  when the gateway isolates callers), as concurrency keys are. Undefined for a task without one. */
export function fairnessRedisKey(task: Pick<TaskRecord, "fairnessKey" | "fairnessScope">): string | undefined {
  if (!task.fairnessKey) return undefined;
  return task.fairnessScope ? `${task.fairnessScope}:${task.fairnessKey}` : task.fairnessKey;
}

/** Whether a task of a fairness key waits for a place in its type's window (PENDING by design). */
export async function isFairnessWaiting(redis: Redis, task: TaskRecord): Promise<boolean> {
  const key = fairnessRedisKey(task);
  if (key === undefined) return false;
  return (await redis.zscore(Keys.fairnessWaiting(task.type, key), task.taskId)) !== null;
}

/** How many tasks wait for a place in their type's fairness window, every type's. */
export async function countFairnessWaiting(redis: Redis): Promise<number> {
  return redis.zcard(Keys.fairnessWaitingAll);
}

/** One key of a type's fairness queue, for operators. */
export interface FairnessKeyView {
  key: string;
  /** Its tasks waiting. */
  waiting: number;
  /** The virtual start of its next task: the lowest is served next. */
  nextStart: number;
  /** Its next task's weight (0: that task's record is gone). */
  nextWeight: number;
}

/** A type's fairness queue: the tasks in its window, the keys with tasks waiting (the first `listed`, next served
 *  first) and how many keys wait. Two round trips. */
export interface FairnessQueueView {
  running: string[];
  runningTotal: number;
  keys: FairnessKeyView[];
  keysTotal: number;
  clock: number;
}

/** A type's fairness window at a glance: its tasks in the window, and its keys with tasks waiting. */
export interface FairnessQueueSummary {
  type: string;
  running: number;
  keysWaiting: number;
}

/** Every type whose window holds tasks or has keys waiting, by type (two round trips, one per type's pair of counts
 *  in a pipeline). */
export async function summarizeFairnessQueues(redis: Redis): Promise<FairnessQueueSummary[]> {
  const types = (await redis.smembers(Keys.fairnessTypes)).sort();
  if (types.length === 0) return [];
  const counts = redis.pipeline();
  for (const type of types) counts.zcard(Keys.fairnessRunning(type)).zcard(Keys.fairnessKeys(type));
  const replies = (await counts.exec()) ?? [];
  return types
    .map((type, i) => ({
      type,
      running: Number(replies[i * 2]?.[1] ?? 0),
      keysWaiting: Number(replies[i * 2 + 1]?.[1] ?? 0),
    }))
    .filter((summary) => summary.running > 0 || summary.keysWaiting > 0);
}

export async function readFairnessQueue(redis: Redis, type: string, listed: number): Promise<FairnessQueueView> {
  const [running, runningTotal, keyScores, keysTotal, clock] = await Promise.all([
    redis.zrange(Keys.fairnessRunning(type), 0, listed - 1),
    redis.zcard(Keys.fairnessRunning(type)),
    redis.zrange(Keys.fairnessKeys(type), 0, listed - 1, "WITHSCORES"),
    redis.zcard(Keys.fairnessKeys(type)),
    redis.get(Keys.fairnessClock(type)),
  ]);
  const names = keyScores.filter((_, i) => i % 2 === 0);
  const lines = names.length === 0 ? [] : await linesOf(redis, type, names);
  return {
    running,
    runningTotal,
    keys: names.map((key, i) => ({
      key,
      waiting: lines[i]?.[0] ?? 0,
      nextStart: Number(keyScores[i * 2 + 1]),
      nextWeight: lines[i]?.[1] ?? 0,
    })),
    keysTotal,
    clock: Number(clock ?? 0),
  };
}

// KEYS: each key's line. Answers, per line, {its length, its head's weight (0: none, or its record is gone)}.
const LINES = luaScript(`
local answers = {}
for i, line in ipairs(KEYS) do
  local head = redis.call('ZRANGE', line, 0, 0)[1]
  local weight = head and tonumber(redis.call('HGET', 'task:' .. head, 'fairnessWeight')) or 0
  answers[i] = {redis.call('ZCARD', line), weight}
end
return answers
`);

/** Each listed key's line: how many wait, and the weight of the next (one script, one round trip). */
async function linesOf(redis: Redis, type: string, keys: string[]): Promise<Array<[number, number]>> {
  return (await LINES.run(
    redis,
    keys.map((key) => Keys.fairnessWaiting(type, key)),
    [],
  )) as Array<[number, number]>;
}

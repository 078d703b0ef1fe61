/**
 * Concurrency keys (SubmitTaskRequest.concurrency_key and concurrency_limit): at most `limit` tasks of one key are in
 * the pipeline at once, from their release into it to their end. Counted in Redis, not in the workers, so that the
 * tasks over the limit wait in Redis instead of in a stream: one tenant's backlog then holds back no other tenant's
 * tasks (a worker-side limit would fill the worker's buffer with the backlog, as the per-type limits do).
 *
 *   concurrency_running:<key>  sorted set: the key's tasks in the pipeline → when each was released, or last found
 *                              still unfinished (ms)
 *   concurrency_waiting:<key>  sorted set: the key's tasks waiting PENDING for a place, by priority (high first),
 *                              then in the order they came to wait → the priority's band (PRIORITY_BAND_MS apart)
 *                              plus createdAt (ms), or just after the one before in the band when that is not earlier
 *   tasks_concurrency_waiting  sorted set: every key's waiting tasks, by createdAt alone (the count of them:
 *                              GetQueueStats, tm_tasks_waiting{reason="concurrency"}); trimmed of entries older than
 *                              the retention on every entry
 *
 * A task enters through `concurrencyAdmit`, called where it would otherwise be queued: saveTask (a task queued at
 * once) and the delayed-task releaser's script (a delayed task when due, or a task whose dependencies were met). It
 * leaves through the status script, on its terminal state (`concurrencyRelease`), which releases the waiting ones
 * that now fit, highest priority and then oldest first, into tasks_delayed due now: the gateway's releaser queues them (and finds them admitted
 * already). Both sides are Lua in the scripts that already make those moves, so a task cannot be counted twice nor
 * missed between a read and a write.
 *
 * The scripts name the two keys they compute from the task's record (a task's key is known only once its record is
 * read). Redis Cluster is not supported anyway (docs/DEPLOYMENT.md): a task's keys already share scripts with global
 * ones.
 *
 * A place is never leaked for good: a task that ended without its terminal state going through the status script
 * (its records expired unfinished, say) still holds one, so a key found full first checks the places not checked for
 * PLACE_CHECK_AFTER_MS (at most PLACE_CHECKS_MAX, the longest unchecked first): one whose task's record is gone or
 * whose status is terminal is taken back; the others are marked checked now.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import type { TaskRecord } from "./tasks.js";

/** A waiting set's priority bands are this far apart (ms, ~317 years): an arrival time never reaches the next band. */
export const PRIORITY_BAND_MS = 1e13;
/** A place is checked (is its task still unfinished?) when it has not been for this long, */
export const PLACE_CHECK_AFTER_MS = 60_000;
/** and at most this many places per script call: a key found full costs a bounded number of commands, however large
 *  its limit and however many submissions find it full. */
export const PLACE_CHECKS_MAX = 50;

/**
 * Lua shared by the scripts (a script cannot call another). Needs the locals `delayedKey` (tasks_delayed) and
 * `unfinishedKey` (tasks_unfinished) of the including script.
 *
 * `concurrencyKeyOf(taskKey)`: the key a task's record names, within its scope (`concurrencyRedisKey`), or false.
 *
 * `concurrencyRelease(key, now, ttl)`: admits the key's waiting tasks in their order, while each fits under its own
 * limit, making each due now in tasks_delayed with its stall clock from now, and says so on tasks_delayed_due (the
 * gateways' releasers queue it at once instead of at their next poll). A waiting task whose record is gone is
 * dropped (it can no longer run).
 *
 * `concurrencyAdmit(id, key, limit, now, ttl, createdMs)`: true when task `id` may be queued now (it holds a place:
 * taken now, or already); false when it waits (entered in the key's waiting set, its stall clock at the end of the
 * retention: it waits by design). A task is admitted only when none of its key waits before it; one that waits may
 * be released at once by the same call (places freed without a release), then through tasks_delayed.
 */
export const CONCURRENCY_LUA = `
local function concurrencyKeyOf(taskKey)
  local fields = redis.call('HMGET', taskKey, 'concurrencyKey', 'concurrencyScope')
  if not fields[1] then return false end
  if fields[2] then return fields[2] .. ':' .. fields[1] end
  return fields[1]
end
local function concurrencyPrune(running, now)
  local due = redis.call('ZRANGEBYSCORE', running, '-inf', now - ${PLACE_CHECK_AFTER_MS}, 'LIMIT', 0, ${PLACE_CHECKS_MAX})
  for _, member in ipairs(due) do
    local state = redis.call('HGET', 'task_status:' .. member, 'state')
    if redis.call('EXISTS', 'task:' .. member) == 0 or state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' then
      redis.call('ZREM', running, member)
    else
      redis.call('ZADD', running, now, member)
    end
  end
end
-- A number as Redis should store it: Lua's own conversion keeps 14 digits.
local function exactNumber(value)
  return string.format('%.17g', value)
end
-- Enters a task in a waiting set by its priority (its record's), then in the order they came to wait: its score is
-- its priority's band (high 0, medium 1, low 2) × ${PRIORITY_BAND_MS} plus its arrival time, or just after the last one
-- of its band if that is not later (a batch's tasks share one time; a late arrival goes last). NX: a repeated
-- submission keeps its place. Answers its arrival order within its band (a time, for the every-key sets).
local function waitInOrder(waiting, id, arrivalMs, ttl)
  local priority = redis.call('HGET', 'task:' .. id, 'priority')
  local band = 1
  if priority == 'high' then band = 0 elseif priority == 'low' then band = 2 end
  local base = band * ${PRIORITY_BAND_MS}
  local last = redis.call('ZREVRANGEBYSCORE', waiting, '(' .. exactNumber(base + ${PRIORITY_BAND_MS}), exactNumber(base),
    'WITHSCORES', 'LIMIT', 0, 1)[2]
  local score = base + arrivalMs
  if last and tonumber(last) >= score then score = tonumber(last) + 1 end
  redis.call('ZADD', waiting, 'NX', exactNumber(score), id)
  redis.call('EXPIRE', waiting, ttl)
  return score - base
end
-- Whether 'running' holds fewer places than 'limit', its unchecked places checked first when it is full, once per
-- call ('pruned' says whether they were; answered again).
local function roomIn(running, limit, now, pruned)
  if redis.call('ZCARD', running) >= limit and not pruned then
    concurrencyPrune(running, now)
    pruned = true
  end
  return redis.call('ZCARD', running) < limit, pruned
end
-- Task 'id' leaves its line ('waiting') and 'everyLine', the count of every key's lines.
local function leaveLine(id, waiting, everyLine)
  redis.call('ZREM', waiting, id)
  redis.call('ZREM', everyLine, id)
end
-- Task 'id' leaves its line ('waiting', and 'everyLine', the count of every line) for a place in 'running', and is
-- made due now in tasks_delayed with its stall clock from now, said on tasks_delayed_due: the gateways' releasers
-- queue it at once.
local function releaseFromLine(id, waiting, everyLine, running, now, ttl)
  leaveLine(id, waiting, everyLine)
  redis.call('ZADD', running, now, id)
  redis.call('EXPIRE', running, ttl)
  redis.call('ZADD', delayedKey, now, id)
  redis.call('ZADD', unfinishedKey, 'XX', now, id)
  redis.call('PUBLISH', 'tasks_delayed_due', id)
end
local function concurrencyRelease(key, now, ttl)
  local running = 'concurrency_running:' .. key
  local waiting = 'concurrency_waiting:' .. key
  local pruned = false
  while true do
    local head = redis.call('ZRANGE', waiting, 0, 0)[1]
    if not head then return end
    local limit = tonumber(redis.call('HGET', 'task:' .. head, 'concurrencyLimit'))
    if not limit then
      leaveLine(head, waiting, 'tasks_concurrency_waiting')
    else
      local room
      room, pruned = roomIn(running, limit, now, pruned)
      if not room then return end
      releaseFromLine(head, waiting, 'tasks_concurrency_waiting', running, now, ttl)
    end
  end
end
local function concurrencyAdmit(id, key, limit, now, ttl, createdMs)
  local running = 'concurrency_running:' .. key
  local waiting = 'concurrency_waiting:' .. key
  if redis.call('ZSCORE', running, id) then return true end
  if redis.call('ZCARD', waiting) == 0 and roomIn(running, limit, now, false) then
    redis.call('ZADD', running, now, id)
    redis.call('EXPIRE', running, ttl)
    return true
  end
  local score = waitInOrder(waiting, id, createdMs, ttl)
  redis.call('ZADD', 'tasks_concurrency_waiting', 'NX', score, id)
  redis.call('ZREMRANGEBYSCORE', 'tasks_concurrency_waiting', '-inf', now - ttl * 1000)
  redis.call('ZADD', unfinishedKey, 'XX', now + ttl * 1000, id)
  -- Places freed without a release (pruned above, or a lower limit of those waiting) go to the oldest waiting first;
  -- this task too, then through tasks_delayed.
  concurrencyRelease(key, now, ttl)
  return false
end
`;

/**
 * The key a task counts under: its concurrency key, within its scope when it has one (the submitter's, when the
 * gateway isolates callers: GATEWAY_TASK_ISOLATION=caller), so that two applications naming the same key do not
 * share one limit. Undefined for a task without a key.
 */
export function concurrencyRedisKey(task: Pick<TaskRecord, "concurrencyKey" | "concurrencyScope">): string | undefined {
  if (!task.concurrencyKey) return undefined;
  return task.concurrencyScope ? `${task.concurrencyScope}:${task.concurrencyKey}` : task.concurrencyKey;
}

/** Where a task of a concurrency key stands: waiting for a place (PENDING by design), or not. */
export async function isConcurrencyWaiting(redis: Redis, key: string, taskId: string): Promise<boolean> {
  return (await redis.zscore(Keys.concurrencyWaiting(key), taskId)) !== null;
}

/** How many tasks wait for a place under their concurrency key, every key's. */
export async function countConcurrencyWaiting(redis: Redis): Promise<number> {
  return redis.zcard(Keys.concurrencyWaitingAll);
}

/** One key's tasks, for operators: the first `listed` holding its places and waiting for one (in the order they get
 *  one), the counts, and the limit the next waiting one was submitted with (0: none waits). One round trip, then one
 *  read. */
export interface ConcurrencyKeyView {
  running: string[];
  runningTotal: number;
  waiting: string[];
  waitingTotal: number;
  nextLimit: number;
}

export async function readConcurrencyKey(redis: Redis, key: string, listed: number): Promise<ConcurrencyKeyView> {
  const [running, runningTotal, waiting, waitingTotal] = await Promise.all([
    redis.zrange(Keys.concurrencyRunning(key), 0, listed - 1),
    redis.zcard(Keys.concurrencyRunning(key)),
    redis.zrange(Keys.concurrencyWaiting(key), 0, listed - 1),
    redis.zcard(Keys.concurrencyWaiting(key)),
  ]);
  const head = waiting[0];
  const nextLimit = head === undefined ? 0 : Number((await redis.hget(Keys.task(head), "concurrencyLimit")) ?? 0);
  return { running, runningTotal, waiting, waitingTotal, nextLimit };
}

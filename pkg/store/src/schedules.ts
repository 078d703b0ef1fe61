/**
 * Recurring tasks: `schedules` (hash: id → the schedule as JSON, as the operator created it), `schedule_next` (sorted
 * set: id → when it next runs, ms), `schedule_last_run` (hash: id → JSON {at, taskId, runs} of its latest run, `runs`
 * counting its runs for max_runs) and `schedule_paused` (hash: id → JSON {at, by} while paused; a paused or ended
 * schedule has no `schedule_next` entry). All four
 * hold one entry per schedule, and schedules are created by operators only and capped (the gateway's limit).
 * A run is claimed by no lock: the gateway submits the run's task under an idempotency key made of the schedule and
 * the time (so two replicas, or a replica retrying after a crash, make one task), then moves the schedule's next time
 * on with a compare-and-set on the time it ran for, which only the first replica's call applies.
 */
import type { Priority, RetryBackoff } from "@tm/flow";
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { scoredMembers } from "./scored.js";
import { luaScript } from "./script.js";

export interface StoredSchedule {
  id: string;
  cron: string;
  /** IANA time zone; "" is UTC. */
  timezone: string;
  task: {
    type: string;
    payload: Record<string, unknown>;
    priority: Priority;
    metadata: Record<string, string>;
    timeoutMs?: number;
    maxAttempts?: number;
    retryBackoff?: RetryBackoff;
    expiresAfterMs?: number;
    /** Each run's task's succeeded retention (s), when set. */
    succeededRetentionSeconds?: number;
    /** Each run's task's concurrency key and limit (SubmitTaskRequest.concurrency_key), when set. */
    concurrencyKey?: string;
    concurrencyLimit?: number;
    /** Each run's task's fairness key and weight (SubmitTaskRequest.fairness_key), when set. */
    fairnessKey?: string;
    fairnessWeight?: number;
  };
  createdAt: string;
  createdBy: string;
  /** "skip": a run is skipped while the previous run's task has not finished; absent: it runs anyway. */
  overlap?: "skip";
  /** How late (ms) a run may still be submitted; a time missed by more is skipped. Absent: however late. */
  startingDeadlineMs?: number;
  /** No run before this time (ms) / after it; absent: from its creation / for ever. */
  startAtMs?: number;
  endAtMs?: number;
  /** At most this many runs at its times (RunSchedule's not counted); absent: no limit. */
  maxRuns?: number;
}

/** A schedule's latest run at one of its times, and how many it has made (before counting: undefined). */
export interface ScheduleRun {
  at: string;
  taskId: string;
  runs?: number;
}

export interface ScheduleState {
  schedule: StoredSchedule;
  /** When it runs next (ms); undefined when its expression names no later time, or while it is paused. */
  nextMs: number | undefined;
  lastRun: ScheduleRun | undefined;
  paused: { at: string; by: string } | undefined;
}

// KEYS: schedules, schedule_next, schedule_paused. ARGV: id, JSON, next ms ("" for none), replace ("1"/"0").
// A paused schedule that is replaced stays paused (no next time until it is resumed).
const SAVE = luaScript(`
if ARGV[4] ~= '1' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
`);

/** Stores a schedule due at `nextMs`; false when its id exists and `replace` is not set. */
export async function saveSchedule(
  redis: Redis,
  schedule: StoredSchedule,
  nextMs: number | undefined,
  replace: boolean,
): Promise<boolean> {
  const saved = await SAVE.run(
    redis,
    [Keys.schedules, Keys.scheduleNext, Keys.schedulePaused],
    [schedule.id, JSON.stringify(schedule), nextMs ?? "", replace ? "1" : "0"],
  );
  return saved === 1;
}

export async function countSchedules(redis: Redis): Promise<number> {
  return redis.hlen(Keys.schedules);
}

export async function readSchedule(redis: Redis, id: string): Promise<StoredSchedule | undefined> {
  const text = await redis.hget(Keys.schedules, id);
  return text ? (JSON.parse(text) as StoredSchedule) : undefined;
}

/** Every schedule with its next and last run, by id. */
export async function listSchedules(redis: Redis): Promise<ScheduleState[]> {
  const [all, next, last, paused] = await Promise.all([
    redis.hgetall(Keys.schedules),
    redis.zrange(Keys.scheduleNext, 0, -1, "WITHSCORES"),
    redis.hgetall(Keys.scheduleLastRun),
    redis.hgetall(Keys.schedulePaused),
  ]);
  const nextById = new Map(scoredMembers(next).map(({ member, score }) => [member, score]));
  return Object.keys(all)
    .sort()
    .map((id) => stateFrom(all[id] as string, nextById.get(id), last[id], paused[id]));
}

/** A schedule's state from its four entries as Redis holds them (JSON texts; the next time in ms). */
function stateFrom(
  json: string,
  nextMs: number | undefined,
  lastRun: string | undefined,
  paused: string | undefined,
): ScheduleState {
  return {
    schedule: JSON.parse(json) as StoredSchedule,
    nextMs,
    lastRun: lastRun ? (JSON.parse(lastRun) as ScheduleState["lastRun"]) : undefined,
    paused: paused ? (JSON.parse(paused) as ScheduleState["paused"]) : undefined,
  };
}

// KEYS: schedules, schedule_next, schedule_paused. ARGV: id, pause JSON. 0: no such schedule; 1: paused (the first
// pause's time and author are kept).
const PAUSE = luaScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`);

/** Stops a schedule's runs (a run under way may still submit its task): false when there is no such schedule. */
export async function pauseSchedule(redis: Redis, id: string, pause: { at: string; by: string }): Promise<boolean> {
  const keys = [Keys.schedules, Keys.scheduleNext, Keys.schedulePaused];
  return (await PAUSE.run(redis, keys, [id, JSON.stringify(pause)])) === 1;
}

// KEYS: schedules, schedule_next, schedule_paused. ARGV: id, next ms ("" for none). -1: no such schedule; 0: it was
// not paused; 1: resumed.
const RESUME = luaScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 1
`);

/** Lets a paused schedule run again from `nextMs`: "resumed", "not_paused" or "not_found". */
export async function resumeSchedule(
  redis: Redis,
  id: string,
  nextMs: number | undefined,
): Promise<"resumed" | "not_paused" | "not_found"> {
  const keys = [Keys.schedules, Keys.scheduleNext, Keys.schedulePaused];
  const reply = await RESUME.run(redis, keys, [id, nextMs ?? ""]);
  return reply === 1 ? "resumed" : reply === 0 ? "not_paused" : "not_found";
}

/** One schedule as listSchedules gives it; undefined when there is no such schedule. */
export async function scheduleState(redis: Redis, id: string): Promise<ScheduleState | undefined> {
  const [json, next, last, paused] = await Promise.all([
    redis.hget(Keys.schedules, id),
    redis.zscore(Keys.scheduleNext, id),
    redis.hget(Keys.scheduleLastRun, id),
    redis.hget(Keys.schedulePaused, id),
  ]);
  if (!json) return undefined;
  return stateFrom(json, next === null ? undefined : Number(next), last ?? undefined, paused ?? undefined);
}

// KEYS: schedules, schedule_next, schedule_last_run, schedule_paused. ARGV: id.
const DELETE = luaScript(`
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return removed
`);

/** Removes a schedule: true when there was one. */
export async function deleteSchedule(redis: Redis, id: string): Promise<boolean> {
  const keys = [Keys.schedules, Keys.scheduleNext, Keys.scheduleLastRun, Keys.schedulePaused];
  return (await DELETE.run(redis, keys, [id])) === 1;
}

/** Schedules due at `nowMs` (their next time has come), oldest first, at most `limit`. */
export async function dueSchedules(
  redis: Redis,
  nowMs: number,
  limit: number,
): Promise<Array<{ id: string; dueMs: number }>> {
  const reply = await redis.zrangebyscore(Keys.scheduleNext, "-inf", nowMs, "WITHSCORES", "LIMIT", 0, limit);
  return scoredMembers(reply).map(({ member, score }) => ({ id: member, dueMs: score }));
}

// KEYS: schedule_next, schedule_last_run. ARGV: id, the time it ran for, the next time ("" for none), the run's
// {at, taskId} as JSON ("" for a time skipped without a run), the most runs (0: no limit). A run is counted in its
// record (runs: one more than the last record's); the schedule has no next time once it has made the most.
// Returns 0 (another replica moved it on first), 1 (moved on), 2 (moved on, and that was its last run).
const ADVANCE = luaScript(`
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not current or tonumber(current) ~= tonumber(ARGV[2]) then return 0 end
local last = false
if ARGV[4] ~= '' then
  local runs = 1
  local previous = redis.call('HGET', KEYS[2], ARGV[1])
  if previous then
    local ok, decoded = pcall(cjson.decode, previous)
    if ok and type(decoded) == 'table' and type(decoded.runs) == 'number' then runs = decoded.runs + 1 end
  end
  local record = cjson.decode(ARGV[4])
  record.runs = runs
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(record))
  last = tonumber(ARGV[5]) > 0 and runs >= tonumber(ARGV[5])
end
if ARGV[3] == '' or last then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
if last then return 2 end
return 1
`);

/**
 * Moves a schedule that ran for `dueMs` on to `nextMs` (undefined: no later time), recording the run (undefined: a
 * time skipped, no run), counted against `maxRuns` (its last one leaves it no next time): "moved", "ended" (moved on,
 * and that was its last run), or false when another replica did it already, or the schedule was replaced or deleted
 * meanwhile.
 */
export async function advanceSchedule(
  redis: Redis,
  id: string,
  dueMs: number,
  nextMs: number | undefined,
  run: { at: string; taskId: string } | undefined,
  maxRuns = 0,
): Promise<"moved" | "ended" | false> {
  const applied = await ADVANCE.run(
    redis,
    [Keys.scheduleNext, Keys.scheduleLastRun],
    [id, dueMs, nextMs ?? "", run ? JSON.stringify(run) : "", maxRuns],
  );
  return applied === 2 ? "ended" : applied === 1 ? "moved" : false;
}

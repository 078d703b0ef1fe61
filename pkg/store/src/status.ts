/**
 * The task status in Redis: a hash updated only forward (compare-and-set on the version, in one Lua script so that
 * concurrent notifier replicas cannot interleave), and published on the channel of the same name in the same
 * script, so a subscriber never sees an update the hash does not hold.
 */
import type { StatusEvent, TaskState } from "@tm/flow";
import { TASK_STATES } from "@tm/flow";
import type { Redis } from "ioredis";
import { type BatchOptions, perTurnBatcher } from "./batch.js";
import { CONCURRENCY_LUA } from "./concurrency-keys.js";
import { FAIRNESS_LUA } from "./fairness.js";
import { Bounds, Keys } from "./keys.js";
import { luaScript } from "./script.js";

export interface StoredStatus {
  taskId: string;
  state: TaskState;
  progress: number;
  attempt: number;
  error: string;
  version: number;
  updatedAt: string;
  generation: number;
  source: string;
  /** The attempt's last progress report (0: none), its message and details (JSON text, "" when none); an update
   *  without one (a new attempt, SUCCEEDED, CANCELLED) clears them; its failure (RUNNING, FAILED) repeats them. */
  progressReport: number;
  progressMessage: string;
  progressDetails: string;
}

// Applies updates in order. KEYS: the tasks' status hashes, one per update, then the result keys of the updates that
// require a stored result, then the record keys of the SUCCEEDED updates (retainedKeys, eight each), then the tasks'
// task_dependents hashes, one per update, then tasks_unfinished, tasks_delayed, tasks_waiting,
// tasks_dependency_failed, task_index and tasks_expiring. ARGV[1] is the TTL, ARGV[2] the number of updates, ARGV[3]
// now (ms), ARGV[4] how long a succeeded task is kept (s, TASK_SUCCEEDED_RETENTION_SECONDS; 0: the TTL), then 16
// values per update: the 10 fields below, the KEYS index of its result key (0: no requirement), when its stall clock
// starts (ms), its progress report (number, message, details) and the KEYS index of its record keys (0: none).
// Returns per update 1 (applied and published), 0 (stale, ignored) or 2 (held: newer, but its result is not stored
// yet; nothing written). An applied update enters its task in
// tasks_unfinished (non-terminal) or takes it out (terminal), so the index never disagrees with the hashes.
// An applied terminal state settles the tasks waiting for the task (SubmitTaskRequest.depends_on), in the same script
// so that a task saved meanwhile either saw this state or is found here: SUCCEEDED counts down each one's unfinished
// dependencies in tasks_waiting and, at 0, makes it due in tasks_delayed (at its release time if later; the gateway's
// releaser queues it) with its stall clock from then; FAILED or CANCELLED takes it out of tasks_waiting into
// tasks_dependency_failed, where the gateway cancels it, unless it runs once its dependencies finished whatever the
// outcome (a task_dependents value "<release time> finished"): then any terminal state counts it down. Either way
// task_dependents:<id> goes. A terminal state of a task with a concurrency key (its record's) gives back its place,
// or takes it out of the key's waiting set (cancelled while it waited), and releases the key's waiting tasks that now
// fit (concurrency-keys.ts); then, for a task with a fairness key, its place in its type's window, letting in the
// tasks whose turn it is (fairness.ts).
// Mirrors lifecycle.shouldApply: later (a newer version, or the same one with a later progress report), and either a
// non-terminal current state or a newer generation.
// GENERATION_SPAN (1e8) must match pkg/flow/src/lifecycle.ts; a unit test checks the two agree.
const APPLY_STATUS = `
local ttl = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local defaultKeep = tonumber(ARGV[4])
local unfinished = KEYS[#KEYS - 5]
local delayed = KEYS[#KEYS - 4]
local waiting = KEYS[#KEYS - 3]
local dependencyFailed = KEYS[#KEYS - 2]
local taskIndex = KEYS[#KEYS - 1]
local expiring = KEYS[#KEYS]
local delayedKey = delayed
local unfinishedKey = unfinished
${CONCURRENCY_LUA}
${FAIRNESS_LUA}
local firstDependents = #KEYS - 6 - count
local shortened = 0
local function settleDependents(key, taskId, state)
  local dependents = redis.call('HGETALL', key)
  for j = 1, #dependents, 2 do
    local dependent = dependents[j]
    local releaseMs, policy = string.match(dependents[j + 1], '^(%d+) ?(%a*)$')
    local left = tonumber(redis.call('HGET', waiting, dependent))
    if left then
      if state == 'SUCCEEDED' or policy == 'finished' then
        if left > 1 then
          redis.call('HSET', waiting, dependent, left - 1)
        else
          redis.call('HDEL', waiting, dependent)
          local due = math.max(now, tonumber(releaseMs) or 0)
          redis.call('ZADD', delayed, due, dependent)
          redis.call('ZADD', unfinished, 'XX', due, dependent)
          -- Due now: the gateways' releasers queue it at once (a later release time waits for their poll).
          if due == now then redis.call('PUBLISH', 'tasks_delayed_due', dependent) end
        end
      else
        redis.call('HDEL', waiting, dependent)
        redis.call('ZADD', dependencyFailed, now, dependent .. ' ' .. taskId .. ' ' .. state)
      end
    end
  end
  redis.call('DEL', key)
end
-- A task that SUCCEEDED is kept for its own succeededRetentionSeconds, else ARGV[4], from now on, when that is
-- shorter than the TTL: its status, then its records (task, result, history, cancel marker, hand-backs, children). Not a task
-- that others waited for (task_dependent_ids): their handlers read its result (ctx.dependencies()). Its task_index
-- entry would outlive it (the index is trimmed by submission time): tasks_expiring holds it until then.
local function shortenRetention(key, records, taskId)
  local keep = tonumber(redis.call('HGET', KEYS[records], 'succeededRetentionSeconds')) or defaultKeep
  if keep <= 0 or keep >= ttl or redis.call('EXISTS', KEYS[records + 7]) == 1 then return end
  redis.call('EXPIRE', key, keep)
  for k = records, records + 6 do redis.call('EXPIRE', KEYS[k], keep) end
  redis.call('ZADD', expiring, now + keep * 1000, taskId)
  shortened = shortened + 1
end
local function apply(i, key, a)
  local cur = redis.call('HMGET', key, 'version', 'state', 'progressReport')
  local newVersion = tonumber(ARGV[a])
  if cur[1] then
    local curVersion = tonumber(cur[1])
    if newVersion < curVersion then return 0 end
    if newVersion == curVersion and tonumber(ARGV[a + 12]) <= (tonumber(cur[3]) or 0) then return 0 end
    local terminal = cur[2] == 'SUCCEEDED' or cur[2] == 'FAILED' or cur[2] == 'CANCELLED'
    if terminal and math.floor(newVersion / 100000000) <= math.floor(curVersion / 100000000) then return 0 end
  end
  local resultKey = tonumber(ARGV[a + 10])
  if resultKey > 0 and redis.call('EXISTS', KEYS[resultKey]) == 0 then return 2 end
  redis.call('HSET', key, 'taskId', ARGV[a + 1], 'state', ARGV[a + 2], 'progress', ARGV[a + 3],
    'attempt', ARGV[a + 4], 'error', ARGV[a + 5], 'version', ARGV[a], 'updatedAt', ARGV[a + 6],
    'generation', ARGV[a + 7], 'source', ARGV[a + 8])
  -- A progress report's fields exist only while one is shown: most tasks report none and write none.
  if ARGV[a + 12] ~= '0' then
    redis.call('HSET', key, 'progressReport', ARGV[a + 12], 'progressMessage', ARGV[a + 13],
      'progressDetails', ARGV[a + 14])
  elseif cur[3] then
    redis.call('HDEL', key, 'progressReport', 'progressMessage', 'progressDetails')
  end
  redis.call('EXPIRE', key, ttl)
  local records = tonumber(ARGV[a + 15])
  if records > 0 then shortenRetention(key, records, ARGV[a + 1]) end
  redis.call('PUBLISH', key, ARGV[a + 9])
  local state = ARGV[a + 2]
  if state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' then
    redis.call('ZREM', unfinished, ARGV[a + 1])
    local dependents = KEYS[firstDependents + i]
    if redis.call('EXISTS', dependents) == 1 then settleDependents(dependents, ARGV[a + 1], state) end
    local concurrencyKey = concurrencyKeyOf('task:' .. ARGV[a + 1])
    if concurrencyKey then
      redis.call('ZREM', 'concurrency_running:' .. concurrencyKey, ARGV[a + 1])
      redis.call('ZREM', 'concurrency_waiting:' .. concurrencyKey, ARGV[a + 1])
      redis.call('ZREM', 'tasks_concurrency_waiting', ARGV[a + 1])
      concurrencyRelease(concurrencyKey, now, ttl)
    end
    local fairness = fairnessOf('task:' .. ARGV[a + 1])
    if fairness then fairnessEnd(ARGV[a + 1], fairness, now, ttl) end
  else
    redis.call('ZADD', unfinished, ARGV[a + 11], ARGV[a + 1])
  end
  return 1
end
local applied = {}
for i = 1, count do
  applied[i] = apply(i, KEYS[i], 5 + (i - 1) * 16)
end
-- The index entries of tasks whose shortened retention ended: taken out as fast as tasks are shortened (two for
-- each), so tasks_expiring holds about the tasks within their retention.
if shortened > 0 then
  local due = redis.call('ZRANGEBYSCORE', expiring, '-inf', now, 'LIMIT', 0, 2 * shortened)
  if #due > 0 then
    redis.call('ZREM', taskIndex, unpack(due))
    redis.call('ZREM', expiring, unpack(due))
  end
end
return applied
`;
const applyStatusScript = luaScript(APPLY_STATUS);

/** Most updates one script call applies: a script blocks Redis while it runs (5–6 commands per update). */
export const STATUS_BATCH_MAX = 128;

/** What applying an update did: stored and published, ignored as stale, or held because its result is not stored. */
export type StatusOutcome = "applied" | "stale" | "held";

export interface StatusUpdate {
  event: StatusEvent;
  /** Apply only if a result of the task is stored (`task_result:<id>` exists), else answer "held" and write nothing:
   *  the notifier's check for a first-generation SUCCEEDED, made in the same script call instead of one before it. */
  requireStoredResult?: boolean;
  /** When the task's stall clock starts (ms) if not at the update's time: a delayed task waits PENDING by design until
   *  its release time (tasks_unfinished, the gateway's stalled-task count). */
  stallClockFromMs?: number;
}

export function toStoredStatus(event: StatusEvent): StoredStatus {
  return {
    taskId: event.taskId,
    state: event.state,
    progress: event.progress,
    attempt: event.attempt,
    error: event.error ?? "",
    version: event.version,
    updatedAt: event.updatedAt,
    generation: event.generation,
    source: event.source,
    progressReport: event.progressReport ?? 0,
    progressMessage: event.progressMessage ?? "",
    progressDetails: event.progressDetails ? JSON.stringify(event.progressDetails) : "",
  };
}

/** Applies the update if it is newer than what Redis holds; returns whether it was applied (and published). */
export async function applyStatus(
  redis: Redis,
  event: StatusEvent,
  ttlSeconds: number = Bounds.taskTtlSeconds,
  { stallClockFromMs }: Pick<StatusUpdate, "stallClockFromMs"> = {},
): Promise<boolean> {
  const [applied] = await applyStatusUpdates(redis, [{ event, stallClockFromMs }], ttlSeconds);
  return applied === "applied";
}

/** Applies updates in order in one script call, each only if newer than what Redis holds (then, when it applies
 *  an earlier one, against that); per update, whether it was applied (and published). */
export async function applyStatusBatch(
  redis: Redis,
  events: readonly StatusEvent[],
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<boolean[]> {
  const outcomes = await applyStatusUpdates(
    redis,
    events.map((event) => ({ event })),
    ttlSeconds,
  );
  return outcomes.map((outcome) => outcome === "applied");
}

/** The keys whose lifetime a SUCCEEDED update may shorten (the status script's shortenRetention), in its order: the
 *  task's records and its children's listing, then task_dependent_ids (whose existence keeps them). */
function retainedKeys(taskId: string): string[] {
  return [
    Keys.task(taskId),
    Keys.result(taskId),
    Keys.history(taskId),
    Keys.cancel(taskId),
    Keys.handBacks(taskId),
    Keys.children(taskId),
    Keys.logs(taskId),
    Keys.dependentIds(taskId),
  ];
}

/** As applyStatusBatch, with a stored result required of some updates (`requireStoredResult`). A task that SUCCEEDED
 *  is kept `succeededRetentionSeconds` from then on when that is shorter than `ttlSeconds` (0: not shortened), or its
 *  own `succeededRetentionSeconds` (task:<id>), unless other tasks depend on it. */
export async function applyStatusUpdates(
  redis: Redis,
  updates: readonly StatusUpdate[],
  ttlSeconds: number = Bounds.taskTtlSeconds,
  succeededRetentionSeconds = 0,
): Promise<StatusOutcome[]> {
  if (updates.length === 0) return [];
  const keys: string[] = [];
  const resultKeys: string[] = [];
  const recordKeys: string[] = [];
  const args: string[] = [
    String(ttlSeconds),
    String(updates.length),
    String(Date.now()),
    String(succeededRetentionSeconds),
  ];
  // KEYS: status keys, result keys (one per update requiring a stored result), record keys (eight per SUCCEEDED).
  const resultKeysCount = updates.filter((update) => update.requireStoredResult).length;
  for (const { event, requireStoredResult, stallClockFromMs } of updates) {
    const status = toStoredStatus(event);
    keys.push(Keys.status(event.taskId));
    if (requireStoredResult) resultKeys.push(Keys.result(event.taskId));
    const recordsAt = event.state === "SUCCEEDED" ? updates.length + resultKeysCount + recordKeys.length + 1 : 0;
    if (recordsAt > 0) recordKeys.push(...retainedKeys(event.taskId));
    args.push(
      String(status.version),
      status.taskId,
      status.state,
      String(status.progress),
      String(status.attempt),
      status.error,
      status.updatedAt,
      String(status.generation),
      status.source,
      JSON.stringify(status),
      // KEYS index (1-based) of this update's result key: after the status keys, in order.
      requireStoredResult ? String(updates.length + resultKeys.length) : "0",
      String(stallClockFromMs ?? stallClockOf(status.updatedAt)),
      String(status.progressReport),
      status.progressMessage,
      status.progressDetails,
      String(recordsAt),
    );
  }
  const dependentsKeys = updates.map(({ event }) => Keys.dependents(event.taskId));
  const codes = (await applyStatusScript.run(
    redis,
    [
      ...keys,
      ...resultKeys,
      ...recordKeys,
      ...dependentsKeys,
      Keys.unfinished,
      Keys.delayed,
      Keys.waiting,
      Keys.dependencyFailed,
      Keys.taskIndex,
      Keys.expiring,
    ],
    args,
  )) as number[];
  return codes.map((code) => (code === 1 ? "applied" : code === 2 ? "held" : "stale"));
}

/** An update's time in ms (what tasks_unfinished scores it by); an unreadable one counts as now, not as never. */
function stallClockOf(updatedAt: string): number {
  const ms = Date.parse(updatedAt);
  return Number.isFinite(ms) ? ms : Date.now();
}

/**
 * Applies status updates, gathering those requested in the same turn of the event loop into one script call: the
 * notifier handles a fetched batch of deliveries concurrently and makes one Redis call for all of them. Each caller
 * gets its own update's outcome, and an update Redis refuses fails alone (see perTurnBatcher).
 */
export function statusApplier(
  redis: Redis,
  {
    maxBatch = STATUS_BATCH_MAX,
    ttlSeconds = Bounds.taskTtlSeconds,
    succeededRetentionSeconds = 0,
  }: BatchOptions & { succeededRetentionSeconds?: number } = {},
): (update: StatusUpdate) => Promise<StatusOutcome> {
  return perTurnBatcher<StatusUpdate, StatusOutcome>(
    (updates) => applyStatusUpdates(redis, updates, ttlSeconds, succeededRetentionSeconds),
    maxBatch,
  );
}

export async function readStatus(redis: Redis, taskId: string): Promise<StoredStatus | undefined> {
  const hash = await redis.hgetall(Keys.status(taskId));
  return parseStatusHash(hash);
}

/**
 * The attempt this generation of the task last started, when its status says it is RUNNING (a worker took it and has
 * not finished): a delivery whose own attempt number is not higher repeats one that was interrupted.
 */
export async function startedAttempt(redis: Redis, taskId: string, generation: number): Promise<number | undefined> {
  const [state, attempt, stored] = await redis.hmget(Keys.status(taskId), "state", "attempt", "generation");
  if (state !== "RUNNING" || Number(stored ?? 0) !== generation) return undefined;
  return Number(attempt ?? 0) || undefined;
}

export function parseStatusHash(hash: Record<string, string>): StoredStatus | undefined {
  if (!hash.state || !(TASK_STATES as readonly string[]).includes(hash.state)) return undefined;
  return {
    taskId: hash.taskId ?? "",
    state: hash.state as TaskState,
    progress: Number(hash.progress ?? 0),
    attempt: Number(hash.attempt ?? 0),
    error: hash.error ?? "",
    version: Number(hash.version ?? 0),
    updatedAt: hash.updatedAt ?? "",
    generation: Number(hash.generation ?? 0),
    source: hash.source ?? "",
    progressReport: Number(hash.progressReport ?? 0),
    progressMessage: hash.progressMessage ?? "",
    progressDetails: hash.progressDetails ?? "",
  };
}

/** Parses a message from the task_status:<id> channel; undefined if it is not one of ours. */
export function parseStatusMessage(text: string): StoredStatus | undefined {
  try {
    const value = JSON.parse(text) as StoredStatus;
    if (typeof value?.version !== "number" || !(TASK_STATES as readonly string[]).includes(value.state))
      return undefined;
    return value;
  } catch {
    return undefined;
  }
}

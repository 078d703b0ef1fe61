/** The task record (task:<id>), results (task_result:<id>), cancel markers and idempotency keys. */
import { type Priority, type ResultMessage, type RetryBackoff, RetryBackoffSchema } from "@tm/flow";
import type { Redis } from "ioredis";
import { CONCURRENCY_LUA } from "./concurrency-keys.js";
import { FAIRNESS_LUA } from "./fairness.js";
import { Bounds, Keys } from "./keys.js";
import { luaScript } from "./script.js";
import { REGISTER_WAITING } from "./waiting-lua.js";

export interface TaskRecord {
  taskId: string;
  type: string;
  priority: Priority;
  payload: Record<string, unknown>;
  metadata: Record<string, string>;
  createdAt: string;
  idempotencyKey?: string;
  traceparent?: string;
  /** Incremented by each replay of a dead letter. */
  generation: number;
  /** A delayed task's release time (ISO 8601): it waits in tasks_delayed until then. */
  runAt?: string;
  /** Its handler timeout per attempt (ms), when the submission set one. */
  timeoutMs?: number;
  /** The most attempts it gets, when the submission set fewer than the pipeline's maxDeliver. */
  maxAttempts?: number;
  /** Its own wait after a failed attempt, when the submission set one. */
  retryBackoff?: RetryBackoff;
  /** Not run if no attempt has started this long after it was due (ms), when the submission set it. */
  expiresAfterMs?: number;
  /** An attempt reporting no progress for this long is aborted (ms), when the submission set it. */
  heartbeatTimeoutMs?: number;
  /** How many times the gateway requeued it on its own as stalled (claimRequeue's `autoLimit`), when it did. */
  autoRequeues?: number;
  /** The tasks it waits for (SubmitTaskRequest.depends_on), when it named any. */
  dependsOn?: string[];
  /** "all-finished": it runs once they all finished, whatever the outcome; absent: all must succeed. */
  dependencyPolicy?: "all-finished";
  /** The generation a replay of a dependency revived it as (reviveDependent): it waits for its dependencies again,
   *  and the delayed-task releaser queues that generation. */
  revivedGeneration?: number;
  /** How long its records are kept once it SUCCEEDED (s), when the submission set it: read by the status script. */
  succeededRetentionSeconds?: number;
  /** The task whose handler submitted this one (SubmitTaskRequest.parent_task_id), when it was set. */
  parentTaskId?: string;
  /** At most `concurrencyLimit` tasks of `concurrencyKey` in the pipeline at once (concurrency-keys.ts), when set. */
  concurrencyKey?: string;
  concurrencyLimit?: number;
  /** Whose key it is, when keys are per submitter (concurrencyRedisKey): counted under "<scope>:<key>". */
  concurrencyScope?: string;
  /** Its tenant within its type's fair share (fairness.ts), when set, served in proportion to `fairnessWeight`
   *  (1 when unset) among the type's keys with tasks waiting. */
  fairnessKey?: string;
  fairnessWeight?: number;
  /** Whose key it is, when keys are per submitter (fairnessRedisKey), as concurrencyScope. */
  fairnessScope?: string;
  /** How many tasks of its type with a fairness key may be in the pipeline at once (GATEWAY_FAIRNESS_WINDOW when it
   *  was submitted): the window it is let in through. */
  fairnessWindow?: number;
}

// The task record with its TTL, and its entry in the listing index, which is trimmed of tasks whose records have
// expired (bounded by what one TTL can hold). One script, so one command where a MULTI sent six (and, traced, made
// six spans): SubmitTask's hot path. With `unqueued`, the task is also entered in tasks_unqueued (trimmed alike)
// until its tasks.ingest PubAck is seen: a submission interrupted between this write and that publish is then
// found by the requeue sweeper instead of staying PENDING for good. With `delayedUntilMs`, it is entered in
// tasks_delayed instead, scored by the time it is due (the gateway's delayed-task releaser takes it from there).
// With dependencies (entry "3"), the dependencies' states are read first, in the same script as the writes: one
// FAILED or CANCELLED refuses the task (nothing written; answers its index, negative, and state); the task is entered
// in task_dependents:<dep> of each unfinished one (field: the task id, value: its release time, 0 for none) and in
// tasks_waiting with their count, or, with none unfinished, as entry "2" (a release time) or "1" would. The status
// script releases it when the last one SUCCEEDED (task-dependencies.ts). Answers the count of unfinished ones.
// Entry "4" is "3" for a task that runs once its dependencies finished, whatever the outcome: none refuses it, a
// finished one counts as done, and its task_dependents value is "<release time> finished". Either way the task is
// entered in each dependency's task_dependent_ids (scored by createdAt; kept as long as the task's record), which
// lists a task's dependents for as long as they exist, waiting or not (GetTask's `dependents`).
// A dependency that SUCCEEDED already may have had its records shortened (a succeeded retention, applied while no task
// depended on it): its status and result, which the dependent's handler reads (ctx.dependencies()), are kept at least
// as long as the dependent's record.
// The idempotency key the submission claimed (holding the task id) is marked "<id> saved" with the record: a repeat that
// finds the mark and no record knows the records expired (kept less than the key), not that the submission was
// interrupted before it saved them (then it is made again under the id).
// A task with a concurrency key (concurrency-keys.ts) that would be entered in tasks_unqueued, to be queued now, is
// first admitted under its key's limit: when it must wait instead, it is entered in the key's waiting set and the
// script answers "concurrency" (the caller does not queue it; the status script releases it). A delayed one, or one
// waiting for dependencies, is admitted by the releaser when it is due. Then one with a fairness key (fairness.ts) is
// let into its type's window, or waits for its turn: the script answers "fairness".
// KEYS: task:<id>, task_index, tasks_unqueued, tasks_delayed, tasks_waiting, the claimed idempotency key (task:<id>
// again when there is none), tasks_unfinished,
// then per dependency its task_status, task_dependents, task_dependent_ids and task_result keys.
// ARGV: ttl seconds, index score (createdAt ms), trim cutoff, index member (the task id), entry ("0" none,
// "1" unqueued, "2" delayed, "3" / "4" waiting for dependencies), the delayed entry's score (with dependencies: the release
// time, 0 for none), "1" to mark the idempotency key, now (ms), then the record's fields and values.
const SAVE_TASK = luaScript(`${REGISTER_WAITING}
local delayedKey = KEYS[4]
local unfinishedKey = KEYS[7]
${CONCURRENCY_LUA}
${FAIRNESS_LUA}
local waiting = 0
local finishing = ARGV[5] == '4'
if ARGV[5] == '3' then
  for i = 8, #KEYS, 4 do
    local state = redis.call('HGET', KEYS[i], 'state')
    if state == 'FAILED' or state == 'CANCELLED' then return {-(i - 4) / 4, state} end
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[7] == '1' and redis.call('GET', KEYS[6]) == ARGV[4] then
  redis.call('SET', KEYS[6], ARGV[4] .. ' saved', 'KEEPTTL')
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local entry = ARGV[5]
if entry == '3' or finishing then
  for i = 8, #KEYS, 4 do
    redis.call('ZADD', KEYS[i + 2], ARGV[2], ARGV[4])
    if redis.call('TTL', KEYS[i + 2]) < tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[i + 2], ARGV[1]) end
    if redis.call('HGET', KEYS[i], 'state') == 'SUCCEEDED' then
      for _, key in ipairs({KEYS[i], KEYS[i + 3]}) do
        local left = redis.call('TTL', key)
        if left >= 0 and left < tonumber(ARGV[1]) then redis.call('EXPIRE', key, ARGV[1]) end
      end
    end
  end
  waiting = registerWaiting(ARGV[4], ARGV[6], ARGV[1], finishing, 8, 4)
  if waiting > 0 then
    redis.call('HSET', KEYS[5], ARGV[4], waiting)
    return waiting
  end
  entry = ARGV[6] == '0' and '1' or '2'
end
local concurrencyKey = concurrencyKeyOf(KEYS[1])
if entry == '1' and concurrencyKey then
  local limit = tonumber(redis.call('HGET', KEYS[1], 'concurrencyLimit'))
  if not concurrencyAdmit(ARGV[4], concurrencyKey, limit, tonumber(ARGV[8]), tonumber(ARGV[1]), tonumber(ARGV[2])) then
    return 'concurrency'
  end
end
local fairness = entry == '1' and fairnessOf(KEYS[1])
if fairness and not fairnessAdmit(ARGV[4], fairness.queue, fairness.key, fairness.window, fairness.weight,
    tonumber(ARGV[8]), tonumber(ARGV[1]), tonumber(ARGV[2])) then
  return 'fairness'
end
if entry == '1' then
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
elseif entry == '2' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[3])
end
return waiting
`);

/** A task record's hash fields, as saveTask writes them (an unset optional field is left out). */
export function recordFields(task: TaskRecord): Record<string, string> {
  return {
    taskId: task.taskId,
    type: task.type,
    priority: task.priority,
    payload: JSON.stringify(task.payload),
    metadata: JSON.stringify(task.metadata),
    createdAt: task.createdAt,
    idempotencyKey: task.idempotencyKey ?? "",
    traceparent: task.traceparent ?? "",
    generation: String(task.generation),
    ...(task.runAt ? { runAt: task.runAt } : {}),
    ...(task.timeoutMs ? { timeoutMs: String(task.timeoutMs) } : {}),
    ...(task.maxAttempts ? { maxAttempts: String(task.maxAttempts) } : {}),
    ...(task.retryBackoff ? { retryBackoff: JSON.stringify(task.retryBackoff) } : {}),
    ...(task.expiresAfterMs ? { expiresAfterMs: String(task.expiresAfterMs) } : {}),
    ...(task.heartbeatTimeoutMs ? { heartbeatTimeoutMs: String(task.heartbeatTimeoutMs) } : {}),
    ...(task.dependsOn?.length ? { dependsOn: task.dependsOn.join(",") } : {}),
    ...(task.dependencyPolicy ? { dependencyPolicy: task.dependencyPolicy } : {}),
    ...(task.succeededRetentionSeconds ? { succeededRetentionSeconds: String(task.succeededRetentionSeconds) } : {}),
    ...(task.parentTaskId ? { parentTaskId: task.parentTaskId } : {}),
    ...(task.concurrencyKey && task.concurrencyLimit
      ? { concurrencyKey: task.concurrencyKey, concurrencyLimit: String(task.concurrencyLimit) }
      : {}),
    ...(task.concurrencyKey && task.concurrencyScope ? { concurrencyScope: task.concurrencyScope } : {}),
    ...(task.fairnessKey
      ? {
          fairnessKey: task.fairnessKey,
          fairnessWeight: String(task.fairnessWeight ?? 1),
          fairnessWindow: String(task.fairnessWindow ?? 1),
          ...(task.fairnessScope ? { fairnessScope: task.fairnessScope } : {}),
        }
      : {}),
  };
}

/**
 * The fields a debounce's submission replaces in its key's waiting task (replaceWaiting): what the task is given and
 * how it runs, all but who and what it is (its id, type, creation, trace, idempotency key, generation, parent,
 * dependencies). runAt is moved apart.
 */
export const REPLACEABLE_FIELDS = [
  "priority",
  "payload",
  "metadata",
  "timeoutMs",
  "maxAttempts",
  "retryBackoff",
  "expiresAfterMs",
  "heartbeatTimeoutMs",
  "succeededRetentionSeconds",
  "concurrencyKey",
  "concurrencyLimit",
  "concurrencyScope",
  "fairnessKey",
  "fairnessWeight",
  "fairnessWindow",
  "fairnessScope",
] as const;

export interface SaveTaskOptions {
  /** The record's TTL; a delayed task's is extended by its delay, so that it lives as long after it runs. */
  ttlSeconds?: number;
  /** Enter the task in tasks_unqueued until `markQueued` (a new submission about to be published). */
  unqueued?: boolean;
  /** Enter the task in tasks_delayed, due at this time (ms), instead of publishing it now (`task.runAt`). */
  delayedUntilMs?: number;
  /** The idempotency key the submission claimed (as `claimIdempotencyKey` was given it): marked saved with the record. */
  idempotencyClaim?: string;
}

/**
 * What saving a task with dependencies (`task.dependsOn`) did: it waits for `waitingFor` of them (0: none is
 * unfinished, and it was entered as `unqueued` or `delayedUntilMs` say), or it was refused, nothing written, because
 * `dependency` ended in `state` (FAILED or CANCELLED). `waitsFor`: a task that would have been entered as `unqueued`
 * waits instead for a place under its concurrency key, or for its turn in its type's fairness window (not to be
 * queued now).
 */
export type SavedTask =
  | { waitingFor: number; waitsFor?: "concurrency" | "fairness" }
  | { refusedBy: { dependency: string; state: string } };

export async function saveTask(redis: Redis, task: TaskRecord, options: SaveTaskOptions = {}): Promise<SavedTask> {
  const parsed = Date.parse(task.createdAt);
  const createdMs = Number.isNaN(parsed) ? Date.now() : parsed;
  const { delayedUntilMs } = options;
  const delaySeconds = delayedUntilMs === undefined ? 0 : Math.max(0, Math.ceil((delayedUntilMs - createdMs) / 1000));
  const ttlSeconds = (options.ttlSeconds ?? Bounds.taskTtlSeconds) + delaySeconds;
  const fields = recordFields(task);
  const dependencies = task.dependsOn ?? [];
  const entry =
    dependencies.length > 0
      ? task.dependencyPolicy === "all-finished"
        ? "4"
        : "3"
      : delayedUntilMs !== undefined
        ? "2"
        : options.unqueued
          ? "1"
          : "0";
  const reply = (await SAVE_TASK.run(
    redis,
    [
      Keys.task(task.taskId),
      Keys.taskIndex,
      Keys.unqueued,
      Keys.delayed,
      Keys.waiting,
      // Without a claim, the task's own key in its place: the script touches it only when ARGV[7] is "1".
      options.idempotencyClaim === undefined ? Keys.task(task.taskId) : Keys.idempotency(options.idempotencyClaim),
      Keys.unfinished,
      ...dependencies.flatMap((id) => [Keys.status(id), Keys.dependents(id), Keys.dependentIds(id), Keys.result(id)]),
    ],
    [
      ttlSeconds,
      createdMs,
      `(${createdMs - (ttlSeconds - delaySeconds) * 1000}`,
      task.taskId,
      entry,
      delayedUntilMs ?? 0,
      options.idempotencyClaim === undefined ? "0" : "1",
      Date.now(),
      ...Object.entries(fields).flat(),
    ],
  )) as number | [number, string] | "concurrency" | "fairness";
  if (reply === "concurrency") return { waitingFor: 0, waitsFor: "concurrency" };
  if (reply === "fairness") return { waitingFor: 0, waitsFor: "fairness" };
  if (Array.isArray(reply)) {
    return { refusedBy: { dependency: dependencies[-reply[0] - 1] ?? "?", state: reply[1] } };
  }
  return { waitingFor: reply };
}

/** Starts a new generation of a task (a replay): returns the new generation. */
export async function readTask(redis: Redis, taskId: string): Promise<TaskRecord | undefined> {
  return parseTaskHash(await redis.hgetall(Keys.task(taskId)));
}

/** A task:<id> hash as a record; undefined when empty (unknown or expired). */
export function parseTaskHash(hash: Record<string, string>): TaskRecord | undefined {
  if (!hash.taskId) return undefined;
  return {
    taskId: hash.taskId,
    type: hash.type ?? "",
    priority: (hash.priority ?? "medium") as Priority,
    payload: safeJson(hash.payload, {}),
    metadata: safeJson(hash.metadata, {}),
    createdAt: hash.createdAt ?? "",
    ...(hash.idempotencyKey ? { idempotencyKey: hash.idempotencyKey } : {}),
    ...(hash.traceparent ? { traceparent: hash.traceparent } : {}),
    generation: Number(hash.generation ?? 0),
    ...(hash.runAt ? { runAt: hash.runAt } : {}),
    ...(positive(hash.timeoutMs) ? { timeoutMs: Number(hash.timeoutMs) } : {}),
    ...(positive(hash.maxAttempts) ? { maxAttempts: Number(hash.maxAttempts) } : {}),
    ...retryBackoffField(hash.retryBackoff),
    ...(positive(hash.expiresAfterMs) ? { expiresAfterMs: Number(hash.expiresAfterMs) } : {}),
    ...(positive(hash.heartbeatTimeoutMs) ? { heartbeatTimeoutMs: Number(hash.heartbeatTimeoutMs) } : {}),
    ...(hash.dependsOn ? { dependsOn: hash.dependsOn.split(",") } : {}),
    ...(hash.dependencyPolicy === "all-finished" ? { dependencyPolicy: "all-finished" as const } : {}),
    ...(positive(hash.autoRequeues) ? { autoRequeues: Number(hash.autoRequeues) } : {}),
    ...(positive(hash.revivedGeneration) ? { revivedGeneration: Number(hash.revivedGeneration) } : {}),
    ...(positive(hash.succeededRetentionSeconds)
      ? { succeededRetentionSeconds: Number(hash.succeededRetentionSeconds) }
      : {}),
    ...(hash.parentTaskId ? { parentTaskId: hash.parentTaskId } : {}),
    ...(hash.concurrencyKey && positive(hash.concurrencyLimit)
      ? { concurrencyKey: hash.concurrencyKey, concurrencyLimit: Number(hash.concurrencyLimit) }
      : {}),
    ...(hash.concurrencyKey && hash.concurrencyScope ? { concurrencyScope: hash.concurrencyScope } : {}),
    ...(hash.fairnessKey
      ? {
          fairnessKey: hash.fairnessKey,
          fairnessWeight: positive(hash.fairnessWeight) ? Number(hash.fairnessWeight) : 1,
          ...(positive(hash.fairnessWindow) ? { fairnessWindow: Number(hash.fairnessWindow) } : {}),
          ...(hash.fairnessScope ? { fairnessScope: hash.fairnessScope } : {}),
        }
      : {}),
  };
}

/** A stored retry backoff, if set and well formed (one that is not, written by hand, is left out: the defaults apply). */
function retryBackoffField(text: string | undefined): { retryBackoff?: RetryBackoff } {
  if (!text) return {};
  const parsed = RetryBackoffSchema.safeParse(safeJson(text, undefined));
  return parsed.success ? { retryBackoff: parsed.data } : {};
}

/** A stored whole number above 0 (an optional field that was set). */
function positive(text: string | undefined): boolean {
  return text !== undefined && /^[1-9]\d*$/.test(text);
}

export interface StoredResult {
  taskId: string;
  type: string;
  output: unknown;
  attempts: number;
  completedAt: string;
  durationMs: number;
  generation: number;
}

// One round trip: the cancel check (when given), the generation check and the write. A stored value that cannot be
// decoded counts as stored (it is never overwritten blindly); one without a generation is replaced.
const STORE_RESULT = luaScript(`
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return 'cancelled' end
local existing = redis.call('GET', KEYS[1])
if existing then
  local ok, decoded = pcall(cjson.decode, existing)
  if not ok or type(decoded) ~= 'table' then return 'duplicate' end
  local generation = tonumber(decoded.generation)
  if generation ~= nil and generation >= tonumber(ARGV[2]) then return 'duplicate' end
end
-- No longer than the task's status lives (KEYS[3]): a result stored after SUCCEEDED shortened the task's records
-- (the notifier's wait for it ran out) ends with them.
local statusLeftMs = KEYS[3] and redis.call('PTTL', KEYS[3]) or -2
if statusLeftMs > 0 and statusLeftMs < tonumber(ARGV[3]) * 1000 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', statusLeftMs)
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
end
return 'stored'
`);

export type StoreResultOutcome = "stored" | "duplicate" | "cancelled";

function storedFormOf(result: ResultMessage): StoredResult {
  return {
    taskId: result.taskId,
    type: result.type,
    output: result.output,
    attempts: result.attempts,
    completedAt: result.completedAt,
    durationMs: result.durationMs,
    generation: result.generation,
  };
}

/**
 * Stores a result unless the task was cancelled or a result of this generation (or a later one) is already stored:
 * the first write wins, so a redelivered tasks.results message can never replace or double a result, and a replay
 * (a newer generation) replaces the older one. One script, one round trip (result-store's hot path). The result lives
 * no longer than the task's status (a task kept a shorter time once it SUCCEEDED).
 */
export async function storeResult(
  redis: Redis,
  result: ResultMessage,
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<StoreResultOutcome> {
  const keys = [Keys.result(result.taskId), Keys.cancel(result.taskId), Keys.status(result.taskId)];
  const json = JSON.stringify(storedFormOf(result));
  return (await STORE_RESULT.run(redis, keys, [json, result.generation, ttlSeconds])) as StoreResultOutcome;
}

/** storeResult without the cancel check: true when this call stored the result. */
export async function saveResult(
  redis: Redis,
  result: ResultMessage,
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<boolean> {
  const json = JSON.stringify(storedFormOf(result));
  return (
    (await STORE_RESULT.run(redis, [Keys.result(result.taskId)], [json, result.generation, ttlSeconds])) === "stored"
  );
}

export async function readResult(redis: Redis, taskId: string): Promise<StoredResult | undefined> {
  const text = await redis.get(Keys.result(taskId));
  return text ? safeJson<StoredResult | undefined>(text, undefined) : undefined;
}

/**
 * Whether the task's result of `generation` or a later one is stored. For generation 0 (every task that was not
 * replayed) any stored result qualifies, so EXISTS answers without fetching and parsing the result, which can be as
 * large as the task's output; a replayed task's check reads the stored result's generation.
 */
export async function resultStored(redis: Redis, taskId: string, generation: number): Promise<boolean> {
  if (generation <= 0) return (await redis.exists(Keys.result(taskId))) === 1;
  const stored = await readResult(redis, taskId);
  return stored !== undefined && stored.generation >= generation;
}

export async function markCancelled(redis: Redis, taskId: string, reason: string, ttlSeconds = Bounds.taskTtlSeconds) {
  await redis.set(Keys.cancel(taskId), reason || "cancelled", "EX", ttlSeconds);
}

export async function isCancelled(redis: Redis, taskId: string): Promise<boolean> {
  return (await redis.exists(Keys.cancel(taskId))) === 1;
}

/**
 * Why a task message of `generation` should not run: its task was cancelled, or a newer generation of it has been
 * started (a requeue of a task judged stalled whose old message turned up after all, or a replay): the newer one
 * does the work. Both reads go out in one round trip (the connection pipelines commands issued together).
 */
export async function whyNotRun(
  redis: Redis,
  taskId: string,
  generation: number,
): Promise<"cancelled" | "superseded" | undefined> {
  const [cancelled, current] = await Promise.all([
    redis.exists(Keys.cancel(taskId)),
    redis.hget(Keys.task(taskId), "generation"),
  ]);
  if (cancelled === 1) return "cancelled";
  return Number(current ?? 0) > generation ? "superseded" : undefined;
}

/** Who holds an idempotency key: its task's id; `saved` once that task's record was saved (SAVE_TASK marks it). */
export interface IdempotencyClaim {
  owner: string;
  claimed: boolean;
  saved: boolean;
}

/** Claims an idempotency key for a task id, for `ttlSeconds` (default a day); returns the id that owns it (ours, or
 *  the first submitter's) and whether that one's record was saved. */
export async function claimIdempotencyKey(
  redis: Redis,
  key: string,
  taskId: string,
  ttlSeconds: number = Bounds.idempotencyTtlSeconds,
): Promise<IdempotencyClaim> {
  const reply = await redis.set(Keys.idempotency(key), taskId, "EX", ttlSeconds, "NX");
  if (reply === "OK") return { owner: taskId, claimed: true, saved: false };
  const held = await redis.get(Keys.idempotency(key));
  // Gone between the two commands (it expired just then): this submission goes ahead as the first.
  if (held === null) return { owner: taskId, claimed: true, saved: false };
  const [owner = taskId, mark] = held.split(" ");
  return { owner, claimed: false, saved: mark === "saved" };
}

// KEYS[1] the idempotency key; ARGV[1] what it held when read (its finished task's id, maybe marked saved), ARGV[2]
// the new task's id, ARGV[3] the TTL (s). Moves the key to the new task only if it still holds what was read (or has
// expired meanwhile): of two submissions that found the task finished, one moves it, and the other then finds the new
// one.
const RECLAIM_KEY = luaScript(`
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
`);

/**
 * Moves an idempotency key from its finished task to a new one (SubmitTaskRequest.idempotency_key_reuse
 * AFTER_FINISHED), for `ttlSeconds` from now: true when it did, false when the key no longer held `previous` (another
 * submission moved it first: claim it again to find the task it names now).
 */
export async function reclaimIdempotencyKey(
  redis: Redis,
  key: string,
  previous: Pick<IdempotencyClaim, "owner" | "saved">,
  taskId: string,
  ttlSeconds: number = Bounds.idempotencyTtlSeconds,
): Promise<boolean> {
  const held = previous.saved ? `${previous.owner} saved` : previous.owner;
  return (await RECLAIM_KEY.run(redis, [Keys.idempotency(key)], [held, taskId, ttlSeconds])) === 1;
}

function safeJson<T>(text: string | undefined, fallback: T): T {
  if (!text) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

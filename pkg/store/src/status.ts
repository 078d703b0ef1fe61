/**
 * The task status in Redis: a hash updated only forward (compare-and-set on the version, in one Lua script so that
 * concurrent notifier replicas cannot interleave), and published on the channel of the same name in the same
 * script, so a subscriber never sees an update the hash does not hold.
 */
import type { StatusEvent, TaskState } from "@tm/flow";
import { TASK_STATES } from "@tm/flow";
import type { Redis } from "ioredis";
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
}

// Mirrors lifecycle.shouldApply: newer version, and either a non-terminal current state or a newer generation.
// GENERATION_SPAN (1e8) must match pkg/flow/src/lifecycle.ts; a unit test checks the two agree.
const APPLY_STATUS = `
local cur = redis.call('HMGET', KEYS[1], 'version', 'state')
local newVersion = tonumber(ARGV[1])
if cur[1] then
  local curVersion = tonumber(cur[1])
  if newVersion <= curVersion then return 0 end
  local terminal = cur[2] == 'SUCCEEDED' or cur[2] == 'FAILED' or cur[2] == 'CANCELLED'
  if terminal and math.floor(newVersion / 100000000) <= math.floor(curVersion / 100000000) then return 0 end
end
redis.call('HSET', KEYS[1], 'taskId', ARGV[2], 'state', ARGV[3], 'progress', ARGV[4], 'attempt', ARGV[5],
  'error', ARGV[6], 'version', ARGV[1], 'updatedAt', ARGV[7], 'generation', ARGV[8], 'source', ARGV[9])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[10]))
redis.call('PUBLISH', KEYS[1], ARGV[11])
return 1
`;
const applyStatusScript = luaScript(APPLY_STATUS);

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
  };
}

/** Applies the update if it is newer than what Redis holds; returns whether it was applied (and published). */
export async function applyStatus(
  redis: Redis,
  event: StatusEvent,
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<boolean> {
  const status = toStoredStatus(event);
  const applied = (await applyStatusScript.run(
    redis,
    [Keys.status(event.taskId)],
    [
      String(status.version),
      status.taskId,
      status.state,
      String(status.progress),
      String(status.attempt),
      status.error,
      status.updatedAt,
      String(status.generation),
      status.source,
      String(ttlSeconds),
      JSON.stringify(status),
    ],
  )) as number;
  return applied === 1;
}

export async function readStatus(redis: Redis, taskId: string): Promise<StoredStatus | undefined> {
  const hash = await redis.hgetall(Keys.status(taskId));
  return parseStatusHash(hash);
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

/**
 * Fleet-wide limits on a task type set by operators at run time (AdminService SetTypeLimit, `taskctl limits set`):
 * hash `type_limits`, field = the task type, value = JSON {globalConcurrency?, rate?: {perSecond, burst}, paused?, at,
 * by}.
 * Every worker reads the hash every WORKER_PAUSE_POLL_MS; an entry replaces that worker's WORKER_TYPE_GLOBAL_CONCURRENCY
 * and WORKER_TYPE_RATES for its type (both: a kind the entry leaves out is no limit), and clearing it brings them back.
 * At most one field per task type (the gateway accepts known types only).
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";
import type { TypeRate } from "./type-rate.js";

export interface TypeLimitRecord {
  type: string;
  /** At most this many running at once across every worker. */
  globalConcurrency?: number;
  /** At most this many starts per second across every worker. */
  rate?: TypeRate;
  /** No worker starts one while set. */
  paused?: boolean;
  /** When it was set (ISO 8601), and by whom ("" when unauthenticated). */
  at: string;
  by: string;
}

// KEYS: type_limits; ARGV: type, the new entry (JSON), '1' to keep the entry's pause. Answers {previous or false, the
// entry written}.
const SET_TYPE_LIMIT = luaScript(`
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local text = ARGV[2]
if ARGV[3] == '1' then
  local entry = cjson.decode(text)
  local was = false
  if previous then
    local ok, decoded = pcall(cjson.decode, previous)
    was = ok and type(decoded) == 'table' and decoded.paused == true
  end
  if was then entry.paused = true else entry.paused = nil end
  text = cjson.encode(entry)
end
redis.call('HSET', KEYS[1], ARGV[1], text)
return {previous or false, text}
`);

/**
 * Sets (or replaces) a type's limits in one script; with `keepPause` the type's pause stays as it was (the record's
 * own `paused` is ignored), so that changing a concurrency or rate during a pause does not lift it. Answers the
 * limits it replaced (undefined: none) and those it wrote.
 */
export async function setTypeLimit(
  redis: Redis,
  limit: TypeLimitRecord,
  { keepPause = false }: { keepPause?: boolean } = {},
): Promise<{ previous: TypeLimitRecord | undefined; limit: TypeLimitRecord }> {
  const { type, ...rest } = limit;
  const [previous, written] = (await SET_TYPE_LIMIT.run(
    redis,
    [Keys.typeLimits],
    [type, JSON.stringify(rest), keepPause ? "1" : "0"],
  )) as [string | null, string];
  return {
    previous: previous === null ? undefined : recordOf(type, previous),
    limit: recordOf(type, written) ?? limit,
  };
}

/**
 * Sets (paused true) or lifts (false) a type's pause, keeping its other limits, in one step: another operator's change
 * in between cannot be lost. A change stamps the entry with `at` and `by`; lifting the pause of a type with no other
 * limit removes its entry. Answers {was, now: the raw entry or false}. An entry that is not JSON is replaced.
 */
const SET_TYPE_PAUSED = luaScript(`
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local entry = {}
if existing then
  local ok, decoded = pcall(cjson.decode, existing)
  if ok and type(decoded) == 'table' then entry = decoded end
end
local was = entry.paused == true
local want = ARGV[2] == '1'
if was == want then return {was and 1 or 0, existing or false} end
if want then entry.paused = true else entry.paused = nil end
entry.at = ARGV[3]
entry.by = ARGV[4]
if entry.globalConcurrency == nil and entry.rate == nil and entry.paused == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {was and 1 or 0, false}
end
local text = cjson.encode(entry)
redis.call('HSET', KEYS[1], ARGV[1], text)
return {was and 1 or 0, text}
`);

/** PauseType / ResumeType: whether the type was paused before, and its limits after (undefined: none left). */
export async function setTypePaused(
  redis: Redis,
  type: string,
  paused: boolean,
  at: string,
  by: string,
): Promise<{ wasPaused: boolean; limit: TypeLimitRecord | undefined }> {
  const [was, text] = (await SET_TYPE_PAUSED.run(redis, [Keys.typeLimits], [type, paused ? "1" : "0", at, by])) as [
    number,
    string | null,
  ];
  return { wasPaused: was === 1, limit: text === null ? undefined : recordOf(type, text) };
}

/** Clears a type's limits: whether it had any. */
export async function clearTypeLimit(redis: Redis, type: string): Promise<boolean> {
  return (await redis.hdel(Keys.typeLimits, type)) === 1;
}

/** Every type's limits, by type. A field whose value is not a well-formed record is left out (and so not applied). */
export async function readTypeLimits(redis: Redis): Promise<TypeLimitRecord[]> {
  const fields = await redis.hgetall(Keys.typeLimits);
  return Object.entries(fields)
    .map(([type, text]) => recordOf(type, text))
    .filter((record): record is TypeLimitRecord => record !== undefined)
    .sort((a, b) => a.type.localeCompare(b.type));
}

function recordOf(type: string, text: string): TypeLimitRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const value = parsed as {
    globalConcurrency?: unknown;
    rate?: { perSecond?: unknown; burst?: unknown };
    paused?: unknown;
    at?: unknown;
    by?: unknown;
  };
  if (typeof value !== "object" || value === null) return undefined;
  const { globalConcurrency, rate } = value;
  const concurrencyOk =
    globalConcurrency === undefined || (Number.isInteger(globalConcurrency) && (globalConcurrency as number) >= 1);
  const rateOk =
    rate === undefined ||
    (typeof rate?.perSecond === "number" &&
      rate.perSecond > 0 &&
      Number.isInteger(rate.burst) &&
      (rate.burst as number) >= 1);
  const pausedOk = value.paused === undefined || typeof value.paused === "boolean";
  if (!concurrencyOk || !rateOk || !pausedOk) return undefined;
  return {
    type,
    ...(globalConcurrency === undefined ? {} : { globalConcurrency: globalConcurrency as number }),
    ...(rate === undefined ? {} : { rate: { perSecond: rate.perSecond as number, burst: rate.burst as number } }),
    ...(value.paused === true ? { paused: true } : {}),
    at: typeof value.at === "string" ? value.at : "",
    by: typeof value.by === "string" ? value.by : "",
  };
}

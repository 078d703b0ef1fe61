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

/** Sets (or replaces) a type's limits; answers the ones it replaced, if any (one round trip). */
export async function setTypeLimit(redis: Redis, limit: TypeLimitRecord): Promise<TypeLimitRecord | undefined> {
  const { type, ...rest } = limit;
  const [previous] = await Promise.all([
    redis.hget(Keys.typeLimits, type),
    redis.hset(Keys.typeLimits, type, JSON.stringify(rest)),
  ]);
  return previous === null ? undefined : recordOf(type, previous);
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

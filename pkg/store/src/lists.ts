/**
 * The bounded lists: audit_events, dead_letter and each task's history. Newest first; LTRIM keeps the bound.
 * Appends are idempotent per delivery id (a marker key with a TTL, set in the same script as the push), so a
 * consumer that crashes between writing and acking does not store the entry twice when it is redelivered.
 */
import type { AuditEvent, DeadLetter } from "@tm/flow";
import type { Redis } from "ioredis";
import { Bounds, Keys } from "./keys.js";
import { luaScript } from "./script.js";

const DEDUPE_TTL_SECONDS = 24 * 3600;

// KEYS: marker, list, [history]; ARGV: entry, max, markerTtl, [historyMax, historyTtl]
const APPEND_ONCE = `
if redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[3]), 'NX') == false then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
if KEYS[3] then
  redis.call('RPUSH', KEYS[3], ARGV[1])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]))
end
return 1
`;
const appendOnce = luaScript(APPEND_ONCE);

/** Appends an audit event (and to the task's history). `deliveryId` identifies the message, e.g. `EVENTS:42`. */
export async function appendAudit(
  redis: Redis,
  event: AuditEvent,
  deliveryId: string,
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<boolean> {
  const text = JSON.stringify(event);
  const keys = [`audit_seen:${deliveryId}`, Keys.auditEvents];
  if (event.taskId) keys.push(Keys.history(event.taskId));
  const applied = await appendOnce.run(redis, keys, [
    text,
    String(Bounds.auditEventsMax),
    String(DEDUPE_TTL_SECONDS),
    String(Bounds.historyMax),
    String(ttlSeconds),
  ]);
  return applied === 1;
}

export async function readHistory(redis: Redis, taskId: string): Promise<AuditEvent[]> {
  return (await redis.lrange(Keys.history(taskId), 0, -1)).map((line) => JSON.parse(line) as AuditEvent);
}

export type StoredDeadLetter = DeadLetter & { history?: AuditEvent[] };

/** Appends a dead letter once per letter id. */
export async function appendDeadLetter(redis: Redis, letter: StoredDeadLetter): Promise<boolean> {
  const applied = await appendOnce.run(
    redis,
    [`dead_letter_seen:${letter.id}`, Keys.deadLetter],
    [JSON.stringify(letter), String(Bounds.deadLetterMax), String(DEDUPE_TTL_SECONDS)],
  );
  return applied === 1;
}

export async function readDeadLetters(redis: Redis, offset = 0, limit = 100): Promise<StoredDeadLetter[]> {
  return (await redis.lrange(Keys.deadLetter, offset, offset + limit - 1)).map(
    (line) => JSON.parse(line) as StoredDeadLetter,
  );
}

/** A dead_letter entry with its exact stored text, which LREM needs to remove it. */
export interface DeadLetterLine {
  raw: string;
  /** Undefined when the entry is not JSON (never written by us; listed so it can be seen, never replayed). */
  letter: StoredDeadLetter | undefined;
}

/** Reads dead_letter entries [offset, offset + limit), newest first. */
export async function readDeadLetterLines(redis: Redis, offset: number, limit: number): Promise<DeadLetterLine[]> {
  return (await redis.lrange(Keys.deadLetter, offset, offset + limit - 1)).map((raw) => {
    try {
      return { raw, letter: JSON.parse(raw) as StoredDeadLetter };
    } catch {
      return { raw, letter: undefined };
    }
  });
}

/**
 * Removes one dead letter by its exact text. Returns false when it was no longer there, which makes the removal a
 * claim: of two operators replaying the same letter at once, only one gets true.
 */
export async function removeDeadLetter(redis: Redis, raw: string): Promise<boolean> {
  return (await redis.lrem(Keys.deadLetter, 1, raw)) === 1;
}

/** Puts a claimed dead letter back (at the head) when its replay could not be completed. */
export async function restoreDeadLetter(redis: Redis, raw: string): Promise<void> {
  await redis.lpush(Keys.deadLetter, raw);
}

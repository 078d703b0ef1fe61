/**
 * The bounded lists: audit_events, dead_letter and each task's history. Newest first; LTRIM keeps the bound.
 * Appends are idempotent per delivery id (a marker key with a TTL, set in the same script as the push), so a
 * consumer that crashes between writing and acking does not store the entry twice when it is redelivered.
 */
import type { AuditEvent, DeadLetter } from "@tm/flow";
import type { Redis } from "ioredis";
import { Bounds, Keys } from "./keys.js";

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
  const applied = await redis.eval(
    APPEND_ONCE,
    keys.length,
    ...keys,
    text,
    String(Bounds.auditEventsMax),
    String(DEDUPE_TTL_SECONDS),
    String(Bounds.historyMax),
    String(ttlSeconds),
  );
  return applied === 1;
}

export async function readHistory(redis: Redis, taskId: string): Promise<AuditEvent[]> {
  return (await redis.lrange(Keys.history(taskId), 0, -1)).map((line) => JSON.parse(line) as AuditEvent);
}

export type StoredDeadLetter = DeadLetter & { history?: AuditEvent[] };

/** Appends a dead letter once per letter id. */
export async function appendDeadLetter(redis: Redis, letter: StoredDeadLetter): Promise<boolean> {
  const applied = await redis.eval(
    APPEND_ONCE,
    2,
    `dead_letter_seen:${letter.id}`,
    Keys.deadLetter,
    JSON.stringify(letter),
    String(Bounds.deadLetterMax),
    String(DEDUPE_TTL_SECONDS),
  );
  return applied === 1;
}

export async function readDeadLetters(redis: Redis, offset = 0, limit = 100): Promise<StoredDeadLetter[]> {
  return (await redis.lrange(Keys.deadLetter, offset, offset + limit - 1)).map(
    (line) => JSON.parse(line) as StoredDeadLetter,
  );
}

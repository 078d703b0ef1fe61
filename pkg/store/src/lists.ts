/**
 * The bounded lists: audit_events, dead_letter and each task's history. Newest first; LTRIM keeps the bound.
 * Appends are idempotent per delivery id (a marker key with a TTL, set in the same script as the push), so a
 * consumer that crashes between writing and acking does not store the entry twice when it is redelivered.
 */
import type { AuditEvent, DeadLetter } from "@tm/flow";
import type { Redis } from "ioredis";
import { type BatchOptions, perTurnBatcher } from "./batch.js";
import { Bounds, Keys } from "./keys.js";
import { luaScript } from "./script.js";

const DEDUPE_TTL_SECONDS = 24 * 3600;

// Dead letters. KEYS: marker, list; ARGV: entry, max, markerTtl
const APPEND_ONCE = `
if redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[3]), 'NX') == false then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
`;
const appendOnce = luaScript(APPEND_ONCE);

// Audit events, several per call. KEYS: audit_events, then per event its marker, its history list and its task's
// status hash (the marker again for both when the event names no task). ARGV: auditMax, markerTtl, historyMax,
// historyTtl, then per event its entry and "1" when it has a history. Returns per event 1 (stored) or 0 (a
// redelivery, already stored). audit_events is trimmed once per call, not once per event. A history, and a task event's
// marker, live no longer than the task's status when that ends sooner than their own TTL: a task that SUCCEEDED may
// be kept a shorter time (TASK_SUCCEEDED_RETENTION_SECONDS), its last audit events come after its status, and a
// marker outliving its task would only keep memory (5 markers a task, 24 h each, were 9 % of a task's bytes).
const APPEND_AUDIT = `
local applied = {}
local pushed = 0
local markerTtlMs = tonumber(ARGV[2]) * 1000
local historyTtlMs = tonumber(ARGV[4]) * 1000
for i = 0, (#ARGV - 4) / 2 - 1 do
  local entry = ARGV[5 + 2 * i]
  local hasHistory = ARGV[6 + 2 * i] == '1'
  local statusLeftMs = hasHistory and redis.call('PTTL', KEYS[4 + 3 * i]) or -2
  if statusLeftMs <= 0 then statusLeftMs = nil end
  if redis.call('SET', KEYS[2 + 3 * i], '1', 'PX', math.min(markerTtlMs, statusLeftMs or markerTtlMs), 'NX') then
    redis.call('LPUSH', KEYS[1], entry)
    pushed = pushed + 1
    if hasHistory then
      local history = KEYS[3 + 3 * i]
      redis.call('RPUSH', history, entry)
      redis.call('LTRIM', history, -tonumber(ARGV[3]), -1)
      redis.call('PEXPIRE', history, math.min(historyTtlMs, statusLeftMs or historyTtlMs))
    end
    applied[i + 1] = 1
  else
    applied[i + 1] = 0
  end
end
if pushed > 0 then redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1) end
return applied
`;
const appendAuditScript = luaScript(APPEND_AUDIT);

export interface AuditAppend {
  event: AuditEvent;
  /** Identifies the message, e.g. `EVENTS:42`: a redelivery of it is not stored twice. */
  deliveryId: string;
}

/** Appends audit events (each also to its task's history) in one script call; per event, whether it was stored
 *  (false: already stored by an earlier delivery of the same message). */
export async function appendAuditBatch(
  redis: Redis,
  appends: readonly AuditAppend[],
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<boolean[]> {
  if (appends.length === 0) return [];
  const keys: string[] = [Keys.auditEvents];
  const args: string[] = [
    String(Bounds.auditEventsMax),
    String(DEDUPE_TTL_SECONDS),
    String(Bounds.historyMax),
    String(ttlSeconds),
  ];
  for (const { event, deliveryId } of appends) {
    const marker = `audit_seen:${deliveryId}`;
    if (event.taskId) keys.push(marker, Keys.history(event.taskId), Keys.status(event.taskId));
    else keys.push(marker, marker, marker);
    args.push(JSON.stringify(event), event.taskId ? "1" : "0");
  }
  const applied = (await appendAuditScript.run(redis, keys, args)) as number[];
  return applied.map((flag) => flag === 1);
}

/** Appends an audit event (and to the task's history). `deliveryId` identifies the message, e.g. `EVENTS:42`. */
export async function appendAudit(
  redis: Redis,
  event: AuditEvent,
  deliveryId: string,
  ttlSeconds: number = Bounds.taskTtlSeconds,
): Promise<boolean> {
  const [stored] = await appendAuditBatch(redis, [{ event, deliveryId }], ttlSeconds);
  return stored === true;
}

/** Most events one script call appends: a script blocks Redis while it runs (~6 commands per event). */
export const AUDIT_BATCH_MAX = 128;

/**
 * Appends audit events, gathering those requested in the same turn of the event loop into one script call: the
 * audit service handles a fetched batch of deliveries concurrently and makes one Redis call for all of them. Each
 * caller gets its own event's outcome, and an append Redis refuses fails alone (see perTurnBatcher).
 */
export function auditAppender(
  redis: Redis,
  { maxBatch = AUDIT_BATCH_MAX, ttlSeconds = Bounds.taskTtlSeconds }: BatchOptions = {},
): (event: AuditEvent, deliveryId: string) => Promise<boolean> {
  const append = perTurnBatcher<AuditAppend, boolean>(
    (appends) => appendAuditBatch(redis, appends, ttlSeconds),
    maxBatch,
  );
  return (event, deliveryId) => append({ event, deliveryId });
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
 * Removes one dead letter by its exact text (as a replay's claim does, without starting anything): true when it was
 * there. Of two operators discarding (or one replaying, one discarding) the same letter only one gets true.
 */
export async function discardDeadLetter(redis: Redis, raw: string): Promise<boolean> {
  return (await redis.lrem(Keys.deadLetter, 1, raw)) === 1;
}

// Claims a dead letter for its replay and starts the task's new generation, in one step. KEYS: dead_letter, task:<id>,
// task_cancel:<id>, tasks_unqueued; ARGV: the letter's exact text, the replay's time (ms), the task id, the generation
// the replay was decided on. Returns the new generation, 0 when the letter is gone (replayed or removed meanwhile),
// -1 when the task record has expired, -2 when the task's generation is no longer the one expected (another of its
// letters was replayed meanwhile); the letter is left in place in the last two cases.
const CLAIM_REPLAY = luaScript(`
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
if tonumber(redis.call('HGET', KEYS[2], 'generation') or '0') ~= tonumber(ARGV[4]) then return -2 end
redis.call('LREM', KEYS[1], 1, ARGV[1])
local generation = redis.call('HINCRBY', KEYS[2], 'generation', 1)
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
return generation
`);

export type ReplayClaim =
  | { claimed: true; generation: number }
  | { claimed: false; reason: "gone" | "expired" | "moved_on" };

/**
 * Claims one dead letter (by its exact text) for a replay of its task and starts the task's next generation: the
 * letter is removed, the generation incremented, the cancel marker cleared and the task entered in tasks_unqueued
 * (scored by `atMs`), all in one script. Of two operators replaying the same letter at once only one claims it, and
 * of two replaying different letters of the same task only the first (`expectedGeneration` is the task record's
 * generation the replay's checks were made on). No state lies between the claim and the new generation: once
 * claimed, the replay is the requeue sweeper's to finish should the gateway die or NATS fail before the new
 * generation's message is acknowledged.
 */
export async function claimReplay(
  redis: Redis,
  raw: string,
  taskId: string,
  expectedGeneration: number,
  atMs: number,
): Promise<ReplayClaim> {
  const reply = Number(
    await CLAIM_REPLAY.run(
      redis,
      [Keys.deadLetter, Keys.task(taskId), Keys.cancel(taskId), Keys.unqueued],
      [raw, atMs, taskId, expectedGeneration],
    ),
  );
  if (reply > 0) return { claimed: true, generation: reply };
  return { claimed: false, reason: reply === 0 ? "gone" : reply === -1 ? "expired" : "moved_on" };
}

/**
 * A task's own log: the lines its handler wrote with ctx.log, kept with the task (BullMQ's job.log() and
 * getJobLogs), so that "what did it say?" is answered from the task, without a log store.
 *
 * Key `task_logs:<id>`: a list, one entry per line, each `<n> <JSON>` (n numbers the task's lines from 1; the JSON has
 * short names to keep it small). The number is the cursor a reader follows the log by (the lines after the last one
 * it saw), and trimming the oldest lines does not change it, so a reader is told how many were dropped (the first kept
 * line's number - 1). A list rather than a Redis stream, which would do the same: a stream preallocates its first node
 * (4 KB: measured 4,736 bytes for one line, against 264 for a list; 151 KB against 124 KB for 1,000 lines), and most
 * tasks log a few lines if any. Bounded by the workers' WORKER_TASK_LOG_LINES (LTRIM) and by the task's retention
 * (EXPIRE on every write; a SUCCEEDED task's shorter retention shortens it with the task's other records: the status
 * script's retainedKeys).
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";

/** One line of a task's log. */
export interface TaskLogEntry {
  /** When the handler wrote it (ISO 8601, the worker's clock). */
  time: string;
  /** pino's level label: trace, debug, info, warn, error, fatal. */
  level: string;
  message: string;
  attempt: number;
  generation: number;
  /** The line's other fields (those the handler logged: `ctx.log.info({ part: 7 }, "…")`, an `err`). */
  fields?: Record<string, unknown>;
}

/** A line as read back, with its place in the log. */
export interface TaskLogLine extends TaskLogEntry {
  /** The line's number in the task's log (from 1): read on after it with `after`. */
  id: string;
}

export interface TaskLogPage {
  lines: TaskLogLine[];
  /** Where to read on from: the last line's id, else the `after` asked with ("" from the start). */
  nextCursor: string;
  /** Lines written in all (those dropped included). */
  total: number;
  /** The oldest lines no longer kept: over the per-task cap (WORKER_TASK_LOG_LINES). */
  dropped: number;
}

interface StoredEntry {
  t: string;
  l: string;
  m: string;
  a: number;
  g: number;
  f?: Record<string, unknown>;
}

/** A stored entry: `<n> <JSON>`. */
const NUMBERED_LINE = /^(\d+) ([\s\S]*)$/;

/** A line's number: what `after` must look like. */
export const TASK_LOG_CURSOR = /^\d{1,15}$/;

// KEYS[1] the task's log; ARGV[1] its TTL (s), ARGV[2] the most lines kept, ARGV[3] how many older lines the writer
// left out (numbered all the same), ARGV[4..] the new lines (JSON). Numbers them on from the last line's number;
// returns the last number given.
const APPEND = luaScript(`
local last = redis.call('LINDEX', KEYS[1], -1)
local n = (last and tonumber(string.match(last, '^(%d+) ')) or 0) + tonumber(ARGV[3])
for i = 4, #ARGV do
  n = n + 1
  redis.call('RPUSH', KEYS[1], n .. ' ' .. ARGV[i])
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
`);

// KEYS[1] the task's log; ARGV[1] the number of the last line already read (0: none), ARGV[2] how many to read.
// Returns the first and last kept lines' numbers, then the lines after ARGV[1] (at most ARGV[2]); {} without a log.
const READ = luaScript(`
local first = redis.call('LINDEX', KEYS[1], 0)
if not first then return {} end
local firstN = tonumber(string.match(first, '^(%d+) ')) or 1
local lastN = tonumber(string.match(redis.call('LINDEX', KEYS[1], -1), '^(%d+) ')) or 0
local from = math.max(0, tonumber(ARGV[1]) + 1 - firstN)
local lines = redis.call('LRANGE', KEYS[1], from, from + tonumber(ARGV[2]) - 1)
table.insert(lines, 1, lastN)
table.insert(lines, 1, firstN)
return lines
`);

/**
 * Appends lines to a task's log in one round trip: the newest `maxLines` are kept, and the key lives `ttlSeconds`
 * from now (the task's retention: the log never outlives the task's other records by more than one write's lag).
 * `skipped`: older lines the writer left out (past the cap already), counted among the dropped.
 */
export async function appendTaskLog(
  redis: Redis,
  taskId: string,
  entries: readonly TaskLogEntry[],
  { maxLines, ttlSeconds, skipped = 0 }: { maxLines: number; ttlSeconds: number; skipped?: number },
): Promise<void> {
  if (entries.length === 0 || maxLines <= 0) return;
  const lines = entries.map(({ time, level, message, attempt, generation, fields }) => {
    const stored: StoredEntry = { t: time, l: level, m: message, a: attempt, g: generation };
    if (fields && Object.keys(fields).length > 0) stored.f = fields;
    return JSON.stringify(stored);
  });
  await APPEND.run(redis, [Keys.logs(taskId)], [ttlSeconds, maxLines, skipped, ...lines]);
}

/** A stored entry (`<n> <JSON>`) back to a line; one that is not (written by something else) is shown as its text. */
function lineOf(entry: string): TaskLogLine {
  const numbered = NUMBERED_LINE.exec(entry);
  const [id, raw] = numbered ? [numbered[1]!, numbered[2]!] : ["", entry];
  try {
    const stored = JSON.parse(raw) as Partial<StoredEntry>;
    if (typeof stored === "object" && stored !== null && typeof stored.m === "string") {
      return {
        id,
        time: typeof stored.t === "string" ? stored.t : "",
        level: typeof stored.l === "string" ? stored.l : "info",
        message: stored.m,
        attempt: typeof stored.a === "number" ? stored.a : 0,
        generation: typeof stored.g === "number" ? stored.g : 0,
        ...(stored.f && typeof stored.f === "object" ? { fields: stored.f } : {}),
      };
    }
  } catch {
    // Not JSON: shown as it is, below.
  }
  return { id, time: "", level: "unknown", message: raw, attempt: 0, generation: 0 };
}

/** A page of a task's log: at most `limit` lines after `after` (a line's number; "" from the oldest kept), oldest
 *  first. One round trip. */
export async function readTaskLog(
  redis: Redis,
  taskId: string,
  { after = "", limit }: { after?: string; limit: number },
): Promise<TaskLogPage> {
  if (after !== "" && !TASK_LOG_CURSOR.test(after)) throw new RangeError(`not a task log cursor: ${after}`);
  const reply = (await READ.run(redis, [Keys.logs(taskId)], [after === "" ? 0 : after, limit])) as (number | string)[];
  if (reply.length === 0) return { lines: [], nextCursor: after, total: 0, dropped: 0 };
  const [firstN, lastN, ...entries] = reply as [number, number, ...string[]];
  const lines = entries.map(lineOf);
  // A line not numbered (not written by a worker) keeps the cursor where it was rather than losing the place.
  const lastId = [...lines].reverse().find((line) => line.id !== "")?.id;
  return { lines, nextCursor: lastId ?? after, total: lastN, dropped: Math.max(0, firstN - 1) };
}

/** How many lines a task's handlers logged (its last line's number; 0 without a log). One command. */
export async function countTaskLog(redis: Redis, taskId: string): Promise<number> {
  const last = await redis.lindex(Keys.logs(taskId), -1);
  const numbered = last === null ? undefined : NUMBERED_LINE.exec(last);
  return numbered ? Number(numbered[1]) : 0;
}

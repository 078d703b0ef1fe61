/**
 * A task's own log: the lines its handler wrote with ctx.log, kept with the task (BullMQ's job.log() and
 * getJobLogs), so that "what did it say?" is answered from the task, without a log store.
 *
 * Key `task_logs:<id>`: a Redis stream, one entry per line (field `l`: the line as JSON, short names to keep it
 * small). A stream rather than a list: its entry ids are the cursor a reader follows the log by (XRANGE after the last
 * id seen), trimming the oldest lines (XADD MAXLEN) does not shift them, and XINFO's entries-added counts every line
 * ever written, so a reader is told how many were dropped. Bounded by MAXLEN (the workers' WORKER_TASK_LOG_LINES)
 * and by the task's retention (EXPIRE on every write; a SUCCEEDED task's shorter retention shortens it with the
 * task's other records: the status script's retainedKeys).
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";

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
  /** The line's stream id: read on after it with `after`. */
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

/** A stream entry id (`<ms>-<seq>`): what `after` must look like. */
export const TASK_LOG_CURSOR = /^\d{1,20}-\d{1,20}$/;

/**
 * Appends lines to a task's log in one round trip: the newest `maxLines` are kept, and the key lives `ttlSeconds`
 * from now (the task's retention: the log never outlives the task's other records by more than one write's lag).
 */
export async function appendTaskLog(
  redis: Redis,
  taskId: string,
  entries: readonly TaskLogEntry[],
  { maxLines, ttlSeconds }: { maxLines: number; ttlSeconds: number },
): Promise<void> {
  if (entries.length === 0 || maxLines <= 0) return;
  const key = Keys.logs(taskId);
  const pipeline = redis.pipeline();
  for (const { time, level, message, attempt, generation, fields } of entries) {
    const stored: StoredEntry = { t: time, l: level, m: message, a: attempt, g: generation };
    if (fields && Object.keys(fields).length > 0) stored.f = fields;
    // Exact trimming ("="), not "~": with a cap of a few hundred lines, "~" would keep up to a whole node more.
    pipeline.xadd(key, "MAXLEN", "=", maxLines, "*", "l", JSON.stringify(stored));
  }
  pipeline.expire(key, ttlSeconds);
  for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
}

/** The stored form back to a line; an entry that is not one (written by something else) is shown as its raw text. */
function lineOf(id: string, fields: string[]): TaskLogLine {
  const at = fields.indexOf("l");
  const raw = (at >= 0 ? fields[at + 1] : undefined) ?? fields.join(" ");
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

/** XINFO STREAM's reply (a flat list of names and values) → entries-added and length. */
function countsOf(reply: unknown): { total: number; length: number } {
  const info = Array.isArray(reply) ? reply : [];
  const field = (name: string) => Number(info[info.indexOf(name) + 1] ?? 0);
  const length = field("length");
  // entries-added is Redis 7's; before it, the length is all that is known.
  return { length, total: info.includes("entries-added") ? field("entries-added") : length };
}

/** A page of a task's log: at most `limit` lines after `after` (a line's id; "" from the oldest kept), oldest first.
 *  One round trip. */
export async function readTaskLog(
  redis: Redis,
  taskId: string,
  { after = "", limit }: { after?: string; limit: number },
): Promise<TaskLogPage> {
  if (after !== "" && !TASK_LOG_CURSOR.test(after)) throw new RangeError(`not a task log cursor: ${after}`);
  const key = Keys.logs(taskId);
  const [[rangeError, range], [infoError, info]] = ((await redis
    .pipeline()
    .xrange(key, after === "" ? "-" : `(${after}`, "+", "COUNT", limit)
    .call("XINFO", "STREAM", key)
    .exec()) ?? []) as [[Error | null, unknown], [Error | null, unknown]];
  if (rangeError) throw rangeError;
  // No stream yet (nothing logged, or the task's records expired): XINFO answers "no such key".
  if (infoError && !/no such key/i.test(infoError.message)) throw infoError;
  const lines = ((range ?? []) as [string, string[]][]).map(([id, fields]) => lineOf(id, fields));
  const { total, length } = infoError ? { total: 0, length: 0 } : countsOf(info);
  return { lines, nextCursor: lines.at(-1)?.id ?? after, total, dropped: Math.max(0, total - length) };
}

/**
 * What a handler logs with ctx.log is kept with its task (task_logs:<id>, @tm/store's task-logs.ts) as well as
 * written to the worker's log: BullMQ's job.log(), read back with GetTaskLogs, `taskctl logs` and the console,
 * without a log store or a search by task id.
 *
 * Each line is the worker's own JSON line (the same pino logger options), written to the worker's destination and
 * handed here: its fields that the task's log already knows (service, host, task id, type, attempt, trace) are left
 * out. Lines are buffered and written every FLUSH_MS in one round trip, and the rest when the attempt ends, before its
 * outcome is published: a client that sees SUCCEEDED or FAILED finds every line. The task's log is kept best-effort:
 * a write that fails (Redis down) drops those lines from it, counted and logged once per attempt, and never fails the
 * attempt; the worker's own log still has them.
 */
import { errorMessage } from "@tm/flow";
import type { Logger } from "@tm/kit";
import { childWritingTo, writeToDestination } from "@tm/kit/logger";
import { appendTaskLog, type TaskLogEntry } from "@tm/store";
import type { Redis } from "ioredis";

/** WORKER_TASK_LOG_LINES's default: the newest lines of ctx.log kept with each task. */
export const DEFAULT_TASK_LOG_LINES = 1_000;
/** How often an attempt's buffered lines are written while it runs. */
export const FLUSH_MS = 250;
/** How long an ended attempt waits for its last lines to be written before it goes on without them. */
export const CLOSE_DEADLINE_MS = 1_000;
/** The most of a line's message the task's log keeps. */
export const MESSAGE_MAX_CHARS = 2_048;
/** The most JSON a line's other fields may take in the task's log; more is replaced by a note saying how much. */
export const FIELDS_MAX_BYTES = 8_192;

/** ctx[TASK_LOG_LINE](line): a line a handler thread logged, to write and keep as the attempt's own. */
export const TASK_LOG_LINE = Symbol("taskLogLine");

/** The worker's ctx as handler-threads.ts sees it: with the attempt's line writer (not part of a handler's ctx type). */
export interface LineWritingContext {
  [TASK_LOG_LINE]?: (line: string) => void;
}

/** The fields every line of an attempt carries, which its task's log need not repeat. */
const KNOWN_FIELDS = new Set([
  "level",
  "time",
  "msg",
  "service",
  "hostname",
  "pid",
  "taskId",
  "type",
  "attempt",
  "trace_id",
  "span_id",
  "trace_flags",
]);

/** A pino JSON line → the entry the task's log keeps, or undefined for a line that is not one. */
export function taskLogEntry(
  line: string,
  { attempt, generation, omit }: { attempt: number; generation: number; omit?: ReadonlySet<string> },
): TaskLogEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  const record = parsed as Record<string, unknown>;
  const message = typeof record.msg === "string" ? record.msg : "";
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) {
    if (!KNOWN_FIELDS.has(name) && !omit?.has(name)) fields[name] = value;
  }
  const fieldsBytes = Object.keys(fields).length === 0 ? 0 : Buffer.byteLength(JSON.stringify(fields));
  return {
    time: typeof record.time === "string" ? record.time : new Date().toISOString(),
    level: typeof record.level === "string" ? record.level : String(record.level ?? "info"),
    message:
      message.length > MESSAGE_MAX_CHARS
        ? `${message.slice(0, MESSAGE_MAX_CHARS)}… (${message.length - MESSAGE_MAX_CHARS} more characters)`
        : message,
    attempt,
    generation,
    ...(fieldsBytes === 0
      ? {}
      : fieldsBytes > FIELDS_MAX_BYTES
        ? { fields: { omitted: `${fieldsBytes} bytes of fields, over ${FIELDS_MAX_BYTES}` } }
        : { fields }),
  };
}

export interface TaskLogSettings {
  redis: Redis;
  /** The newest lines kept per task (WORKER_TASK_LOG_LINES); 0 keeps none. */
  maxLines: number;
  /** The task's retention (TASK_RETENTION_SECONDS): how long its log is kept after its last line. */
  ttlSeconds: number;
  /** The worker's logger: where the lines are written too, and what is said when the task's log cannot be. */
  log: Logger;
  /** Told how many lines were kept ("stored") or could not be ("dropped"). */
  onLines?: (outcome: "stored" | "dropped", count: number) => void;
  flushMs?: number;
  closeDeadlineMs?: number;
  /** The least level a line needs to be kept (WORKER_TASK_LOG_LEVEL, as a pino level value); unset: every line
   *  ctx.log writes, i.e. the worker's LOG_LEVEL. */
  minLevel?: number;
}

/** pino's levels by label, as @tm/kit's logger writes them ({"level":"info",…}). */
export const LEVEL_VALUES: Readonly<Record<string, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};

/** A line's level value, read from its first field; undefined for a line without one (kept and written, then). */
export function lineLevel(line: string): number | undefined {
  const label = /^\{"level":"([a-z]+)"/.exec(line)?.[1];
  return label === undefined ? undefined : LEVEL_VALUES[label];
}

/**
 * Writes a line ctx.log (or a handler thread) made to the worker's log when it is at the worker's level, and to the
 * attempt's log, which keeps it when it is at the task log's (WORKER_TASK_LOG_LEVEL may be below LOG_LEVEL: a
 * handler's debug lines kept with its task, the worker's own log at info).
 */
export function writeAttemptLine(log: Logger, attemptLog: AttemptLog | undefined, line: string): void {
  if ((lineLevel(line) ?? Number.POSITIVE_INFINITY) >= log.levelVal) writeToDestination(log, line);
  attemptLog?.line(line);
}

/** One attempt's lines, on their way to its task's log. */
export class AttemptLog {
  readonly #settings: TaskLogSettings;
  readonly #taskId: string;
  readonly #entryOf: (line: string) => TaskLogEntry | undefined;
  /** Lines not written yet, as logged (parsed when written: only the newest maxLines of them are). */
  #buffered: string[] = [];
  /** Older lines left out unwritten, past the cap: numbered all the same, so the task's log counts them dropped. */
  #skipped = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The write under way: one at a time, so the lines stay in order and a slow Redis holds one batch, not many. */
  #writing: Promise<void> | undefined;
  #closed = false;
  #warned = false;

  constructor(
    settings: TaskLogSettings,
    {
      taskId,
      attempt,
      generation,
      omit,
    }: { taskId: string; attempt: number; generation: number; omit?: ReadonlySet<string> },
  ) {
    this.#settings = settings;
    this.#taskId = taskId;
    this.#entryOf = (line) => taskLogEntry(line, { attempt, generation, omit });
  }

  /** A line the handler logged (a pino JSON line). After the attempt ended (a handler that ignored its abort) it goes
   *  to the worker's log only. */
  line(text: string): void {
    if (this.#closed) return;
    const { minLevel } = this.#settings;
    if (minLevel !== undefined && (lineLevel(text) ?? Number.POSITIVE_INFINITY) < minLevel) return;
    this.#buffered.push(text);
    // A handler logging in a tight loop (or faster than Redis takes it) holds at most twice the cap here.
    const { maxLines } = this.#settings;
    if (this.#buffered.length > 2 * maxLines) {
      const excess = this.#buffered.length - maxLines;
      this.#buffered.splice(0, excess);
      this.#skipped += excess;
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer || this.#writing || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#write();
    }, this.#settings.flushMs ?? FLUSH_MS);
  }

  /** Writes what is buffered, unless a write is under way (the lines after it are written when it ends). */
  #write(): Promise<void> {
    if (this.#writing) return this.#writing;
    const { redis, maxLines, ttlSeconds, onLines } = this.#settings;
    const lines = this.#buffered.slice(-maxLines);
    const skipped = this.#skipped + this.#buffered.length - lines.length;
    this.#buffered = [];
    this.#skipped = 0;
    const entries = lines.map(this.#entryOf).filter((entry) => entry !== undefined);
    if (entries.length === 0) return Promise.resolve();
    this.#writing = appendTaskLog(redis, this.#taskId, entries, { maxLines, ttlSeconds, skipped })
      .then(
        () => onLines?.("stored", entries.length),
        (error: unknown) => this.#dropped(entries.length, error),
      )
      .finally(() => {
        this.#writing = undefined;
        if (this.#buffered.length > 0) this.#schedule();
      });
    return this.#writing;
  }

  #dropped(count: number, error: unknown): void {
    this.#settings.onLines?.("dropped", count);
    if (this.#warned) return;
    this.#warned = true;
    this.#settings.log.warn(
      { taskId: this.#taskId, err: errorMessage(error) },
      "a task's log lines could not be kept with it (they are in this log only)",
    );
  }

  /** The attempt ended: writes its last lines (after the write under way), waiting at most the close deadline; the
   *  outcome is published after. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const written = (async () => {
      await this.#writing;
      await this.#write();
    })();
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([
      written,
      new Promise<void>((resolve) => {
        deadline = setTimeout(resolve, this.#settings.closeDeadlineMs ?? CLOSE_DEADLINE_MS);
      }),
    ]);
    clearTimeout(deadline);
  }
}

/**
 * ctx.log for an attempt: a child of the worker's logger with the attempt's fields, whose lines go to the worker's
 * destination and to `attemptLog`. Without one (WORKER_TASK_LOG_LINES=0), a plain child.
 */
export function attemptLogger(
  log: Logger,
  bindings: Record<string, unknown>,
  attemptLog: AttemptLog | undefined,
  /** The task log's level (WORKER_TASK_LOG_LEVEL), when it is below the worker's: ctx.log then writes lines down to
   *  it, and only those at the worker's level reach the worker's log. */
  taskLogLevel?: string,
): Logger {
  if (!attemptLog) return log.child(bindings);
  const child = childWritingTo(log, bindings, (line) => writeAttemptLine(log, attemptLog, line));
  child.level = handlerLogLevel(log, taskLogLevel);
  return child;
}

/** The level a handler's logger writes at: the worker's, or the task log's (WORKER_TASK_LOG_LEVEL) when lower. */
export function handlerLogLevel(log: Logger, taskLogLevel: string | undefined): string {
  return taskLogLevel !== undefined && (LEVEL_VALUES[taskLogLevel] ?? log.levelVal) < log.levelVal
    ? taskLogLevel
    : log.level;
}

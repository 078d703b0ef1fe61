/**
 * Parsing of the operator commands' values (ls filters, times, limits, dlq actions). Pure: `now` is passed in so
 * relative times ("1h") are unit-tested exactly.
 */
import { Priority, TaskState } from "@tm/proto";
import { UsageError } from "./exit-codes.js";
import type { RetryBackoffOption } from "./task-limits.js";

export interface TaskListFilter {
  state?: TaskState;
  type?: string;
  priority?: Priority;
  since?: Date;
  until?: Date;
  query?: string;
  /** Only unfinished tasks unchanged for this long (seconds). */
  stalledForSeconds?: number;
  /** Only the tasks the gateway counts as stalled (their message lost), longest unmoved first. */
  stalled?: boolean;
  /** Only the child tasks of this task (`ls --parent`). */
  parentTaskId?: string;
}

export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 500;

const STATE_NAMES = ["pending", "ingested", "scheduled", "running", "succeeded", "failed", "cancelled"];
/** The states a task ends in: never stalled, never cancelled. */
export const FINISHED_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
]);
const PRIORITIES: Record<string, Priority> = { high: Priority.HIGH, medium: Priority.MEDIUM, low: Priority.LOW };
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseState(text: string): TaskState {
  const state = TaskState[text.toUpperCase() as keyof typeof TaskState];
  if (typeof state !== "number" || state === TaskState.UNSPECIFIED) {
    throw new UsageError(`--state must be one of ${STATE_NAMES.join(", ")} (got "${text}")`);
  }
  return state;
}

export function parseFilterPriority(text: string): Priority {
  const priority = PRIORITIES[text.toLowerCase()];
  if (priority === undefined) throw new UsageError(`--priority must be one of high, medium, low (got "${text}")`);
  return priority;
}

/** An ISO-8601 time, a duration before `now` such as 30s, 15m, 1h, 2d, 1w, or "now". */
export function parseTime(flag: string, text: string, now: number): Date {
  if (text.trim() === "now") return new Date(now);
  const duration = /^(\d+)([smhdw])$/.exec(text.trim());
  if (duration) return new Date(now - Number(duration[1]) * UNIT_MS[duration[2]!]!);
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(
      `${flag} must be an ISO time (2026-01-31T12:00:00Z), a duration like 30s, 15m, 1h, 2d (that long ago), or now`,
    );
  }
  return new Date(ms);
}

export function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIST_LIMIT;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > MAX_LIST_LIMIT) {
    throw new UsageError(`--limit must be a whole number from 1 to ${MAX_LIST_LIMIT} (got "${text}")`);
  }
  return value;
}

export interface ListFlags {
  state?: string | undefined;
  type?: string | undefined;
  priority?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  query?: string | undefined;
  stalledFor?: string | undefined;
  stalled?: boolean | undefined;
  parent?: string | undefined;
}

export function parseTaskListFilter(flags: ListFlags, now: number): TaskListFilter {
  const filter: TaskListFilter = {};
  if (flags.state !== undefined) filter.state = parseState(flags.state);
  if (flags.type !== undefined) filter.type = flags.type;
  if (flags.priority !== undefined) filter.priority = parseFilterPriority(flags.priority);
  if (flags.since !== undefined) filter.since = parseTime("--since", flags.since, now);
  if (flags.until !== undefined) filter.until = parseTime("--until", flags.until, now);
  if (filter.since && filter.until && filter.since >= filter.until) {
    throw new UsageError("--since must be earlier than --until");
  }
  if (flags.query !== undefined && flags.query.trim() !== "") filter.query = flags.query;
  const stalledForSeconds = parseStalledFor(flags.stalledFor);
  if (stalledForSeconds !== undefined) filter.stalledForSeconds = stalledForSeconds;
  if (flags.stalled) {
    if (filter.state && FINISHED_STATES.has(filter.state)) {
      throw new UsageError("--stalled lists unfinished tasks: drop --state or name an unfinished state");
    }
    filter.stalled = true;
  }
  if (flags.parent !== undefined) filter.parentTaskId = flags.parent;
  return filter;
}

/** Which dead letters `dlq ls` lists and `dlq replay|discard --all` acts on (AdminService's DeadLetterFilter). */
export interface DlqFilter {
  reason?: string;
  subject?: string;
  taskId?: string;
  type?: string;
  parentTaskId?: string;
}

export type DlqAction = ({ action: "ls" } | { action: "replay" | "discard"; ids: string[]; all: boolean }) & {
  filter: DlqFilter;
};

/** `dlq ls`, `dlq replay <id...>|--all` or `dlq discard <id...>|--all`, with --reason, --subject, --task, --type,
 *  --parent. */
export function parseDlqAction(
  positionals: string[],
  all: boolean,
  flags: {
    reason?: string | undefined;
    subject?: string | undefined;
    task?: string | undefined;
    type?: string | undefined;
    parent?: string | undefined;
  },
  help: string,
): DlqAction {
  const filter: DlqFilter = {};
  if (flags.reason !== undefined) filter.reason = flags.reason;
  if (flags.subject !== undefined) filter.subject = flags.subject;
  if (flags.task !== undefined) filter.taskId = flags.task;
  if (flags.type !== undefined) filter.type = flags.type;
  if (flags.parent !== undefined) filter.parentTaskId = flags.parent;
  const filtered = Object.keys(filter).length > 0;
  const [action, ...rest] = positionals;
  if (action === "ls") {
    if (rest.length > 0) throw new UsageError(`dlq ls: unexpected argument "${rest[0]}"\n\n${help}`);
    if (all) throw new UsageError("dlq ls: --all applies to dlq replay and dlq discard");
    return { action: "ls", filter };
  }
  if (action === "replay" || action === "discard") {
    if (all && rest.length > 0) throw new UsageError(`dlq ${action}: give dead letter ids or --all, not both`);
    if (!all && rest.length === 0) throw new UsageError(`dlq ${action}: give dead letter ids or --all\n\n${help}`);
    if (!all && filtered) {
      throw new UsageError(
        `dlq ${action}: --reason, --subject, --task, --type and --parent choose letters with --all, not with ids`,
      );
    }
    return { action, ids: [...new Set(rest)], all, filter };
  }
  throw new UsageError(
    action === undefined
      ? `dlq: missing action (ls, replay or discard)\n\n${help}`
      : `dlq: unknown action "${action}"\n\n${help}`,
  );
}

/** When `submit --delay` or `--at` asks a task to run: a delay (ms) or a time; undefined for at once. */
export type SubmitSchedule = { delayMs: number } | { runAt: Date };

/**
 * `submit --delay 30s|15m|2h|1d` or `--at <ISO time>` (not both). The gateway checks the upper bound (its
 * GATEWAY_MAX_DELAY_SECONDS) and answers INVALID_ARGUMENT naming it.
 */
export function parseSchedule(delay: string | undefined, at: string | undefined): SubmitSchedule | undefined {
  if (delay !== undefined && at !== undefined) throw new UsageError("--delay and --at cannot be combined");
  if (delay !== undefined) {
    const match = /^(\d+)([smhd])$/.exec(delay.trim());
    if (!match) throw new UsageError(`--delay must be a duration like 30s, 15m, 2h, 1d (got "${delay}")`);
    return { delayMs: Number(match[1]) * UNIT_MS[match[2]!]! };
  }
  const runAt = parseIsoTime("--at", at);
  return runAt ? { runAt } : undefined;
}

/** An option's ISO time (`--start-at 2026-01-31T12:00:00Z`), or undefined when not given. */
export function parseIsoTime(option: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(`${option} must be an ISO time such as 2026-01-31T12:00:00Z (got "${text}")`);
  }
  return new Date(ms);
}

const TIMEOUT_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `submit --attempt-timeout 500ms|30s|15m|2h`: the handler's time limit per attempt, in ms (the gateway checks ≤ 24 h). */
export function parseAttemptTimeout(text: string | undefined, option = "--attempt-timeout"): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  const ms = match ? Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]! : 0;
  if (!(ms > 0)) throw new UsageError(`${option} must be a duration like 500ms, 30s, 15m, 2h (got "${text}")`);
  return ms;
}

/** --heartbeat-timeout: an attempt reporting no progress that long is aborted (the gateway checks ≤ 24 h). */
export function parseHeartbeatTimeout(text: string | undefined): number | undefined {
  return parseAttemptTimeout(text, "--heartbeat-timeout");
}

/**
 * `submit --retry-delay D [--retry-multiplier X] [--retry-max-delay D] [--retry-jitter F]`: the task's own wait after
 * a failed attempt (D: 0s, 500ms, 30s, 15m, 1h). The others need --retry-delay; the gateway checks the ranges.
 */
export function parseRetryBackoff(texts: {
  delay: string | undefined;
  multiplier: string | undefined;
  maxDelay: string | undefined;
  jitter: string | undefined;
}): RetryBackoffOption | undefined {
  const { delay, multiplier, maxDelay, jitter } = texts;
  if (delay === undefined) {
    const stray = [
      multiplier === undefined ? "" : "--retry-multiplier",
      maxDelay === undefined ? "" : "--retry-max-delay",
      jitter === undefined ? "" : "--retry-jitter",
    ].filter(Boolean);
    if (stray.length > 0) throw new UsageError(`${stray.join(", ")} needs --retry-delay (the first wait)`);
    return undefined;
  }
  const number = (flag: string, text: string, hint: string) => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value)) throw new UsageError(`${flag} must be ${hint} (got "${text}")`);
    return value;
  };
  return {
    delayMs: retryDurationMs("--retry-delay", delay),
    ...(multiplier === undefined ? {} : { multiplier: number("--retry-multiplier", multiplier, "a number like 2") }),
    ...(maxDelay === undefined ? {} : { maxDelayMs: retryDurationMs("--retry-max-delay", maxDelay) }),
    ...(jitter === undefined ? {} : { jitter: number("--retry-jitter", jitter, "a fraction from 0 to 1, like 0.2") }),
  };
}

function retryDurationMs(flag: string, text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new UsageError(`${flag} must be a duration like 0s, 500ms, 30s, 15m, 1h (got "${text}")`);
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
}

/** `submit --expires-after 30s|15m|2h|1d`: not run if not started that long after it was due (the gateway checks ≤ 7 d). */
export function parseExpiresAfter(text: string | undefined): number | undefined {
  return positiveDurationMs("--expires-after", text);
}

/** --succeeded-retention: how long the task is kept once it SUCCEEDED (the gateway checks 60 s to 90 days). */
export function parseSucceededRetention(text: string | undefined): number | undefined {
  return positiveDurationMs("--succeeded-retention", text);
}

/** A positive duration option like 30s, 15m, 2h or 1d, in ms; undefined when not given. */
function positiveDurationMs(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  const ms = match ? Number(match[1]) * (match[2] === "d" ? 86_400_000 : TIMEOUT_UNIT_MS[match[2]!]!) : 0;
  if (!(ms > 0)) throw new UsageError(`${option} must be a duration like 30s, 15m, 2h, 1d (got "${text}")`);
  return ms;
}

/** `schedule add --starting-deadline D`: how late a run may still be submitted (the gateway checks 1 s to 31 days). */
export function parseStartingDeadline(text: string | undefined): number | undefined {
  return positiveDurationMs("--starting-deadline", text);
}

/** `limits set --global-concurrency N`: 1 to 10,000 (the gateway has the final word). */
export function parseGlobalConcurrency(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 10_000) {
    throw new UsageError(`--global-concurrency must be a whole number from 1 to 10000 (got "${text}")`);
  }
  return value;
}

const RATE_UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3_600 };

/** `limits set --rate 10/s|100/m:10|0.5/s`: starts per second and the burst (default 1), as WORKER_TYPE_RATES reads them. */
export function parseStartRate(text: string): { perSecond: number; burst: number } {
  const match = /^(\d+(?:\.\d+)?)\/([smh])(?::(\d+))?$/.exec(text.trim());
  const perSecond = match ? Number(match[1]) / RATE_UNIT_SECONDS[match[2]!]! : 0;
  if (!match || !(perSecond > 0)) {
    throw new UsageError(
      `--rate must be N/s, N/m or N/h with N above 0, and an optional :BURST, e.g. 10/s or 100/m:10 (got "${text}")`,
    );
  }
  return { perSecond, burst: match[3] === undefined ? 1 : Math.max(1, Number(match[3])) };
}

/** `submit --max-attempts N`: 1 to 5 (the pipeline's deliveries per message; the gateway has the final word). */
export function parseMaxAttempts(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 100) {
    throw new UsageError(`--max-attempts must be a whole number from 1 (at most once) up (got "${text}")`);
  }
  return value;
}

/** Longest --stalled-for accepted: a week (tasks expire from Redis before anything could stall that long). */
export const MAX_STALLED_FOR_SECONDS = 604_800;

/** `requeue --stalled-for`: 0, a number of seconds, or a duration such as 90s, 15m, 2h, 1d; in seconds. */
export function parseStalledFor(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)([smhdw])?$/.exec(text.trim());
  const seconds = match ? (Number(match[1]) * UNIT_MS[match[2] ?? "s"]!) / 1_000 : Number.NaN;
  if (!(seconds <= MAX_STALLED_FOR_SECONDS)) {
    throw new UsageError(
      `--stalled-for must be 0, seconds, or a duration like 90s, 15m, 2h, at most 7d (got "${text}")`,
    );
  }
  return seconds;
}

/**
 * Recurring tasks (AdminService CreateSchedule / ListSchedules / DeleteSchedule; `taskctl schedule`): an operator names
 * a schedule, a cron expression (croner: five fields, or six with seconds; an IANA time zone, UTC by default) or an
 * interval (`@every 90m`: schedule-interval.ts), optionally a window (start_at, end_at) and a most of runs (max_runs),
 * and the task to submit. The gateways' schedule runner (schedule-runner.ts) submits it at each time. The task
 * template is checked here as SubmitTask would check it, so a schedule never fires a task the gateway would refuse.
 */
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { publishAudit, type TaskTypes, taskLimitsOf } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  type CallContext,
  type CreateScheduleRequest,
  DependencyPolicy,
  IdempotencyKeyReuse,
  type ScheduledTask,
  ScheduleOverlap,
  type ScheduleSchema,
  taskLimitFields,
} from "@tm/proto";
import {
  countSchedules,
  deleteSchedule,
  listSchedules,
  pauseSchedule,
  readSchedule,
  resumeSchedule,
  type ScheduleRun,
  type ScheduleState,
  type StoredSchedule,
  saveSchedule,
  scheduleState,
} from "@tm/store";
import { Cron } from "croner";
import { callerOf } from "./auth/caller.js";
import { priorityToProto, timestampFromIso } from "./mapping.js";
import type { RedisCall } from "./redis-call.js";
import { intervalMsOf, isInterval, latestIntervalTime, nextIntervalTime } from "./schedule-interval.js";
import { durationMsOf, invalid, validateSubmission } from "./validation.js";

/** The most schedules there may be: each is a Redis hash field and a run per tick at most. */
export const MAX_SCHEDULES = 1_000;
const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Metadata every run's task carries, besides the template's. */
export const SCHEDULE_METADATA = { id: "schedule_id", time: "scheduled_for" } as const;

/** A schedule id from a request, or INVALID_ARGUMENT naming `id`. */
function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw invalid("id", "must be a schedule id (1-64 characters of a-z, 0-9, '.', '_', '-')");
}

/** The schedule's cron expression read in its time zone (a paused Cron: only asked for times, never run). */
function cronOf(schedule: Pick<StoredSchedule, "cron" | "timezone">): Cron {
  return new Cron(schedule.cron, { paused: true, ...(schedule.timezone ? { timezone: schedule.timezone } : {}) });
}

/** The schedule's next time after `afterMs` within its window (start_at, end_at), its cron read in its time zone (an
 *  interval, `@every 90m`: the next multiple of it since the epoch); undefined when there is none. */
export function nextRunAfter(
  schedule: Pick<StoredSchedule, "cron" | "timezone" | "startAtMs" | "endAtMs">,
  afterMs: number,
): number | undefined {
  // A time at start_at itself counts: "after" is from a moment before it.
  const from = schedule.startAtMs === undefined ? afterMs : Math.max(afterMs, schedule.startAtMs - 1);
  const next = isInterval(schedule.cron)
    ? nextIntervalTime(intervalMsOf(schedule.cron), from)
    : cronOf(schedule).nextRun(new Date(from))?.getTime();
  return next !== undefined && schedule.endAtMs !== undefined && next > schedule.endAtMs ? undefined : next;
}

/** Whether a schedule has made the most runs it may (max_runs). */
export function runsUsedUp(schedule: Pick<StoredSchedule, "maxRuns">, lastRun: ScheduleRun | undefined): boolean {
  return schedule.maxRuns !== undefined && (lastRun?.runs ?? 0) >= schedule.maxRuns;
}

export interface ScheduleLimits {
  maxPayloadBytes: number;
  maxDeliver: number;
  /** The task types the deployment runs (TASK_TYPES): a schedule's task must be one. */
  taskTypes: TaskTypes;
}

/** The schedule to store, and when it first runs; INVALID_ARGUMENT naming the field for anything wrong. */
export function parseSchedule(
  request: CreateScheduleRequest,
  limits: ScheduleLimits,
  nowMs: number,
  createdBy: string,
): { schedule: StoredSchedule; nextMs: number } {
  const given = request.schedule;
  if (!given) throw invalid("schedule", "is required");
  if (!ID_PATTERN.test(given.id)) {
    throw invalid(
      "schedule.id",
      "must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
    );
  }
  const cron = given.cron.trim();
  const timezone = given.timezone.trim();
  if (timezone !== "" && isInterval(cron)) {
    throw invalid(
      "schedule.timezone",
      "an interval (@every) counts from 1970-01-01T00:00:00Z: leave the time zone empty",
    );
  }
  const window = parseWindow(given, nowMs);
  let nextMs: number | undefined;
  try {
    nextMs = nextRunAfter({ cron, timezone, ...window }, nowMs);
  } catch (error) {
    const field = /timezone/i.test(String((error as Error).message)) ? "schedule.timezone" : "schedule.cron";
    throw invalid(field, `${(error as Error).message.slice(0, 200)}`);
  }
  if (nextMs === undefined) {
    throw invalid(
      "schedule.cron",
      window.endAtMs === undefined
        ? `"${cron}" names no time from now on`
        : `"${cron}" names no time from now on before end_at (${new Date(window.endAtMs).toISOString()})`,
    );
  }
  const task = parseTemplate(given.task, limits);
  const overlap = parseOverlap(given.overlap);
  const startingDeadlineMs = given.startingDeadline ? parseStartingDeadline(given.startingDeadline) : undefined;
  return {
    schedule: {
      id: given.id,
      cron,
      timezone,
      task,
      createdAt: new Date(nowMs).toISOString(),
      createdBy,
      ...(overlap ? { overlap } : {}),
      ...(startingDeadlineMs ? { startingDeadlineMs } : {}),
      ...window,
      ...(given.maxRuns > 0 ? { maxRuns: given.maxRuns } : {}),
    },
    nextMs,
  };
}

/** start_at and end_at in ms, checked: end_at in the future and after start_at; INVALID_ARGUMENT naming the field. */
function parseWindow(
  given: { startAt?: Timestamp | undefined; endAt?: Timestamp | undefined },
  nowMs: number,
): Pick<StoredSchedule, "startAtMs" | "endAtMs"> {
  const startAtMs = given.startAt ? timestampMs(given.startAt) : undefined;
  const endAtMs = given.endAt ? timestampMs(given.endAt) : undefined;
  if (endAtMs !== undefined && endAtMs <= nowMs) {
    throw invalid("schedule.end_at", `${new Date(endAtMs).toISOString()} has passed: the schedule would never run`);
  }
  if (startAtMs !== undefined && endAtMs !== undefined && endAtMs <= startAtMs) {
    throw invalid("schedule.end_at", "must be after start_at");
  }
  return {
    ...(startAtMs === undefined ? {} : { startAtMs }),
    ...(endAtMs === undefined ? {} : { endAtMs }),
  };
}

/** The longest starting deadline: a month (a schedule's runs later than that are better made up by hand). */
export const MAX_STARTING_DEADLINE_MS = 31 * 24 * 3_600_000;

/** A starting deadline of 1 s to MAX_STARTING_DEADLINE_MS, in ms; INVALID_ARGUMENT naming `schedule.starting_deadline`. */
function parseStartingDeadline(deadline: Duration): number {
  const ms = durationMsOf("schedule.starting_deadline", deadline);
  if (ms < 1_000) {
    throw invalid("schedule.starting_deadline", "must be at least 1 s (leave it unset to run however late)");
  }
  if (ms > MAX_STARTING_DEADLINE_MS) throw invalid("schedule.starting_deadline", "must be at most 31 days");
  return ms;
}

/**
 * The latest of the schedule's times from `dueMs` (its stored next time, due) up to `nowMs`: the time a run made now
 * stands for. Several times missed (no gateway ran) make one run, for the latest of them.
 */
export function latestDueTime(
  schedule: Pick<StoredSchedule, "cron" | "timezone">,
  dueMs: number,
  nowMs: number,
): number {
  // An interval's latest time is the last multiple of it up to now. previousRuns gives times strictly before its
  // reference (whole seconds): a second past now includes now's.
  const latest = isInterval(schedule.cron)
    ? latestIntervalTime(intervalMsOf(schedule.cron), nowMs)
    : cronOf(schedule)
        .previousRuns(1, new Date(nowMs + 1_000))[0]
        ?.getTime();
  return latest !== undefined && latest > dueMs && latest <= nowMs ? latest : dueMs;
}

/** The stored overlap policy ("skip", or undefined for allow), or INVALID_ARGUMENT naming `schedule.overlap`. */
function parseOverlap(overlap: ScheduleOverlap): StoredSchedule["overlap"] {
  switch (overlap) {
    case ScheduleOverlap.UNSPECIFIED:
    case ScheduleOverlap.ALLOW:
      return undefined;
    case ScheduleOverlap.SKIP:
      return "skip";
    default:
      throw invalid("schedule.overlap", `must be SCHEDULE_OVERLAP_ALLOW or SCHEDULE_OVERLAP_SKIP (got ${overlap})`);
  }
}

/** The task template, validated as SubmitTask would validate a run's request (the run's metadata included). */
function parseTemplate(task: ScheduledTask | undefined, limits: ScheduleLimits): StoredSchedule["task"] {
  if (!task) throw invalid("schedule.task", "is required");
  for (const key of Object.values(SCHEDULE_METADATA)) {
    if (key in task.metadata) throw invalid("schedule.task.metadata", `"${key}" is set by each run`);
  }
  let valid: ReturnType<typeof validateSubmission>;
  try {
    valid = validateSubmission(
      {
        type: task.type,
        payload: task.payload,
        priority: task.priority,
        metadata: { ...task.metadata, [SCHEDULE_METADATA.id]: "x", [SCHEDULE_METADATA.time]: "x" },
        idempotencyKey: "",
        idempotencyKeyReuse: IdempotencyKeyReuse.UNSPECIFIED,
        schedule: { case: undefined },
        timeout: task.timeout,
        maxAttempts: task.maxAttempts,
        retryBackoff: task.retryBackoff,
        expiresAfter: task.expiresAfter,
        succeededRetention: task.succeededRetention,
        heartbeatTimeout: task.heartbeatTimeout,
        dependsOn: [],
        dependencyPolicy: DependencyPolicy.UNSPECIFIED,
        parentTaskId: "",
        concurrencyKey: task.concurrencyKey,
        concurrencyLimit: task.concurrencyLimit,
        fairnessKey: task.fairnessKey,
        fairnessWeight: task.fairnessWeight,
      },
      limits.maxPayloadBytes,
      limits.maxDeliver,
      limits.taskTypes,
    );
  } catch (error) {
    // Its field names are SubmitTaskRequest's: say where they sit here.
    if (error instanceof ConnectError) throw new ConnectError(`schedule.task.${error.rawMessage}`, error.code);
    throw error;
  }
  return {
    type: valid.type,
    payload: valid.payload,
    priority: valid.priority,
    metadata: { ...task.metadata },
    ...taskLimitsOf(valid),
    ...(valid.succeededRetentionSeconds ? { succeededRetentionSeconds: valid.succeededRetentionSeconds } : {}),
    ...(valid.concurrencyKey && valid.concurrencyLimit
      ? { concurrencyKey: valid.concurrencyKey, concurrencyLimit: valid.concurrencyLimit }
      : {}),
    ...(valid.fairnessKey ? { fairnessKey: valid.fairnessKey, fairnessWeight: valid.fairnessWeight ?? 1 } : {}),
  };
}

export function scheduleToProto({
  schedule,
  nextMs,
  lastRun,
  paused,
}: ScheduleState): MessageInitShape<typeof ScheduleSchema> {
  const { task } = schedule;
  return {
    id: schedule.id,
    cron: schedule.cron,
    timezone: schedule.timezone,
    task: {
      type: task.type,
      payload: task.payload as JsonObject,
      priority: priorityToProto(task.priority),
      metadata: task.metadata,
      ...taskLimitFields(task),
      ...(task.succeededRetentionSeconds
        ? { succeededRetention: durationFromMs(task.succeededRetentionSeconds * 1_000) }
        : {}),
      concurrencyKey: task.concurrencyKey ?? "",
      concurrencyLimit: task.concurrencyLimit ?? 0,
      fairnessKey: task.fairnessKey ?? "",
      fairnessWeight: task.fairnessKey ? (task.fairnessWeight ?? 1) : 0,
    },
    ...(nextMs === undefined ? {} : { nextRunAt: timestampFromMs(nextMs) }),
    createdAt: timestampFromIso(schedule.createdAt),
    createdBy: schedule.createdBy,
    ...(lastRun ? { lastRunAt: timestampFromIso(lastRun.at), lastTaskId: lastRun.taskId } : {}),
    ...(paused ? { paused: true, pausedAt: timestampFromIso(paused.at), pausedBy: paused.by } : {}),
    overlap: schedule.overlap === "skip" ? ScheduleOverlap.SKIP : ScheduleOverlap.ALLOW,
    ...(schedule.startingDeadlineMs ? { startingDeadline: durationFromMs(schedule.startingDeadlineMs) } : {}),
    ...(schedule.startAtMs === undefined ? {} : { startAt: timestampFromMs(schedule.startAtMs) }),
    ...(schedule.endAtMs === undefined ? {} : { endAt: timestampFromMs(schedule.endAtMs) }),
    maxRuns: schedule.maxRuns ?? 0,
    runs: lastRun?.runs ?? 0,
    // No next time while not paused: its window has passed or its runs are used up.
    ended: !paused && nextMs === undefined,
  };
}

export function scheduleHandlers(
  rt: Runtime,
  redis: RedisCall,
  limits: ScheduleLimits,
  /** Submits a manual run (RunSchedule) in the operator's call context; resolves with its task id. */
  runNow: (schedule: StoredSchedule, ctx: CallContext) => Promise<string>,
) {
  /** A schedule's audit event (no task id), awaited; a lost one is logged, not returned (the change stands). */
  async function audit(action: string, detail: Record<string, string>): Promise<void> {
    await publishAudit(rt.publisher, {
      service: rt.name,
      action,
      detail,
      discriminator: `${detail.scheduleId}:${Date.now()}`,
    }).catch((error: unknown) => rt.log.warn({ err: error, action }, "could not publish a schedule's audit event"));
  }

  async function stateOf(id: string): Promise<ScheduleState> {
    const state = await redis("reading the schedule", () => scheduleState(rt.redis, id));
    if (!state) throw new ConnectError(`schedule ${id} not found`, Code.NotFound);
    return state;
  }

  return {
    async createSchedule(request: CreateScheduleRequest, caller: string | undefined) {
      const parsed = parseSchedule(request, limits, Date.now(), caller ?? "");
      const { schedule } = parsed;
      // A replaced schedule keeps the count of its runs: one that has made its max_runs already has no next time.
      const previous =
        request.replace && schedule.maxRuns !== undefined
          ? await redis("reading the schedule", () => scheduleState(rt.redis, schedule.id))
          : undefined;
      const nextMs = runsUsedUp(schedule, previous?.lastRun) ? undefined : parsed.nextMs;
      const count = await redis("counting schedules", () => countSchedules(rt.redis));
      if (count >= MAX_SCHEDULES && !request.replace) {
        throw new ConnectError(
          `there are ${count} schedules already (at most ${MAX_SCHEDULES})`,
          Code.ResourceExhausted,
        );
      }
      const saved = await redis("saving the schedule", () => saveSchedule(rt.redis, schedule, nextMs, request.replace));
      if (!saved) {
        throw new ConnectError(
          `schedule ${schedule.id} exists (set replace to replace it, or delete it first)`,
          Code.AlreadyExists,
        );
      }
      await audit("schedule_saved", {
        scheduleId: schedule.id,
        cron: schedule.cron,
        timezone: schedule.timezone,
        by: schedule.createdBy,
      });
      rt.log.info({ scheduleId: schedule.id, cron: schedule.cron, nextMs }, "schedule saved");
      // Read back: a replaced schedule keeps its pause and its last run.
      return { schedule: scheduleToProto(await stateOf(schedule.id)) };
    },

    async listSchedules() {
      const states = await redis("reading the schedules", () => listSchedules(rt.redis));
      return { schedules: states.map(scheduleToProto) };
    },

    async deleteSchedule(id: string, caller: string | undefined) {
      checkId(id);
      const deleted = await redis("deleting the schedule", () => deleteSchedule(rt.redis, id));
      if (deleted) await audit("schedule_deleted", { scheduleId: id, by: caller ?? "" });
      return { deleted };
    },

    async pauseSchedule(id: string, caller: string | undefined) {
      checkId(id);
      const pause = { at: new Date().toISOString(), by: caller ?? "" };
      const found = await redis("pausing the schedule", () => pauseSchedule(rt.redis, id, pause));
      if (!found) throw new ConnectError(`schedule ${id} not found`, Code.NotFound);
      await audit("schedule_paused", { scheduleId: id, by: pause.by });
      return { schedule: scheduleToProto(await stateOf(id)) };
    },

    async runSchedule(id: string, ctx: CallContext) {
      checkId(id);
      const schedule = await redis("reading the schedule", () => readSchedule(rt.redis, id));
      if (!schedule) throw new ConnectError(`schedule ${id} not found`, Code.NotFound);
      const taskId = await runNow(schedule, ctx);
      await audit("schedule_run", { scheduleId: id, by: callerOf(ctx) ?? "", taskId });
      return { taskId };
    },

    async resumeSchedule(id: string, caller: string | undefined) {
      checkId(id);
      // From its first time after now: the times passed while it was paused are not made up. One whose runs are used
      // up stays ended.
      const { schedule, lastRun } = await stateOf(id);
      const nextMs = runsUsedUp(schedule, lastRun) ? undefined : nextRunAfter(schedule, Date.now());
      const outcome = await redis("resuming the schedule", () => resumeSchedule(rt.redis, id, nextMs));
      if (outcome === "not_found") throw new ConnectError(`schedule ${id} not found`, Code.NotFound);
      if (outcome === "resumed") await audit("schedule_resumed", { scheduleId: id, by: caller ?? "" });
      return { wasPaused: outcome === "resumed", schedule: scheduleToProto(await stateOf(id)) };
    },
  };
}

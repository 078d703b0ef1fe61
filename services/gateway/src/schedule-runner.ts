/**
 * The schedule runner: every GATEWAY_SCHEDULE_POLL_MS, each gateway replica submits the tasks of the schedules whose
 * time has come (schedules.ts). Exactly one task per schedule and time, without a lock:
 *
 *   1. the run's task is submitted through SubmitTask's own code, as the schedule's creator, with the idempotency key
 *      `schedule:<id>:<time ms>`: two replicas running it at once, or one retrying after a crash between the steps,
 *      make one task (the second call is answered with the first one's id);
 *   2. the schedule's next time is then set by a compare-and-set on the time it ran for (advanceSchedule), which only
 *      the first replica's call applies.
 *
 * Times missed while no gateway ran (or Redis was down) are not made up one by one: the schedule runs once for the
 * latest of them (its `scheduled_for`; the key stays the stored time's, which every replica reads alike), and its
 * next time is the first one after now (Kubernetes CronJob and Asynq's scheduler do the same). With a starting
 * deadline, a run later than that after its time is skipped instead ("missed"), as Kubernetes CronJob's
 * startingDeadlineSeconds does. A run that fails (NATS or Redis down) is retried next round under the same key. A
 * schedule whose overlap policy is "skip" does not run while its previous run's task has not finished: that time is
 * skipped (moved on by the same compare-and-set, so one replica counts it).
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { isTerminal } from "@tm/flow";
import { LogThrottle, type Runtime } from "@tm/kit";
import { type CallContext, SubmitTaskRequestSchema, taskLimitFields } from "@tm/proto";
import {
  advanceSchedule,
  deleteSchedule,
  dueSchedules,
  readStatus,
  type StoredSchedule,
  scheduleState,
} from "@tm/store";
import { attachCaller } from "./auth/caller.js";
import { priorityToProto } from "./mapping.js";
import { everyInterval } from "./rounds.js";
import { latestDueTime, nextRunAfter, SCHEDULE_METADATA } from "./schedules.js";
import type { TaskServiceHandlers } from "./task-service.js";

/** SubmitTask refused the run's request itself (invalid, over a limit): the same request would be refused again. */
function isRejection(error: unknown): boolean {
  return (
    error instanceof ConnectError && (error.code === Code.InvalidArgument || error.code === Code.ResourceExhausted)
  );
}

/** Schedules run per round at most; more wait for the next round. */
const ROUND_LIMIT = 100;

/** While a schedule's runs keep failing (an outage fails every round, every second), at most one warning per
 *  schedule per this interval, with the number of failures it stands for. */
export const FAILURE_LOG_INTERVAL_MS = 60_000;

export interface ScheduleRunnerOptions {
  /** GATEWAY_SCHEDULE_POLL_MS: how often due schedules are looked for (how late a run can be). */
  pollMs: number;
  /** Submits one run's task, for the stored time `dueMs` (its key) standing for `forMs` (the latest time missed, or
   *  `dueMs`); resolves with its id (the same id when the run was submitted before). */
  submit(schedule: StoredSchedule, dueMs: number, forMs: number): Promise<string>;
  /** The clock the failure warnings are spaced by (tests set it; default Date.now). */
  now?: () => number;
}

export interface ScheduleRunner {
  /** One round (what the timer does every `pollMs`): the number of schedules this replica moved on. */
  run(): Promise<number>;
  stop(): Promise<void>;
}

export function startScheduleRunner(rt: Runtime, options: ScheduleRunnerOptions): ScheduleRunner {
  const runs = rt.meter.createCounter("tm_schedule_runs_total", {
    description:
      "Runs of recurring schedules by this replica: outcome submitted, failed (retried next round), rejected (the " +
      "template no longer passes SubmitTask's checks: that time skipped), overlapped (overlap policy skip: the " +
      "previous run's task had not finished, that time skipped) or missed (later than the schedule's starting " +
      "deadline: that time skipped)",
  });
  for (const outcome of ["submitted", "failed", "rejected", "overlapped", "missed"]) runs.add(0, { outcome });
  /** Per schedule whose runs are failing. A key goes once a run of its schedule goes through (a deleted schedule's
   *  stays: a few bytes, at most one per id). */
  const failing = new LogThrottle(FAILURE_LOG_INTERVAL_MS, options.now ?? Date.now);

  function warnFailed(id: string, dueMs: number, error: unknown): void {
    const heldBack = failing.pass(id);
    if (heldBack === undefined) return;
    rt.log.warn(
      { err: error, scheduleId: id, dueMs, failuresSinceLastWarning: heldBack },
      "could not submit a scheduled run; retried every round (this warning at most once a minute per schedule)",
    );
  }

  async function runOne(id: string, dueMs: number): Promise<boolean> {
    const state = await scheduleState(rt.redis, id);
    if (!state) {
      // Deleted between the two reads: its leftover entries go too.
      await deleteSchedule(rt.redis, id);
      return false;
    }
    const { schedule, lastRun } = state;
    /** Moves the schedule past this time without a run; counts and logs it once (the replica whose move applied). */
    const skip = async (outcome: string, log: (nextMs: number | undefined) => void): Promise<false> => {
      const nextMs = nextRunAfter(schedule, Math.max(Date.now(), dueMs));
      if (await advanceSchedule(rt.redis, id, dueMs, nextMs, undefined)) {
        runs.add(1, { outcome });
        log(nextMs);
      }
      return false;
    };
    const nowMs = Date.now();
    const forMs = latestDueTime(schedule, dueMs, nowMs);
    const { startingDeadlineMs } = schedule;
    if (startingDeadlineMs !== undefined && nowMs - forMs > startingDeadlineMs) {
      // Too late to run (no gateway could submit it in time): skipped, as the schedule asks.
      return skip("missed", (nextMs) =>
        rt.log.warn(
          { scheduleId: id, dueMs, forMs, lateMs: nowMs - forMs, startingDeadlineMs, nextMs },
          "scheduled run skipped: later than the schedule's starting deadline",
        ));
    }
    if (schedule.overlap === "skip" && lastRun && (await stillRunning(lastRun.taskId))) {
      return skip("overlapped", (nextMs) =>
        rt.log.info(
          { scheduleId: id, dueMs, runningTaskId: lastRun.taskId, nextMs },
          "scheduled run skipped: the previous run's task has not finished (overlap policy skip)",
        ));
    }
    let taskId: string;
    try {
      taskId = await options.submit(schedule, dueMs, forMs);
    } catch (error) {
      if (!isRejection(error)) {
        runs.add(1, { outcome: "failed" });
        warnFailed(id, dueMs, error);
        return false;
      }
      // The gateway refuses the run itself (a task type or a limit changed since the schedule was made): retrying
      // cannot help, so this time is skipped, as an error for the operator (alert ScheduleRunsRejected).
      return skip("rejected", () =>
        rt.log.error(
          { err: error, scheduleId: id, dueMs },
          "a scheduled run was refused by SubmitTask's checks: this time is skipped; fix the schedule (replace it)",
        ));
    }
    failing.reset(id);
    const nextMs = nextRunAfter(schedule, Math.max(Date.now(), dueMs));
    const advanced = await advanceSchedule(
      rt.redis,
      id,
      dueMs,
      nextMs,
      { at: new Date(forMs).toISOString(), taskId },
      schedule.maxRuns,
    );
    if (advanced) {
      runs.add(1, { outcome: "submitted" });
      rt.log.info({ scheduleId: id, taskId, nextMs }, "scheduled run submitted");
    }
    // Its last run (max_runs), or none left in its window (end_at): said once, by the replica whose move applied.
    if (advanced === "ended" || (advanced && nextMs === undefined)) {
      rt.log.info(
        { scheduleId: id, maxRuns: schedule.maxRuns, endAtMs: schedule.endAtMs },
        "schedule ended: no more runs (its max_runs or end_at); it stays listed until deleted",
      );
    }
    return advanced !== false;
  }

  /** Whether a run's task has not finished (a task whose status expired has). */
  async function stillRunning(taskId: string): Promise<boolean> {
    const status = await readStatus(rt.redis, taskId);
    return status !== undefined && !isTerminal(status.state);
  }

  async function run(): Promise<number> {
    const due = await dueSchedules(rt.redis, Date.now(), ROUND_LIMIT);
    const outcomes = await Promise.allSettled(due.map(({ id, dueMs }) => runOne(id, dueMs)));
    let advanced = 0;
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === "fulfilled") advanced += outcome.value ? 1 : 0;
      else rt.log.warn({ err: outcome.reason, scheduleId: due[i]?.id }, "could not run a schedule");
    }
    return advanced;
  }

  const rounds = everyInterval(options.pollMs, run, (error) => rt.log.debug({ err: error }, "schedule round skipped"));

  return { run, stop: () => rounds.stop() };
}

/**
 * Submits one run of a schedule through the TaskService's own (unguarded) SubmitTask handler, as the operator who
 * created the schedule: the same validation, idempotency, audit ("submitted", by them) and metadata stamping as any
 * submission. The run's task carries `schedule_id` and `scheduled_for` (`forMs`: the time it stands for) in its
 * metadata; its idempotency key is the stored time's (`dueMs`). A `manual` run (RunSchedule) is submitted in the
 * calling operator's own call context, as theirs, under a key of its own.
 */
export async function submitRun(
  submitTask: TaskServiceHandlers["submitTask"],
  schedule: StoredSchedule,
  dueMs: number,
  manual?: { ctx: CallContext },
  forMs = dueMs,
): Promise<string> {
  const ctx: CallContext = manual?.ctx ?? {
    signal: AbortSignal.timeout(60_000),
    header: () => undefined,
    peer: `schedule:${schedule.id}`,
  };
  if (!manual && schedule.createdBy) attachCaller(ctx, schedule.createdBy, true);
  const { task } = schedule;
  const { taskId } = await submitTask(
    create(SubmitTaskRequestSchema, {
      type: task.type,
      payload: task.payload as JsonObject,
      priority: priorityToProto(task.priority),
      metadata: {
        ...task.metadata,
        [SCHEDULE_METADATA.id]: schedule.id,
        [SCHEDULE_METADATA.time]: new Date(forMs).toISOString(),
      },
      // A scheduled time's run is one task however many replicas (or retries) submit it; a manual run is its own.
      idempotencyKey: manual
        ? `schedule:${schedule.id}:manual:${crypto.randomUUID()}`
        : `schedule:${schedule.id}:${dueMs}`,
      ...taskLimitFields(task),
      ...(task.succeededRetentionSeconds
        ? { succeededRetention: durationFromMs(task.succeededRetentionSeconds * 1_000) }
        : {}),
      ...(task.concurrencyKey && task.concurrencyLimit
        ? { concurrencyKey: task.concurrencyKey, concurrencyLimit: task.concurrencyLimit }
        : {}),
      ...(task.fairnessKey ? { fairnessKey: task.fairnessKey, fairnessWeight: task.fairnessWeight ?? 1 } : {}),
    }),
    ctx,
  );
  if (!taskId) throw new Error(`SubmitTask answered schedule ${schedule.id}'s run without a task id`);
  return taskId;
}

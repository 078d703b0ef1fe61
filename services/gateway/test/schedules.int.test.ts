/**
 * Recurring schedules against a real nats-server and redis-server, two gateway replicas running them: one task per
 * schedule and time (never two, never none), in the schedule's metadata; missed times run once; a failed run is
 * retried under the same key; a deleted schedule stops; bad input is INVALID_ARGUMENT naming the field.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Subjects, type TaskMessage } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { Priority, type ScheduledTaskSchema, ScheduleOverlap } from "@tm/proto";
import { Keys, readSchedule } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FAILURE_LOG_INTERVAL_MS, startScheduleRunner, submitRun } from "../src/schedule-runner.js";
import { type Gateway, startGateway, storedMessagesOf, useClients, useGateway } from "./helpers.js";

const infra = useInfra();
const clients = useClients(infra);

/** A replica whose own runner waits ten minutes between rounds: the API, and the tests that run rounds themselves. */
const quiet = useGateway(infra, { GATEWAY_SCHEDULE_POLL_MS: "600000" });

/** Every task a schedule submitted so far, from the tasks.ingest messages in the stream. */
async function runsOf(scheduleId: string): Promise<TaskMessage[]> {
  const runs = new Map<string, TaskMessage>();
  for await (const stored of storedMessagesOf(clients.nc, "TASKS")) {
    if (stored.subject !== Subjects.ingest) continue;
    const message = stored.json<TaskMessage>();
    if (message.metadata?.schedule_id === scheduleId) runs.set(message.taskId, message);
  }
  return [...runs.values()].sort((a, b) => a.metadata.scheduled_for!.localeCompare(b.metadata.scheduled_for!));
}

interface ScheduleInit {
  id: string;
  cron?: string;
  timezone?: string;
  task?: MessageInitShape<typeof ScheduledTaskSchema> | undefined;
}

function schedule(init: ScheduleInit) {
  return {
    cron: "* * * * * *",
    task: { type: "echo", payload: { from: "schedule" }, priority: Priority.LOW, metadata: { team: "ops" } },
    ...init,
  };
}

async function rejection(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

describe("a schedule run by two gateway replicas", () => {
  // Two replicas running schedules every 100 ms, as a deployment's replicas do.
  let gateways: Gateway[];
  beforeAll(async () => {
    const env = { GATEWAY_SCHEDULE_POLL_MS: "100" };
    gateways = await Promise.all([startGateway(infra, env), startGateway(infra, env)]);
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
  });

  test("an interval (@every 2s) runs at the multiples of it since the epoch, one task per time", async () => {
    const { schedule: created } = await quiet.admin.createSchedule({
      schedule: schedule({ id: "every-2s", cron: "@every 2s" }),
    });
    expect(created).toMatchObject({ cron: "@every 2s", timezone: "" });
    expect(Number(created?.nextRunAt?.seconds) % 2).toBe(0);
    await waitFor("two runs", async () => (await runsOf("every-2s")).length >= 2, { timeoutMs: 10_000 });
    await quiet.admin.deleteSchedule({ id: "every-2s" });
    const times = (await runsOf("every-2s")).map((run) => Date.parse(run.metadata.scheduled_for!));
    expect(new Set(times).size).toBe(times.length);
    for (const time of times) expect(time % 2_000).toBe(0);
    expect(times[1]! - times[0]!).toBe(2_000);
  });

  test("submits one task per time, carrying the schedule in its metadata, until it is deleted", async () => {
    const { schedule: created } = await quiet.admin.createSchedule({
      schedule: schedule({
        id: "every-second",
        task: {
          type: "echo",
          payload: { from: "schedule" },
          priority: Priority.LOW,
          metadata: { team: "ops" },
          timeout: create(DurationSchema, { seconds: 5n }),
          maxAttempts: 2,
          retryBackoff: { delay: create(DurationSchema, { seconds: 2n }), multiplier: 2 },
          expiresAfter: create(DurationSchema, { seconds: 30n }),
          succeededRetention: create(DurationSchema, { seconds: 600n }),
        },
      }),
    });
    expect(created?.nextRunAt).toBeDefined();
    expect(created?.task?.expiresAfter).toMatchObject({ seconds: 30n });
    expect(created?.task?.succeededRetention).toMatchObject({ seconds: 600n });
    expect(created?.task?.retryBackoff).toMatchObject({
      delay: { seconds: 2n },
      multiplier: 2,
      maxDelay: { seconds: 3_600n },
    });
    await waitFor("three runs", async () => (await runsOf("every-second")).length >= 3, { timeoutMs: 10_000 });

    const runs = await runsOf("every-second");
    const times = runs.map((run) => run.metadata.scheduled_for!);
    expect(new Set(times).size).toBe(runs.length); // one task per time: the two replicas never both submitted
    for (const time of times) expect(Date.parse(time) % 1_000).toBe(0); // whole seconds, as the cron says
    expect(runs[0]).toMatchObject({
      type: "echo",
      priority: "low",
      payload: { from: "schedule" },
      metadata: { team: "ops", schedule_id: "every-second" },
      timeoutMs: 5_000,
      maxAttempts: 2,
      retryBackoff: { delayMs: 2_000, multiplier: 2, maxDelayMs: 3_600_000, jitter: 0 },
      expiresAfterMs: 30_000,
    });
    // Kept with the run's task record (the status script reads it there), not carried in its messages.
    expect(await clients.redis.hget(Keys.task(runs[0]!.taskId), "succeededRetentionSeconds")).toBe("600");

    const listed = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "every-second");
    expect(listed?.lastTaskId).toBeTruthy();
    expect(timestampDate(listed!.nextRunAt!).getTime()).toBeGreaterThan(timestampDate(listed!.lastRunAt!).getTime());

    expect(await quiet.admin.deleteSchedule({ id: "every-second" })).toMatchObject({ deleted: true });
    expect(await quiet.admin.deleteSchedule({ id: "every-second" })).toMatchObject({ deleted: false });
    const after = (await runsOf("every-second")).length;
    // Rounds on both replicas for two more of its seconds: none submits anything.
    const until = Date.now() + 2_000;
    await waitFor("two more of its seconds to pass", () => Date.now() > until, { timeoutMs: 5_000 });
    // A run already under way when it was deleted may still land (at most one per replica).
    expect((await runsOf("every-second")).length).toBeLessThanOrEqual(after + 1);
    expect(await clients.redis.zscore(Keys.scheduleNext, "every-second")).toBeNull();
  });

  test("max_runs: its last run ends it (one task per run, counted across replicas); resumed it stays ended, replaced with more it goes on", async () => {
    await quiet.admin.createSchedule({ schedule: { ...schedule({ id: "three-times" }), maxRuns: 3 } });
    await waitFor(
      "it ended",
      async () => (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "three-times")?.ended === true,
      { timeoutMs: 15_000 },
    );
    const ended = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "three-times");
    expect(ended).toMatchObject({ maxRuns: 3, runs: 3, ended: true, paused: false });
    expect(ended?.nextRunAt).toBeUndefined();
    // No next time is left for any replica to run: exactly three tasks, one per time.
    expect(await clients.redis.zscore(Keys.scheduleNext, "three-times")).toBeNull();
    const runs = await runsOf("three-times");
    expect(runs).toHaveLength(3);
    expect(new Set(runs.map((run) => run.metadata.scheduled_for)).size).toBe(3);
    // Paused and resumed: still ended.
    await quiet.admin.pauseSchedule({ id: "three-times" });
    const resumed = await quiet.admin.resumeSchedule({ id: "three-times" });
    expect(resumed.schedule).toMatchObject({ ended: true, runs: 3 });
    expect(resumed.schedule?.nextRunAt).toBeUndefined();
    // Replaced with the same limit: still ended (the count is kept); with a higher one, it goes on to it.
    const same = await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "three-times" }), maxRuns: 3 },
      replace: true,
    });
    expect(same.schedule).toMatchObject({ ended: true, runs: 3 });
    const more = await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "three-times" }), maxRuns: 4 },
      replace: true,
    });
    expect(more.schedule).toMatchObject({ ended: false, runs: 3, maxRuns: 4 });
    await waitFor(
      "its fourth and last run",
      async () => (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "three-times")?.ended === true,
      { timeoutMs: 15_000 },
    );
    expect(await runsOf("three-times")).toHaveLength(4);
    await quiet.admin.deleteSchedule({ id: "three-times" });
  });

  test("end_at: no run after it, then it has ended; start_at: none before it", async () => {
    const endAt = Date.now() + 2_500;
    await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "until-soon" }), endAt: timestampFromMs(endAt) },
    });
    await waitFor(
      "it ended",
      async () => (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "until-soon")?.ended === true,
      { timeoutMs: 15_000 },
    );
    const times = (await runsOf("until-soon")).map((run) => Date.parse(run.metadata.scheduled_for!));
    expect(times.length).toBeGreaterThan(0);
    for (const time of times) expect(time).toBeLessThanOrEqual(endAt);
    const startAt = Math.ceil((Date.now() + 3_600_000) / 1_000) * 1_000;
    const { schedule: later } = await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "from-later" }), startAt: timestampFromMs(startAt) },
    });
    expect(timestampDate(later!.nextRunAt!).getTime()).toBe(startAt);
    expect(later).toMatchObject({ ended: false, runs: 0 });
    for (const id of ["until-soon", "from-later"]) await quiet.admin.deleteSchedule({ id });
  });

  test("a paused schedule submits nothing, keeps its pause when replaced, and resumes from now", async () => {
    await quiet.admin.createSchedule({ schedule: schedule({ id: "pausable" }) });
    await waitFor("a first run", async () => (await runsOf("pausable")).length > 0, { timeoutMs: 10_000 });
    const { schedule: paused } = await quiet.admin.pauseSchedule({ id: "pausable" });
    expect(paused).toMatchObject({ id: "pausable", paused: true, pausedBy: "" });
    expect(paused?.nextRunAt).toBeUndefined();
    const pausedAt = Date.now();
    // A run already under way when it was paused may still land; none after that.
    const until = pausedAt + 2_000;
    await waitFor("two of its seconds to pass", () => Date.now() > until, { timeoutMs: 5_000 });
    const during = (await runsOf("pausable")).filter((run) => Date.parse(run.metadata.scheduled_for!) > pausedAt);
    expect(during).toEqual([]);

    const { schedule: replaced } = await quiet.admin.createSchedule({
      schedule: schedule({ id: "pausable", cron: "*/2 * * * * *" }),
      replace: true,
    });
    expect(replaced).toMatchObject({ cron: "*/2 * * * * *", paused: true });
    expect(replaced?.nextRunAt).toBeUndefined();

    const resumedAt = Date.now();
    const resumed = await quiet.admin.resumeSchedule({ id: "pausable" });
    expect(resumed.wasPaused).toBe(true);
    expect(resumed.schedule?.paused).toBe(false);
    expect(timestampDate(resumed.schedule!.nextRunAt!).getTime()).toBeGreaterThan(resumedAt);
    await waitFor(
      "a run after the resume",
      async () => (await runsOf("pausable")).some((run) => Date.parse(run.metadata.scheduled_for!) > resumedAt),
      { timeoutMs: 10_000 },
    );
    expect((await quiet.admin.resumeSchedule({ id: "pausable" })).wasPaused).toBe(false);
    await quiet.admin.deleteSchedule({ id: "pausable" });
    expect(await rejection(quiet.admin.pauseSchedule({ id: "pausable" }))).toEqual({
      code: Code.NotFound,
      message: "schedule pausable not found",
    });
    expect(await clients.redis.hexists(Keys.schedulePaused, "pausable")).toBe(0);
  });
});

describe("one round at a time (no replica runs schedules meanwhile)", () => {
  test("times missed while no gateway ran make one run, for the latest; the next time is after now", async () => {
    // Every minute, and not looked at for an hour (as if every gateway was down): its next time an hour ago.
    const dueMs = await createAsIfIdle("hourly-missed", "* * * * *", Date.now() - 3_600_000);
    const submitted: Array<{ dueMs: number; forMs: number }> = [];
    const runner = startScheduleRunner(quiet.gateway.runtime, {
      pollMs: 600_000,
      submit: async (_schedule, dueMs, forMs) => {
        submitted.push({ dueMs, forMs });
        return crypto.randomUUID();
      },
    });
    const ranAt = Date.now();
    try {
      expect(await runner.run()).toBe(1);
      expect(await runner.run()).toBe(0);
    } finally {
      await runner.stop();
    }
    // Keyed by the stored time (every replica reads the same), standing for the latest minute missed.
    expect(submitted).toEqual([{ dueMs, forMs: Math.floor(ranAt / 60_000) * 60_000 }]);
    const next = Number(await clients.redis.zscore(Keys.scheduleNext, "hourly-missed"));
    expect(next).toBeGreaterThan(Date.now());
    expect(next - Date.now()).toBeLessThanOrEqual(60_000);
    expect(JSON.parse((await clients.redis.hget(Keys.scheduleLastRun, "hourly-missed"))!).at).toBe(
      new Date(submitted[0]!.forMs).toISOString(),
    );
  });

  test("a run later than the schedule's starting deadline is skipped (missed); one within it runs", async () => {
    // Daily at the minute ten minutes ago (UTC), with a 30 s deadline, due then: that run is 10 minutes late.
    const tenMinutesAgo = new Date(Math.floor((Date.now() - 600_000) / 60_000) * 60_000);
    const cron = `${tenMinutesAgo.getUTCMinutes()} ${tenMinutesAgo.getUTCHours()} * * *`;
    await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "deadline", cron }), startingDeadline: create(DurationSchema, { seconds: 30n }) },
      replace: true,
    });
    await clients.redis.zadd(Keys.scheduleNext, tenMinutesAgo.getTime(), "deadline");
    // One round of a runner that records the time each run stands for; resolves the schedules it moved on.
    const submitted: number[] = [];
    const oneRound = async () => {
      const runner = startScheduleRunner(quiet.gateway.runtime, {
        pollMs: 600_000,
        submit: async (_schedule, _dueMs, forMs) => {
          submitted.push(forMs);
          return crypto.randomUUID();
        },
      });
      try {
        return await runner.run();
      } finally {
        await runner.stop();
      }
    };
    expect(await oneRound()).toBe(0);
    expect(submitted).toEqual([]);
    expect(await clients.redis.hexists(Keys.scheduleLastRun, "deadline")).toBe(0);
    // Moved on to the same minute tomorrow.
    expect(Number(await clients.redis.zscore(Keys.scheduleNext, "deadline"))).toBe(
      tenMinutesAgo.getTime() + 86_400_000,
    );

    // Within its deadline: every second, due 2 s ago, deadline 30 s: runs, for the latest second.
    await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "deadline" }), startingDeadline: create(DurationSchema, { seconds: 30n }) },
      replace: true,
    });
    await clients.redis.zadd(Keys.scheduleNext, Date.now() - 2_000, "deadline");
    expect(await oneRound()).toBe(1);
    expect(submitted).toHaveLength(1);
    expect(Date.now() - submitted[0]!).toBeLessThan(30_000);
    // Listed with its deadline.
    const listed = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "deadline");
    expect(listed?.startingDeadline?.seconds).toBe(30n);
    await quiet.admin.deleteSchedule({ id: "deadline" });
  });

  test("a run that cannot be submitted is retried next round under the same key: one task", async () => {
    const dueMs = await createAsIfIdle("retried", "*/5 * * * *", Date.now() - 1_000);
    const failing = startScheduleRunner(quiet.gateway.runtime, {
      pollMs: 600_000,
      submit: async () => {
        throw new Error("NATS is down");
      },
    });
    expect(await failing.run()).toBe(0);
    await failing.stop();
    expect(Number(await clients.redis.zscore(Keys.scheduleNext, "retried"))).toBe(dueMs);

    // A replica that submitted it and died before moving the schedule on, then the next round's run: one task.
    const stored = (await readSchedule(clients.redis, "retried"))!;
    const first = await submitRun(submitTaskOf(quiet.gateway), stored, dueMs);
    const runner = startScheduleRunner(quiet.gateway.runtime, {
      pollMs: 600_000,
      submit: (s, due) => submitRun(submitTaskOf(quiet.gateway), s, due),
    });
    expect(await runner.run()).toBe(1);
    await runner.stop();
    const listed = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "retried");
    expect(listed?.lastTaskId).toBe(first);
    expect((await runsOf("retried")).map((run) => run.taskId)).toEqual([first]);
  });
});

test("a schedule whose runs keep failing is warned about once a minute, with the failures in between", async () => {
  await createAsIfIdle("failing-quietly", "*/5 * * * *", Date.now() - 1_000);
  const warnings: Array<Record<string, unknown>> = [];
  const log = Object.create(quiet.gateway.runtime.log) as Runtime["log"];
  log.warn = ((fields: Record<string, unknown>) => {
    if (fields.scheduleId === "failing-quietly") warnings.push(fields);
  }) as Runtime["log"]["warn"];
  let clock = 1_000_000;
  const runner = startScheduleRunner(
    { ...quiet.gateway.runtime, log },
    {
      pollMs: 600_000,
      now: () => clock,
      submit: async () => {
        throw new Error("NATS is down");
      },
    },
  );
  try {
    // Three failing rounds a second apart: one warning.
    for (let round = 0; round < 3; round++, clock += 1_000) await runner.run();
    expect(warnings.map((w) => w.failuresSinceLastWarning)).toEqual([0]);
    // A minute after it: the next failure is warned about, with the two that were not.
    clock += FAILURE_LOG_INTERVAL_MS;
    await runner.run();
    expect(warnings.map((w) => w.failuresSinceLastWarning)).toEqual([0, 2]);
  } finally {
    await runner.stop();
    await quiet.admin.deleteSchedule({ id: "failing-quietly" });
  }
});

describe("a run SubmitTask refuses", () => {
  test("is skipped, not retried: the schedule moves on, no task, no last run", async () => {
    const dueMs = await createAsIfIdle("broken", "*/5 * * * *", Date.now() - 1_000);
    // A template that no longer passes (as after a task type was withdrawn from the workers).
    const stored = (await readSchedule(clients.redis, "broken"))!;
    await clients.redis.hset(
      Keys.schedules,
      "broken",
      JSON.stringify({ ...stored, task: { ...stored.task, type: "gone" } }),
    );
    const runner = startScheduleRunner(quiet.gateway.runtime, {
      pollMs: 600_000,
      submit: (s, due) => submitRun(submitTaskOf(quiet.gateway), s, due),
    });
    try {
      expect(await runner.run()).toBe(0);
      expect(await runner.run()).toBe(0);
    } finally {
      await runner.stop();
    }
    expect(Number(await clients.redis.zscore(Keys.scheduleNext, "broken"))).toBeGreaterThan(dueMs);
    expect(await runsOf("broken")).toEqual([]);
    const listed = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "broken");
    expect(listed?.lastTaskId).toBe("");
    const metrics = await (await fetch(`http://127.0.0.1:${quiet.gateway.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tm_schedule_runs_total\{[^}]*outcome="rejected"[^}]*\} 1$/m);
  });
});

test("RunSchedule submits the template once per call, now, a paused schedule's too; its times and last run stay", async () => {
  await quiet.admin.createSchedule({ schedule: schedule({ id: "on-demand", cron: "0 3 * * *" }), replace: true });
  await quiet.admin.pauseSchedule({ id: "on-demand" });
  const before = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "on-demand");
  const calledAt = Date.now();
  const first = await quiet.admin.runSchedule({ id: "on-demand" });
  const second = await quiet.admin.runSchedule({ id: "on-demand" });
  expect(first.taskId).not.toBe(second.taskId);
  const runs = await runsOf("on-demand");
  expect(runs.map((run) => run.taskId).sort()).toEqual([first.taskId, second.taskId].sort());
  for (const run of runs) {
    expect(run).toMatchObject({ type: "echo", payload: { from: "schedule" }, metadata: { team: "ops" } });
    expect(Date.parse(run.metadata.scheduled_for!)).toBeGreaterThanOrEqual(calledAt - 1_000);
  }
  const after = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "on-demand");
  expect(after?.paused).toBe(true);
  expect(after?.nextRunAt).toEqual(before?.nextRunAt);
  expect(after?.lastTaskId).toBe(before?.lastTaskId);
  expect(await rejection(quiet.admin.runSchedule({ id: "no-such-schedule" }))).toEqual({
    code: Code.NotFound,
    message: "schedule no-such-schedule not found",
  });
  await quiet.admin.deleteSchedule({ id: "on-demand" });
});

test("a template's concurrency key and limit are kept, listed, and given to each run's task", async () => {
  const key = `sync-${crypto.randomUUID()}`;
  const template = { type: "sleep", payload: { ms: 60_000 }, priority: Priority.LOW, metadata: {} };
  await quiet.admin.createSchedule({
    schedule: schedule({
      id: "keyed",
      cron: "0 3 * * *",
      task: { ...template, concurrencyKey: key, concurrencyLimit: 1 },
    }),
    replace: true,
  });
  const listed = (await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "keyed");
  expect(listed?.task).toMatchObject({ concurrencyKey: key, concurrencyLimit: 1 });
  const first = await quiet.admin.runSchedule({ id: "keyed" });
  const second = await quiet.admin.runSchedule({ id: "keyed" });
  // The second run waits for the first's place, unqueued.
  const view = await quiet.admin.getConcurrencyKey({ key });
  expect(view).toMatchObject({ running: [first.taskId], waiting: [second.taskId] });
  expect((await quiet.client.getTask({ taskId: second.taskId })).task).toMatchObject({
    concurrencyKey: key,
    concurrencyWaiting: true,
  });
  expect((await runsOf("keyed")).map((run) => run.taskId)).toEqual([first.taskId]);
  // A key without a limit is refused, named where it sits.
  expect(
    await rejection(
      quiet.admin.createSchedule({
        schedule: schedule({ id: "half-keyed", task: { ...template, concurrencyKey: key } }),
      }),
    ),
  ).toEqual({
    code: Code.InvalidArgument,
    message: "schedule.task.concurrency_limit: is required with concurrency_key: 1 to 1000",
  });
  for (const { taskId } of [first, second]) await quiet.client.cancelTask({ taskId });
  await quiet.admin.deleteSchedule({ id: "keyed" });
});

describe("overlap policy skip", () => {
  test("a time comes while the previous run's task has not finished: skipped, moved on; once it has, the next runs", async () => {
    await quiet.admin.createSchedule({
      schedule: { ...schedule({ id: "no-overlap", cron: "*/5 * * * *" }), overlap: ScheduleOverlap.SKIP },
      replace: true,
    });
    expect((await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "no-overlap")?.overlap).toBe(
      ScheduleOverlap.SKIP,
    );
    const runner = startScheduleRunner(quiet.gateway.runtime, {
      pollMs: 600_000,
      submit: (s, due) => submitRun(submitTaskOf(quiet.gateway), s, due),
    });
    const dueNow = async () => {
      const dueMs = Date.now() - 1_000;
      await clients.redis.zadd(Keys.scheduleNext, dueMs, "no-overlap");
      return dueMs;
    };
    try {
      // First time: submitted. No worker runs here, so its task stays PENDING.
      await dueNow();
      expect(await runner.run()).toBe(1);
      const [first] = await runsOf("no-overlap");
      expect(first).toBeDefined();
      // Second time, the first task still PENDING: skipped, the schedule moved on, no task, the last run unchanged.
      const skippedMs = await dueNow();
      expect(await runner.run()).toBe(0);
      expect(Number(await clients.redis.zscore(Keys.scheduleNext, "no-overlap"))).toBeGreaterThan(skippedMs);
      expect((await runsOf("no-overlap")).map((run) => run.taskId)).toEqual([first!.taskId]);
      expect((await quiet.admin.listSchedules({})).schedules.find((s) => s.id === "no-overlap")?.lastTaskId).toBe(
        first!.taskId,
      );
      const metrics = await (await fetch(`http://127.0.0.1:${quiet.gateway.opsPort}/metrics`)).text();
      expect(metrics).toMatch(/^tm_schedule_runs_total\{[^}]*outcome="overlapped"[^}]*\} 1$/m);
      // The first task finishes (cancelled here): the next time runs again.
      await quiet.client.cancelTask({ taskId: first!.taskId });
      await dueNow();
      expect(await runner.run()).toBe(1);
      expect(await runsOf("no-overlap")).toHaveLength(2);
    } finally {
      await runner.stop();
    }
  });
});

/** The in-process gateway's unguarded SubmitTask, as the runner is given it. */
function submitTaskOf(gateway: Gateway) {
  return gateway.started.submitTask;
}

/** Creates a schedule through the API, then sets its next time to `dueMs` as an idle period would leave it. */
async function createAsIfIdle(id: string, cron: string, dueMs: number): Promise<number> {
  await quiet.admin.createSchedule({
    schedule: schedule({ id, cron }),
    replace: true,
  });
  await clients.redis.zadd(Keys.scheduleNext, dueMs, id);
  return dueMs;
}

test("bad schedules are INVALID_ARGUMENT naming the field; an existing id is ALREADY_EXISTS unless replaced", async () => {
  const invalid = async (init: ScheduleInit) => rejection(quiet.admin.createSchedule({ schedule: schedule(init) }));
  expect(await invalid({ id: "x", cron: "@every 90" })).toMatchObject({
    code: Code.InvalidArgument,
    message: 'schedule.cron: "@every 90": the interval is a duration such as 45s, 90m, 1h30m or 2d',
  });
  expect(await invalid({ id: "x", cron: "@every 500ms" })).toMatchObject({
    message: 'schedule.cron: "@every 500ms": the interval is a duration such as 45s, 90m, 1h30m or 2d',
  });
  expect(await invalid({ id: "x", cron: "@every 0s" })).toMatchObject({
    message: 'schedule.cron: "@every 0s": the interval must be from 1s to 366d',
  });
  const at = (ms: number) => timestampFromMs(ms);
  const refused = async (extra: object) =>
    rejection(quiet.admin.createSchedule({ schedule: { ...schedule({ id: "x" }), ...extra } }));
  expect(await refused({ endAt: at(Date.now() - 1_000) })).toMatchObject({
    code: Code.InvalidArgument,
    message: expect.stringMatching(/^schedule\.end_at: .* has passed: the schedule would never run$/),
  });
  expect(await refused({ startAt: at(Date.now() + 7_200_000), endAt: at(Date.now() + 3_600_000) })).toMatchObject({
    message: "schedule.end_at: must be after start_at",
  });
  expect(await refused({ cron: "@every 366d", endAt: at(Date.now() + 60_000) })).toMatchObject({
    message: expect.stringMatching(/^schedule\.cron: "@every 366d" names no time from now on before end_at \(/),
  });
  expect(await invalid({ id: "x", cron: "@every 90m", timezone: "Europe/Berlin" })).toMatchObject({
    message: "schedule.timezone: an interval (@every) counts from 1970-01-01T00:00:00Z: leave the time zone empty",
  });
  expect(await invalid({ id: "Bad Id" })).toMatchObject({ code: Code.InvalidArgument, message: /^schedule\.id: / });
  expect(await invalid({ id: "x", cron: "61 * * * *" })).toMatchObject({
    code: Code.InvalidArgument,
    message: expect.stringMatching(/^schedule\.cron: .*minute/),
  });
  expect(await invalid({ id: "x", timezone: "Mars/Base" })).toMatchObject({
    code: Code.InvalidArgument,
    message: expect.stringMatching(/^schedule\.timezone: .*Mars\/Base/),
  });
  expect(await invalid({ id: "x", cron: "0 0 30 2 *" })).toMatchObject({
    message: 'schedule.cron: "0 0 30 2 *" names no time from now on',
  });
  expect(await invalid({ id: "x", task: { type: "nope" } })).toMatchObject({
    code: Code.InvalidArgument,
    message: expect.stringMatching(/^schedule\.task\.type: unknown task type "nope"/),
  });
  expect(await invalid({ id: "x", task: { type: "echo", metadata: { schedule_id: "y" } } })).toMatchObject({
    message: 'schedule.task.metadata: "schedule_id" is set by each run',
  });
  expect(await invalid({ id: "x", task: undefined })).toMatchObject({ message: "schedule.task: is required" });
  expect(
    await invalid({ id: "x", task: { type: "echo", succeededRetention: create(DurationSchema, { seconds: 10n }) } }),
  ).toMatchObject({
    code: Code.InvalidArgument,
    message: expect.stringMatching(/^schedule\.task\.succeeded_retention: 10 s is under the minimum of 60 s/),
  });
  expect(
    await rejection(
      quiet.admin.createSchedule({ schedule: { ...schedule({ id: "x" }), overlap: 7 as ScheduleOverlap } }),
    ),
  ).toMatchObject({
    code: Code.InvalidArgument,
    message: "schedule.overlap: must be SCHEDULE_OVERLAP_ALLOW or SCHEDULE_OVERLAP_SKIP (got 7)",
  });

  const deadline = (seconds: bigint, nanos = 0) =>
    rejection(
      quiet.admin.createSchedule({
        schedule: { ...schedule({ id: "x" }), startingDeadline: create(DurationSchema, { seconds, nanos }) },
      }),
    );
  expect(await deadline(0n, 500_000_000)).toMatchObject({
    code: Code.InvalidArgument,
    message: "schedule.starting_deadline: must be at least 1 s (leave it unset to run however late)",
  });
  expect(await deadline(32n * 86_400n)).toMatchObject({
    message: "schedule.starting_deadline: must be at most 31 days",
  });
  expect(await deadline(-5n)).toMatchObject({ message: "schedule.starting_deadline: must not be negative" });

  await quiet.admin.createSchedule({
    schedule: schedule({ id: "nightly", cron: "0 2 * * *", timezone: "Europe/Berlin" }),
  });
  expect(await rejection(quiet.admin.createSchedule({ schedule: schedule({ id: "nightly" }) }))).toMatchObject({
    code: Code.AlreadyExists,
    message: "schedule nightly exists (set replace to replace it, or delete it first)",
  });
  const { schedule: replaced } = await quiet.admin.createSchedule({
    schedule: schedule({ id: "nightly", cron: "30 3 * * *", timezone: "Europe/Berlin" }),
    replace: true,
  });
  // 03:30 in Berlin is 02:30 UTC in winter.
  expect(timestampDate(replaced!.nextRunAt!).toISOString()).toMatch(/T02:30:00\.000Z$/);
  expect(await rejection(quiet.admin.deleteSchedule({ id: "../x" }))).toMatchObject({ code: Code.InvalidArgument });
  await quiet.admin.deleteSchedule({ id: "nightly" });
});

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DeadLetterEntrySchema,
  FairnessQueueSummarySchema,
  GetConcurrencyKeyResponseSchema,
  GetFairnessQueueResponseSchema,
  GetQueueStatsResponseSchema,
  PausedQueueSchema,
  Priority,
  QuietRequestSchema,
  RedisStatsSchema,
  ReplayOutcomeSchema,
  ReplayResult,
  RequeueOutcomeSchema,
  RequeueResult,
  ScheduleOverlap,
  ScheduleSchema,
  TaskSchema,
  TaskState,
  TypeBackoffSchema,
  TypeLimitSchema,
  UnconsumedQueueSchema,
  WorkerInfoSchema,
} from "@tm/proto";
import { describe, expect, test } from "vitest";
import {
  relativeTime,
  renderConcurrencyKey,
  renderDeadLetters,
  renderFairnessQueue,
  renderPausedQueues,
  renderRedisStats,
  renderReplay,
  renderRequeue,
  renderRequeuedStalled,
  renderSchedules,
  renderStats,
  renderTasks,
  renderWorkers,
  table,
  truncate,
  workerState,
} from "../src/admin-render.js";
import { exitFor } from "../src/commands/admin.js";
import { renderTypeLimits } from "../src/commands/limits.js";
import { ExitCode } from "../src/exit-codes.js";

const NOW = Date.parse("2026-03-01T12:00:00Z");

describe("operator tables", () => {
  test("columns align, numbers right-aligned, long cells cut", () => {
    expect(
      table(
        [
          { header: "NAME", max: 6 },
          { header: "N", align: "right" },
        ],
        [
          ["short", "1"],
          ["a-long-name", "100"],
        ],
      ),
    ).toBe(["NAME      N", "short     1", "a-lon…  100"].join("\n"));
    expect(truncate("abcdef", 4)).toBe("abc…");
  });

  test("relative times", () => {
    expect(relativeTime(NOW - 400, NOW)).toBe("just now");
    expect(relativeTime(NOW - 42_000, NOW)).toBe("42s ago");
    expect(relativeTime(NOW - 5 * 60_000, NOW)).toBe("5m ago");
    expect(relativeTime(NOW - 3 * 3_600_000, NOW)).toBe("3h ago");
    expect(relativeTime(NOW - 2 * 86_400_000, NOW)).toBe("2d ago");
    expect(relativeTime(NOW + 5 * 60_000, NOW)).toBe("in 5m");
  });

  test("the Redis line: memory against maxmemory, the policy, the replicas, warnings where writes or records are at risk", () => {
    const base = { usedMemoryBytes: 512n * 1_048_576n, maxMemoryPolicy: "noeviction", replicasOnline: 1 };
    expect(renderRedisStats(create(RedisStatsSchema, { ...base, maxMemoryBytes: 700n * 1_048_576n }))).toBe(
      "512 MB of 700 MB (73 %), noeviction, 1 replica online",
    );
    expect(renderRedisStats(create(RedisStatsSchema, { ...base, maxMemoryBytes: 0n, replicasOnline: 0 }))).toBe(
      "512 MB, no maxmemory, noeviction, 0 replicas online",
    );
    expect(
      renderRedisStats(
        create(RedisStatsSchema, { ...base, maxMemoryBytes: 600n * 1_048_576n, maxMemoryPolicy: "allkeys-lru" }),
      ),
    ).toBe(
      "512 MB of 600 MB (85 %), allkeys-lru, 1 replica online, WARNING near maxmemory: writes are refused at it, " +
        "WARNING allkeys-lru may delete task records: use noeviction",
    );
  });

  test("tasks", () => {
    const task = create(TaskSchema, {
      taskId: "0b6f2c1e-8a51-4d7e-9a39-0a8f6c7d1e2f",
      type: "fail",
      priority: Priority.HIGH,
      status: { state: TaskState.FAILED, attempt: 5, error: "always fails" },
      createdAt: timestampFromMs(NOW - 90_000),
    });
    expect(renderTasks([task], NOW).split("\n")).toEqual([
      "ID                                    TYPE  PRIORITY  STATE   ATTEMPT  PROGRESS  CREATED  ERROR",
      "0b6f2c1e-8a51-4d7e-9a39-0a8f6c7d1e2f  fail  high      FAILED        5            1m ago   always fails",
    ]);
    // How far a task got, with its handler's last message; a SUCCEEDED one is done.
    const base = { taskId: task.taskId, priority: Priority.HIGH, createdAt: timestampFromMs(NOW - 90_000) };
    const running = create(TaskSchema, {
      ...base,
      type: "import",
      status: { state: TaskState.RUNNING, attempt: 1, progress: 40, progressReport: 2, progressMessage: "part 7" },
    });
    const done = create(TaskSchema, { ...base, type: "echo", status: { state: TaskState.SUCCEEDED, attempt: 1 } });
    const cells = renderTasks([running, done], NOW)
      .split("\n")
      .slice(1)
      .map((line) => line.split(/\s{2,}/)[5]);
    expect(cells).toEqual(["40% part 7", "100%"]);
    expect(renderTasks([], NOW)).toBe("no tasks match");
  });

  test("stats", () => {
    const stats = create(GetQueueStatsResponseSchema, {
      consumers: [
        {
          name: "worker-tasks-worker-high",
          subject: "tasks.worker.high",
          pending: 12n,
          ackPending: 2n,
          redelivered: 1n,
          waiting: 0n,
          oldestUnackedAgeMs: 95_000n,
          backlogLimitRatio: 0.126,
          processedPerSecond: 3.25,
        },
      ],
      deadLetters: 4n,
      tasksByState: [{ state: TaskState.SUCCEEDED, count: 10n }],
      tasksCounted: 10n,
    });
    expect(renderStats(stats).split("\n")).toEqual([
      "CONSUMER                  SUBJECT            PENDING  IN FLIGHT  REDELIVERED  WAITING  OLDEST  LIMIT  RATE/S",
      "worker-tasks-worker-high  tasks.worker.high       12          2            1        0      1m    13%     3.3",
      "",
      "dead letters  4",
      "unqueued submissions  0",
      "delayed tasks  0",
      "stalled tasks  0",
      "tasks  succeeded 10",
    ]);
    const lost = create(GetQueueStatsResponseSchema, { ...stats, stalledTasks: 3n, stalledAfterSeconds: 600 });
    expect(renderStats(lost).split("\n")).toContain(
      "stalled tasks  3+ (unchanged for 10m with nothing older in their queues: their messages are lost; " +
        "taskctl ls --stalled lists them, taskctl requeue --all-stalled sends them through)",
    );
    // Load shedding: a warning right under the consumers, whose LIMIT column says which is near its stream's limits.
    const shedding = create(GetQueueStatsResponseSchema, { ...stats, shedding: "the pipeline is shedding load: …" });
    expect(renderStats(shedding).split("\n").slice(3, 5)).toEqual([
      "WARNING: submissions refused: the pipeline is shedding load: …",
      "",
    ]);
    const counted = create(GetQueueStatsResponseSchema, { ...lost, stalledTasksExaminedAll: true });
    expect(renderStats(counted)).toContain("stalled tasks  3 (unchanged for 10m");
    const late = create(GetQueueStatsResponseSchema, { ...stats, delayedTasks: 7n, delayedOverdue: 3n });
    expect(renderStats(late).split("\n")).toContain(
      "delayed tasks  7 (3 overdue by over a minute: is any gateway running?)",
    );
    // A queue no consumer reads (a pool none of whose workers started) gets a line after the stalled tasks.
    const unread = create(GetQueueStatsResponseSchema, {
      ...stats,
      unconsumedQueues: [
        create(UnconsumedQueueSchema, {
          stream: "TASKS",
          subject: "tasks.worker.medium.gpu",
          messages: 12n,
          oldestAgeMs: 420_000n,
        }),
      ],
    });
    const unreadLines = renderStats(unread).split("\n");
    expect(unreadLines[unreadLines.indexOf("stalled tasks  0") + 1]).toBe(
      "unconsumed queue  tasks.worker.medium.gpu: 12 messages, oldest 7m, no consumer reads it " +
        "(no worker of its pool or no stage for it has started; they wait for the first)",
    );
    // Tasks waiting for dependencies: a line only when there are some.
    expect(renderStats(stats)).not.toContain("waiting tasks");
    expect(renderStats(create(GetQueueStatsResponseSchema, { ...stats, waitingTasks: 4n })).split("\n")).toContain(
      "waiting tasks  4 (for their dependencies)",
    );
    // Tasks waiting for their fairness key's turn: a line only when there are some, after those waiting for a place
    // under their concurrency key (a task waits for that first).
    const keyed = create(GetQueueStatsResponseSchema, {
      ...stats,
      concurrencyWaitingTasks: 2n,
      fairnessWaitingTasks: 7n,
    });
    expect(
      renderStats(keyed)
        .split("\n")
        .filter((line) => line.startsWith("waiting tasks")),
    ).toEqual([
      "waiting tasks  2 (for a place under their concurrency key)",
      "waiting tasks  7 (for their fairness key's turn in their type's window)",
    ]);
    expect(renderStats(stats)).not.toContain("fairness");
    // Each type's window after them: where to look (taskctl fairness <type>).
    const windows = create(GetQueueStatsResponseSchema, {
      ...keyed,
      fairnessQueues: [
        { taskType: "render", window: 4, runningTotal: 4, keysTotal: 3 },
        { taskType: "sleep", window: 32, runningTotal: 1, keysTotal: 0 },
      ].map((queue) => create(FairnessQueueSummarySchema, queue)),
    });
    const lines = renderStats(windows).split("\n");
    expect(lines.filter((line) => line.startsWith("fairness"))).toEqual([
      "fairness       render: 4 of 4 places taken, 3 keys waiting",
      "fairness       sleep: 1 of 32 places taken, no key waiting",
    ]);
    expect(lines.indexOf("fairness       render: 4 of 4 places taken, 3 keys waiting")).toBe(
      lines.indexOf("waiting tasks  7 (for their fairness key's turn in their type's window)") + 1,
    );
    const stuck = create(GetQueueStatsResponseSchema, { ...stats, unqueuedSubmissions: 5n, unqueuedOverdue: 2n });
    expect(renderStats(stuck).split("\n")).toContain("unqueued submissions  5 (2 overdue: the requeue sweeper's)");
    // A paused queue gets its line; none, no line.
    expect(
      renderStats(stats)
        .split("\n")
        .some((line) => line.startsWith("paused queues")),
    ).toBe(false);
    const paused = create(GetQueueStatsResponseSchema, {
      ...stats,
      pausedQueues: [create(PausedQueueSchema, { priority: Priority.MEDIUM })],
    });
    expect(renderStats(paused).split("\n")).toContain("paused queues  medium");
  });

  test("schedules", () => {
    const schedule = create(ScheduleSchema, {
      id: "nightly",
      cron: "0 2 * * *",
      timezone: "Europe/Berlin",
      task: { type: "checksum", priority: Priority.LOW },
      nextRunAt: timestampFromMs(NOW + 3_600_000),
      lastRunAt: timestampFromMs(NOW - 82_800_000),
      lastTaskId: "0b6f2c1e-8a51-4d7e-9a39-0a8f6c7d1e2f",
      createdBy: "ops",
    });
    expect(renderSchedules([schedule], NOW).split("\n")).toEqual([
      "ID       CRON       TZ             TASK          NEXT   LAST     LAST TASK                             BY",
      "nightly  0 2 * * *  Europe/Berlin  checksum low  in 1h  23h ago  0b6f2c1e-8a51-4d7e-9a39-0a8f6c7d1e2f  ops",
    ]);
    const fresh = create(ScheduleSchema, { id: "tick", cron: "* * * * *", task: { type: "echo" } });
    expect(renderSchedules([fresh], NOW).split("\n")[1]).toBe(
      "tick  * * * * *  UTC  echo unspecified  never  -     -          -",
    );
    expect(renderSchedules([], NOW)).toBe("no schedules");
    const paused = create(ScheduleSchema, { ...fresh, paused: true });
    expect(renderSchedules([paused], NOW).split("\n")[1]).toBe(
      "tick  * * * * *  UTC  echo unspecified  paused  -     -          -",
    );
    // What it skips, next to its task.
    const strict = create(ScheduleSchema, {
      ...fresh,
      overlap: ScheduleOverlap.SKIP,
      startingDeadline: durationFromMs(600_000),
    });
    expect(renderSchedules([strict], NOW).split("\n")[1]).toMatch(
      /^tick {2}\* \* \* \* \* {2}UTC {2}echo unspecified \(skips overlaps, deadline 10m\) {2}never/,
    );
    // Limited: its runs so far of its most, its window; one that has ended says so.
    const limited = create(ScheduleSchema, {
      ...fresh,
      maxRuns: 5,
      runs: 2,
      startAt: timestampFromMs(NOW + 60_000),
      endAt: timestampFromMs(Date.parse("2030-01-01T00:00:00Z")),
      nextRunAt: timestampFromMs(NOW + 60_000),
    });
    expect(renderSchedules([limited], NOW).split("\n")[1]).toContain(
      `echo unspecified (2 of 5 runs, from ${new Date(NOW + 60_000).toISOString().slice(0, 16)}Z, until 2030-01-01T00:00Z)  in 1m`,
    );
    const ended = create(ScheduleSchema, { ...fresh, maxRuns: 5, runs: 5, ended: true });
    expect(renderSchedules([ended], NOW).split("\n")[1]).toMatch(/\(5 of 5 runs\) {2}ended/);
  });

  test("dead letters and replay outcomes", () => {
    const letter = create(DeadLetterEntrySchema, {
      id: "TASKS:7",
      subject: "tasks.ingest",
      reason: "invalid",
      attempts: 1,
      error: "body is not JSON",
      at: timestampFromMs(NOW - 10_000),
    });
    expect(renderDeadLetters([letter], NOW).split("\n")[1]).toBe(
      "TASKS:7  -     tasks.ingest  invalid         1  10s ago  body is not JSON",
    );
    const outcomes = [
      create(ReplayOutcomeSchema, { id: "TASKS:7", result: ReplayResult.FAILED_PRECONDITION, reason: "not a task" }),
      create(ReplayOutcomeSchema, { id: "TASKS:9", taskId: "t", result: ReplayResult.REPLAYED, generation: 2 }),
    ];
    expect(renderReplay(outcomes, true).split("\n")).toEqual([
      "ID       TASK  RESULT               DETAIL",
      "TASKS:7  -     failed_precondition  not a task",
      "TASKS:9  t     replayed             generation 2",
      "more dead letters match: run the command again",
    ]);
    // A replay that revived the tasks its failure had cancelled names them.
    const revived = create(ReplayOutcomeSchema, {
      id: "TASKS:9",
      taskId: "t",
      result: ReplayResult.REPLAYED,
      generation: 1,
      revivedDependents: ["c1", "c2"],
    });
    expect(renderReplay([revived], false).split("\n")[1]).toBe(
      "TASKS:9  t     replayed  generation 1; revived 2 tasks it had cancelled: c1, c2",
    );
  });

  test("requeue outcomes: the state each task was stalled in, and the new generation or the reason", () => {
    const outcomes = [
      create(RequeueOutcomeSchema, {
        taskId: "t1",
        result: RequeueResult.REQUEUED,
        generation: 1,
        previousState: TaskState.SCHEDULED,
      }),
      create(RequeueOutcomeSchema, {
        taskId: "t2",
        result: RequeueResult.FAILED_PRECONDITION,
        previousState: TaskState.SUCCEEDED,
        reason: "it is SUCCEEDED",
      }),
      create(RequeueOutcomeSchema, { taskId: "t3", result: RequeueResult.NOT_FOUND, reason: "no task with this id" }),
    ];
    expect(renderRequeue(outcomes).split("\n")).toEqual([
      "TASK  WAS        RESULT               DETAIL",
      "t1    scheduled  requeued             generation 1",
      "t2    succeeded  failed_precondition  it is SUCCEEDED",
      "t3    -          not_found            no task with this id",
    ]);
    expect(renderRequeuedStalled(outcomes, false).split("\n").slice(-1)).toEqual(["1 requeued"]);
    expect(renderRequeuedStalled(outcomes.slice(0, 1), true).split("\n").slice(-1)).toEqual([
      "1 requeued; stopped by an outage: run the command again for the rest",
    ]);
    expect(renderRequeuedStalled([], false)).toBe(
      "no stalled task (none whose message is lost: taskctl stats counts them)",
    );
  });

  test("an outage mid-call: the task left to the sweeper says so, the tasks not attempted say why", () => {
    const outcomes = [
      create(RequeueOutcomeSchema, {
        taskId: "t1",
        result: RequeueResult.REQUEUED,
        generation: 2,
        previousState: TaskState.RUNNING,
        queuePending: true,
        reason: "NATS down",
      }),
      create(RequeueOutcomeSchema, {
        taskId: "t2",
        result: RequeueResult.UNAVAILABLE,
        reason: "not attempted: NATS down (at task t1); call again",
      }),
    ];
    expect(renderRequeue(outcomes).split("\n")).toEqual([
      "TASK  WAS      RESULT       DETAIL",
      "t1    running  requeued     generation 2, queued by the requeue sweeper once NATS answers (NATS down)",
      "t2    -        unavailable  not attempted: NATS down (at task t1); call again",
    ]);
    const letters = [
      create(ReplayOutcomeSchema, {
        id: "TASKS:9",
        taskId: "t",
        result: ReplayResult.REPLAYED,
        generation: 1,
        queuePending: true,
        reason: "x",
      }),
    ];
    expect(renderReplay(letters, false).split("\n")[1]).toBe(
      "TASKS:9  t     replayed  generation 1, queued by the requeue sweeper once NATS answers (x)",
    );
  });

  test("a concurrency key: its counts, then the ids in the pipeline and waiting, with how many more were not listed", () => {
    const view = (init: MessageInitShape<typeof GetConcurrencyKeyResponseSchema>) =>
      create(GetConcurrencyKeyResponseSchema, init);
    expect(
      renderConcurrencyKey(
        "tenant-7",
        view({
          running: ["r-1", "r-2"],
          runningTotal: 2,
          waiting: ["w-1", "w-2"],
          waitingTotal: 13,
          nextLimit: 2,
        }),
      ).split("\n"),
    ).toEqual([
      "concurrency key tenant-7: 2 in the pipeline, 13 waiting (the next is admitted under a limit of 2)",
      "running  r-1 r-2",
      "waiting  w-1 w-2 … and 11 more",
    ]);
    // More in the pipeline than listed; none waiting: no limit to name, no waiting line.
    expect(renderConcurrencyKey("k", view({ running: ["r-1"], runningTotal: 150 }), "shop").split("\n")).toEqual([
      "concurrency key k (owner shop): 150 in the pipeline, none waiting",
      "running  r-1 … and 149 more",
    ]);
    // Waiting with none in the pipeline (a place about to be given): no running line.
    expect(renderConcurrencyKey("k", view({ waiting: ["w-1"], waitingTotal: 1, nextLimit: 1 })).split("\n")).toEqual([
      "concurrency key k: 0 in the pipeline, 1 waiting (the next is admitted under a limit of 1)",
      "waiting  w-1",
    ]);
    expect(renderConcurrencyKey("idle", view({}))).toBe("concurrency key idle: no task in the pipeline, none waiting");
  });

  test("a fairness queue: the window's places taken and keys waiting, its task ids, then the keys in turn order", () => {
    const view = (init: MessageInitShape<typeof GetFairnessQueueResponseSchema>) =>
      create(GetFairnessQueueResponseSchema, { window: 32, ...init });
    expect(
      renderFairnessQueue(
        "sleep",
        view({
          running: ["r-1", "r-2"],
          runningTotal: 2,
          keys: [
            { key: "tenant-b", waitingTotal: 1, nextStart: 4, nextWeight: 1 },
            { key: "tenant-a", waitingTotal: 120, nextStart: 4.5, nextWeight: 2 },
            { key: "caller:shop:vip", waitingTotal: 3, nextStart: 13 / 3 + 1, nextWeight: 0 },
          ],
          keysTotal: 3,
          clock: 4,
        }),
      ).split("\n"),
    ).toEqual([
      "fairness window of sleep: 2 of 32 places taken, 3 keys waiting",
      "running  r-1 r-2",
      "",
      "KEY              WAITING  NEXT START  WEIGHT",
      "tenant-b               1           4       1",
      "tenant-a             120         4.5       2",
      // 0: its next task's record is gone (dropped at its turn).
      "caller:shop:vip        3       5.333       —",
      "the first key is served next; each task let in moves its key's next start on by 1 / its weight (clock 4)",
    ]);
    // More tasks and keys than the gateway listed: how many more of each.
    expect(
      renderFairnessQueue(
        "echo",
        view({
          window: 2,
          running: ["r-1"],
          runningTotal: 150,
          keys: [{ key: "k", waitingTotal: 1, nextStart: 0.25, nextWeight: 4 }],
          keysTotal: 101,
          clock: 0.125,
        }),
      ).split("\n"),
    ).toEqual([
      "fairness window of echo: 150 of 2 places taken, 101 keys waiting",
      "running  r-1 … and 149 more",
      "",
      "KEY  WAITING  NEXT START  WEIGHT",
      "k          1        0.25       4",
      "… and 100 more keys",
      "the first key is served next; each task let in moves its key's next start on by 1 / its weight (clock 0.125)",
    ]);
    // Nobody waits: no table; an idle type: the summary alone.
    expect(renderFairnessQueue("sleep", view({ running: ["r-1"], runningTotal: 1 })).split("\n")).toEqual([
      "fairness window of sleep: 1 of 32 places taken, no key waiting",
      "running  r-1",
    ]);
    expect(renderFairnessQueue("sleep", view({}))).toBe(
      "fairness window of sleep: 0 of 32 places taken, no key waiting",
    );
    // One key waiting with the window empty (a place about to be given): no running line, "key" singular.
    expect(
      renderFairnessQueue("sleep", view({ keys: [{ key: "k", waitingTotal: 1, nextStart: 0 }], keysTotal: 1 })).split(
        "\n",
      )[0],
    ).toBe("fairness window of sleep: 0 of 32 places taken, 1 key waiting");
  });

  test("paused queues: name, since when and by whom; none", () => {
    const queues = [
      create(PausedQueueSchema, { priority: Priority.HIGH, pausedAt: timestampFromMs(NOW - 120_000), pausedBy: "ops" }),
      create(PausedQueueSchema, { priority: Priority.LOW }),
    ];
    expect(renderPausedQueues(queues, NOW)).toBe("high (since 2m ago, by ops), low");
    expect(renderPausedQueues([], NOW)).toBe("none");
  });

  test("exit codes: 0 all done, 1 any refused, 4 when an outage stopped the call (whatever else happened)", () => {
    const { REQUEUED, FAILED_PRECONDITION, UNAVAILABLE } = RequeueResult;
    const exit = (...results: RequeueResult[]) =>
      exitFor(
        results.map((result) => ({ result })),
        REQUEUED,
        UNAVAILABLE,
      );
    expect(exit(REQUEUED, REQUEUED)).toBe(ExitCode.Ok);
    expect(exit(REQUEUED, FAILED_PRECONDITION)).toBe(ExitCode.TaskFailed);
    expect(exit(FAILED_PRECONDITION, UNAVAILABLE)).toBe(ExitCode.Unavailable);
    expect(exit(REQUEUED, UNAVAILABLE)).toBe(ExitCode.Unavailable);
  });
});

describe("limits ls", () => {
  test("lists the types backing off below the table, with what is left and who was told", () => {
    const limit = create(TypeLimitSchema, { type: "checksum", globalConcurrency: 2, running: 1 });
    const backoffs = [
      create(TypeBackoffSchema, { type: "flaky", remaining: durationFromMs(12_340), setBy: "worker-1:7" }),
      create(TypeBackoffSchema, { type: "sleep", remaining: durationFromMs(500) }),
    ];
    expect(renderTypeLimits([limit], backoffs)).toBe(
      [
        "TYPE      RUNNING/GLOBAL  RATE  PAUSED  SET BY  SET AT",
        "checksum  1/2             -     -       -       -",
        "",
        "flaky: rate limited by its downstream, no worker starts one for 12.3 s more (told to worker-1:7)",
        "sleep: rate limited by its downstream, no worker starts one for 0.5 s more (told to a worker)",
      ].join("\n"),
    );
    expect(renderTypeLimits([], [])).toBe("no run-time limits (the workers' own WORKER_TYPE_* settings apply)");
    const paused = create(TypeLimitSchema, { type: "sleep", paused: true, setBy: "ops" });
    expect(renderTypeLimits([paused])).toBe(
      ["TYPE   RUNNING/GLOBAL  RATE  PAUSED  SET BY  SET AT", "sleep  -               -     yes     ops     -"].join(
        "\n",
      ),
    );
  });

  test("workers: one row per worker, then the running tasks longest first across workers", () => {
    const task = (taskId: string, startedMs: number, attempt = 1) => ({
      taskId,
      type: "sleep",
      priority: Priority.HIGH,
      attempt,
      startedAt: timestampFromMs(startedMs),
    });
    const workers = [
      create(WorkerInfoSchema, {
        id: "worker-a:1",
        startedAt: timestampFromMs(NOW - 3 * 3_600_000),
        seenAt: timestampFromMs(NOW - 2_000),
        concurrency: 8,
        queued: 3,
        pausedQueues: [Priority.LOW],
        runningCount: 1,
        running: [task("t-2", NOW - 5_000)],
      }),
      create(WorkerInfoSchema, {
        id: "worker-b:1",
        startedAt: timestampFromMs(NOW - 60_000),
        seenAt: timestampFromMs(NOW - 500),
        concurrency: 2,
        runningCount: 1,
        running: [task("t-1", NOW - 90_000, 3)],
        quiet: true,
        quietRequested: { by: "ops", at: timestampFromMs(NOW - 60_000) },
      }),
    ];
    expect(renderWorkers(workers, NOW).split("\n")).toEqual([
      "WORKER      STARTED  SEEN      RUNNING  QUEUED  PAUSED  STATE",
      "worker-a:1  3h ago   2s ago        1/8       3  low     taking tasks",
      "worker-b:1  1m ago   just now      1/2       0  -       quiet by ops",
      "",
      "TASK  TYPE   PRIORITY  ATTEMPT  RUNNING FOR  WORKER",
      "t-1   sleep  high            3  1m           worker-b:1",
      "t-2   sleep  high            1  5s           worker-a:1",
    ]);
    // The deployment's own types, in a column only where some worker runs any.
    const withOwn = [
      create(WorkerInfoSchema, { id: "new:1", concurrency: 2, ownTaskTypes: ["slugify", "word-count"] }),
      create(WorkerInfoSchema, { id: "old:1", concurrency: 2 }),
    ];
    expect(renderWorkers(withOwn, NOW).split("\n").slice(0, 3)).toEqual([
      "WORKER  STARTED  SEEN  RUNNING  QUEUED  PAUSED  STATE         OWN TYPES",
      "new:1   -        -         0/2       0  -       taking tasks  slugify,word-count",
      "old:1   -        -         0/2       0  -       taking tasks  -",
    ]);
    // Those whose attempts run in worker threads (isolation "thread", WORKER_TYPE_ISOLATION) are marked.
    const threaded = [
      create(WorkerInfoSchema, {
        id: "new:1",
        concurrency: 2,
        ownTaskTypes: ["slugify", "word-count"],
        threadTaskTypes: ["word-count"],
      }),
    ];
    expect(renderWorkers(threaded, NOW).split("\n")[1]).toMatch(/taking tasks {2}slugify,word-count \(thread\)$/);
    // The pool each serves (WORKER_POOL), in a column only where some worker serves one.
    const pooled = [
      create(WorkerInfoSchema, { id: "gpu:1", concurrency: 2, pool: "gpu" }),
      create(WorkerInfoSchema, { id: "cpu:1", concurrency: 2 }),
    ];
    expect(renderWorkers(pooled, NOW).split("\n").slice(0, 3)).toEqual([
      "WORKER  STARTED  SEEN  RUNNING  QUEUED  PAUSED  STATE         POOL",
      "gpu:1   -        -         0/2       0  -       taking tasks  gpu",
      "cpu:1   -        -         0/2       0  -       taking tasks  default",
    ]);
    const busy = create(WorkerInfoSchema, { id: "worker-b:1", runningCount: 150, running: [task("t-1", NOW - 1_000)] });
    expect(renderWorkers([busy], NOW).split("\n").at(-1)).toBe(
      "(149 more running: a worker lists its 100 longest running)",
    );
    expect(
      renderWorkers([create(WorkerInfoSchema, { id: "idle:1", concurrency: 4 })], NOW)
        .split("\n")
        .at(-1),
    ).toBe("no task running");
    const stuck = create(WorkerInfoSchema, {
      id: "stuck:1",
      concurrency: 4,
      runningCount: 1,
      abandoned: 3,
      abandonedHandlers: [
        { taskId: "t-9", type: "sleep", since: timestampFromMs(NOW - 30_000) },
        { taskId: "t-8", type: "echo", since: timestampFromMs(NOW - 600_000) },
      ],
    });
    const lines = renderWorkers([stuck], NOW).split("\n");
    expect(lines[1]).toMatch(/^stuck:1 +- +- +1\/4 \+3 abandoned +0 +- +taking tasks$/);
    expect(lines.slice(-5)).toEqual([
      "abandoned handlers (they ignore their abort signal; a worker restart frees them):",
      "TASK  TYPE   ABANDONED FOR  WORKER",
      "t-8   echo   10m            stuck:1",
      "t-9   sleep  30s            stuck:1",
      "(1 more: a worker lists its 20 longest abandoned)",
    ]);
    expect(renderWorkers([], NOW)).toBe("no live workers (none reported within the last three report intervals)");
    // On the way: asked but not applied yet, and the other way round.
    expect(workerState({ quiet: false, quietRequested: create(QuietRequestSchema, { by: "ops" }) })).toBe(
      "quieting by ops",
    );
    expect(workerState({ quiet: false, quietRequested: create(QuietRequestSchema, {}) })).toBe("quieting");
    expect(workerState({ quiet: true })).toBe("resuming");
  });
});

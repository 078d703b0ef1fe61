/**
 * AdminService handlers: queue stats (JetStream consumers + Redis), task listing (the task_index sorted set),
 * task history (task_history:<id>), dead letters (the dead_letter list), their replay (replay.ts) and discard
 * (discard.ts), and the requeue of stalled tasks (requeue-stalled.ts); the last three answer an outage with per-item
 * outcomes (batch-outcomes.ts).
 *
 * Dead letters are found by scanning the list (≤ 100,000 entries, newest first) in chunks; a listing call
 * examines at most SCAN_LIMIT entries. Dead-letter page tokens are list offsets: a replay or a new letter between
 * two pages shifts them, so a page may repeat or skip an entry; list again from the start after replaying.
 */
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuditEvent, TaskState as FlowTaskState } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  type AdminService,
  type AuditEntrySchema,
  type CallContext,
  CancelResult,
  type DeadLetterEntrySchema,
  type DeadLetterFilter,
  DiscardResult,
  type PausedQueueSchema,
  ReplayResult,
  RequeueResult,
  type ServiceHandlers,
  TaskState,
  taskLimitFields,
} from "@tm/proto";
import {
  countConcurrencyWaiting,
  countDelayed,
  countFairnessWaiting,
  countTaskStates,
  countUnqueued,
  type DeadLetterLine,
  type IndexCursor,
  Keys,
  listIndexedTasks,
  pauseQueue,
  type QueuePause,
  type RedisServerInfo,
  readDeadLetterLines,
  readHistory,
  readPausedQueues,
  readRedisServerInfo,
  readTask,
  resumeQueue,
  type StoredSchedule,
  summarizeFairnessQueues,
} from "@tm/store";
import {
  checkDeadLetterFilter,
  checkDeadLetterIds,
  deadLetterPageToken,
  MAX_PAGE_SIZE,
  parseCancelRequest,
  parseDeadLetterPageToken,
  parsePageSize,
  parseQueuePriority,
  parseRequeueRequest,
  parseTaskFilter,
  parseTaskPageToken,
  taskPageToken,
} from "./admin-validation.js";
import { callerOf } from "./auth/caller.js";
import { handleUntilUnavailable } from "./batch-outcomes.js";
import { cancelTask, previewCancel } from "./cancel-task.js";
import { getConcurrencyKey } from "./concurrency-key-view.js";
import { dependency } from "./dependencies.js";
import { type DiscardOutcome, discardLetter } from "./discard.js";
import { getFairnessQueue } from "./fairness-queue-view.js";
import { dependencyPolicyToProto, priorityToProto, stateToProto, statusToProto, timestampFromIso } from "./mapping.js";
import type { QueueStats } from "./queue-stats.js";
import { redisCaller } from "./redis-call.js";
import { type ReplayOutcome, replayDeadLetter } from "./replay.js";
import { type RequeueOutcome, requeueStalledTask } from "./requeue-stalled.js";
import { scheduleHandlers } from "./schedules.js";
import { countStalledTasks, listStalledTasks, type StalledOptions } from "./stalled-tasks.js";
import type { TaskIsolation } from "./task-isolation.js";
import { typeLimitHandlers } from "./type-limits.js";
import { parseTaskId } from "./validation.js";
import { listWorkersResponse, setQuiet } from "./workers.js";

type AdminServiceMethods = typeof AdminService extends { method: infer M } ? M : never;

/** A named letter not handled: not in the list, or an outage stopped the call at or before it. */
type LetterMiss = { id: string; result: "not_found" | "unavailable"; taskId?: string; reason: string };

const CHUNK = 500;
const SCAN_LIMIT = 10_000;
const ADMIN_REDIS_TIMEOUT_MS = 30_000;
/** A delayed task still waiting this long after its time is overdue: no gateway is releasing it. */
const DELAYED_OVERDUE_MS = 60_000;

export interface AdminServiceOptions {
  /** GATEWAY_REQUEUE_AFTER_MS: an unqueued submission older than this is overdue (the sweeper's). */
  requeueAfterMs: number;
  /** GATEWAY_MAX_PAYLOAD_BYTES, for the task a schedule submits. */
  maxPayloadBytes: number;
  /** Submits a schedule's manual run (RunSchedule) in the operator's call context. */
  runScheduleNow: (schedule: StoredSchedule, ctx: CallContext) => Promise<string>;
  /** The Redis server's INFO as last sampled by the gateway's gauges (redis-gauges.ts): GetQueueStats reads INFO
   *  itself only while there is none (the console asks for stats every 2 s). */
  redisInfo?: () => RedisServerInfo | undefined;
  /** GATEWAY_STALLED_AFTER_SECONDS and the retention (ms), for GetQueueStats's stalled tasks (stalled-tasks.ts). */
  stalled: StalledOptions;
  /** Why this gateway refuses new submissions now (backlog-shedding.ts), for GetQueueStats. */
  shedding?: () => string | undefined;
  /** GATEWAY_TASK_ISOLATION: whose a concurrency key is (GetConcurrencyKey). */
  isolation: Pick<TaskIsolation, "enabled" | "concurrencyScopeOf">;
  /** GATEWAY_FAIRNESS_WINDOW(S): a type's window, for GetFairnessQueue. */
  fairnessWindowOf: (type: string) => number;
}

export function adminServiceHandlers(
  rt: Runtime,
  queueStats: QueueStats,
  options: AdminServiceOptions,
): ServiceHandlers<AdminServiceMethods> {
  // Fails fast while the connection is lost; scans of up to SCAN_LIMIT keys get a generous answer time.
  const redis = redisCaller(rt.redis, ADMIN_REDIS_TIMEOUT_MS);
  const schedules = scheduleHandlers(
    rt,
    redis,
    { maxPayloadBytes: options.maxPayloadBytes, maxDeliver: rt.settings.maxDeliver, taskTypes: rt.config.TASK_TYPES },
    options.runScheduleNow,
  );
  const typeLimits = typeLimitHandlers(rt, redis);
  // The same instrument as TaskService's CancelTask counts with (one name, one description).
  const cancelled = rt.meter.createCounter("tm_tasks_cancelled_total", { description: "Tasks cancelled" });

  /** A replay or requeue adds a message to TASKS per task, as a submission does: refused alike while the gateway
   *  sheds load (after the request's own checks, so bad input is told first). */
  function refuseWhileShedding(): void {
    const refusal = options.shedding?.();
    if (refusal) throw new ConnectError(refusal, Code.Unavailable);
  }

  /** Walks dead_letter from `offset`, yielding entries that match, until `limit` entries were examined. */
  async function* scanDeadLetters(filter: DeadLetterFilter | undefined, offset: number, limit: number) {
    for (let position = offset; position < offset + limit; position += CHUNK) {
      const lines = await redis("reading dead letters", () => readDeadLetterLines(rt.redis, position, CHUNK));
      const parent = filter?.parentTaskId;
      // With a parent, a letter must name a task (the one its parent lists).
      const matching = lines.map((line) => matchesDeadLetter(line, filter) && (!parent || !!line.letter?.taskId));
      if (parent) {
        // A child is one its parent lists (task_children): one ZSCORE each, for the letters the rest lets through.
        const asked = lines.flatMap((_line, index) => (matching[index] ? [index] : []));
        const listed = await redis("reading the parent's children", async () => {
          const scores = rt.redis.pipeline();
          for (const index of asked) scores.zscore(Keys.children(parent), lines[index]?.letter?.taskId ?? "");
          return (await scores.exec()) ?? [];
        });
        for (const [i, index] of asked.entries()) {
          const [error, score] = listed[i] ?? [null, null];
          if (error) throw error;
          if (score === null) matching[index] = false;
        }
      }
      for (const [index, line] of lines.entries()) {
        yield { line, position: position + index, matches: matching[index] ?? false };
      }
      if (lines.length < CHUNK) return;
    }
  }

  /** The letters a replay or discard names: by id (each looked up in the whole list), or all matching the filter. */
  async function findDeadLetters(
    request: { ids: string[]; all: boolean; filter?: DeadLetterFilter | undefined },
    action: "replay" | "discard",
  ) {
    checkDeadLetterIds(request.ids, request.all, action);
    checkDeadLetterFilter(request.filter, rt.config.TASK_TYPES);
    const wanted = new Set(request.ids);
    const found = new Map<string, DeadLetterLine>();
    let more = false;
    // The whole list is scanned for ids (they may be anywhere); with `all`, up to MAX_PAGE_SIZE matches.
    for await (const { line, matches } of scanDeadLetters(request.filter, 0, Number.MAX_SAFE_INTEGER)) {
      const id = line.letter?.id;
      if (id === undefined || found.has(id)) continue;
      if (request.all ? matches : wanted.has(id)) {
        if (request.all && found.size === MAX_PAGE_SIZE) {
          more = true;
          break;
        }
        found.set(id, line);
      }
      if (!request.all && found.size === wanted.size) break;
    }
    return { ids: request.all ? [...found.keys()] : [...wanted], found, more };
  }

  /** `handle` on each named letter in order (not_found for an id the list does not hold), stopping at an outage. */
  function eachLetter<O extends { id: string }>(
    { ids, found }: { ids: string[]; found: Map<string, DeadLetterLine> },
    handle: (id: string, line: DeadLetterLine) => Promise<O>,
    outageIn?: (outcome: O | LetterMiss) => string | undefined,
  ): Promise<(O | LetterMiss)[]> {
    return handleUntilUnavailable<string, O | LetterMiss>(
      ids,
      (id) => {
        const line = found.get(id);
        return line
          ? handle(id, line)
          : Promise.resolve({ id, result: "not_found", reason: "no dead letter with this id" });
      },
      {
        unavailable: (id, reason) => {
          const taskId = found.get(id)?.letter?.taskId;
          return { id, result: "unavailable", reason, ...(taskId ? { taskId } : {}) };
        },
        nameOf: (id) => `dead letter ${id}`,
        ...(outageIn ? { outageIn } : {}),
      },
    );
  }

  return {
    async getQueueStats() {
      const [
        queues,
        deadLetters,
        states,
        unqueued,
        paused,
        delayed,
        server,
        waiting,
        concurrencyWaiting,
        fairness,
        fairnessQueues,
      ] = await Promise.all([
        dependency("NATS", "reading consumer info", () => queueStats.read()),
        redis("counting dead letters", () => rt.redis.llen(Keys.deadLetter)),
        redis("counting tasks by state", () => countTaskStates(rt.redis, SCAN_LIMIT)),
        redis("counting unqueued submissions", () => countUnqueued(rt.redis, Date.now() - options.requeueAfterMs)),
        redis("reading the paused queues", () => readPausedQueues(rt.redis)),
        redis("counting delayed tasks", () => countDelayed(rt.redis, Date.now() - DELAYED_OVERDUE_MS)),
        // Left out, not failed, where INFO is refused (some managed Redis services restrict it).
        options.redisInfo?.() ?? readRedisServerInfo(rt.redis).catch(() => undefined),
        redis("counting the tasks waiting for dependencies", () => rt.redis.hlen(Keys.waiting)),
        redis("counting the tasks waiting for their concurrency keys", () => countConcurrencyWaiting(rt.redis)),
        redis("counting the tasks waiting for their fairness keys", () => countFairnessWaiting(rt.redis)),
        redis("summing up the fairness windows", () => summarizeFairnessQueues(rt.redis)),
      ]);
      // Against the consumers just read: a task is stalled only if its stage's queue holds nothing older.
      const stalled = await redis("counting stalled tasks", () =>
        countStalledTasks(rt, () => Promise.resolve(queues), options.stalled),
      );
      return {
        consumers: queues.consumers.map((c) => ({
          stream: c.stream,
          subject: c.subject,
          name: c.name,
          pending: BigInt(c.pending),
          ackPending: BigInt(c.ackPending),
          redelivered: BigInt(c.redelivered),
          waiting: BigInt(c.waiting),
          oldestUnackedAgeMs: BigInt(Math.round(c.oldestUnackedAgeMs)),
          processedPerSecond: c.processedPerSecond,
          backlogLimitRatio: c.backlogLimitRatio,
        })),
        deadLetters: BigInt(deadLetters),
        tasksByState: [...states.counts].map(([state, count]) => ({
          state: stateToProto(state),
          count: BigInt(count),
        })),
        tasksCounted: BigInt(states.counted),
        tasksByStateTruncated: states.indexed > states.counted,
        sampledAt: timestampFromDate(new Date()),
        unqueuedSubmissions: BigInt(unqueued.total),
        unqueuedOverdue: BigInt(unqueued.overdue),
        pausedQueues: paused.map(pausedQueueToProto),
        delayedTasks: BigInt(delayed.total),
        delayedOverdue: BigInt(delayed.overdue),
        waitingTasks: BigInt(waiting),
        concurrencyWaitingTasks: BigInt(concurrencyWaiting),
        fairnessWaitingTasks: BigInt(fairness),
        fairnessQueues: fairnessQueues.map((queue) => ({
          taskType: queue.type,
          window: options.fairnessWindowOf(queue.type),
          runningTotal: queue.running,
          keysTotal: queue.keysWaiting,
        })),
        shedding: options.shedding?.() ?? "",
        stalledTasks: BigInt(stalled.stalled),
        stalledTasksExaminedAll: stalled.examinedAll,
        stalledAfterSeconds: Math.round(options.stalled.afterMs / 1000),
        unconsumedQueues: queues.unconsumed.map((q) => ({
          stream: q.stream,
          subject: q.subject,
          messages: BigInt(q.messages),
          oldestAgeMs: BigInt(Math.round(q.oldestAgeMs)),
        })),
        ...(server && {
          redis: {
            usedMemoryBytes: BigInt(server.usedMemoryBytes),
            maxMemoryBytes: BigInt(server.maxMemoryBytes),
            maxMemoryPolicy: server.maxMemoryPolicy,
            replicasOnline: server.replicasOnline,
          },
        }),
      };
    },

    async listTasks(request) {
      const filter = parseTaskFilter(request, rt.config.TASK_TYPES);
      const pageSize = parsePageSize(request.pageSize);
      const cursor = parseTaskPageToken(request.pageToken);
      const page = request.stalled
        ? // The consumers are read only if some task is a candidate (their state decides which are stalled).
          await redis("listing stalled tasks", () =>
            listStalledTasks(
              rt,
              () => dependency("NATS", "reading consumer info", () => queueStats.read()),
              options.stalled,
              { filter, pageSize, cursor },
            ),
          )
        : await redis("listing tasks", () => listIndexedTasks(rt.redis, filter, pageSize, cursor, SCAN_LIMIT));
      return {
        tasks: page.tasks.map(({ task, status }) => ({
          taskId: task.taskId,
          type: task.type,
          priority: priorityToProto(task.priority),
          status: status ? statusToProto(status) : undefined,
          createdAt: timestampFromIso(task.createdAt),
          metadata: task.metadata,
          runAt: timestampFromIso(task.runAt),
          ...taskLimitFields(task),
          dependsOn: task.dependsOn ?? [],
          dependencyPolicy: dependencyPolicyToProto(task),
          parentTaskId: task.parentTaskId ?? "",
        })),
        nextPageToken: page.next ? taskPageToken(page.next) : "",
      };
    },

    async getTaskHistory(request) {
      const taskId = parseTaskId(request.taskId);
      const [task, events] = await redis("reading the history", () =>
        Promise.all([readTask(rt.redis, taskId), readHistory(rt.redis, taskId)]),
      );
      if (!task && events.length === 0) throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
      return { events: events.map(auditEntry) };
    },

    async listDeadLetters(request) {
      checkDeadLetterFilter(request.filter, rt.config.TASK_TYPES);
      const pageSize = parsePageSize(request.pageSize);
      const offset = parseDeadLetterPageToken(request.pageToken);
      const letters: MessageInitShape<typeof DeadLetterEntrySchema>[] = [];
      let next = -1;
      for await (const { line, position, matches } of scanDeadLetters(request.filter, offset, SCAN_LIMIT)) {
        if (letters.length === pageSize) {
          next = position;
          break;
        }
        if (matches) letters.push(deadLetterEntry(line));
        next = position + 1;
      }
      const more = next >= 0 && (letters.length === pageSize || next - offset >= SCAN_LIMIT);
      return { deadLetters: letters, nextPageToken: more ? deadLetterPageToken(next) : "" };
    },

    async replayDeadLetters(request, ctx) {
      const letters = await findDeadLetters(request, "replay");
      refuseWhileShedding();
      const outcomes: ReplayOutcome[] = await eachLetter(
        letters,
        (id, line) => replayDeadLetter(rt, id, line, callerOf(ctx)),
        (outcome) => (outcome.result === "replayed" ? outcome.queuePending : undefined),
      );
      return {
        outcomes: outcomes.map((outcome) => ({
          id: outcome.id,
          result: RESULTS[outcome.result],
          taskId: outcome.taskId ?? "",
          generation: outcome.result === "replayed" ? outcome.generation : 0,
          reason: outcome.result === "replayed" ? (outcome.queuePending ?? "") : outcome.reason,
          queuePending: outcome.result === "replayed" && outcome.queuePending !== undefined,
          revivedDependents: outcome.result === "replayed" ? outcome.revivedDependents : [],
        })),
        more: letters.more,
      };
    },

    async discardDeadLetters(request, ctx) {
      const letters = await findDeadLetters(request, "discard");
      const outcomes: DiscardOutcome[] = await eachLetter(letters, (id, line) =>
        discardLetter(rt, redis, id, line, callerOf(ctx)),
      );
      return {
        outcomes: outcomes.map((outcome) => ({
          id: outcome.id,
          result: DISCARD_RESULTS[outcome.result],
          taskId: outcome.taskId ?? "",
          reason: outcome.result === "discarded" ? "" : outcome.reason,
        })),
        more: letters.more,
      };
    },

    async pauseQueue(request, ctx) {
      const priority = parseQueuePriority(request.priority);
      const caller = callerOf(ctx);
      const paused = await redis("pausing the queue", () => pauseQueue(rt.redis, priority, caller));
      rt.log.info({ priority, by: caller }, "queue paused: workers start no new tasks of this priority");
      return { pausedQueues: paused.map(pausedQueueToProto) };
    },

    async resumeQueue(request, ctx) {
      const priority = parseQueuePriority(request.priority);
      const { wasPaused, paused } = await redis("resuming the queue", () => resumeQueue(rt.redis, priority));
      if (wasPaused) rt.log.info({ priority, by: callerOf(ctx) }, "queue resumed");
      return { wasPaused, pausedQueues: paused.map(pausedQueueToProto) };
    },

    createSchedule: (request, ctx) => schedules.createSchedule(request, callerOf(ctx)),
    listSchedules: () => schedules.listSchedules(),
    deleteSchedule: (request, ctx) => schedules.deleteSchedule(request.id, callerOf(ctx)),
    pauseSchedule: (request, ctx) => schedules.pauseSchedule(request.id, callerOf(ctx)),
    resumeSchedule: (request, ctx) => schedules.resumeSchedule(request.id, callerOf(ctx)),
    runSchedule: (request, ctx) => schedules.runSchedule(request.id, ctx),

    async cancelTasks(request, ctx) {
      const target = parseCancelRequest(request, rt.config.TASK_TYPES);
      const caller = callerOf(ctx);
      let taskIds: string[];
      let next: IndexCursor | undefined;
      if ("filter" in target) {
        // From the caller's cursor: the tasks before it were examined (and those matching, cancelled) already. A
        // call stops at 500 tasks or at the scan limit; the token tells where the next one goes on.
        const page = await redis("listing the tasks to cancel", () =>
          listIndexedTasks(rt.redis, target.filter, MAX_PAGE_SIZE, target.cursor, SCAN_LIMIT),
        );
        taskIds = page.tasks.map(({ task }) => task.taskId);
        next = page.next;
      } else {
        taskIds = target.taskIds;
      }
      type Outcome = {
        taskId: string;
        result: keyof typeof CANCEL_RESULTS;
        reason: string;
        previousState?: FlowTaskState | undefined;
      };
      const outcomes = await handleUntilUnavailable(
        taskIds,
        async (taskId): Promise<Outcome> => {
          const exists = await redis("reading the task", () => rt.redis.exists(Keys.task(taskId)));
          if (exists === 0) return { taskId, result: "not_found", reason: `task ${taskId} not found (or expired)` };
          const outcome = request.dryRun
            ? await previewCancel(rt, redis, taskId)
            : await cancelTask(rt, redis, taskId, request.reason, (from) => cancelled.add(1, { from }), caller);
          switch (outcome.result) {
            case "cancelled":
              return { taskId, result: "cancelled", reason: "", previousState: outcome.previousState };
            case "would_cancel":
              return { taskId, result: "would_cancel", reason: "", previousState: outcome.state };
            case "already_finished":
              return {
                taskId,
                result: "already_finished",
                reason: `it is already ${outcome.state ?? "finished"}`,
                previousState: outcome.state,
              };
          }
        },
        {
          unavailable: (taskId, reason): Outcome => ({ taskId, result: "unavailable", reason }),
          nameOf: (taskId) => `task ${taskId}`,
        },
      );
      const done = outcomes.filter((outcome) => outcome.result === "cancelled").length;
      if (done > 0)
        rt.log.info({ cancelled: done, of: outcomes.length, by: caller ?? "" }, "tasks cancelled (CancelTasks)");
      return {
        outcomes: outcomes.map((outcome) => ({
          taskId: outcome.taskId,
          result: CANCEL_RESULTS[outcome.result],
          reason: outcome.reason,
          previousState: outcome.previousState ? stateToProto(outcome.previousState) : TaskState.UNSPECIFIED,
        })),
        more: next !== undefined,
        nextPageToken: next ? taskPageToken(next) : "",
      };
    },

    setTypeLimit: (request, ctx) => typeLimits.setTypeLimit(request.limit, callerOf(ctx), request.keepPause),
    clearTypeLimit: (request, ctx) => typeLimits.clearTypeLimit(request.type, callerOf(ctx)),
    listTypeLimits: () => typeLimits.listTypeLimits(),
    pauseType: (request, ctx) => typeLimits.setTypePaused(request.type, true, callerOf(ctx)),
    resumeType: (request, ctx) => typeLimits.setTypePaused(request.type, false, callerOf(ctx)),
    listWorkers: () => redis("reading the workers' reports", () => listWorkersResponse(rt.redis)),
    getConcurrencyKey: (request) => getConcurrencyKey(rt.redis, redis, options.isolation, request),
    getFairnessQueue: (request) =>
      getFairnessQueue(
        rt.redis,
        redis,
        { windowOf: options.fairnessWindowOf, taskTypes: rt.config.TASK_TYPES },
        request,
      ),
    quietWorker: (request, ctx) => setQuiet(rt, redis, request.workerId, true, callerOf(ctx)),
    resumeWorker: (request, ctx) => setQuiet(rt, redis, request.workerId, false, callerOf(ctx)),

    async requeueTasks(request, ctx) {
      const { taskIds, stalledForMs } = parseRequeueRequest(request.taskIds, request.stalledForSeconds);
      refuseWhileShedding();
      const outcomes = await handleUntilUnavailable(
        taskIds,
        (taskId) => requeueStalledTask(rt, taskId, stalledForMs, { caller: callerOf(ctx) }),
        {
          unavailable: (taskId, reason): RequeueOutcome => ({ taskId, result: "unavailable", reason }),
          nameOf: (taskId) => `task ${taskId}`,
          outageIn: (outcome) => (outcome.result === "requeued" ? outcome.queuePending : undefined),
        },
      );
      return {
        outcomes: outcomes.map((outcome) => ({
          taskId: outcome.taskId,
          result: REQUEUE_RESULTS[outcome.result],
          generation: outcome.result === "requeued" ? outcome.generation : 0,
          reason: outcome.result === "requeued" ? (outcome.queuePending ?? "") : outcome.reason,
          queuePending: outcome.result === "requeued" && outcome.queuePending !== undefined,
          previousState:
            "previousState" in outcome && outcome.previousState !== undefined
              ? stateToProto(outcome.previousState)
              : TaskState.UNSPECIFIED,
        })),
      };
    },
  };
}

const DISCARD_RESULTS = {
  discarded: DiscardResult.DISCARDED,
  not_found: DiscardResult.NOT_FOUND,
  unavailable: DiscardResult.UNAVAILABLE,
} as const;

const CANCEL_RESULTS = {
  cancelled: CancelResult.CANCELLED,
  not_found: CancelResult.NOT_FOUND,
  already_finished: CancelResult.ALREADY_FINISHED,
  unavailable: CancelResult.UNAVAILABLE,
  would_cancel: CancelResult.WOULD_CANCEL,
} as const;

const REQUEUE_RESULTS = {
  requeued: RequeueResult.REQUEUED,
  not_found: RequeueResult.NOT_FOUND,
  failed_precondition: RequeueResult.FAILED_PRECONDITION,
  unavailable: RequeueResult.UNAVAILABLE,
} as const;

const RESULTS = {
  replayed: ReplayResult.REPLAYED,
  not_found: ReplayResult.NOT_FOUND,
  failed_precondition: ReplayResult.FAILED_PRECONDITION,
  unavailable: ReplayResult.UNAVAILABLE,
} as const;

function pausedQueueToProto(pause: QueuePause): MessageInitShape<typeof PausedQueueSchema> {
  return {
    priority: priorityToProto(pause.priority),
    ...(pause.at ? { pausedAt: timestampFromIso(pause.at) } : {}),
    pausedBy: pause.by ?? "",
  };
}

function matchesDeadLetter(line: DeadLetterLine, filter: DeadLetterFilter | undefined): boolean {
  if (!filter) return true;
  const letter = line.letter;
  if (filter.subject && letter?.subject !== filter.subject) return false;
  if (filter.reason && letter?.reason !== filter.reason) return false;
  if (filter.taskId && letter?.taskId !== filter.taskId) return false;
  if (filter.type && taskTypeOf(letter?.message) !== filter.type) return false;
  return true;
}

/** The task type a dead message names, when it is a task's. */
function taskTypeOf(message: unknown): string | undefined {
  const type = (message as { type?: unknown } | null | undefined)?.type;
  return typeof message === "object" && typeof type === "string" ? type : undefined;
}

function auditEntry(event: AuditEvent): MessageInitShape<typeof AuditEntrySchema> {
  return {
    taskId: event.taskId ?? "",
    service: event.service,
    action: event.action,
    at: timestampFromIso(event.at),
    ...(event.detail ? { detail: event.detail as JsonObject } : {}),
  };
}

function deadLetterEntry(line: DeadLetterLine): MessageInitShape<typeof DeadLetterEntrySchema> {
  const letter = line.letter;
  if (!letter) return { raw: line.raw.slice(0, 4096), reason: "unreadable" };
  const message = letter.message;
  const isObject = message !== null && typeof message === "object" && !Array.isArray(message);
  return {
    id: letter.id,
    taskId: letter.taskId ?? "",
    subject: letter.subject,
    consumer: letter.consumer,
    reason: letter.reason,
    error: letter.error,
    attempts: letter.attempts,
    at: timestampFromIso(letter.at),
    ...(isObject ? { message: message as JsonObject } : {}),
    raw: letter.raw ?? "",
    history: (letter.history ?? []).map(auditEntry),
  };
}

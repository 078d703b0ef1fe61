/** Checks of AdminService requests: INVALID_ARGUMENT naming the field, like TaskService's. */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Priority as FlowPriority, isTerminal, TaskId, type TaskTypes } from "@tm/flow";
import { type DeadLetterFilter, type ListTasksRequest, Priority } from "@tm/proto";
import type { IndexCursor, TaskFilter } from "@tm/store";
import { priorityFromProto, stateFromProto } from "./mapping.js";
import { checkTaskType, invalid } from "./validation.js";

export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;
const MAX_QUERY_CHARS = 256;
const DEAD_LETTER_REASONS = ["invalid", "exhausted", "rejected"];

export function parsePageSize(value: number): number {
  if (value > MAX_PAGE_SIZE) throw invalid("page_size", `must be at most ${MAX_PAGE_SIZE} (got ${value})`);
  return value === 0 ? DEFAULT_PAGE_SIZE : value;
}

/** ListTasks' filter fields, which CancelTasks repeats. */
type FilterFields = Pick<ListTasksRequest, "state" | "type" | "priority" | "createdAfter" | "createdBefore" | "query"> &
  Partial<Pick<ListTasksRequest, "stalledForSeconds" | "stalled" | "parentTaskId">>;

export function parseTaskFilter(request: FilterFields, taskTypes: TaskTypes, now = Date.now()): TaskFilter {
  const filter: TaskFilter = {};
  const state = stateFromProto(request.state);
  if (state === null) throw invalid("state", `unknown value ${request.state}`);
  if (state) filter.state = state;
  if (request.type) filter.type = checkTaskType("type", request.type, taskTypes);
  if (request.priority !== 0) {
    const priority = priorityFromProto(request.priority);
    if (!priority) throw invalid("priority", `unknown value ${request.priority}`);
    filter.priority = priority;
  }
  if (request.createdAfter) filter.createdAfterMs = timestampMs(request.createdAfter);
  if (request.createdBefore) filter.createdBeforeMs = timestampMs(request.createdBefore);
  if (
    filter.createdAfterMs !== undefined &&
    filter.createdBeforeMs !== undefined &&
    filter.createdAfterMs >= filter.createdBeforeMs
  ) {
    throw invalid("created_before", "must be later than created_after");
  }
  if (request.query.length > MAX_QUERY_CHARS) throw invalid("query", `exceeds ${MAX_QUERY_CHARS} characters`);
  if (request.query.trim()) filter.query = request.query.trim();
  if (request.stalledForSeconds !== undefined) {
    if (filter.state && isTerminal(filter.state)) {
      throw invalid("stalled_for_seconds", `only unfinished tasks stall (state ${filter.state} is finished)`);
    }
    filter.changedBeforeMs = now - request.stalledForSeconds * 1_000;
  }
  if (request.parentTaskId) {
    if (!TaskId.safeParse(request.parentTaskId).success) throw invalid("parent_task_id", "must be a UUID");
    filter.parentTaskId = request.parentTaskId;
  }
  if (request.stalled && filter.state && isTerminal(filter.state)) {
    throw invalid("stalled", `only unfinished tasks stall (state ${filter.state} is finished)`);
  }
  return filter;
}

/** Task page tokens: base64url of `<createdAt ms>:<task id>`, the last index entry examined. */
export function taskPageToken(cursor: IndexCursor): string {
  return Buffer.from(`${cursor.scoreMs}:${cursor.taskId}`).toString("base64url");
}

export function parseTaskPageToken(token: string): IndexCursor | undefined {
  if (!token) return undefined;
  const [score, taskId] = Buffer.from(token, "base64url").toString().split(":");
  const scoreMs = Number(score);
  if (!Number.isSafeInteger(scoreMs) || !TaskId.safeParse(taskId).success) {
    throw invalid("page_token", "is not a token returned by ListTasks or CancelTasks");
  }
  return { scoreMs, taskId: taskId! };
}

/** Dead-letter page tokens: base64url of `dl:<offset in the list>`. */
export function deadLetterPageToken(offset: number): string {
  return Buffer.from(`dl:${offset}`).toString("base64url");
}

export function parseDeadLetterPageToken(token: string): number {
  if (!token) return 0;
  const match = /^dl:(\d{1,9})$/.exec(Buffer.from(token, "base64url").toString());
  if (!match) throw invalid("page_token", "is not a token returned by ListDeadLetters");
  return Number(match[1]);
}

export function checkDeadLetterFilter(filter: DeadLetterFilter | undefined, taskTypes: TaskTypes): void {
  if (!filter) return;
  if (filter.reason && !DEAD_LETTER_REASONS.includes(filter.reason)) {
    throw invalid("filter.reason", `must be one of ${DEAD_LETTER_REASONS.join(", ")} (got "${filter.reason}")`);
  }
  if (filter.taskId && !TaskId.safeParse(filter.taskId).success) throw invalid("filter.task_id", "must be a UUID");
  if (filter.type) checkTaskType("filter.type", filter.type, taskTypes);
  if (filter.parentTaskId && !TaskId.safeParse(filter.parentTaskId).success) {
    throw invalid("filter.parent_task_id", "must be a UUID");
  }
}

/** ReplayDeadLetters' and DiscardDeadLetters' ids: exactly one of ids (1-500) and all. */
export function checkDeadLetterIds(ids: string[], all: boolean, action: "replay" | "discard"): void {
  if (ids.length > 0 && all) throw invalid("ids", "give either ids or all, not both");
  if (ids.length === 0 && !all) throw invalid("ids", `give the dead letter ids to ${action}, or all`);
  if (ids.length > MAX_PAGE_SIZE) throw invalid("ids", `at most ${MAX_PAGE_SIZE} per call (got ${ids.length})`);
  for (const id of ids) {
    if (id.length === 0 || id.length > 256) throw invalid("ids", "each id must be 1-256 characters");
  }
}

/** Unset stalled_for_seconds: a task is stalled when its status has not changed for ten minutes. */
export const DEFAULT_STALLED_FOR_SECONDS = 600;

/** RequeueTasks' ids (1-500 UUIDs, duplicates dropped) and its threshold in ms. */
export function parseRequeueRequest(taskIds: string[], stalledForSeconds: number | undefined) {
  if (taskIds.length === 0) throw invalid("task_ids", "give the ids of the tasks to requeue");
  if (taskIds.length > MAX_PAGE_SIZE) {
    throw invalid("task_ids", `at most ${MAX_PAGE_SIZE} per call (got ${taskIds.length})`);
  }
  for (const id of taskIds) {
    if (!TaskId.safeParse(id).success) throw invalid("task_ids", `each id must be a UUID (got "${id.slice(0, 64)}")`);
  }
  return {
    taskIds: [...new Set(taskIds)],
    stalledForMs: (stalledForSeconds ?? DEFAULT_STALLED_FOR_SECONDS) * 1_000,
  };
}

/**
 * CancelTasks' tasks: the given ids (1-500 UUIDs), or with `all` a filter of unfinished tasks naming at least one
 * field (cancelling every task at once needs an explicit created_before).
 */
export function parseCancelRequest(
  request: FilterFields & { taskIds: string[]; all: boolean; pageToken: string },
  taskTypes: TaskTypes,
): { taskIds: string[] } | { filter: TaskFilter; cursor: IndexCursor | undefined } {
  const filterGiven =
    request.state !== 0 ||
    request.type !== "" ||
    request.priority !== Priority.UNSPECIFIED ||
    request.createdAfter !== undefined ||
    request.createdBefore !== undefined ||
    request.query.trim() !== "" ||
    Boolean(request.parentTaskId);
  if (!request.all) {
    if (filterGiven) throw invalid("all", "the filter fields need all: true (or give task_ids alone)");
    if (request.pageToken) throw invalid("page_token", "goes with all (it continues a filtered walk)");
    if (request.taskIds.length === 0)
      throw invalid("task_ids", "give the ids of the tasks to cancel, or all with a filter");
    if (request.taskIds.length > MAX_PAGE_SIZE) {
      throw invalid("task_ids", `at most ${MAX_PAGE_SIZE} per call (got ${request.taskIds.length})`);
    }
    for (const id of request.taskIds) {
      if (!TaskId.safeParse(id).success) throw invalid("task_ids", `each id must be a UUID (got "${id.slice(0, 64)}")`);
    }
    return { taskIds: [...new Set(request.taskIds)] };
  }
  if (request.taskIds.length > 0) throw invalid("task_ids", "give task_ids or all, not both");
  if (!filterGiven) {
    throw invalid(
      "all",
      "needs at least one filter field (state, type, priority, created_after, created_before, query, parent_task_id); " +
        "to cancel every " +
        "unfinished task, give created_before: now",
    );
  }
  const filter = parseTaskFilter(request, taskTypes);
  if (filter.state && isTerminal(filter.state)) {
    throw invalid("state", `only unfinished tasks can be cancelled (state ${filter.state} is finished)`);
  }
  return { filter: { ...filter, unfinished: true }, cursor: parseTaskPageToken(request.pageToken) };
}

/** PauseQueue's and ResumeQueue's priority: HIGH, MEDIUM or LOW (unspecified does not name a queue here). */
export function parseQueuePriority(priority: Priority): FlowPriority {
  const parsed = priority === Priority.UNSPECIFIED ? undefined : priorityFromProto(priority);
  if (!parsed) {
    throw invalid("priority", `name the queue: PRIORITY_HIGH, PRIORITY_MEDIUM or PRIORITY_LOW (got ${priority})`);
  }
  return parsed;
}

/**
 * GetTaskLogs: what a task's handler logged with ctx.log (the workers keep it in task_logs:<id>, @tm/store's
 * task-logs.ts), a page at a time from a cursor, so that a client follows a running task's lines by asking again with
 * the last cursor.
 */
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { isTerminal } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import type { GetTaskLogsRequest, GetTaskLogsResponseSchema, TaskLogLineSchema } from "@tm/proto";
import { readStatus, readTaskLog, type TaskLogLine as StoredLine, TASK_LOG_CURSOR } from "@tm/store";
import { timestampFromIso } from "./mapping.js";
import type { RedisCall } from "./redis-call.js";
import { invalid } from "./validation.js";

/** Lines per page when the request names no limit, and the most it may name. */
export const DEFAULT_LOG_PAGE = 100;
export const MAX_LOG_PAGE = 1_000;

/** The request's cursor and page size, checked: INVALID_ARGUMENT naming the field otherwise. */
export function logPageOf(request: Pick<GetTaskLogsRequest, "after" | "limit">): { after: string; limit: number } {
  if (request.after !== "" && !TASK_LOG_CURSOR.test(request.after)) {
    throw invalid(
      "after",
      `${JSON.stringify(request.after.slice(0, 60))} is not a log cursor (a line's number, e.g. "17")`,
    );
  }
  if (request.limit > MAX_LOG_PAGE)
    throw invalid("limit", `at most ${MAX_LOG_PAGE} lines a page (got ${request.limit})`);
  return { after: request.after, limit: request.limit === 0 ? DEFAULT_LOG_PAGE : request.limit };
}

function lineToProto(line: StoredLine): MessageInitShape<typeof TaskLogLineSchema> {
  return {
    cursor: line.id,
    ...(line.time ? { time: timestampFromIso(line.time) } : {}),
    level: line.level,
    message: line.message,
    attempt: line.attempt,
    generation: line.generation,
    ...(line.fields ? { fields: line.fields as JsonObject } : {}),
  };
}

/** A page of the task's log (`page`: logPageOf's). Its status is read first: a task finished then has every line
 *  stored already (a worker stores an attempt's lines before publishing its outcome), so `finished` never ends a
 *  follower early. */
export async function taskLogPage(
  rt: Runtime,
  redisCall: RedisCall,
  taskId: string,
  page: { after: string; limit: number },
): Promise<MessageInitShape<typeof GetTaskLogsResponseSchema>> {
  const status = await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
  const { lines, nextCursor, total, dropped } = await redisCall("reading the task's log", () =>
    readTaskLog(rt.redis, taskId, page),
  );
  return {
    lines: lines.map(lineToProto),
    nextCursor,
    total,
    dropped,
    finished: status !== undefined && isTerminal(status.state),
  };
}

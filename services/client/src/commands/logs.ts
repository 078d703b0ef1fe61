/**
 * `taskctl logs <id> [--follow]`: what the task's handler logged with ctx.log (TaskService.GetTaskLogs), oldest
 * first, one line each; with --follow, the lines it logs from then on too, until it has finished (as `kubectl logs
 * -f`). The gateway answers a page at a time from a cursor: a follower asks again from the last one.
 */
import { setTimeout as delay } from "node:timers/promises";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type GetTaskLogsResponse, type TaskClient, type TaskLogLine, TaskLogLineSchema } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";

/** Lines asked for per call: the gateway's most. */
export const LOG_PAGE = 1_000;
/** How often --follow asks for newer lines. */
export const FOLLOW_POLL_MS = 1_000;
/** How long --follow keeps asking through a gateway that answers UNAVAILABLE (a restart, a Redis failover). */
export const FOLLOW_OUTAGE_MS = 60_000;

/** One line as the terminal shows it: time, level, attempt, message, then its fields as JSON. */
export function logLineText(line: TaskLogLine): string {
  const time = line.time ? timestampDate(line.time).toISOString() : "-".repeat(24);
  const fields = line.fields && Object.keys(line.fields).length > 0 ? `  ${JSON.stringify(line.fields)}` : "";
  return `${time}  ${line.level.toUpperCase().padEnd(5)}  #${line.attempt}  ${line.message}${fields}`;
}

export interface LogsOptions {
  follow: boolean;
  json: boolean;
}

export async function logsCommand(
  io: Io,
  client: TaskClient,
  taskId: string,
  { follow, json }: LogsOptions,
): Promise<ExitCode> {
  const ask = (after: string) =>
    client.getTaskLogs({ taskId, after, limit: LOG_PAGE }, { timeoutMs: UNARY_TIMEOUT_MS });
  const print = (page: GetTaskLogsResponse) => {
    for (const line of page.lines) {
      println(io.stdout, json ? JSON.stringify(toJson(TaskLogLineSchema, line)) : logLineText(line));
    }
  };
  let page = await ask("");
  // Said once, before the lines: the oldest are gone (over the workers' WORKER_TASK_LOG_LINES).
  if (page.dropped > 0 && !json) {
    println(io.stderr, `(${page.dropped} older lines of ${page.total} were not kept: over WORKER_TASK_LOG_LINES)`);
  }
  let printed = page.lines.length;
  print(page);
  // What is kept now, a page at a time; with --follow, what comes later too, until a page read once the task had
  // finished comes back empty (an attempt's lines are stored before its outcome: none can come after).
  // A follower rides out a gateway that is briefly unavailable (said once), as it would a quiet task.
  let unavailableSince: number | undefined;
  const askOn = async (after: string): Promise<GetTaskLogsResponse | undefined> => {
    try {
      const next = await ask(after);
      unavailableSince = undefined;
      return next;
    } catch (error) {
      if (!follow || !(error instanceof ConnectError) || error.code !== Code.Unavailable) throw error;
      if (unavailableSince === undefined)
        println(io.stderr, `(the gateway is unavailable: ${error.rawMessage}; retrying)`);
      unavailableSince ??= Date.now();
      if (Date.now() - unavailableSince > FOLLOW_OUTAGE_MS) throw error;
      return undefined;
    }
  };
  let retrying = false;
  while (page.lines.length === LOG_PAGE || (follow && !(page.finished && page.lines.length === 0))) {
    if (retrying || page.lines.length < LOG_PAGE) await delay(FOLLOW_POLL_MS);
    const next = await askOn(page.nextCursor);
    retrying = next === undefined;
    if (!next) continue;
    page = next;
    printed += page.lines.length;
    print(page);
  }
  if (printed === 0 && !json) {
    println(io.stderr, `no lines logged by task ${taskId} (its handler's ctx.log lines show here)`);
  }
  return ExitCode.Ok;
}

/**
 * `taskctl logs <id> [--follow]`: what the task's handler logged with ctx.log (TaskService.GetTaskLogs), oldest
 * first, one line each; with --follow, the lines it logs from then on too, until it has finished (as `kubectl logs
 * -f`), read by @tm/proto's readTaskLogLines: a page at a time from a cursor, a follower asking again from the last.
 */
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { readTaskLogLines, type TaskClient, type TaskLogLine, TaskLogLineSchema } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";

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
  let printed = 0;
  const lines = readTaskLogLines(client, taskId, {
    follow,
    pollMs: FOLLOW_POLL_MS,
    maxOutageMs: FOLLOW_OUTAGE_MS,
    callTimeoutMs: UNARY_TIMEOUT_MS,
    // Said once, before the lines: the oldest are gone (over the workers' WORKER_TASK_LOG_LINES).
    onFirstPage: ({ dropped, total }) => {
      if (dropped > 0 && !json)
        println(io.stderr, `(${dropped} older lines of ${total} were not kept: over WORKER_TASK_LOG_LINES)`);
    },
    onUnavailable: (error) => println(io.stderr, `(the gateway is unavailable: ${error.rawMessage}; retrying)`),
  });
  for await (const line of lines) {
    printed++;
    println(io.stdout, json ? JSON.stringify(toJson(TaskLogLineSchema, line)) : logLineText(line));
  }
  if (printed === 0 && !json) {
    println(io.stderr, `no lines logged by task ${taskId} (its handler's ctx.log lines show here)`);
  }
  return ExitCode.Ok;
}

import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { PromoteTaskResponseSchema, type TaskClient } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";

/** `taskctl promote <id>`: TaskService.PromoteTask. A task not waiting for its time is exit code 1, not a server
 *  error: the request was understood, the task is just past that point (as a task that finished is for `cancel`). */
export async function promoteCommand(io: Io, client: TaskClient, taskId: string, json: boolean): Promise<ExitCode> {
  let response: Awaited<ReturnType<TaskClient["promoteTask"]>>;
  try {
    response = await client.promoteTask({ taskId }, { timeoutMs: UNARY_TIMEOUT_MS });
  } catch (error) {
    if (!(error instanceof ConnectError) || error.code !== Code.FailedPrecondition) throw error;
    println(io.stderr, error.rawMessage);
    return ExitCode.TaskFailed;
  }
  if (json) {
    println(io.stdout, JSON.stringify({ taskId, ...(toJson(PromoteTaskResponseSchema, response) as object) }));
  } else {
    const was = response.previousRunAt ? timestampDate(response.previousRunAt).toISOString() : "?";
    println(io.stdout, `${taskId} promoted: due now (was due ${was}); queued now`);
  }
  return ExitCode.Ok;
}

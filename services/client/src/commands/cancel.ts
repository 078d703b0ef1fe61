import { toJson } from "@bufbuild/protobuf";
import { type TaskClient, TaskStatusSchema } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { stateName } from "../render.js";

export async function cancelCommand(
  io: Io,
  client: TaskClient,
  taskId: string,
  reason: string | undefined,
  json: boolean,
): Promise<ExitCode> {
  const { status } = await client.cancelTask({ taskId, reason: reason ?? "" }, { timeoutMs: UNARY_TIMEOUT_MS });
  if (json) println(io.stdout, JSON.stringify({ taskId, status: status ? toJson(TaskStatusSchema, status) : null }));
  else println(io.stdout, `${taskId} ${status ? stateName(status.state) : "cancelled"}`);
  return ExitCode.Ok;
}

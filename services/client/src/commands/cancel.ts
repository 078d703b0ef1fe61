import { toJson } from "@bufbuild/protobuf";
import { type TaskClient, TaskStatusSchema } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { stateName } from "../render.js";

/** How long `cancel --children` may take: it walks up to 1,000 descendants, each cancelled in a few round trips. */
const CASCADE_TIMEOUT_MS = 60_000;

export async function cancelCommand(
  io: Io,
  client: TaskClient,
  { taskId, reason, children }: { taskId: string; reason?: string | undefined; children: boolean },
  json: boolean,
): Promise<ExitCode> {
  const { status, childrenCancelled } = await client.cancelTask(
    { taskId, reason: reason ?? "", includeChildren: children },
    { timeoutMs: children ? CASCADE_TIMEOUT_MS : UNARY_TIMEOUT_MS },
  );
  if (json) {
    const cascade = children ? { childrenCancelled } : {};
    println(
      io.stdout,
      JSON.stringify({ taskId, status: status ? toJson(TaskStatusSchema, status) : null, ...cascade }),
    );
  } else {
    const cascade = children ? `; ${childrenCancelled} of its child tasks (and theirs) cancelled` : "";
    println(io.stdout, `${taskId} ${status ? stateName(status.state) : "cancelled"}${cascade}`);
  }
  return ExitCode.Ok;
}

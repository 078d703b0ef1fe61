import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubmitTaskRequestSchema, TaskClient } from "@tm/proto";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { watchTasks } from "./watch.js";

type SubmitInvocation = Extract<Invocation, { command: "submit" }>;

export function submitRequestOf(invocation: SubmitInvocation): MessageInitShape<typeof SubmitTaskRequestSchema> {
  return {
    type: invocation.type,
    priority: invocation.priority,
    metadata: invocation.metadata,
    ...(invocation.payload ? { payload: invocation.payload } : {}),
    ...(invocation.idempotencyKey ? { idempotencyKey: invocation.idempotencyKey } : {}),
  };
}

export async function submitCommand(io: Io, client: TaskClient, invocation: SubmitInvocation): Promise<ExitCode> {
  const startedAt = Date.now();
  const response = await client.submitTask(submitRequestOf(invocation), { timeoutMs: UNARY_TIMEOUT_MS });
  const { json } = invocation.globals;
  if (json) {
    println(io.stdout, JSON.stringify({ taskId: response.taskId, deduplicated: response.deduplicated }));
  } else {
    println(io.stdout, response.taskId);
    if (response.deduplicated) println(io.stderr, "(deduplicated: this idempotency key was used before)");
  }
  if (!invocation.watch) return ExitCode.Ok;
  const target = { taskId: response.taskId, label: invocation.type, startedAt };
  return (await watchTasks(io, client, [target], json)).exitCode;
}

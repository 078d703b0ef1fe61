import type { TaskClient } from "@tm/proto";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { type SubmissionFields, submitAndStream } from "../submit-stream.js";
import { watchTasks } from "./watch.js";

type SubmitInvocation = Extract<Invocation, { command: "submit" }>;

export function submitRequestOf(invocation: SubmitInvocation): SubmissionFields {
  return {
    type: invocation.type,
    priority: invocation.priority,
    metadata: invocation.metadata,
    ...(invocation.payload ? { payload: invocation.payload } : {}),
    ...(invocation.idempotencyKey ? { idempotencyKey: invocation.idempotencyKey } : {}),
  };
}

export async function submitCommand(io: Io, client: TaskClient, invocation: SubmitInvocation): Promise<ExitCode> {
  if (invocation.watch) return submitAndWatch(io, client, invocation);
  const response = await client.submitTask(submitRequestOf(invocation), { timeoutMs: UNARY_TIMEOUT_MS });
  printSubmitted(io, invocation.globals.json, response);
  return ExitCode.Ok;
}

/**
 * `submit --watch`: one SubmitTaskAndStreamStatus call, whose first message carries the task id (printed at once, as
 * `submit` prints it), then followed like `watch` (a stream that breaks off is resumed with StreamTaskStatus).
 */
async function submitAndWatch(io: Io, client: TaskClient, invocation: SubmitInvocation): Promise<ExitCode> {
  const startedAt = Date.now();
  const { taskId, deduplicated, messages } = await submitAndStream(client, submitRequestOf(invocation));
  printSubmitted(io, invocation.globals.json, { taskId, deduplicated });
  const target = { taskId, label: invocation.type, startedAt };
  const open = new Map([[taskId, messages]]);
  return (await watchTasks(io, client, [target], invocation.globals.json, undefined, open)).exitCode;
}

function printSubmitted(io: Io, json: boolean, { taskId, deduplicated }: { taskId: string; deduplicated: boolean }) {
  if (json) {
    println(io.stdout, JSON.stringify({ taskId, deduplicated }));
  } else {
    println(io.stdout, taskId);
    if (deduplicated) println(io.stderr, "(deduplicated: this idempotency key was used before)");
  }
}

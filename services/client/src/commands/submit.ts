import { Code, ConnectError } from "@connectrpc/connect";
import type { SubmitTaskAndStreamStatusResponse, SubmitTaskRequest, TaskClient } from "@tm/proto";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { watchTasks } from "./watch.js";

type SubmitInvocation = Extract<Invocation, { command: "submit" }>;

/** The submission's fields: SubmitTaskRequest's, which SubmitTaskAndStreamStatusRequest repeats. */
export function submitRequestOf(
  invocation: SubmitInvocation,
): Pick<SubmitTaskRequest, "type" | "priority" | "metadata"> &
  Partial<Pick<SubmitTaskRequest, "payload" | "idempotencyKey">> {
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
  // The first message is SubmitTask's answer: it gets the unary deadline; the stream after it may run for as long as
  // the task does.
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new ConnectError(`no answer within ${UNARY_TIMEOUT_MS} ms`, Code.DeadlineExceeded)),
    UNARY_TIMEOUT_MS,
  );
  const messages = client
    .submitTaskAndStreamStatus(submitRequestOf(invocation), { signal: deadline.signal })
    [Symbol.asyncIterator]();
  let first: IteratorResult<SubmitTaskAndStreamStatusResponse>;
  try {
    first = await messages.next();
  } finally {
    clearTimeout(timer);
  }
  if (first.done) throw new CliError("the gateway ended the call before naming the task", ExitCode.ServerError);
  const { taskId, deduplicated } = first.value;
  printSubmitted(io, invocation.globals.json, { taskId, deduplicated });
  async function* rest(): AsyncGenerator<SubmitTaskAndStreamStatusResponse> {
    try {
      yield first.value as SubmitTaskAndStreamStatusResponse;
      for (let next = await messages.next(); !next.done; next = await messages.next()) yield next.value;
    } finally {
      await messages.return?.(); // a follower that stops early ends the call too
    }
  }
  const target = { taskId, label: invocation.type, startedAt };
  const open = new Map([[taskId, rest()]]);
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

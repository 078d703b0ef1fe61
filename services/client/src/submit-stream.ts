/**
 * Submitting a task and holding its status stream, in one SubmitTaskAndStreamStatus call: resolves once the first
 * message names the task (SubmitTask's answer, under the same unary deadline), with the stream from that message on.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { SubmitTaskAndStreamStatusResponse, SubmitTaskRequest, TaskClient } from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "./connection.js";
import { CliError, ExitCode } from "./exit-codes.js";

/** The submission's fields: SubmitTaskRequest's, which SubmitTaskAndStreamStatusRequest repeats. */
export type SubmissionFields = Pick<SubmitTaskRequest, "type" | "priority" | "metadata"> &
  Partial<
    Pick<
      SubmitTaskRequest,
      | "payload"
      | "idempotencyKey"
      | "idempotencyKeyReuse"
      | "schedule"
      | "timeout"
      | "maxAttempts"
      | "retryBackoff"
      | "expiresAfter"
      | "succeededRetention"
      | "heartbeatTimeout"
      | "dependsOn"
      | "dependencyPolicy"
      | "concurrencyKey"
      | "concurrencyLimit"
      | "fairnessKey"
      | "fairnessWeight"
    >
  >;

export interface SubmittedStream {
  taskId: string;
  deduplicated: boolean;
  /** The key's waiting task took this submission's payload and time (idempotency_key_reuse REPLACE_WAITING). */
  replaced: boolean;
  /** Every message of the call, the first included; ending it early ends the call. */
  messages: AsyncIterable<SubmitTaskAndStreamStatusResponse>;
}

/** `signal` ends the call at any point (e.g. a command's overall timeout); without a first message within
 *  `firstMessageTimeoutMs` (the unary deadline) the call is ended with DEADLINE_EXCEEDED. */
export async function submitAndStream(
  client: TaskClient,
  request: SubmissionFields,
  signal?: AbortSignal,
  firstMessageTimeoutMs = UNARY_TIMEOUT_MS,
): Promise<SubmittedStream> {
  const controller = new AbortController();
  const stop = () => controller.abort(signal?.reason);
  if (signal?.aborted) stop();
  signal?.addEventListener("abort", stop, { once: true });
  const forget = () => signal?.removeEventListener("abort", stop);
  // The first message is SubmitTask's answer: it gets the unary deadline; the stream after it may run for as long as
  // the task does.
  const timer = setTimeout(
    () => controller.abort(new ConnectError(`no answer within ${firstMessageTimeoutMs} ms`, Code.DeadlineExceeded)),
    firstMessageTimeoutMs,
  );
  const iterator = client.submitTaskAndStreamStatus(request, { signal: controller.signal })[Symbol.asyncIterator]();
  let first: IteratorResult<SubmitTaskAndStreamStatusResponse>;
  try {
    first = await iterator.next();
  } catch (error) {
    forget();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  if (first.done) {
    forget();
    throw new CliError("the gateway ended the call before naming the task", ExitCode.ServerError);
  }
  const opening = first.value;
  async function* messages(): AsyncGenerator<SubmitTaskAndStreamStatusResponse> {
    try {
      yield opening;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      forget();
      await iterator.return?.(); // a follower that stops early ends the call too
    }
  }
  return {
    taskId: opening.taskId,
    deduplicated: opening.deduplicated,
    replaced: opening.replaced,
    messages: messages(),
  };
}

import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DependencyPolicy, IdempotencyKeyReuse, type TaskClient } from "@tm/proto";
import type { SubmitSchedule } from "../admin-args.js";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { generatedIdempotencyKey, printRetry, withSubmitRetries } from "../submit-retry.js";
import { type SubmissionFields, submitAndStream } from "../submit-stream.js";
import { fairnessFields, taskLimitFields } from "../task-limits.js";
import { watchTasks } from "./watch.js";

type SubmitInvocation = Extract<Invocation, { command: "submit" }>;

export function submitRequestOf(invocation: SubmitInvocation): SubmissionFields {
  return {
    type: invocation.type,
    priority: invocation.priority,
    metadata: invocation.metadata,
    ...(invocation.payload ? { payload: invocation.payload } : {}),
    ...(invocation.idempotencyKey ? { idempotencyKey: invocation.idempotencyKey } : {}),
    ...(invocation.keyReuse
      ? {
          idempotencyKeyReuse:
            invocation.keyReuse === "replace-waiting"
              ? IdempotencyKeyReuse.REPLACE_WAITING
              : IdempotencyKeyReuse.AFTER_FINISHED,
        }
      : {}),
    ...(invocation.schedule ? { schedule: scheduleOf(invocation.schedule) } : {}),
    ...taskLimitFields(invocation),
    ...(invocation.succeededRetentionMs ? { succeededRetention: durationFromMs(invocation.succeededRetentionMs) } : {}),
    ...(invocation.dependsOn.length > 0 ? { dependsOn: invocation.dependsOn } : {}),
    ...(invocation.runWhenFinished ? { dependencyPolicy: DependencyPolicy.ALL_FINISHED } : {}),
    ...(invocation.concurrency
      ? { concurrencyKey: invocation.concurrency.key, concurrencyLimit: invocation.concurrency.limit }
      : {}),
    ...fairnessFields(invocation.fairness),
  };
}

/** --delay as a google.protobuf.Duration, --at as a Timestamp (SubmitTaskRequest's `schedule` oneof). */
function scheduleOf(schedule: SubmitSchedule): NonNullable<SubmissionFields["schedule"]> {
  if ("runAt" in schedule) return { case: "runAt", value: timestampFromDate(schedule.runAt) };
  return { case: "delay", value: durationFromMs(schedule.delayMs) };
}

export async function submitCommand(io: Io, client: TaskClient, invocation: SubmitInvocation): Promise<ExitCode> {
  if (invocation.watch) return submitAndWatch(io, client, invocation);
  const { request, generatedKey } = retryableRequest(invocation);
  const { value: response } = await withSubmitRetries(
    invocation.retries,
    () => client.submitTask(request, { timeoutMs: UNARY_TIMEOUT_MS }),
    (notice) => printRetry(io, notice),
  );
  printSubmitted(io, invocation.globals.json, {
    taskId: response.taskId,
    deduplicated: response.deduplicated && !generatedKey,
    replaced: response.replaced,
  });
  return ExitCode.Ok;
}

/**
 * `submit --watch`: one SubmitTaskAndStreamStatus call, whose first message carries the task id (printed at once, as
 * `submit` prints it), then followed like `watch` (a stream that breaks off is resumed with StreamTaskStatus).
 */
async function submitAndWatch(io: Io, client: TaskClient, invocation: SubmitInvocation): Promise<ExitCode> {
  const startedAt = Date.now();
  const { request, generatedKey } = retryableRequest(invocation);
  const { value: submitted } = await withSubmitRetries(
    invocation.retries,
    () => submitAndStream(client, request),
    (notice) => printRetry(io, notice),
  );
  const { taskId, deduplicated, replaced, messages } = submitted;
  printSubmitted(io, invocation.globals.json, { taskId, deduplicated: deduplicated && !generatedKey, replaced });
  const target = { taskId, label: invocation.type, startedAt };
  const open = new Map([[taskId, messages]]);
  return (await watchTasks(io, client, [target], invocation.globals.json, undefined, open)).exitCode;
}

/**
 * The request every attempt sends: with retries, an idempotency key is always set (one made for this run when the
 * user gave none), so that an attempt that failed after reaching the gateway's Redis and its retry are one task. A
 * made-up key can only have been used by this run's own earlier attempt: "deduplicated" is then not reported.
 */
function retryableRequest(invocation: SubmitInvocation): { request: SubmissionFields; generatedKey: boolean } {
  const request = submitRequestOf(invocation);
  if (request.idempotencyKey || invocation.retries === 0) return { request, generatedKey: false };
  return { request: { ...request, idempotencyKey: generatedIdempotencyKey() }, generatedKey: true };
}

function printSubmitted(
  io: Io,
  json: boolean,
  { taskId, deduplicated, replaced = false }: { taskId: string; deduplicated: boolean; replaced?: boolean },
) {
  if (json) {
    println(io.stdout, JSON.stringify({ taskId, deduplicated, ...(replaced ? { replaced } : {}) }));
  } else {
    println(io.stdout, taskId);
    if (replaced) println(io.stderr, "(replaced: the key's task was still waiting; it took this payload and time)");
    else if (deduplicated) println(io.stderr, "(deduplicated: this idempotency key was used before)");
  }
}

/**
 * The gateway client of ctx.submitTask (child-tasks.ts), in a module of its own so that it is loaded with the first
 * child a handler submits, not at the worker's start.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { PermanentError, type Priority as PriorityName, RetryAfterError } from "@tm/flow";
import {
  createTaskClient,
  DependencyPolicy,
  Priority,
  retryPushbackOf,
  type SubmitTaskRequest,
  type SubmitTaskRequestSchema,
  taskLimitFields,
} from "@tm/proto/client";
import type { ChildSubmitter, ChildTaskRequest, ParentTask } from "./child-tasks.js";

/** How long one SubmitTask call may take before the attempt sees it fail (and is retried). */
export const CHILD_SUBMIT_TIMEOUT_MS = 10_000;
/** The longest rate-limit pushback waited out within the attempt; a longer one fails it (a RetryAfterError). */
export const MAX_INLINE_PUSHBACK_MS = 30_000;

const PRIORITIES: Record<PriorityName, Priority> = {
  high: Priority.HIGH,
  medium: Priority.MEDIUM,
  low: Priority.LOW,
};

/** The SubmitTask request for a child (its fields validated by childRequestProblem). */
export function childSubmitRequest(
  parent: ParentTask,
  idempotencyKey: string,
  request: ChildTaskRequest,
): MessageInitShape<typeof SubmitTaskRequestSchema> {
  return {
    type: request.type,
    payload: (request.payload ?? {}) as SubmitTaskRequest["payload"],
    priority: PRIORITIES[request.priority ?? parent.priority],
    idempotencyKey,
    metadata: { ...request.metadata },
    parentTaskId: parent.taskId,
    // timeout, max_attempts, retry_backoff, expires_after, heartbeat_timeout: as taskctl and the gateway convert them.
    ...taskLimitFields(request),
    ...(request.delayMs ? { schedule: { case: "delay", value: durationFromMs(request.delayMs) } } : {}),
    ...(request.dependsOn?.length ? { dependsOn: [...request.dependsOn] } : {}),
    ...(request.dependencyPolicy === "all-finished" ? { dependencyPolicy: DependencyPolicy.ALL_FINISHED } : {}),
    ...(request.succeededRetentionSeconds
      ? { succeededRetention: durationFromMs(request.succeededRetentionSeconds * 1_000) }
      : {}),
  };
}

/**
 * The gateway's refusal as the attempt's failure: what no retry can change (the request itself) is permanent; a rate
 * limit's pushback is a wait; the rest (the gateway unreachable, shedding load, a key it does not know) an ordinary
 * failure, retried with the task's backoff.
 */
export function childSubmitFailure(type: string, error: unknown): Error {
  if (!(error instanceof ConnectError)) return error instanceof Error ? error : new Error(String(error));
  const what = `ctx.submitTask(${JSON.stringify(type)}): the gateway answered ${Code[error.code]}: ${error.rawMessage}`;
  const pushbackMs = retryPushbackOf(error);
  if (pushbackMs !== undefined) return new RetryAfterError(what, pushbackMs, { cause: error });
  switch (error.code) {
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.NotFound:
    case Code.ResourceExhausted:
      return new PermanentError(what, { cause: error });
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return new Error(`${what} (is WORKER_GATEWAY_API_KEY a key the gateway accepts?)`, { cause: error });
    default:
      return new Error(what, { cause: error });
  }
}

/**
 * Submits children with SubmitTask calls to the gateway at `baseUrl`, as the caller `apiKey` names. The gateway's
 * rate limit (per caller: every worker shares the workers' key) is waited out within the attempt, as taskctl does,
 * up to MAX_INLINE_PUSHBACK_MS a time: failing the attempt instead would make its retry submit again from the first
 * child, each call spending a token, so a fan-out larger than the burst would never get through. `onRateLimited` is
 * told each wait.
 */
export function grpcChildSubmitter(options: {
  baseUrl: string;
  apiKey?: string;
  onRateLimited?: (waitMs: number) => void;
}): ChildSubmitter {
  const client = createTaskClient(options);
  return async (parent, idempotencyKey, request, signal) => {
    for (;;) {
      try {
        const response = await client.submitTask(childSubmitRequest(parent, idempotencyKey, request), {
          signal,
          timeoutMs: CHILD_SUBMIT_TIMEOUT_MS,
        });
        return { taskId: response.taskId, deduplicated: response.deduplicated };
      } catch (error) {
        const pushbackMs = retryPushbackOf(error);
        if (pushbackMs === undefined || pushbackMs > MAX_INLINE_PUSHBACK_MS || signal.aborted) {
          throw childSubmitFailure(request.type, error);
        }
        options.onRateLimited?.(pushbackMs);
        // Ends with the attempt (its signal): the abort is then the attempt's failure.
        await sleep(pushbackMs, undefined, { signal });
      }
    }
  };
}

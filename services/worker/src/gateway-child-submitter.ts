/**
 * The gateway client of ctx.submitTask (child-tasks.ts), in a module of its own so that it is loaded with the first
 * child a handler submits, not at the worker's start.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PermanentError, RetryAfterError } from "@tm/flow";
import { createTaskClient, retryPushbackOf, type SubmitTaskRequestSchema, submitTaskRequestOf } from "@tm/proto/client";
import type {
  AttemptCall,
  ChildSubmitter,
  ChildTaskRequest,
  GatewayChildSubmitterOptions,
  ParentTask,
} from "./child-tasks.js";

/** How long one SubmitTask call may take before the attempt sees it fail (and is retried). */
export const CHILD_SUBMIT_TIMEOUT_MS = 10_000;
/** The longest rate-limit pushback waited out within the attempt; a longer one fails it (a RetryAfterError). */
export const MAX_INLINE_PUSHBACK_MS = 30_000;

/** The SubmitTask request for a child (its fields validated by childRequestProblem). */
export function childSubmitRequest(
  parent: ParentTask,
  idempotencyKey: string,
  { key: _, ...request }: ChildTaskRequest,
): MessageInitShape<typeof SubmitTaskRequestSchema> {
  // timeout, max_attempts, retry_backoff, expires_after, heartbeat_timeout: as TaskManagerClient and taskctl send them.
  return {
    ...submitTaskRequestOf({ ...request, priority: request.priority ?? parent.priority, idempotencyKey }),
    parentTaskId: parent.taskId,
  };
}

/**
 * The gateway's refusal as the attempt's failure, named by `label` (`ctx.submitTask("echo")`): what no retry can
 * change (the request itself) is permanent; a rate limit's pushback is a wait; the rest (the gateway unreachable,
 * shedding load, a key it does not know) an ordinary failure, retried with the task's backoff.
 */
export function childSubmitFailure(label: string, error: unknown): Error {
  if (!(error instanceof ConnectError)) return error instanceof Error ? error : new Error(String(error));
  const pushbackMs = retryPushbackOf(error);
  if (pushbackMs !== undefined) {
    return new RetryAfterError(refusalMessage(label, error.code, error.rawMessage), pushbackMs, { cause: error });
  }
  return childRefusal(label, error.code, error.rawMessage, error);
}

/** A refusal with its code (of the call, or of one task of a SubmitTasks call) as the attempt's failure. */
export function childRefusal(label: string, code: Code, message: string, cause?: unknown): Error {
  const what = refusalMessage(label, code, message);
  switch (code) {
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.NotFound:
    case Code.ResourceExhausted:
      return new PermanentError(what, { cause });
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return new Error(
        `${what} (is WORKER_GATEWAY_API_KEY, or the key in WORKER_GATEWAY_API_KEY_FILE, one the gateway accepts?)`,
        { cause },
      );
    default:
      return new Error(what, { cause });
  }
}

function refusalMessage(label: string, code: Code, message: string): string {
  return `${label}: the gateway answered ${Code[code] ?? `code ${code}`}: ${message}`;
}

/** How often a rate-limit wait keeps the attempt alive (AttemptCall.keepAlive), so a short heartbeat timeout holds. */
const KEEP_ALIVE_EVERY_MS = 250;

/**
 * Submits children to the gateway at `baseUrl`, as the caller `apiKey` names: one with SubmitTask, several with
 * SubmitTasks. The gateway's rate limit (per caller: every worker shares the workers' key) is waited out within the
 * attempt, as taskctl does, up to MAX_INLINE_PUSHBACK_MS a time: failing the attempt instead would make its retry
 * submit again from the first child, each call spending tokens, so a fan-out larger than the burst would never get
 * through. `onRateLimited` is told each wait.
 */
export function grpcChildSubmitter(options: GatewayChildSubmitterOptions): ChildSubmitter {
  const client = createTaskClient(options);

  /** `send` again after each pushback of the rate limit, till it answers or fails otherwise (`label`ed). */
  async function withinRateLimit<T>(label: string, call: AttemptCall, send: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await send();
      } catch (error) {
        const pushbackMs = retryPushbackOf(error);
        if (pushbackMs === undefined || pushbackMs > MAX_INLINE_PUSHBACK_MS || call.signal.aborted) {
          throw childSubmitFailure(label, error);
        }
        options.onRateLimited?.(pushbackMs);
        await waitOut(pushbackMs, call);
      }
    }
  }

  return {
    batchSize: options.batchSize,
    submit: (parent, child, call) =>
      withinRateLimit(child.label, call, async () => {
        const response = await client.submitTask(childSubmitRequest(parent, child.idempotencyKey, child.request), {
          signal: call.signal,
          timeoutMs: CHILD_SUBMIT_TIMEOUT_MS,
        });
        return { taskId: response.taskId, deduplicated: response.deduplicated };
      }),
    submitBatch: async (parent, children, call) => {
      const label = `ctx.submitTasks (${children.length} children)`;
      const tasks = children.map((child) => ({
        ...childSubmitRequest(parent, child.idempotencyKey, child.request),
        dependsOnBatchItems: child.dependsOnBatchItems ?? [],
      }));
      const response = await withinRateLimit(label, call, () =>
        client.submitTasks({ tasks }, { signal: call.signal, timeoutMs: CHILD_SUBMIT_TIMEOUT_MS }),
      );
      return children.map((child, i) => {
        const outcome = response.outcomes[i]?.outcome;
        if (outcome?.case === "accepted") {
          return { taskId: outcome.value.taskId, deduplicated: outcome.value.deduplicated };
        }
        if (outcome?.case === "error") {
          // Its message names the task by its place in this call ("tasks[3]: …"); the label names it in the handler's.
          return childRefusal(child.label, outcome.value.code, outcome.value.message.replace(/^tasks\[\d+\]: /, ""));
        }
        return new Error(`${child.label}: the gateway answered no outcome for it`);
      });
    },
  };
}

/** Waits `ms` (ending with the attempt), keeping it alive meanwhile: at least every KEEP_ALIVE_EVERY_MS. */
export async function waitOut(ms: number, call: AttemptCall): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0; left = until - Date.now()) {
    call.keepAlive?.();
    // Ends with the attempt (its signal): the abort is then the attempt's failure.
    await sleep(Math.min(left, KEEP_ALIVE_EVERY_MS), undefined, { signal: call.signal });
  }
  call.keepAlive?.();
}

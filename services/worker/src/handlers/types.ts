import type { StandardSchemaV1 } from "@standard-schema/spec";
import type { RetryBackoff } from "@tm/flow";
import type { Logger } from "@tm/kit";
import type { DependencyOutcome, TypeRate } from "@tm/store";
import type { ChildBatchRequest, ChildTaskRequest, SubmittedChild } from "../child-tasks.js";

/** What a handler gets besides its payload. */
export interface TaskContext {
  taskId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** How many times this attempt was put off by a RateLimitedError and resumed (0 on its first run). */
  deferrals: number;
  /** Fires on cancellation, on the per-task timeout and on shutdown; its reason says which. */
  signal: AbortSignal;
  /** Reports how far the attempt got: a percent (0-100; it never goes back within an attempt, a lower one counts as
   *  the highest so far) and, optionally, a message (≤ 1,024 characters) and details (a JSON object ≤ 4 KiB), shown by
   *  GetTask, StreamTaskStatus, `taskctl watch` and the console until the next update. The worker publishes at most
   *  one report per 250 ms: one that comes sooner waits for the interval's end unless a later one replaces it.
   *  Throws a RangeError naming the problem for a message or details that cannot be carried. */
  reportProgress(percent: number, message?: string, details?: Record<string, unknown>): void;
  /** The worker's logger with the task's id, type and attempt (pino: `ctx.log.info({ rows }, "imported")`); its
   *  lines carry the attempt's trace id like the worker's own, and are also kept with the task (task-log.ts). */
  readonly log: Logger;
  /** The outcomes of the tasks this one waited for (SubmitTaskRequest.depends_on), in their order: each one's id,
   *  state, and result (what its handler returned) or error; [] for a task without dependencies. Read from Redis on
   *  the first call of an attempt (Celery's chain hands the previous result on; here the handler asks). */
  dependencies(): Promise<DependencyOutcome[]>;
  /** Submits a task from this attempt (a child: fan-out; Celery's subtasks, BullMQ's jobs added by a processor),
   *  through the gateway at WORKER_GATEWAY_URL, with its validation, limits and errors. Once per key across the
   *  task's attempts: a retried attempt that submits the same children gets the same ids back (`deduplicated`), so
   *  submit children before work that may fail. The key is `request.key`, else the child's place among the attempt's
   *  children (submitTask and submitTasks number them together). The child records this task as its parent (GetTask's
   *  parent_task_id), continues its trace, and takes its priority unless it sets one; CancelTask with
   *  include_children cancels it with its parent. For a fan-in, submit a last child with `dependsOn` the others'
   *  ids. Rejects with a PermanentError for a request the gateway refuses (INVALID_ARGUMENT, FAILED_PRECONDITION,
   *  NOT_FOUND, RESOURCE_EXHAUSTED), and an Error otherwise (the gateway unreachable or shedding load: retried). The
   *  gateway's rate limit is waited out (up to 30 s a time, the heartbeat timeout held off meanwhile). */
  submitTask(request: ChildTaskRequest): Promise<SubmittedChild>;
  /** submitTask for a list, in SubmitTasks calls of up to WORKER_CHILD_BATCH_SIZE children (BullMQ's addBulk,
   *  Celery's group): one round trip per call instead of one per child. A request's `dependsOnBatchItems` names
   *  earlier requests of the list it waits for, by their place (from 0), so a fan-out and its fan-in go in one call.
   *  Resolves to the children in the list's order. Every request is checked before any is sent (a PermanentError
   *  naming `requests[i]`); should the gateway refuse some, the attempt fails with the first refusal (a
   *  PermanentError when one of them is), the others having been submitted: a retry is handed them again. */
  submitTasks(requests: readonly ChildBatchRequest[]): Promise<SubmittedChild[]>;
}

/**
 * A payload's schema: any Standard Schema (https://standardschema.dev), as zod (3.24+ and 4), valibot and arktype
 * schemas are; so a handler module loaded from WORKER_HANDLER_MODULES brings the validation library of its choice.
 */
export type PayloadSchema = StandardSchemaV1;

/** Where a handler runs: "none", on the worker's event loop with everything else (the default); "thread", in a
 *  worker thread of its own (handler-threads.ts): for work that keeps the CPU busy. */
export const HANDLER_ISOLATIONS = ["none", "thread"] as const;
export type HandlerIsolation = (typeof HANDLER_ISOLATIONS)[number];

/** One task type: its name, the schema of its payload, and the work. */
export interface TaskHandler<P extends PayloadSchema = PayloadSchema> {
  type: string;
  payload: P;
  /** How long one attempt of this type may run, when the task was not submitted with its own `timeout`: in place of
   *  the worker's TASK_TIMEOUT_MS (Celery's per-task time_limit, Temporal's per-activity start-to-close). */
  timeoutMs?: number;
  /** An attempt that reports no progress (ctx.reportProgress) for this long is aborted and fails as timed out:
   *  a long task's stuck attempt found in minutes, not at the end of its hours-long timeout (Temporal's heartbeat
   *  timeout). Counted from the attempt's start and from each call, published or not (calling with the same percent
   *  counts); 1 ms to 24 h. */
  heartbeatTimeoutMs?: number;
  /** The most attempts of a task of this type that was not submitted with its own max_attempts (1 to
   *  FLOW_MAX_DELIVER; Celery's max_retries + 1, Temporal's maximum attempts). */
  maxAttempts?: number;
  /** The wait after each failed attempt of a task of this type that was not submitted with its own retry_backoff,
   *  in place of FLOW_RETRY_DELAYS_MS (a handler's RetryAfterError still comes first). */
  retryBackoff?: RetryBackoff;
  /** At most this many tasks of the type run at once in one worker (WORKER_TYPE_CONCURRENCY's entry replaces it). */
  concurrency?: number;
  /** At most this many run at once across every worker (WORKER_TYPE_GLOBAL_CONCURRENCY's entry replaces it). */
  globalConcurrency?: number;
  /** At most this many starts per second across every worker, after a burst (WORKER_TYPE_RATES' entry replaces it;
   *  a module gives it as "N/UNIT[:BURST]", e.g. "10/s" or "100/m:10"). */
  rate?: TypeRate;
  /** "thread": each attempt runs in a worker thread (WORKER_THREADS of them at most), so that a handler that keeps
   *  the CPU busy (parsing, hashing, image work) cannot stall the worker's event loop: its heartbeats, which keep the
   *  delivery from being redelivered, and every other task it runs. A thread that does not stop at its abort is
   *  terminated. Only for handlers from WORKER_HANDLER_MODULES (the thread imports the module itself). */
  isolation?: HandlerIsolation;
  run(payload: StandardSchemaV1.InferOutput<P>, ctx: TaskContext): Promise<unknown> | unknown;
}

/** Declares a handler with its payload type inferred from its schema. */
export function defineHandler<P extends PayloadSchema>(handler: TaskHandler<P>): TaskHandler<P> {
  return handler;
}

/** The payload as its handler's schema makes it, or the problems, each with its field: "ms: Invalid input: …". */
export async function validatePayload(
  schema: PayloadSchema,
  payload: unknown,
): Promise<{ value: unknown } | { problems: string }> {
  const result = await schema["~standard"].validate(payload);
  if (!result.issues) return { value: result.value };
  const problems = result.issues.map((issue) => {
    const path = (issue.path ?? []).map((part) => String(typeof part === "object" ? part.key : part));
    return `${path.length > 0 ? path.join(".") : "(body)"}: ${issue.message}`;
  });
  return { problems: problems.join("; ") };
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

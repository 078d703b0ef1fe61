/**
 * Tasks a handler submits (ctx.submitTask): fan-out from a running task, as a Celery task calls `.delay()`, a BullMQ
 * processor adds jobs or a Temporal workflow starts a child. They go through the gateway's SubmitTask, so a child is
 * validated, limited, shed and authenticated as any submission is (one way in), and carries the attempt's trace
 * (the connect client sends `traceparent`).
 *
 * Exactly one child per key for the parent task: each call's idempotency key is derived from the parent's id and the
 * child's key (by default its place among the attempt's submissions, 1, 2, …), so an attempt that fails after
 * submitting and is retried gets the same children back (`deduplicated`), never a second set. Not from its
 * generation: a requeue (a stalled task sent again) is one, and must not double its fan-out; a replay is handed the
 * children it had too (each of them is replayed on its own if it failed).
 */
import { PermanentError, type Priority as PriorityName } from "@tm/flow";
import type { TaskLimitsMs } from "@tm/proto/client";

/** What a handler asks for: SubmitTaskRequest's most used fields, as plain values (a module imports nothing). */
export interface ChildTaskRequest {
  type: string;
  payload?: Record<string, unknown>;
  /** Names the child among its parent's: the same key on a later attempt returns the same child. 1 to 128 characters;
   *  default: its place among the attempt's submissions (1, 2, …), right for a handler that submits the same
   *  children in the same order each time. */
  key?: string;
  /** Default: the parent's. */
  priority?: PriorityName;
  /** Released this long after submission (ms). */
  delayMs?: number;
  /** Tasks it waits for (ids: other children, typically, for a fan-in task). */
  dependsOn?: string[];
  /** "all-finished": it runs once they all finished, whatever the outcome; default: all must succeed. */
  dependencyPolicy?: "all-succeeded" | "all-finished";
  metadata?: Record<string, string>;
  /** One attempt's limit (ms). */
  timeoutMs?: number;
  maxAttempts?: number;
  /** An attempt reporting no progress this long is aborted (ms). */
  heartbeatTimeoutMs?: number;
  /** Not run if not started this long after it was due (ms). */
  expiresAfterMs?: number;
  /** Kept this long once it SUCCEEDED (s, at least 60): a large fan-out's children need not stay as long as failures. */
  succeededRetentionSeconds?: number;
  /** The waits between its attempts (SubmitTaskRequest.retry_backoff, in ms). */
  retryBackoff?: TaskLimitsMs["retryBackoff"];
}

/** The child, and whether an earlier attempt had submitted it already. */
export interface SubmittedChild {
  taskId: string;
  deduplicated: boolean;
}

/** The task whose attempt submits. */
export interface ParentTask {
  taskId: string;
  priority: PriorityName;
}

/** Submits one child of `parent` with an idempotency key; the call ends with `signal` (the attempt's). */
export type ChildSubmitter = (
  parent: ParentTask,
  idempotencyKey: string,
  request: ChildTaskRequest,
  signal: AbortSignal,
) => Promise<SubmittedChild>;

export const MAX_CHILD_KEY_CHARS = 128;

const PRIORITY_NAMES: readonly PriorityName[] = ["high", "medium", "low"];

/** The idempotency key of a parent's child, by its own key or its place (`n`): the same for every attempt and
 *  generation of the parent; a key and a place never name the same child. */
export function childIdempotencyKey(
  parent: Pick<ParentTask, "taskId">,
  child: { key: string } | { n: number },
): string {
  const name = "key" in child ? `key:${child.key}` : `n:${child.n}`;
  return `child:${parent.taskId}:${name}`;
}

/** The problem with a request, named as the handler wrote it, or undefined. */
export function childRequestProblem(request: ChildTaskRequest): string | undefined {
  if (typeof request !== "object" || request === null) return "needs a request object ({ type, payload?, … })";
  if (typeof request.type !== "string" || request.type === "") return "type must be a task type (a string)";
  const { key, priority, delayMs, timeoutMs, maxAttempts, dependencyPolicy, retryBackoff } = request;
  const { heartbeatTimeoutMs, expiresAfterMs, succeededRetentionSeconds } = request;
  if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > MAX_CHILD_KEY_CHARS))
    return `key must be 1 to ${MAX_CHILD_KEY_CHARS} characters`;
  if (priority !== undefined && !PRIORITY_NAMES.includes(priority))
    return `priority must be "high", "medium" or "low" (got ${JSON.stringify(priority)})`;
  const numbers = { delayMs, timeoutMs, maxAttempts, heartbeatTimeoutMs, expiresAfterMs, succeededRetentionSeconds };
  for (const [name, value] of Object.entries(numbers)) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0))
      return `${name} must be a whole number ≥ 0 (got ${JSON.stringify(value)})`;
  }
  if (retryBackoff !== undefined) {
    if (typeof retryBackoff !== "object" || retryBackoff === null) return "retryBackoff must be { delayMs, … }";
    const { delayMs: wait, multiplier = 1, maxDelayMs, jitter = 0 } = retryBackoff;
    for (const [name, value] of Object.entries({ delayMs: wait, maxDelayMs })) {
      if ((name === "delayMs" || value !== undefined) && !(Number.isSafeInteger(value) && (value as number) >= 0))
        return `retryBackoff.${name} must be a whole number ≥ 0 (got ${JSON.stringify(value)})`;
    }
    for (const [name, value] of Object.entries({ multiplier, jitter })) {
      if (typeof value !== "number" || !Number.isFinite(value))
        return `retryBackoff.${name} must be a number (got ${JSON.stringify(value)})`;
    }
  }
  if (dependencyPolicy !== undefined && dependencyPolicy !== "all-succeeded" && dependencyPolicy !== "all-finished")
    return `dependencyPolicy must be "all-succeeded" or "all-finished" (got ${JSON.stringify(dependencyPolicy)})`;
  return undefined;
}

/**
 * Submits children through the gateway at `baseUrl` (WORKER_GATEWAY_URL), as the caller `apiKey` names. The client
 * (connect, the generated messages) is loaded on the first child: a worker whose handlers submit none never holds it
 * (~3 MB of RSS, docs/PERFORMANCE.md).
 */
export function gatewayChildSubmitter(options: {
  baseUrl: string;
  apiKey?: string;
  onRateLimited?: (waitMs: number) => void;
}): ChildSubmitter {
  let loaded: Promise<ChildSubmitter> | undefined;
  return async (parent, idempotencyKey, request, signal) => {
    loaded ??= import("./gateway-child-submitter.js").then(({ grpcChildSubmitter }) => grpcChildSubmitter(options));
    return (await loaded)(parent, idempotencyKey, request, signal);
  };
}

/** Without WORKER_GATEWAY_URL: every call fails, saying what to set (retried: the setting can be added). */
export const unconfiguredChildSubmitter: ChildSubmitter = async (_parent, _key, request) => {
  throw new Error(
    `ctx.submitTask(${JSON.stringify(request?.type)}) needs WORKER_GATEWAY_URL on this worker (the gateway's gRPC ` +
      "address, e.g. http://envoy:50051)",
  );
};

/** One attempt's ctx.submitTask: numbers its calls for their default keys. */
export function attemptSubmitTask(
  submit: ChildSubmitter,
  parent: ParentTask,
  signal: AbortSignal,
): (request: ChildTaskRequest) => Promise<SubmittedChild> {
  let calls = 0;
  return async (request) => {
    // Numbered at the call, before anything is awaited: children submitted together (Promise.all over a list) keep
    // the list's order on every attempt.
    calls += 1;
    const problem = childRequestProblem(request);
    if (problem) throw new PermanentError(`ctx.submitTask: ${problem}`);
    signal.throwIfAborted();
    const child = request.key === undefined ? { n: calls } : { key: request.key };
    return submit(parent, childIdempotencyKey(parent, child), request, signal);
  };
}

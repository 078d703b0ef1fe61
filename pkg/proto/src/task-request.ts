/**
 * A task to submit as plain values (milliseconds, a Date, priority names), and the SubmitTaskRequest made of it: what
 * a program embedding TaskManagerClient and a handler's ctx.submitTask write, instead of protobuf Durations and enum
 * numbers. taskRequestProblem names a field the gateway would refuse before anything is sent.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  concurrencyKeyProblem,
  concurrencyLimitProblem,
  fairnessKeyProblem,
  fairnessWeightProblem,
} from "./concurrency-key.js";
import {
  DependencyPolicy,
  IdempotencyKeyReuse,
  Priority,
  type SubmitTaskRequest,
  type SubmitTaskRequestSchema,
} from "./gen/taskmanager/v1/taskmanager_pb.js";
import { type TaskLimitsMs, taskLimitFields } from "./task-limits.js";

export type PriorityName = "high" | "medium" | "low";

export interface TaskRequest {
  type: string;
  /** A JSON object: what the handler is given (default {}). */
  payload?: Record<string, unknown>;
  /** Default: the gateway's (medium). */
  priority?: PriorityName;
  metadata?: Record<string, string>;
  /** Released this long after submission (ms). */
  delayMs?: number;
  /** Released at this time (not with delayMs). */
  runAt?: Date;
  /** One attempt's limit (ms). */
  timeoutMs?: number;
  maxAttempts?: number;
  /** An attempt reporting no progress this long is aborted (ms). */
  heartbeatTimeoutMs?: number;
  /** Not run if not started this long after it was due (ms). */
  expiresAfterMs?: number;
  /** Kept this long once it SUCCEEDED (s, at least 60). */
  succeededRetentionSeconds?: number;
  /** The waits between its attempts (ms; unset multiplier, max delay, jitter: 1, 1 h, 0). */
  retryBackoff?: TaskLimitsMs["retryBackoff"];
  /** Tasks it waits for, by id. */
  dependsOn?: string[];
  /** "all-finished": it runs once they all finished, whatever the outcome; default: all must succeed. */
  dependencyPolicy?: "all-succeeded" | "all-finished";
  /** At most `limit` tasks of `key` in the pipeline at once (from their release to their end); the others wait
   *  PENDING, in the order they were submitted (one tenant's tasks, one account's). key: 1 to 128 letters, digits or
   *  `_ . : @ / = + -`; limit: 1 to 1,000. */
  concurrency?: { key: string; limit: number };
  /** Its tenant within its type's fair share: while tasks of the type wait for the gateway's fairness window, each
   *  key with tasks waiting is served in proportion to its weight (1 when unset), whatever its backlog. key: as
   *  concurrency's; weight: 1 to 1,000. */
  fairness?: { key: string; weight?: number };
}

/** A submission's own fields besides the task: its idempotency key, and how the key may be used again. */
export interface SubmissionOptions {
  /** At most one task per key: submitting again answers the first task's id (`deduplicated`). 1 to 256 characters. */
  idempotencyKey?: string;
  /** "after-finished": the key names one unfinished task; once it finished, the next submission makes a new one.
   *  "replace-waiting": a submission replaces the payload, options (priority, limits, keys) and time of the key's
   *  task while it still waits (a debounce; with delayMs or runAt). Default: the key names its first task for as long as the gateway keeps it. */
  keyReuse?: "after-finished" | "replace-waiting";
}

const PRIORITIES: Record<PriorityName, Priority> = { high: Priority.HIGH, medium: Priority.MEDIUM, low: Priority.LOW };
const KEY_REUSES = {
  "after-finished": IdempotencyKeyReuse.AFTER_FINISHED,
  "replace-waiting": IdempotencyKeyReuse.REPLACE_WAITING,
} as const;

/** The problem with a request, naming its field as the caller wrote it, or undefined. */
export function taskRequestProblem(request: TaskRequest & SubmissionOptions): string | undefined {
  if (typeof request !== "object" || request === null) return "needs a request object ({ type, payload?, … })";
  if (typeof request.type !== "string" || request.type === "") return "type must be a task type (a string)";
  const { payload, priority, delayMs, runAt, timeoutMs, maxAttempts, dependencyPolicy, retryBackoff } = request;
  const { heartbeatTimeoutMs, expiresAfterMs, succeededRetentionSeconds, metadata, dependsOn } = request;
  if (payload !== undefined && !isPlainObject(payload)) return "payload must be a JSON object ({ … })";
  if (priority !== undefined && !Object.hasOwn(PRIORITIES, priority))
    return `priority must be "high", "medium" or "low" (got ${JSON.stringify(priority)})`;
  const numbers = { delayMs, timeoutMs, maxAttempts, heartbeatTimeoutMs, expiresAfterMs, succeededRetentionSeconds };
  for (const [name, value] of Object.entries(numbers)) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0))
      return `${name} must be a whole number ≥ 0 (got ${JSON.stringify(value)})`;
  }
  if (runAt !== undefined) {
    if (!(runAt instanceof Date) || Number.isNaN(runAt.getTime())) return "runAt must be a valid Date";
    if (delayMs !== undefined) return "give delayMs or runAt, not both";
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
  if (dependsOn !== undefined && !(Array.isArray(dependsOn) && dependsOn.every((id) => typeof id === "string")))
    return "dependsOn must be a list of task ids";
  const { concurrency } = request;
  if (concurrency !== undefined) {
    if (typeof concurrency !== "object" || concurrency === null) return "concurrency must be { key, limit }";
    const keyProblem = concurrencyKeyProblem(concurrency.key);
    if (keyProblem) return `concurrency.key ${keyProblem}`;
    const limitProblem = concurrencyLimitProblem(concurrency.limit);
    if (limitProblem) return `concurrency.limit ${limitProblem}`;
  }
  const { fairness } = request;
  if (fairness !== undefined) {
    if (typeof fairness !== "object" || fairness === null) return "fairness must be { key, weight? }";
    const keyProblem = fairnessKeyProblem(fairness.key);
    if (keyProblem) return `fairness.key ${keyProblem}`;
    const weightProblem = fairness.weight === undefined ? undefined : fairnessWeightProblem(fairness.weight);
    if (weightProblem) return `fairness.weight ${weightProblem}`;
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) return "metadata must be an object of strings";
    const bad = Object.entries(metadata).find(([, value]) => typeof value !== "string");
    if (bad) return `metadata.${bad[0]} must be a string (got ${JSON.stringify(bad[1])})`;
  }
  const { idempotencyKey, keyReuse } = request;
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== "string" || idempotencyKey === ""))
    return "idempotencyKey must be a non-empty string";
  if (keyReuse !== undefined) {
    if (!Object.hasOwn(KEY_REUSES, keyReuse))
      return `keyReuse must be "after-finished" or "replace-waiting" (got ${JSON.stringify(keyReuse)})`;
    if (idempotencyKey === undefined) return "keyReuse needs an idempotencyKey";
  }
  return undefined;
}

/** The SubmitTaskRequest of a request (check it with taskRequestProblem first). Unset fields are left for the
 *  gateway's defaults. */
export function submitTaskRequestOf(
  request: TaskRequest & SubmissionOptions,
): MessageInitShape<typeof SubmitTaskRequestSchema> {
  const { delayMs, runAt, dependsOn, dependencyPolicy, succeededRetentionSeconds, concurrency, fairness } = request;
  return {
    type: request.type,
    payload: (request.payload ?? {}) as SubmitTaskRequest["payload"],
    ...(request.priority ? { priority: PRIORITIES[request.priority] } : {}),
    ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}),
    ...(request.keyReuse ? { idempotencyKeyReuse: KEY_REUSES[request.keyReuse] } : {}),
    metadata: { ...request.metadata },
    ...taskLimitFields(request),
    ...(delayMs ? { schedule: { case: "delay", value: durationFromMs(delayMs) } } : {}),
    ...(runAt ? { schedule: { case: "runAt", value: timestampFromDate(runAt) } } : {}),
    ...(dependsOn?.length ? { dependsOn: [...dependsOn] } : {}),
    ...(dependencyPolicy === "all-finished" ? { dependencyPolicy: DependencyPolicy.ALL_FINISHED } : {}),
    ...(succeededRetentionSeconds ? { succeededRetention: durationFromMs(succeededRetentionSeconds * 1_000) } : {}),
    ...(concurrency ? { concurrencyKey: concurrency.key, concurrencyLimit: concurrency.limit } : {}),
    ...(fairness ? { fairnessKey: fairness.key, fairnessWeight: fairness.weight ?? 0 } : {}),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Checks of what a client sent. A malformed field is INVALID_ARGUMENT; a payload over the operator's size limit
 * (GATEWAY_MAX_PAYLOAD_BYTES) is RESOURCE_EXHAUSTED, the contract's code for limits and the one gRPC itself gives an
 * oversized message. Either way the field is named, so a client's mistake is never reported as a server error.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BUILT_IN_ONLY,
  DEFAULT_FLOW_SETTINGS,
  MAX_EXPIRES_AFTER_MS,
  MAX_RETRY_BACKOFF_MS,
  MAX_TASK_TIMEOUT_MS,
  type Priority,
  type RetryBackoff,
  TaskId,
  type TaskTypes,
} from "@tm/flow";
import {
  CONCURRENCY_LIMIT_MAX,
  concurrencyKeyProblem,
  DependencyPolicy,
  FAIRNESS_WEIGHT_MAX,
  fairnessKeyProblem,
  IdempotencyKeyReuse,
  type RetryBackoff as RetryBackoffMessage,
  type SubmitTaskRequest,
} from "@tm/proto";
import type { TaskRecord } from "@tm/store";
import { priorityFromProto } from "./mapping.js";

export const LIMITS = {
  metadataEntries: 32,
  metadataKeyChars: 128,
  metadataValueChars: 1024,
  idempotencyKeyChars: 256,
} as const;

/** A task's concurrency and fairness fields, as its record has them (@tm/store TaskRecord): the key and limit or
 *  weight from the request (a fairness weight the request left 0 is 1), the scope and window set by the gateway
 *  (task-isolation.ts; its type's GATEWAY_FAIRNESS_WINDOWS, else GATEWAY_FAIRNESS_WINDOW), never by the request. */
type KeyFields = Pick<
  TaskRecord,
  | "concurrencyKey"
  | "concurrencyLimit"
  | "concurrencyScope"
  | "fairnessKey"
  | "fairnessWeight"
  | "fairnessScope"
  | "fairnessWindow"
>;

export interface ValidSubmission extends KeyFields {
  type: string;
  payload: JsonObject;
  priority: Priority;
  metadata: Record<string, string>;
  idempotencyKey: string | undefined;
  /** "after-finished": a key whose task has finished names a new task; "replace-waiting": that too, and a key whose
   *  task waits for its time has it replaced (`idempotency_key_reuse`); absent: never. */
  idempotencyKeyReuse?: "after-finished" | "replace-waiting";
  /** The handler timeout per attempt, when the request set one (`timeout`). */
  timeoutMs?: number;
  /** The most attempts, when the request set fewer than the pipeline allows (`max_attempts`). */
  maxAttempts?: number;
  /** The wait after a failed attempt, when the request set one (`retry_backoff`). */
  retryBackoff?: RetryBackoff;
  /** Not run if not started this long after it was due, when the request set it (`expires_after`). */
  expiresAfterMs?: number;
  /** An attempt reporting no progress for this long is aborted, when the request set it (`heartbeat_timeout`). */
  heartbeatTimeoutMs?: number;
  /** The tasks it waits for (`depends_on`), when the request named any: distinct task ids. */
  dependsOn?: string[];
  /** "all-finished": it runs once every dependency finished, whatever the outcome (`dependency_policy`); absent: all
   *  must succeed. */
  dependencyPolicy?: "all-finished";
  /** How long it is kept once it SUCCEEDED (s), when the request set it (`succeeded_retention`). */
  succeededRetentionSeconds?: number;
  /** The task whose handler submitted it (`parent_task_id`), when the request named one. */
  parentTaskId?: string;
}

/** The shortest succeeded_retention: a client that saw SUCCEEDED must still find the result. */
export const MIN_SUCCEEDED_RETENTION_SECONDS = 60;
/** The longest: TASK_RETENTION_SECONDS's maximum (a longer one than the deployment's own keeps it that long). */
export const MAX_SUCCEEDED_RETENTION_SECONDS = 7_776_000;

/** The most tasks one task may wait for (`depends_on`). */
export const MAX_DEPENDENCIES = 20;

/** A task type a request names: one the deployment runs (built in or in TASK_TYPES), or INVALID_ARGUMENT naming
 *  `field` and listing them. */
export function checkTaskType(field: string, type: string, taskTypes: TaskTypes): string {
  if (!type) throw invalid(field, `is required (known: ${taskTypes})`);
  if (!taskTypes.has(type)) {
    throw invalid(field, `unknown task type ${JSON.stringify(type.slice(0, 100))} (known: ${taskTypes})`);
  }
  return type;
}

export function invalid(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

/** A configured size limit was exceeded: RESOURCE_EXHAUSTED, still naming the field. */
export function overLimit(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.ResourceExhausted);
}

/** What a submission carries: SubmitTaskRequest's fields, which SubmitTaskAndStreamStatusRequest repeats (all but
 *  depends_on_batch_items, a SubmitTasks call's). */
export type SubmissionRequest = Omit<SubmitTaskRequest, "$typeName" | "$unknown" | "dependsOnBatchItems"> &
  Partial<Pick<SubmitTaskRequest, "dependsOnBatchItems">>;

/**
 * `maxDeliver` is the pipeline's delivery limit (FLOW_MAX_DELIVER): a task may ask for fewer attempts, not more (its
 * messages' consumers would not deliver it again).
 */
export function validateSubmission(
  request: SubmissionRequest,
  maxPayloadBytes: number,
  maxDeliver: number = DEFAULT_FLOW_SETTINGS.maxDeliver,
  taskTypes: TaskTypes = BUILT_IN_ONLY,
): ValidSubmission {
  checkTaskType("type", request.type, taskTypes);

  // A Struct is always a JSON object; an absent one means "no parameters".
  const payload = request.payload ?? {};
  const payloadBytes = Buffer.byteLength(JSON.stringify(payload));
  if (payloadBytes > maxPayloadBytes) {
    throw overLimit("payload", `${payloadBytes} bytes of JSON exceeds the limit of ${maxPayloadBytes} bytes`);
  }

  const priority = priorityFromProto(request.priority);
  if (!priority) {
    throw invalid("priority", `unknown value ${request.priority} (use PRIORITY_LOW, PRIORITY_MEDIUM or PRIORITY_HIGH)`);
  }

  const entries = Object.entries(request.metadata);
  if (entries.length > LIMITS.metadataEntries) {
    throw invalid("metadata", `${entries.length} entries exceeds the limit of ${LIMITS.metadataEntries}`);
  }
  for (const [key, value] of entries) {
    if (key.length === 0 || key.length > LIMITS.metadataKeyChars) {
      throw invalid("metadata", `key must be 1-${LIMITS.metadataKeyChars} characters (got ${key.length})`);
    }
    if (value.length > LIMITS.metadataValueChars) {
      throw invalid(`metadata[${key}]`, `value exceeds ${LIMITS.metadataValueChars} characters`);
    }
  }

  if (request.idempotencyKey.length > LIMITS.idempotencyKeyChars) {
    throw invalid("idempotency_key", `exceeds ${LIMITS.idempotencyKeyChars} characters`);
  }
  const idempotencyKeyReuse = idempotencyKeyReuseOf(
    request.idempotencyKeyReuse,
    request.idempotencyKey !== "",
    request.schedule.case !== undefined,
  );

  const timeoutMs = request.timeout ? timeoutMsOf("timeout", request.timeout) : undefined;
  const heartbeatTimeoutMs = request.heartbeatTimeout
    ? timeoutMsOf("heartbeat_timeout", request.heartbeatTimeout, "its type's, else none")
    : undefined;
  if (request.maxAttempts > maxDeliver) {
    throw invalid(
      "max_attempts",
      `${request.maxAttempts} exceeds the pipeline's ${maxDeliver} deliveries per message (FLOW_MAX_DELIVER); ` +
        "use 1 to " +
        maxDeliver +
        ", or 0 for the default (its type's, else all of them)",
    );
  }
  const retryBackoff = request.retryBackoff ? retryBackoffOf(request.retryBackoff) : undefined;
  const expiresAfterMs = request.expiresAfter ? expiresAfterMsOf(request.expiresAfter) : undefined;
  if (request.dependsOnBatchItems?.length) {
    // SubmitTasks resolves them into depends_on before validating (batch-dependencies.ts).
    throw invalid("depends_on_batch_items", "names tasks of the same SubmitTasks call: SubmitTask takes depends_on");
  }
  const dependsOn = dependenciesOf(request.dependsOn);
  const dependencyPolicy = dependencyPolicyOf(request.dependencyPolicy, dependsOn.length > 0);
  const succeededRetentionSeconds = request.succeededRetention
    ? succeededRetentionSecondsOf(request.succeededRetention)
    : undefined;
  // Its form only: the parent is a link for people to follow, not a claim anything is decided on.
  const parentTaskId = request.parentTaskId || undefined;
  if (parentTaskId !== undefined && !TaskId.safeParse(parentTaskId).success) {
    throw invalid("parent_task_id", `must be a task id (a UUID), got "${parentTaskId.slice(0, 64)}"`);
  }

  return {
    type: request.type,
    payload,
    priority,
    metadata: { ...request.metadata },
    idempotencyKey: request.idempotencyKey || undefined,
    ...(idempotencyKeyReuse ? { idempotencyKeyReuse } : {}),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }),
    // Stored as asked, FLOW_MAX_DELIVER too: unset (0) is not the same, since a type's own maxAttempts (its handler's)
    // applies only to a task that did not ask.
    ...(request.maxAttempts > 0 ? { maxAttempts: request.maxAttempts } : {}),
    ...(retryBackoff ? { retryBackoff } : {}),
    ...(expiresAfterMs === undefined ? {} : { expiresAfterMs }),
    ...(dependsOn.length > 0 ? { dependsOn } : {}),
    ...(dependencyPolicy ? { dependencyPolicy } : {}),
    ...(succeededRetentionSeconds === undefined ? {} : { succeededRetentionSeconds }),
    ...(parentTaskId === undefined ? {} : { parentTaskId }),
    ...concurrencyOf(request),
    ...fairnessOf(request),
  };
}

/** `fairness_key` and `fairness_weight`: the key's form (as a concurrency key's), the weight's range (0: 1); a weight
 *  needs a key. */
function fairnessOf(
  request: Pick<SubmitTaskRequest, "fairnessKey" | "fairnessWeight">,
): Pick<ValidSubmission, "fairnessKey" | "fairnessWeight"> {
  const { fairnessKey: key, fairnessWeight: weight } = request;
  if (!key && !weight) return {};
  if (!key) throw invalid("fairness_key", `is required with fairness_weight (${weight})`);
  const keyProblem = fairnessKeyProblem(key);
  if (keyProblem) throw invalid("fairness_key", keyProblem);
  if (weight > FAIRNESS_WEIGHT_MAX) {
    throw invalid("fairness_weight", `${weight} exceeds the maximum of ${FAIRNESS_WEIGHT_MAX}`);
  }
  return { fairnessKey: key, fairnessWeight: weight || 1 };
}

/** `concurrency_key` and `concurrency_limit`: both or neither; the key's form (it names Redis keys), the limit's range. */
function concurrencyOf(
  request: Pick<SubmitTaskRequest, "concurrencyKey" | "concurrencyLimit">,
): Pick<ValidSubmission, "concurrencyKey" | "concurrencyLimit"> {
  const { concurrencyKey: key, concurrencyLimit: limit } = request;
  if (!key && !limit) return {};
  if (!key) throw invalid("concurrency_key", `is required with concurrency_limit (${limit})`);
  if (!limit) throw invalid("concurrency_limit", `is required with concurrency_key: 1 to ${CONCURRENCY_LIMIT_MAX}`);
  const keyProblem = concurrencyKeyProblem(key);
  if (keyProblem) throw invalid("concurrency_key", keyProblem);
  if (limit > CONCURRENCY_LIMIT_MAX) {
    throw invalid("concurrency_limit", `${limit} exceeds the maximum of ${CONCURRENCY_LIMIT_MAX}`);
  }
  return { concurrencyKey: key, concurrencyLimit: limit };
}

/** `succeeded_retention`: 60 s to 90 days, in whole seconds (a fraction rounds up). */
function succeededRetentionSecondsOf(retention: Duration): number {
  const seconds = Math.ceil(durationMsOf("succeeded_retention", retention) / 1_000);
  if (seconds < MIN_SUCCEEDED_RETENTION_SECONDS)
    throw invalid(
      "succeeded_retention",
      `${seconds} s is under the minimum of ${MIN_SUCCEEDED_RETENTION_SECONDS} s (a client that saw SUCCEEDED must still find the result)`,
    );
  if (seconds > MAX_SUCCEEDED_RETENTION_SECONDS)
    throw invalid(
      "succeeded_retention",
      `${seconds} s exceeds the maximum of ${MAX_SUCCEEDED_RETENTION_SECONDS} s (90 days)`,
    );
  return seconds;
}

/** `idempotency_key_reuse`: "after-finished", "replace-waiting" (with `run_at` or `delay`), or undefined for never
 *  (the default); only with `idempotency_key`. */
function idempotencyKeyReuseOf(
  reuse: IdempotencyKeyReuse,
  hasKey: boolean,
  delayed: boolean,
): ValidSubmission["idempotencyKeyReuse"] {
  switch (reuse) {
    case IdempotencyKeyReuse.UNSPECIFIED:
      return undefined;
    case IdempotencyKeyReuse.AFTER_FINISHED:
    case IdempotencyKeyReuse.REPLACE_WAITING:
      if (!hasKey) throw invalid("idempotency_key_reuse", "applies only with an idempotency_key");
      if (reuse === IdempotencyKeyReuse.AFTER_FINISHED) return "after-finished";
      if (!delayed) {
        throw invalid(
          "idempotency_key_reuse",
          "REPLACE_WAITING replaces a task waiting for its time: the submission needs run_at or delay",
        );
      }
      return "replace-waiting";
    default:
      throw invalid(
        "idempotency_key_reuse",
        `must be IDEMPOTENCY_KEY_REUSE_UNSPECIFIED, _AFTER_FINISHED or _REPLACE_WAITING (got ${reuse})`,
      );
  }
}

/** `dependency_policy`: "all-finished", or undefined for all-succeeded (the default); only with `depends_on`. */
function dependencyPolicyOf(policy: DependencyPolicy, hasDependencies: boolean): "all-finished" | undefined {
  switch (policy) {
    case DependencyPolicy.UNSPECIFIED:
    case DependencyPolicy.ALL_SUCCEEDED:
      return undefined;
    case DependencyPolicy.ALL_FINISHED:
      if (!hasDependencies) throw invalid("dependency_policy", "applies only with depends_on");
      return "all-finished";
    default:
      throw invalid(
        "dependency_policy",
        `must be DEPENDENCY_POLICY_ALL_SUCCEEDED or DEPENDENCY_POLICY_ALL_FINISHED (got ${policy})`,
      );
  }
}

/** `depends_on`: up to MAX_DEPENDENCIES distinct task ids (whether they exist is the caller's to check). */
function dependenciesOf(ids: readonly string[]): string[] {
  if (ids.length > MAX_DEPENDENCIES) {
    throw invalid("depends_on", `${ids.length} tasks exceeds the limit of ${MAX_DEPENDENCIES}`);
  }
  for (const [i, id] of ids.entries()) {
    if (!TaskId.safeParse(id).success)
      throw invalid(`depends_on[${i}]`, `must be a task id (a UUID), got "${id.slice(0, 64)}"`);
    if (ids.indexOf(id) !== i) throw invalid(`depends_on[${i}]`, `${id} is named twice`);
  }
  return [...ids];
}

/** An expiry from 1 ms to MAX_EXPIRES_AFTER_MS (7 days, the task record's lifetime), in whole milliseconds. */
function expiresAfterMsOf(expiresAfter: Duration): number {
  const ms = durationMsOf("expires_after", expiresAfter);
  if (ms === 0) throw invalid("expires_after", "must be at least 1 ms (leave it unset for a task that never expires)");
  if (ms > MAX_EXPIRES_AFTER_MS) {
    throw invalid(
      "expires_after",
      `${expiresAfter.seconds} s exceeds the maximum of ${MAX_EXPIRES_AFTER_MS / 1_000} s (7 days, as long as a task is kept)`,
    );
  }
  return ms;
}

const MAX_BACKOFF_TEXT = `${MAX_RETRY_BACKOFF_MS / 1_000} s (1 h)`;

/** A task's retry backoff, each field checked and named (`retry_backoff.delay`…); unset ones get their defaults. */
export function retryBackoffOf(backoff: RetryBackoffMessage): RetryBackoff {
  const field = "retry_backoff";
  if (!backoff.delay)
    throw invalid(`${field}.delay`, "is required (the wait after the first failed attempt; 0 s: at once)");
  const delayMs = durationMsOf(`${field}.delay`, backoff.delay);
  if (delayMs > MAX_RETRY_BACKOFF_MS) {
    throw invalid(`${field}.delay`, `${delayMs / 1_000} s exceeds the maximum of ${MAX_BACKOFF_TEXT}`);
  }
  const multiplier = backoff.multiplier === 0 ? 1 : backoff.multiplier;
  if (!(multiplier >= 1 && multiplier <= 100)) {
    throw invalid(`${field}.multiplier`, `must be from 1 to 100 (0 or unset: 1), not ${backoff.multiplier}`);
  }
  const maxDelayMs = backoff.maxDelay ? durationMsOf(`${field}.max_delay`, backoff.maxDelay) : MAX_RETRY_BACKOFF_MS;
  if (maxDelayMs > MAX_RETRY_BACKOFF_MS) {
    throw invalid(`${field}.max_delay`, `${maxDelayMs / 1_000} s exceeds the maximum of ${MAX_BACKOFF_TEXT}`);
  }
  if (maxDelayMs < Math.max(delayMs, 1)) {
    throw invalid(
      `${field}.max_delay`,
      `${maxDelayMs} ms is shorter than delay (${delayMs} ms); leave it unset for ${MAX_BACKOFF_TEXT}`,
    );
  }
  if (!(backoff.jitter >= 0 && backoff.jitter <= 1)) {
    throw invalid(`${field}.jitter`, `must be from 0 to 1 (a fraction of each wait), not ${backoff.jitter}`);
  }
  return { delayMs, multiplier, maxDelayMs, jitter: backoff.jitter };
}

/**
 * A request's google.protobuf.Duration `field` in whole milliseconds (a fraction rounded up); INVALID_ARGUMENT naming
 * the field when it is malformed or negative.
 */
export function durationMsOf(field: string, { seconds, nanos }: Duration): number {
  if (nanos <= -1_000_000_000 || nanos >= 1_000_000_000) throw invalid(field, "nanos must be within ±999,999,999");
  if (seconds < 0n || nanos < 0) throw invalid(field, "must not be negative");
  return Number(seconds) * 1_000 + Math.ceil(nanos / 1_000_000);
}

/** A handler timeout (`field`: timeout or heartbeat_timeout) from 1 ms to MAX_TASK_TIMEOUT_MS, in whole milliseconds
 *  (rounded up). */
function timeoutMsOf(field: string, timeout: Duration, unset = "the worker's default"): number {
  const ms = durationMsOf(field, timeout);
  if (ms === 0) throw invalid(field, `must be at least 1 ms (leave it unset for ${unset})`);
  if (ms > MAX_TASK_TIMEOUT_MS) {
    throw invalid(field, `${timeout.seconds} s exceeds the maximum of ${MAX_TASK_TIMEOUT_MS / 1_000} s (24 h)`);
  }
  return ms;
}

/** A task id from a request, or INVALID_ARGUMENT naming the field. */
export function parseTaskId(value: string): string {
  if (!TaskId.safeParse(value).success) throw invalid("task_id", "must be a UUID");
  return value;
}

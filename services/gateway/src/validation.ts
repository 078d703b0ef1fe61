/**
 * Checks of what a client sent. A malformed field is INVALID_ARGUMENT; a payload over the operator's size limit
 * (GATEWAY_MAX_PAYLOAD_BYTES) is RESOURCE_EXHAUSTED, the contract's code for limits and the one gRPC itself gives an
 * oversized message. Either way the field is named, so a client's mistake is never reported as a server error.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { DEFAULT_FLOW_SETTINGS, KNOWN_TASK_TYPES, MAX_TASK_TIMEOUT_MS, type Priority, TaskId } from "@tm/flow";
import type { SubmitTaskRequest } from "@tm/proto";
import { priorityFromProto } from "./mapping.js";

/** The worker's handler registry (the contract's task types). */
export { KNOWN_TASK_TYPES };

export const LIMITS = {
  metadataEntries: 32,
  metadataKeyChars: 128,
  metadataValueChars: 1024,
  idempotencyKeyChars: 256,
} as const;

export interface ValidSubmission {
  type: string;
  payload: JsonObject;
  priority: Priority;
  metadata: Record<string, string>;
  idempotencyKey: string | undefined;
  /** The handler timeout per attempt, when the request set one (`timeout`). */
  timeoutMs?: number;
  /** The most attempts, when the request set fewer than the pipeline allows (`max_attempts`). */
  maxAttempts?: number;
}

export function invalid(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
}

/** A configured size limit was exceeded: RESOURCE_EXHAUSTED, still naming the field. */
export function overLimit(field: string, problem: string): ConnectError {
  return new ConnectError(`${field}: ${problem}`, Code.ResourceExhausted);
}

/** What a submission carries: SubmitTaskRequest's fields, which SubmitTaskAndStreamStatusRequest repeats. */
export type SubmissionRequest = Omit<SubmitTaskRequest, "$typeName" | "$unknown">;

/**
 * `maxDeliver` is the pipeline's delivery limit (FLOW_MAX_DELIVER): a task may ask for fewer attempts, not more (its
 * messages' consumers would not deliver it again).
 */
export function validateSubmission(
  request: SubmissionRequest,
  maxPayloadBytes: number,
  maxDeliver: number = DEFAULT_FLOW_SETTINGS.maxDeliver,
): ValidSubmission {
  const known = KNOWN_TASK_TYPES.join(", ");
  if (!request.type) throw invalid("type", `is required (known: ${known})`);
  if (!(KNOWN_TASK_TYPES as readonly string[]).includes(request.type)) {
    throw invalid("type", `unknown task type ${JSON.stringify(request.type.slice(0, 100))} (known: ${known})`);
  }

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

  const timeoutMs = request.timeout ? timeoutMsOf(request.timeout) : undefined;
  if (request.maxAttempts > maxDeliver) {
    throw invalid(
      "max_attempts",
      `${request.maxAttempts} exceeds the pipeline's ${maxDeliver} deliveries per message (FLOW_MAX_DELIVER); ` +
        "use 1 to " +
        maxDeliver +
        ", or 0 for all of them",
    );
  }

  return {
    type: request.type,
    payload,
    priority,
    metadata: { ...request.metadata },
    idempotencyKey: request.idempotencyKey || undefined,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    // The pipeline's own limit is the default: storing it would only hide that the client left it unset.
    ...(request.maxAttempts > 0 && request.maxAttempts < maxDeliver ? { maxAttempts: request.maxAttempts } : {}),
  };
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

/** A handler timeout from 1 ms to MAX_TASK_TIMEOUT_MS, in whole milliseconds (rounded up). */
function timeoutMsOf(timeout: Duration): number {
  const ms = durationMsOf("timeout", timeout);
  if (ms === 0) throw invalid("timeout", "must be at least 1 ms (leave it unset for the worker's default)");
  if (ms > MAX_TASK_TIMEOUT_MS) {
    throw invalid("timeout", `${timeout.seconds} s exceeds the maximum of ${MAX_TASK_TIMEOUT_MS / 1_000} s (24 h)`);
  }
  return ms;
}

/** A task id from a request, or INVALID_ARGUMENT naming the field. */
export function parseTaskId(value: string): string {
  if (!TaskId.safeParse(value).success) throw invalid("task_id", "must be a UUID");
  return value;
}

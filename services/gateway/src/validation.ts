/**
 * Checks of what a client sent. A malformed field is INVALID_ARGUMENT; a payload over the operator's size limit
 * (GATEWAY_MAX_PAYLOAD_BYTES) is RESOURCE_EXHAUSTED, the contract's code for limits and the one gRPC itself gives an
 * oversized message. Either way the field is named, so a client's mistake is never reported as a server error.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { KNOWN_TASK_TYPES, type Priority, TaskId } from "@tm/flow";
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

export function validateSubmission(request: SubmissionRequest, maxPayloadBytes: number): ValidSubmission {
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

  return {
    type: request.type,
    payload,
    priority,
    metadata: { ...request.metadata },
    idempotencyKey: request.idempotencyKey || undefined,
  };
}

/** A task id from a request, or INVALID_ARGUMENT naming the field. */
export function parseTaskId(value: string): string {
  if (!TaskId.safeParse(value).success) throw invalid("task_id", "must be a UUID");
  return value;
}

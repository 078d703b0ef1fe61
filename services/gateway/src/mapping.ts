/**
 * Conversions between what the pipeline stores (state names, priority names, ISO timestamps) and the proto enums
 * and well-known types the gRPC API speaks. Proto enums stay inside the gateway; messages use the names.
 */
import type { JsonObject, JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Priority as FlowPriority, TaskState as FlowTaskState } from "@tm/flow";
import { DependencyPolicy, Priority, TaskState, type TaskStatusSchema } from "@tm/proto";
import type { StoredStatus, TaskRecord } from "@tm/store";

const STATE_TO_PROTO: Record<FlowTaskState, TaskState> = {
  PENDING: TaskState.PENDING,
  INGESTED: TaskState.INGESTED,
  SCHEDULED: TaskState.SCHEDULED,
  RUNNING: TaskState.RUNNING,
  SUCCEEDED: TaskState.SUCCEEDED,
  FAILED: TaskState.FAILED,
  CANCELLED: TaskState.CANCELLED,
};

const PRIORITY_TO_PROTO: Record<FlowPriority, Priority> = {
  high: Priority.HIGH,
  medium: Priority.MEDIUM,
  low: Priority.LOW,
};

export function stateToProto(state: FlowTaskState): TaskState {
  return STATE_TO_PROTO[state];
}

export function priorityToProto(priority: FlowPriority): Priority {
  return PRIORITY_TO_PROTO[priority] ?? Priority.UNSPECIFIED;
}

/** The priority a request asked for: UNSPECIFIED means medium (the contract); undefined for a number the enum
 *  does not define (proto3 enums are open, so any int32 can arrive on the wire). */
export function priorityFromProto(priority: Priority): FlowPriority | undefined {
  switch (priority) {
    case Priority.UNSPECIFIED:
    case Priority.MEDIUM:
      return "medium";
    case Priority.HIGH:
      return "high";
    case Priority.LOW:
      return "low";
    default:
      return undefined;
  }
}

/** An ISO timestamp as a google.protobuf.Timestamp; undefined when missing or unparsable. */
export function timestampFromIso(iso: string | undefined) {
  if (!iso) return undefined;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? undefined : timestampFromDate(date);
}

export type TaskStatusInit = MessageInitShape<typeof TaskStatusSchema>;

export function statusToProto(status: StoredStatus): TaskStatusInit {
  return {
    state: stateToProto(status.state),
    progress: status.progress,
    attempt: status.attempt,
    error: status.error,
    updatedAt: timestampFromIso(status.updatedAt),
    version: BigInt(status.version),
    progressReport: status.progressReport,
    progressMessage: status.progressMessage,
    ...(status.progressDetails ? { progressDetails: progressDetailsOf(status.progressDetails) } : {}),
  };
}

/** Stored details as a Struct; text that is not a JSON object (a hand-edited hash) is left out, not an error. */
function progressDetailsOf(text: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}

/** A stored result output as a google.protobuf.Struct: objects as they are, anything else as {value: output}. */
export function resultToStruct(output: unknown): JsonObject {
  if (output !== null && typeof output === "object" && !Array.isArray(output)) return output as JsonObject;
  return { value: (output ?? null) as JsonValue };
}

/** The flow state a request filters on; undefined for UNSPECIFIED, null for a number the enum does not define. */
export function stateFromProto(state: TaskState): FlowTaskState | undefined | null {
  if (state === TaskState.UNSPECIFIED) return undefined;
  const entry = Object.entries(STATE_TO_PROTO).find(([, value]) => value === state);
  return entry ? (entry[0] as FlowTaskState) : null;
}

/** The trace id of a W3C traceparent (`00-<32 hex trace id>-<16 hex span id>-<flags>`); "" when absent or malformed. */
export function traceIdOf(traceparent: string | undefined): string {
  const match = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(traceparent ?? "");
  return match?.[1] ?? "";
}

/** A task's dependency policy as the API says it: UNSPECIFIED without dependencies, else ALL_SUCCEEDED or ALL_FINISHED. */
export function dependencyPolicyToProto(task: Pick<TaskRecord, "dependsOn" | "dependencyPolicy">): DependencyPolicy {
  if (!task.dependsOn) return DependencyPolicy.UNSPECIFIED;
  return task.dependencyPolicy === "all-finished" ? DependencyPolicy.ALL_FINISHED : DependencyPolicy.ALL_SUCCEEDED;
}

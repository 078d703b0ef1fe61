/**
 * zod schemas for every message body, used on publish and on consume. A body that fails them is never retried:
 * it is terminated and reported on events.deadletter with the reason these schemas give.
 */

import * as z from "zod";
import { jsonSizeProblem } from "./json-size.js";
import { TASK_STATES } from "./lifecycle.js";
import { RetryBackoffSchema } from "./retry-backoff.js";
import { SIZE_LIMITS } from "./size-limits.js";
import { type ContractSubject, contractSubjectOf, PRIORITIES, type Subject, Subjects } from "./subjects.js";
import { MAX_EXPIRES_AFTER_MS } from "./task-limits.js";

export const TRACEPARENT_PATTERN = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export const TaskId = z.uuid({ message: "must be a UUID" });
export const TaskType = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,63}$/, { message: "must be 1-64 chars of a-z, 0-9, _ or -, starting with a letter" });
export const PrioritySchema = z.enum(PRIORITIES);
export const TaskStateSchema = z.enum(TASK_STATES);
export const IsoTime = z.iso.datetime({ offset: true, message: "must be an ISO-8601 timestamp" });
export const JsonObject = z.record(z.string(), z.unknown());

/** The value must serialise to at most `maxBytes` bytes of JSON (written out only when it may not: json-size.ts). */
function jsonWithin<T extends z.ZodType>(schema: T, maxBytes: number) {
  return schema.superRefine((value, ctx) => {
    const problem = jsonSizeProblem(value, maxBytes);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });
}

export const Metadata = z
  .record(z.string().min(1).max(128), z.string().max(1024))
  .refine((value) => Object.keys(value).length <= SIZE_LIMITS.metadataEntries, {
    message: `must have at most ${SIZE_LIMITS.metadataEntries} entries`,
  });

const traceFields = {
  /** W3C trace context of the span that published this message. */
  traceparent: z.string().regex(TRACEPARENT_PATTERN, { message: "must be a W3C traceparent" }).optional(),
  tracestate: z.string().max(512).optional(),
};

/** The longest per-task handler timeout a submission may ask for: a day. */
export const MAX_TASK_TIMEOUT_MS = 86_400_000;

/** How many times a dead letter has been replayed; orders status versions across replays. */
const generation = z.number().int().min(0).max(1000).default(0);

/** tasks.ingest: a task as the gateway accepted it. */
export const TaskMessageSchema = z.object({
  taskId: TaskId,
  type: TaskType,
  priority: PrioritySchema,
  payload: jsonWithin(JsonObject, SIZE_LIMITS.payloadBytes),
  metadata: Metadata.default({}),
  createdAt: IsoTime,
  /** A delayed task's release time (SubmitTaskRequest.run_at / delay): its end-to-end time counts from here. */
  runAt: IsoTime.optional(),
  /** How long one attempt of the handler may run (SubmitTaskRequest.timeout); unset: the worker's default. */
  timeoutMs: z.number().int().min(1).max(MAX_TASK_TIMEOUT_MS).optional(),
  /** The most attempts the worker gives the task (SubmitTaskRequest.max_attempts), below the consumers' maxDeliver. */
  maxAttempts: z.number().int().min(1).max(100).optional(),
  /** How long the worker waits after a failed attempt (SubmitTaskRequest.retry_backoff); unset: FLOW_RETRY_DELAYS_MS. */
  retryBackoff: RetryBackoffSchema.optional(),
  /** Not run if no attempt has started this long after it was due (SubmitTaskRequest.expires_after). */
  expiresAfterMs: z.number().int().min(1).max(MAX_EXPIRES_AFTER_MS).optional(),
  /** An attempt reporting no progress for this long is aborted (SubmitTaskRequest.heartbeat_timeout). */
  heartbeatTimeoutMs: z.number().int().min(1).max(MAX_TASK_TIMEOUT_MS).optional(),
  generation,
  ...traceFields,
});
export type TaskMessage = z.infer<typeof TaskMessageSchema>;
export type TaskMessageInput = z.input<typeof TaskMessageSchema>;

/** What the enricher derives from a task. Extra fields are kept so the enricher can grow without a schema bump. */
export const EnrichmentSchema = jsonWithin(
  z
    .object({
      payloadBytes: z.number().int().min(0),
      payloadSha256: z.string().regex(/^[0-9a-f]{64}$/),
      fieldCount: z.number().int().min(0),
      receivedAt: IsoTime,
      enrichedAt: IsoTime,
    })
    .catchall(z.unknown()),
  SIZE_LIMITS.enrichmentBytes,
);
export type Enrichment = z.infer<typeof EnrichmentSchema>;

/** tasks.schedule and tasks.worker.*: a validated, enriched task. */
export const EnrichedTaskMessageSchema = TaskMessageSchema.extend({ enrichment: EnrichmentSchema });
export type EnrichedTaskMessage = z.infer<typeof EnrichedTaskMessageSchema>;

/** tasks.results: the output of a task that succeeded. */
export const ResultMessageSchema = z.object({
  taskId: TaskId,
  type: TaskType,
  priority: PrioritySchema,
  output: jsonWithin(z.unknown(), SIZE_LIMITS.outputBytes),
  attempts: z.number().int().min(1),
  startedAt: IsoTime,
  completedAt: IsoTime,
  durationMs: z.number().min(0),
  generation,
  ...traceFields,
});
export type ResultMessage = z.infer<typeof ResultMessageSchema>;

/** events.status: one status update. `version` orders the updates of one task (see lifecycle.ts). */
export const StatusEventSchema = z.object({
  taskId: TaskId,
  state: TaskStateSchema,
  progress: z.number().int().min(0).max(100).default(0),
  attempt: z.number().int().min(0).default(0),
  error: z.string().max(4096).optional(),
  version: z.number().int().min(0),
  /** A handler's progress report (RUNNING): its number within the attempt, which orders reports of the same version
   *  (a message at an unchanged percent), and what it says. Absent: no report (the fields are cleared). */
  progressReport: z.number().int().min(1).optional(),
  progressMessage: z.string().max(SIZE_LIMITS.progressMessageChars).optional(),
  progressDetails: jsonWithin(JsonObject, SIZE_LIMITS.progressDetailsBytes).optional(),
  updatedAt: IsoTime,
  source: z.string().min(1).max(64),
  generation,
  ...traceFields,
});
export type StatusEvent = z.infer<typeof StatusEventSchema>;
export type StatusEventInput = z.input<typeof StatusEventSchema>;

/** events.audit: something a stage did. */
export const AuditEventSchema = z.object({
  taskId: TaskId.optional(),
  service: z.string().min(1).max(64),
  action: z.string().min(1).max(64),
  at: IsoTime,
  detail: jsonWithin(JsonObject, SIZE_LIMITS.auditDetailBytes).optional(),
  ...traceFields,
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;

/** events.deadletter: a message that will not be processed, and why. */
export const DeadLetterSchema = z.object({
  /** Unique per dead letter: `<stream>:<stream sequence>` of the message that died. */
  id: z.string().min(1).max(256),
  taskId: TaskId.optional(),
  subject: z.string().min(1).max(256),
  consumer: z.string().min(1).max(128),
  reason: z.enum(["invalid", "exhausted", "rejected"]),
  error: z.string().max(8192),
  attempts: z.number().int().min(0),
  at: IsoTime,
  /** The original body when it parsed as JSON. */
  message: jsonWithin(z.unknown(), SIZE_LIMITS.deadLetterMessageBytes).optional(),
  /** The original body as text (truncated) when it did not. */
  raw: z.string().max(SIZE_LIMITS.deadLetterRawChars).optional(),
  ...traceFields,
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

const SCHEMAS = {
  [Subjects.ingest]: TaskMessageSchema,
  [Subjects.schedule]: EnrichedTaskMessageSchema,
  [Subjects.workerHigh]: EnrichedTaskMessageSchema,
  [Subjects.workerMedium]: EnrichedTaskMessageSchema,
  [Subjects.workerLow]: EnrichedTaskMessageSchema,
  [Subjects.results]: ResultMessageSchema,
  [Subjects.status]: StatusEventSchema,
  [Subjects.audit]: AuditEventSchema,
  [Subjects.deadletter]: DeadLetterSchema,
} as const;

/**
 * What a stage parses a task message with: its schema, keeping fields it does not know. A later version's gateway
 * may add a field (as max_attempts and expires_after were); during a rolling upgrade this version's ingest and
 * scheduler pass it on to the newer worker rather than drop it. (Known fields are checked as always; zod drops a
 * `__proto__` key.) The types stay the known fields.
 */
const TASK_PARSERS: Partial<Record<ContractSubject, z.ZodType>> = {
  [Subjects.ingest]: TaskMessageSchema.catchall(z.unknown()),
  [Subjects.schedule]: EnrichedTaskMessageSchema.catchall(z.unknown()),
  [Subjects.workerHigh]: EnrichedTaskMessageSchema.catchall(z.unknown()),
  [Subjects.workerMedium]: EnrichedTaskMessageSchema.catchall(z.unknown()),
  [Subjects.workerLow]: EnrichedTaskMessageSchema.catchall(z.unknown()),
};

/** A pool's worker subject (tasks.worker.<priority>.<pool>) carries what its priority's contract subject does. */
export type SchemaFor<S extends Subject> = S extends ContractSubject
  ? (typeof SCHEMAS)[S]
  : typeof EnrichedTaskMessageSchema;
export type MessageFor<S extends Subject> = z.infer<SchemaFor<S>>;
export type MessageInputFor<S extends Subject> = z.input<SchemaFor<S>>;

export function schemaFor<S extends Subject>(subject: S): SchemaFor<S> {
  return SCHEMAS[contractSubjectOf(subject)] as SchemaFor<S>;
}

/** One line naming every problem: `payload: expected record, received string; taskId: must be a UUID`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "(body)"}: ${issue.message}`)
    .join("; ");
}

export class MessageValidationError extends Error {
  override readonly name = "MessageValidationError";
  constructor(
    readonly subject: string,
    readonly problems: string,
  ) {
    super(`invalid ${subject} message: ${problems}`);
  }
}

/** Parses raw bytes as the subject's message; throws MessageValidationError naming the problem. */
export function decodeMessage<S extends Subject>(subject: S, data: Uint8Array): MessageFor<S> {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(data));
  } catch (error) {
    throw new MessageValidationError(subject, `malformed JSON (${(error as Error).message})`);
  }
  return validateMessage(subject, body);
}

export function validateMessage<S extends Subject>(subject: S, body: unknown): MessageFor<S> {
  const result = (TASK_PARSERS[contractSubjectOf(subject)] ?? schemaFor(subject)).safeParse(body);
  if (!result.success) throw new MessageValidationError(subject, describeIssues(result.error));
  return result.data as MessageFor<S>;
}

/** control.cancel: a cancellation broadcast (core NATS, not persisted). */
export const CancelNoticeSchema = z.object({
  taskId: TaskId,
  reason: z.string().max(1024).default(""),
  at: IsoTime,
});
export type CancelNotice = z.infer<typeof CancelNoticeSchema>;

export { SIZE_LIMITS };

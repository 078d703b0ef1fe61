/**
 * The pure half of the crash-on-last-delivery path: reading nats-server's MAX_DELIVERIES advisory and turning it,
 * with the original message, into the dead letter a stage would have written had it lived to write it.
 */
import { type DeadLetter, Subjects, storedMessageId, TaskId, TRACEPARENT_PATTERN } from "@tm/flow";

export const EXHAUSTED_ERROR = "no acknowledgement after the last delivery (consumer crashed or timed out)";
/** Same bound as pkg/flow's consume.ts puts on a raw body copied into a dead letter. */
const RAW_LIMIT = 16 * 1024;

export interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  streamSeq: number;
  deliveries: number;
}

export class AdvisoryError extends Error {
  override readonly name = "AdvisoryError";
}

/** Parses the advisory body (nats-server 2.9: stream, consumer, stream_seq, deliveries); throws naming the problem. */
export function parseAdvisory(data: Uint8Array | string): MaxDeliveriesAdvisory {
  const text = typeof data === "string" ? data : new TextDecoder().decode(data);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new AdvisoryError("advisory: not JSON");
  }
  if (typeof body !== "object" || body === null) throw new AdvisoryError("advisory: not a JSON object");
  const { stream, consumer, stream_seq: streamSeq, deliveries } = body;
  if (typeof stream !== "string" || stream === "") throw new AdvisoryError("advisory.stream: missing");
  if (typeof consumer !== "string" || consumer === "") throw new AdvisoryError("advisory.consumer: missing");
  if (!Number.isInteger(streamSeq) || (streamSeq as number) < 1)
    throw new AdvisoryError("advisory.stream_seq: must be a positive integer");
  return {
    stream,
    consumer,
    streamSeq: streamSeq as number,
    deliveries: Number.isInteger(deliveries) && (deliveries as number) >= 0 ? (deliveries as number) : 0,
  };
}

/** The message the advisory is about, as read back from its stream (undefined when it is no longer there). */
export interface OriginalMessage {
  subject: string;
  data: Uint8Array;
  /** When the stream stored it (ms, truncated): part of its id (storedMessageId in @tm/flow). */
  storedAtMs?: number;
}

export interface ReconstructedLetter {
  letter: DeadLetter;
  /** The original body when it parsed as JSON (for its trace context and generation). */
  body: Record<string, unknown> | undefined;
}

/**
 * The dead letter for an exhausted message. Its id is the message's storedMessageId (`<stream>:<sequence>:<stored
 * ms>`), as pkg/flow's consume.ts names it, so a letter the stage itself managed to write and this one deduplicate (by
 * message id in the stream window, and by letter id in Redis after it); `<stream>:<sequence>` when the message is
 * gone from its stream.
 */
export function letterFromAdvisory(
  advisory: MaxDeliveriesAdvisory,
  original: OriginalMessage | undefined,
  now: Date = new Date(),
): ReconstructedLetter {
  const text = original ? new TextDecoder().decode(original.data) : undefined;
  const body = text === undefined ? undefined : parseObject(text);
  const taskId = typeof body?.taskId === "string" && TaskId.safeParse(body.taskId).success ? body.taskId : undefined;
  const letter: DeadLetter = {
    id: storedMessageId(advisory.stream, advisory.streamSeq, original?.storedAtMs),
    subject: original?.subject ?? `(unknown: ${advisory.stream} no longer holds sequence ${advisory.streamSeq})`,
    consumer: advisory.consumer,
    reason: "exhausted",
    error: EXHAUSTED_ERROR,
    attempts: advisory.deliveries,
    at: now.toISOString(),
    ...(taskId ? { taskId } : {}),
    ...(body !== undefined && text !== undefined && text.length <= RAW_LIMIT ? { message: body } : {}),
    ...(text !== undefined && (body === undefined || text.length > RAW_LIMIT) ? { raw: text.slice(0, RAW_LIMIT) } : {}),
    ...(typeof body?.traceparent === "string" && TRACEPARENT_PATTERN.test(body.traceparent)
      ? { traceparent: body.traceparent }
      : {}),
  };
  return { letter, body };
}

/** Subjects whose messages are steps of an unfinished task: a crash there leaves the task stuck, so it is failed. */
const TASK_STEP_SUBJECTS: ReadonlySet<string> = new Set([
  Subjects.ingest,
  Subjects.schedule,
  Subjects.workerHigh,
  Subjects.workerMedium,
  Subjects.workerLow,
]);

/**
 * The task to mark FAILED, if any. Only task steps count: a crash while storing a result (tasks.results) or an
 * event (events.*) says nothing about whether the task itself failed, and must not turn a success into a failure.
 */
export function taskToFail(reconstructed: ReconstructedLetter): { taskId: string; generation: number } | undefined {
  const { letter, body } = reconstructed;
  if (!letter.taskId || !TASK_STEP_SUBJECTS.has(letter.subject)) return undefined;
  const generation = body?.generation;
  return {
    taskId: letter.taskId,
    generation: Number.isInteger(generation) && (generation as number) >= 0 ? (generation as number) : 0,
  };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

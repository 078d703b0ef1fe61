/**
 * How close a consumer's backlog is to being discarded by its stream's limits, and how old its oldest message is.
 *
 * The contract's streams keep messages by limits (MaxMsgs, MaxBytes, MaxAge) with the "discard old" policy: once a
 * stream is full, each new message removes the oldest one, whether or not its consumer has handled it. Handled
 * messages are normally what goes, so nothing is lost; but a consumer that falls far enough behind (its workers down
 * for a long time under load) loses the head of its backlog: those tasks stay in their last state with no message
 * left to carry them on, silently. This ratio is the warning: 1 means the consumer's oldest unacknowledged message is
 * the one the stream discards next.
 */
import type { ConsumerInfo, JetStreamManager, MsgRequest, StoredMsg, StreamInfo } from "nats";

export interface BacklogLimitInput {
  /** The consumer's ack floor (stream sequence): every message of its subject up to it is acknowledged. */
  ackFloorSeq: number;
  /** Messages of the consumer not yet acknowledged (pending + ack pending); 0 means no backlog. */
  unacknowledged: number;
  /** The stream's last sequence, message count and bytes now. */
  lastSeq: number;
  messages: number;
  bytes: number;
  /** The stream's limits; 0 or less means "no limit" (as in JetStream's config, where -1 is unlimited). */
  maxMsgs: number;
  maxBytes: number;
  maxAgeMs: number;
  /** Age of the consumer's oldest unacknowledged message (0 when unknown). */
  oldestAgeMs: number;
}

/**
 * The largest of three shares: the sequences from the consumer's oldest unacknowledged message to the stream's end
 * against MaxMsgs (the stream keeps at most that many of the newest), the same span in bytes (at the stream's average
 * message size) against MaxBytes, and the oldest message's age against MaxAge. Other subjects' messages count: they
 * share the stream and its limits. Gaps (deleted messages) make the span an overestimate, the safe side for a warning.
 */
export function backlogLimitRatio(input: BacklogLimitInput): number {
  if (input.unacknowledged <= 0) return 0;
  const span = Math.max(0, input.lastSeq - input.ackFloorSeq);
  const averageBytes = input.messages > 0 ? input.bytes / input.messages : 0;
  const shares = [
    input.maxMsgs > 0 ? span / input.maxMsgs : 0,
    input.maxBytes > 0 ? (span * averageBytes) / input.maxBytes : 0,
    input.maxAgeMs > 0 ? input.oldestAgeMs / input.maxAgeMs : 0,
  ];
  return Math.max(...shares);
}

/**
 * The age of the consumer's oldest unacknowledged message (waiting or in flight): the first message of its subject
 * (of the stream, for a consumer without a filter) after its ack floor, by its stored timestamp. 0 when it has none
 * (or it went in between: acked, or discarded).
 */
export async function oldestUnackedAgeMs(jsm: JetStreamManager, info: ConsumerInfo, now = Date.now()): Promise<number> {
  if (info.num_pending + info.num_ack_pending === 0) return 0;
  return oldestMessageAgeMs(jsm, info.stream_name, info.config.filter_subject, now, info.ack_floor.stream_seq + 1);
}

/**
 * The age of the stream's first message on `subject` (any subject when undefined) from sequence `fromSeq` on, by its
 * stored timestamp; 0 when there is none (or it went in between).
 */
export async function oldestMessageAgeMs(
  jsm: JetStreamManager,
  stream: string,
  subject: string | undefined,
  now = Date.now(),
  fromSeq = 1,
): Promise<number> {
  const message = await firstMessageOf(jsm, stream, subject, fromSeq);
  return message ? Math.max(0, now - message.time.getTime()) : 0;
}

/** The stream's first message on `subject` (any subject when undefined) from sequence `fromSeq` on; undefined when
 *  there is none (or it went in between). */
export async function firstMessageOf(
  jsm: JetStreamManager,
  stream: string,
  subject: string | undefined,
  fromSeq = 1,
): Promise<StoredMsg | undefined> {
  // nats.js types MSG.GET as {seq} | {last_by_subj}; nats-server 2.9 also accepts next_by_subj with seq.
  const query = (subject ? { seq: fromSeq, next_by_subj: subject } : { seq: fromSeq }) as unknown as MsgRequest;
  try {
    return await jsm.streams.getMessage(stream, query);
  } catch {
    return undefined;
  }
}

/** backlogLimitRatio of a consumer, from its info and its stream's (as JetStream reports them). */
export function consumerBacklogLimitRatio(consumer: ConsumerInfo, stream: StreamInfo, oldestAgeMs: number): number {
  return backlogLimitRatio({
    ackFloorSeq: consumer.ack_floor.stream_seq,
    unacknowledged: consumer.num_pending + consumer.num_ack_pending,
    lastSeq: stream.state.last_seq,
    messages: stream.state.messages,
    bytes: stream.state.bytes,
    maxMsgs: stream.config.max_msgs,
    maxBytes: stream.config.max_bytes,
    maxAgeMs: stream.config.max_age / 1_000_000, // nanoseconds in the stream config
    oldestAgeMs,
  });
}

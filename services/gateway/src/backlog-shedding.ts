/**
 * Load shedding before the TASKS stream discards work. It keeps messages by limits with "discard old": once full, each
 * new message removes its oldest, handled or not (ARCHITECTURE.md). A consumer far enough behind (its workers down for
 * long under load) would lose the head of its backlog, silently: tasks. (EVENTS is left out: a notifier or audit
 * service far behind loses status and audit records, watched by BacklogNearStreamLimit, and should not stop every
 * submission.) So every GATEWAY_SHED_CHECK_MS
 * each replica reads how close each consumer's oldest unacknowledged message is to being discarded by new messages
 * (stream-limits.ts in @tm/kit: the span from it to the stream's end against MaxMsgs and MaxBytes; the age share is
 * left out, since refusing new work does not slow a message's ageing), and while the closest is at or above
 * GATEWAY_SHED_BACKLOG_RATIO new submissions are refused with UNAVAILABLE, naming the backlog: clients retry later
 * (taskctl and the schedule runner do, a retry with its idempotency key never makes a second task). Submissions are
 * taken again once the ratio is back under the threshold by SHED_HYSTERESIS, so that they do not flap at its edge.
 * A task queue that no consumer reads (a worker pool none of whose workers started: queue-stats.ts) counts the same,
 * from its first message: its tasks wait for a consumer and are lost alike if the stream discards them first.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Meter } from "@opentelemetry/api";
import { backlogLimitRatio, consumerBacklogLimitRatio, firstMessageOf, type Logger } from "@tm/kit";
import type { ConsumerInfo, JetStreamManager, StreamInfo } from "nats";
import { consumersOf, type UnconsumedQueue, unconsumedSubjects } from "./queue-stats.js";
import { everyInterval, type Rounds } from "./rounds.js";

/** How a refusal's message starts (isShed). */
const REFUSAL_PREFIX = "the pipeline is shedding load";

/** Whether `error` is a submission refused by the shedding: routine while it lasts, logged once when it starts. */
export function isShed(error: unknown): boolean {
  return (
    error instanceof ConnectError && error.code === Code.Unavailable && error.rawMessage.startsWith(REFUSAL_PREFIX)
  );
}

/** How far under the threshold the ratio must fall before submissions are taken again. */
export const SHED_HYSTERESIS = 0.05;

/** The backlog closest to being discarded by new messages. */
export interface ClosestBacklog {
  stream: string;
  /** Whose: "consumer <name>", or "queue <subject> (no consumer reads it)". */
  of: string;
  /** 1: its oldest unacknowledged message is the next the stream discards. */
  ratio: number;
}

/** A queue no consumer reads, with the stream sequence of its first message. */
export interface UnreadQueue extends UnconsumedQueue {
  firstSeq: number;
}

/** The backlog, of `consumers` and of the `unread` queues, closest to its stream's MaxMsgs / MaxBytes; undefined for
 *  none. The oldest message's age counts 0: its share is not one that refusing new messages can lower. */
export function closestBacklog(
  consumers: readonly ConsumerInfo[],
  streams: readonly StreamInfo[],
  unread: readonly UnreadQueue[] = [],
): ClosestBacklog | undefined {
  const streamOf = new Map(streams.map((info) => [info.config.name, info]));
  let closest: ClosestBacklog | undefined;
  const consider = (candidate: ClosestBacklog) => {
    if (!closest || candidate.ratio > closest.ratio) closest = candidate;
  };
  for (const info of consumers) {
    const stream = streamOf.get(info.stream_name);
    if (stream)
      consider({
        stream: stream.config.name,
        of: `consumer ${info.name}`,
        ratio: consumerBacklogLimitRatio(info, stream, 0),
      });
  }
  for (const queue of unread) {
    const stream = streamOf.get(queue.stream);
    if (!stream) continue;
    const ratio = backlogLimitRatio({
      ackFloorSeq: queue.firstSeq - 1,
      unacknowledged: queue.messages,
      lastSeq: stream.state.last_seq,
      messages: stream.state.messages,
      bytes: stream.state.bytes,
      maxMsgs: stream.config.max_msgs,
      maxBytes: stream.config.max_bytes,
      maxAgeMs: 0,
      oldestAgeMs: 0,
    });
    consider({ stream: queue.stream, of: `queue ${queue.subject} (no consumer reads it)`, ratio });
  }
  return closest;
}

/** Whether to shed after a reading, given whether it was shedding: at `shedAt` or above; stops under it by the
 *  hysteresis. */
export function shouldShed(ratio: number, shedAt: number, shedding: boolean): boolean {
  return shedding ? ratio >= shedAt - SHED_HYSTERESIS : ratio >= shedAt;
}

export interface BacklogShedding {
  /** Why a new submission is refused now; undefined while submissions are taken. */
  refusal(): string | undefined;
  stop(): Promise<void>;
}

export interface BacklogSheddingOptions {
  /** GATEWAY_SHED_BACKLOG_RATIO; 0 turns shedding off. */
  shedAt: number;
  /** GATEWAY_SHED_CHECK_MS. */
  checkMs: number;
  log: Logger;
  meter: Meter;
}

/** `streams`: whose consumers count; `queueStreams`: those of them whose every subject is a queue some consumer must
 *  read (TASKS), whose unread queues count too. */
export function startBacklogShedding(
  jsm: JetStreamManager,
  streams: readonly string[],
  queueStreams: readonly string[],
  { shedAt, checkMs, log, meter }: BacklogSheddingOptions,
): BacklogShedding {
  let shedding: ClosestBacklog | undefined;
  meter
    .createObservableGauge("tm_gateway_shedding", {
      description:
        "1 while this gateway refuses new submissions because a consumer's backlog is near its stream's limits " +
        "(GATEWAY_SHED_BACKLOG_RATIO), else 0",
    })
    .addCallback((result) => result.observe(shedding ? 1 : 0));
  if (shedAt <= 0) return { refusal: () => undefined, stop: async () => {} };

  const read = async () => {
    const [consumers, infos] = await Promise.all([
      consumersOf(jsm, streams),
      // A queue stream's info with its subjects' message counts: how its unread queues are found.
      Promise.all(
        streams.map((name) =>
          queueStreams.includes(name) ? jsm.streams.info(name, { subjects_filter: ">" }) : jsm.streams.info(name),
        ),
      ),
    ]);
    const unconsumed = unconsumedSubjects(
      consumers,
      infos.filter((info) => queueStreams.includes(info.config.name)),
    );
    const unread = (
      await Promise.all(
        unconsumed.map(async (queue) => ({
          ...queue,
          firstSeq: (await firstMessageOf(jsm, queue.stream, queue.subject))?.seq ?? 0,
        })),
      )
    ).filter((queue) => queue.firstSeq > 0);
    const latest = closestBacklog(consumers, infos, unread);
    const ratio = latest?.ratio ?? 0;
    const now = shouldShed(ratio, shedAt, shedding !== undefined);
    if (now && !shedding) {
      log.warn({ ...latest, shedAt }, "refusing new submissions: a consumer's backlog is near its stream's limits");
    } else if (!now && shedding) {
      log.info({ ...latest, shedAt }, "taking submissions again: the backlog is back under the threshold");
    }
    shedding = now ? latest : undefined;
  };
  // A reading that fails (NATS down) leaves the last one in force: submissions then fail on NATS anyway.
  const onError = (error: unknown) => log.debug({ err: error }, "could not read the consumers' backlogs");
  void read().catch(onError);
  const rounds: Rounds = everyInterval(checkMs, read, onError);
  return {
    refusal() {
      if (!shedding) return undefined;
      const percent = Math.round(shedding.ratio * 100);
      return (
        `${REFUSAL_PREFIX}: the backlog of ${shedding.of} is at ${percent} % of stream ${shedding.stream}'s ` +
        `limits (GATEWAY_SHED_BACKLOG_RATIO ${shedAt}), and new messages would discard it; retry later`
      );
    },
    stop: () => rounds.stop(),
  };
}

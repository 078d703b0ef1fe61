/**
 * Load shedding before the streams discard work. TASKS and EVENTS keep messages by limits with "discard old": once a
 * stream is full, each new message removes its oldest, handled or not (ARCHITECTURE.md). A consumer far enough behind
 * (its workers down for long under load) would lose the head of its backlog, silently. So every GATEWAY_SHED_CHECK_MS
 * each replica reads how close each consumer's oldest unacknowledged message is to being discarded by new messages
 * (stream-limits.ts in @tm/kit: the span from it to the stream's end against MaxMsgs and MaxBytes; the age share is
 * left out, since refusing new work does not slow a message's ageing), and while the closest is at or above
 * GATEWAY_SHED_BACKLOG_RATIO new submissions are refused with UNAVAILABLE, naming the consumer: clients retry later
 * (taskctl and the schedule runner do, a retry with its idempotency key never makes a second task). Submissions are
 * taken again once the ratio is back under the threshold by SHED_HYSTERESIS, so that they do not flap at its edge.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Meter } from "@opentelemetry/api";
import { consumerBacklogLimitRatio, type Logger } from "@tm/kit";
import type { ConsumerInfo, JetStreamManager, StreamInfo } from "nats";
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

/** The consumer closest to losing its backlog to new messages. */
export interface ClosestBacklog {
  stream: string;
  consumer: string;
  /** 1: its oldest unacknowledged message is the next the stream discards. */
  ratio: number;
}

/** The consumer of `consumers` whose backlog is closest to its stream's MaxMsgs / MaxBytes; undefined for none. */
export function closestBacklog(
  consumers: readonly ConsumerInfo[],
  streams: readonly StreamInfo[],
): ClosestBacklog | undefined {
  const streamOf = new Map(streams.map((info) => [info.config.name, info]));
  let closest: ClosestBacklog | undefined;
  for (const info of consumers) {
    const stream = streamOf.get(info.stream_name);
    if (!stream) continue;
    // 0 for the oldest message's age: its share is not one that refusing new messages can lower.
    const ratio = consumerBacklogLimitRatio(info, stream, 0);
    if (!closest || ratio > closest.ratio) closest = { stream: info.stream_name, consumer: info.name, ratio };
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

export function startBacklogShedding(
  jsm: JetStreamManager,
  streams: readonly string[],
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
      (async () => {
        const list: ConsumerInfo[] = [];
        for (const stream of streams) for await (const info of jsm.consumers.list(stream)) list.push(info);
        return list;
      })(),
      Promise.all(streams.map((name) => jsm.streams.info(name))),
    ]);
    const latest = closestBacklog(consumers, infos);
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
        `${REFUSAL_PREFIX}: consumer ${shedding.consumer}'s backlog is at ${percent} % of stream ` +
        `${shedding.stream}'s limits (GATEWAY_SHED_BACKLOG_RATIO ${shedAt}), and new messages would discard it; ` +
        "retry later"
      );
    },
    stop: () => rounds.stop(),
  };
}

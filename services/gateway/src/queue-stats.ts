/**
 * Queue statistics from JetStream itself: every durable consumer's pending (not yet delivered), ack pending (in
 * flight), redelivered and waiting counts, the age of its oldest unacknowledged message, how close that message is
 * to being discarded by the stream's limits (stream-limits.ts in @tm/kit), and its processing rate.
 *
 * The rate comes from samples of the consumer's ack floor (consumer sequence), taken by this gateway replica every
 * SAMPLE_INTERVAL_MS and on every read: deliveries finished (acked or terminated) per second over about the last
 * minute. A retried message counts once per delivery; a replica that just started has no rate until its second sample.
 *
 * It also finds the queues nothing reads: subjects of the queue streams (TASKS) that hold messages while no consumer's
 * filter takes them, such as a worker pool's queue (TASK_ROUTES) none of whose workers has started yet. Their messages
 * wait for the first consumer (it starts at the queue's first message); until then no consumer's figures show them.
 */

import type { Meter } from "@opentelemetry/api";
import { consumerBacklogLimitRatio, oldestMessageAgeMs, oldestUnackedAgeMs } from "@tm/kit";
import type { ConsumerInfo, JetStreamManager, StreamInfo } from "nats";

export interface ConsumerSnapshot {
  stream: string;
  subject: string;
  name: string;
  pending: number;
  ackPending: number;
  redelivered: number;
  waiting: number;
  oldestUnackedAgeMs: number;
  backlogLimitRatio: number;
  processedPerSecond: number;
}

/** A subject of a queue stream that holds messages no consumer reads. */
export interface UnconsumedQueue {
  stream: string;
  subject: string;
  /** Messages the stream holds on the subject. */
  messages: number;
  /** Age of the oldest of them (0 when it could not be read). */
  oldestAgeMs: number;
}

export interface QueueSnapshot {
  consumers: ConsumerSnapshot[];
  unconsumed: UnconsumedQueue[];
}

interface Sample {
  atMs: number;
  finished: number;
}

const RATE_WINDOW_MS = 60_000;
export const SAMPLE_INTERVAL_MS = 10_000;

export class QueueStats {
  readonly #jsm: JetStreamManager;
  readonly #streams: readonly string[];
  readonly #queueStreams: ReadonlySet<string>;
  readonly #samples = new Map<string, Sample[]>();
  #timer: NodeJS.Timeout | undefined;
  #unconsumed: Map<string, number> | undefined;

  /**
   * `streams`: whose consumers to report; `queueStreams`: those of them whose every subject is a queue some consumer
   * must read (each one's subjects are listed on every sample and read, to find the unconsumed ones).
   */
  constructor(jsm: JetStreamManager, streams: readonly string[], queueStreams: readonly string[] = []) {
    this.#jsm = jsm;
    this.#streams = streams;
    this.#queueStreams = new Set(queueStreams);
  }

  /** Samples in the background so that the first read already has a rate and the gauge an unconsumed count. */
  startSampling(onError: (error: unknown) => void): void {
    const sample = async () => {
      try {
        const [infos, streams] = await Promise.all([this.#consumers(), this.#queueStreamInfos()]);
        this.#record(infos, Date.now());
        this.#unconsumed = new Map(unconsumedSubjects(infos, streams).map((q) => [q.subject, q.messages]));
      } catch (error) {
        this.#unconsumed = undefined; // no value rather than a stale one
        throw error;
      }
    };
    void sample().catch(onError);
    this.#timer = setInterval(() => void sample().catch(onError), SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Messages by unconsumed subject at the latest sample; undefined before the first or after a failed one. */
  latestUnconsumed(): ReadonlyMap<string, number> | undefined {
    return this.#unconsumed;
  }

  stopSampling(): void {
    clearInterval(this.#timer);
  }

  async read(now = Date.now()): Promise<QueueSnapshot> {
    const [infos, streams] = await Promise.all([
      this.#consumers(),
      Promise.all(this.#streams.map((name) => this.#info(name))),
    ]);
    const streamOf = new Map<string, StreamInfo>(streams.map((info) => [info.config.name, info]));
    const rates = this.#record(infos, now);
    const unconsumed = unconsumedSubjects(infos, streams);
    this.#unconsumed = new Map(unconsumed.map((q) => [q.subject, q.messages]));
    const consumers = await Promise.all(
      infos.map(async (info) => {
        const oldestAgeMs = await oldestUnackedAgeMs(this.#jsm, info, now);
        const stream = streamOf.get(info.stream_name);
        return {
          stream: info.stream_name,
          subject: info.config.filter_subject ?? "",
          name: info.name,
          pending: info.num_pending,
          ackPending: info.num_ack_pending,
          redelivered: info.num_redelivered,
          waiting: info.num_waiting,
          oldestUnackedAgeMs: oldestAgeMs,
          backlogLimitRatio: stream ? consumerBacklogLimitRatio(info, stream, oldestAgeMs) : 0,
          processedPerSecond: rates.get(key(info)) ?? 0,
        };
      }),
    );
    consumers.sort((a, b) => `${a.stream} ${a.subject} ${a.name}`.localeCompare(`${b.stream} ${b.subject} ${b.name}`));
    await Promise.all(
      unconsumed.map(async (queue) => {
        queue.oldestAgeMs = await oldestMessageAgeMs(this.#jsm, queue.stream, queue.subject, now);
      }),
    );
    return { consumers, unconsumed };
  }

  /** A stream's info, with its subjects' message counts if it is a queue stream. */
  #info(name: string): Promise<StreamInfo> {
    return this.#queueStreams.has(name)
      ? this.#jsm.streams.info(name, { subjects_filter: ">" })
      : this.#jsm.streams.info(name);
  }

  #queueStreamInfos(): Promise<StreamInfo[]> {
    return Promise.all([...this.#queueStreams].map((name) => this.#info(name)));
  }

  #consumers(): Promise<ConsumerInfo[]> {
    return consumersOf(this.#jsm, this.#streams);
  }

  /** Adds a sample per consumer and returns each one's rate over the window. */
  #record(infos: ConsumerInfo[], now: number): Map<string, number> {
    const rates = new Map<string, number>();
    for (const info of infos) {
      const samples = (this.#samples.get(key(info)) ?? []).filter((s) => now - s.atMs <= RATE_WINDOW_MS);
      samples.push({ atMs: now, finished: info.ack_floor.consumer_seq });
      this.#samples.set(key(info), samples);
      const first = samples[0]!;
      const seconds = (now - first.atMs) / 1000;
      rates.set(key(info), seconds > 0 ? Math.max(0, info.ack_floor.consumer_seq - first.finished) / seconds : 0);
    }
    return rates;
  }
}

/** Every durable consumer of `streams`, stream by stream. */
export async function consumersOf(jsm: JetStreamManager, streams: readonly string[]): Promise<ConsumerInfo[]> {
  const infos: ConsumerInfo[] = [];
  for (const stream of streams) {
    for await (const info of jsm.consumers.list(stream)) infos.push(info);
  }
  return infos;
}

/**
 * The subjects of the given streams' infos (those read with their subjects) that hold messages while no consumer of
 * `consumers` filters them in, ordered by stream then subject; their ages are filled in by the caller.
 */
export function unconsumedSubjects(
  consumers: readonly ConsumerInfo[],
  streams: readonly StreamInfo[],
): UnconsumedQueue[] {
  const queues: UnconsumedQueue[] = [];
  for (const stream of streams) {
    const filters = consumers.filter((c) => c.stream_name === stream.config.name).map(filtersOf);
    for (const [subject, messages] of Object.entries(stream.state.subjects ?? {})) {
      if (messages > 0 && !filters.some((list) => list.some((filter) => subjectMatches(filter, subject)))) {
        queues.push({ stream: stream.config.name, subject, messages, oldestAgeMs: 0 });
      }
    }
  }
  return queues.sort((a, b) => `${a.stream} ${a.subject}`.localeCompare(`${b.stream} ${b.subject}`));
}

/** A consumer's subject filters: filter_subject, or filter_subjects (nats-server 2.10+); none is every subject. */
function filtersOf(info: ConsumerInfo): string[] {
  const config = info.config as ConsumerInfo["config"] & { filter_subjects?: string[] };
  const filters = [...(config.filter_subjects ?? []), ...(config.filter_subject ? [config.filter_subject] : [])];
  return filters.length > 0 ? filters : [">"];
}

/** Whether NATS subject filter `filter` (tokens, `*` for one, `>` for the rest) takes `subject`. */
export function subjectMatches(filter: string, subject: string): boolean {
  const wanted = filter.split(".");
  const tokens = subject.split(".");
  for (const [i, token] of wanted.entries()) {
    if (token === ">") return tokens.length > i;
    if (i >= tokens.length || (token !== "*" && token !== tokens[i])) return false;
  }
  return wanted.length === tokens.length;
}

/**
 * Exports `tm_queue_unconsumed_messages{subject}` from the latest sample: messages waiting on a queue no consumer reads
 * (alert QueueWithoutConsumer). Every replica exports the same. A queue read again goes to 0 (the SDK would repeat
 * its last value if it were left out); nothing new is observed while a sample fails.
 */
export function exportUnconsumedGauge(meter: Meter, stats: QueueStats): void {
  const reported = new Set<string>();
  meter
    .createObservableGauge("tm_queue_unconsumed_messages", {
      description:
        "Messages on a task queue (a subject of TASKS) that no consumer reads: a worker pool (TASK_ROUTES) none of " +
        "whose workers has started, or a stage not deployed; they wait for its first consumer",
    })
    .addCallback((result) => {
      const latest = stats.latestUnconsumed();
      if (!latest) return;
      for (const subject of latest.keys()) reported.add(subject);
      for (const subject of reported) result.observe(latest.get(subject) ?? 0, { subject });
    });
}

function key(info: ConsumerInfo): string {
  return `${info.stream_name}/${info.name}`;
}

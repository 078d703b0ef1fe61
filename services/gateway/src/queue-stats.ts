/**
 * Queue statistics from JetStream itself: every durable consumer's pending (not yet delivered), ack pending (in
 * flight), redelivered and waiting counts, the age of its oldest unacknowledged message, how close that message is
 * to being discarded by the stream's limits (stream-limits.ts in @tm/kit), and its processing rate.
 *
 * The rate comes from samples of the consumer's ack floor (consumer sequence), taken by this gateway replica every
 * SAMPLE_INTERVAL_MS and on every read: deliveries finished (acked or terminated) per second over about the last
 * minute. A retried message counts once per delivery; a replica that just started has no rate until its second sample.
 */
import { consumerBacklogLimitRatio, oldestUnackedAgeMs } from "@tm/kit";
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

interface Sample {
  atMs: number;
  finished: number;
}

const RATE_WINDOW_MS = 60_000;
export const SAMPLE_INTERVAL_MS = 10_000;

export class QueueStats {
  readonly #jsm: JetStreamManager;
  readonly #streams: readonly string[];
  readonly #samples = new Map<string, Sample[]>();
  #timer: NodeJS.Timeout | undefined;

  constructor(jsm: JetStreamManager, streams: readonly string[]) {
    this.#jsm = jsm;
    this.#streams = streams;
  }

  /** Samples in the background so that the first read already has a rate. */
  startSampling(onError: (error: unknown) => void): void {
    this.#timer = setInterval(() => {
      this.#consumers().then((infos) => this.#record(infos, Date.now()), onError);
    }, SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  stopSampling(): void {
    clearInterval(this.#timer);
  }

  async read(now = Date.now()): Promise<ConsumerSnapshot[]> {
    const [infos, streams] = await Promise.all([
      this.#consumers(),
      Promise.all(this.#streams.map((name) => this.#jsm.streams.info(name))),
    ]);
    const streamOf = new Map<string, StreamInfo>(streams.map((info) => [info.config.name, info]));
    const rates = this.#record(infos, now);
    const snapshots = await Promise.all(
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
    return snapshots.sort((a, b) =>
      `${a.stream} ${a.subject} ${a.name}`.localeCompare(`${b.stream} ${b.subject} ${b.name}`),
    );
  }

  async #consumers(): Promise<ConsumerInfo[]> {
    const infos: ConsumerInfo[] = [];
    for (const stream of this.#streams) {
      for await (const info of this.#jsm.consumers.list(stream)) infos.push(info);
    }
    return infos;
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

function key(info: ConsumerInfo): string {
  return `${info.stream_name}/${info.name}`;
}

/**
 * The JetStream topology, defined once: the TASKS and EVENTS streams, the ADVISORIES stream that keeps the server's
 * MAX_DELIVERIES advisories for them, the durable consumer defaults, and the idempotent provisioning that whichever
 * service starts first performs.
 */
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  nanos,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from "nats";
import { EVENT_SUBJECTS, type Subject, TASK_STREAM_SUBJECTS } from "./subjects.js";

export const STREAMS = { tasks: "TASKS", events: "EVENTS" } as const;
export type StreamName = (typeof STREAMS)[keyof typeof STREAMS];

/**
 * nats-server publishes a MAX_DELIVERIES advisory (core NATS) when a message used up its deliveries unacknowledged:
 * the only trace of a stage that crashed on a message's last delivery. Core NATS keeps nothing for a subscriber that
 * is away, so this stream keeps the advisories of the contract's streams until the deadletter service has handled
 * them (a restart of it, or an error while handling one, no longer loses the task's end).
 */
export const ADVISORY_STREAM = "ADVISORIES";
export const MAX_DELIVERIES_ADVISORY_SUBJECTS: readonly string[] = Object.values(STREAMS).map(
  (stream) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`,
);
/** The deadletter service's durable on the ADVISORIES stream. */
export const ADVISORY_DURABLE = "deadletter-advisories";

/** The numbers of the contract. Tests and operators may override them (see pkg/kit config: FLOW_*). */
export interface FlowSettings {
  /** How long a delivered, unacknowledged message waits before redelivery (a crashed consumer). */
  ackWaitMs: number;
  /** Deliveries before a message is given up on and dead-lettered. */
  maxDeliver: number;
  /** Delay before redelivery after the n-th failed delivery (index n-1); the last value repeats. */
  retryDelaysMs: number[];
  /** Messages delivered but not yet acknowledged, per consumer (bounds a runaway backlog in clients). */
  maxAckPending: number;
  maxAgeMs: number;
  maxMsgs: number;
  maxBytes: number;
  duplicateWindowMs: number;
  /** 1 locally; 3 in a cluster (k8s), which is what makes an acknowledged publish survive a lost node. */
  replicas: number;
  /** How long a delivery whose handler failed because a dependency is down (Redis or NATS unreachable) is held and
   *  retried in place, without spending one of its maxDeliver attempts (0 = never hold). */
  outageHoldMs: number;
  /** Deliveries a consumer allows beyond maxDeliver for messages handed back unstarted, which are not attempts (the
   *  worker's: a stopping or quiet worker NAKs its buffer, and the server counts each NAK as a delivery). Attempts
   *  stay bounded by maxDeliver, counted by the consumer (ConsumerOptions.attemptOf). Unset: 0. */
  handBackDeliveries?: number;
}

/** The consumer's MaxDeliver on the server: the attempts and the hand-backs allowed beside them. */
export function serverMaxDeliver(settings: FlowSettings): number {
  return settings.maxDeliver + (settings.handBackDeliveries ?? 0);
}

export const DEFAULT_FLOW_SETTINGS: Readonly<FlowSettings> = Object.freeze({
  ackWaitMs: 30_000,
  maxDeliver: 5,
  retryDelaysMs: [1_000, 5_000, 15_000, 30_000, 60_000],
  maxAckPending: 1_000,
  maxAgeMs: 24 * 60 * 60 * 1_000,
  maxMsgs: 1_000_000,
  maxBytes: 512 * 1024 * 1024,
  duplicateWindowMs: 2 * 60 * 1_000,
  replicas: 1,
  outageHoldMs: 120_000,
});

export function streamOf(subject: Subject): StreamName {
  return subject.startsWith("events.") ? STREAMS.events : STREAMS.tasks;
}

/**
 * The id of a stored message, as the dead letters and the audit's redelivery markers name it:
 * `<stream>:<sequence>:<stored at, ms>`. The sequence alone is not enough: a stream created again (nats-server lost
 * its store, an operator deleted it) numbers its messages from 1 again, and a new message would then take the id of
 * an old one (its dead letter or audit event dropped as a duplicate of the old one's for a day). The time the stream
 * stored it tells the two apart and is the same on every redelivery. `<stream>:<sequence>` when the time is unknown
 * (a crash advisory whose message is gone).
 */
export function storedMessageId(stream: string, sequence: number, storedAtMs: number | undefined): string {
  return storedAtMs === undefined || !Number.isFinite(storedAtMs)
    ? `${stream}:${sequence}`
    : `${stream}:${sequence}:${Math.floor(storedAtMs)}`;
}

export function streamConfig(name: StreamName, settings: FlowSettings = DEFAULT_FLOW_SETTINGS): StreamConfig {
  return {
    name,
    subjects: [...(name === STREAMS.tasks ? TASK_STREAM_SUBJECTS : EVENT_SUBJECTS)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(settings.maxAgeMs),
    max_msgs: settings.maxMsgs,
    max_bytes: settings.maxBytes,
    max_msgs_per_subject: -1,
    max_msg_size: -1,
    max_consumers: -1,
    duplicate_window: nanos(settings.duplicateWindowMs),
    num_replicas: settings.replicas,
    allow_direct: false,
    allow_rollup_hdrs: false,
    deny_delete: false,
    deny_purge: false,
    mirror_direct: false,
    sealed: false,
  } as StreamConfig;
}

/** The ADVISORIES stream: as the others, but small (an advisory is a rare event of ~200 bytes). */
export function advisoryStreamConfig(settings: FlowSettings = DEFAULT_FLOW_SETTINGS): StreamConfig {
  return {
    ...streamConfig(STREAMS.events, settings),
    name: ADVISORY_STREAM,
    subjects: [...MAX_DELIVERIES_ADVISORY_SUBJECTS],
    max_msgs: 100_000,
    max_bytes: 64 * 1024 * 1024,
  } as StreamConfig;
}

/** Every stream the services provision: TASKS, EVENTS and ADVISORIES. */
export function allStreamConfigs(settings: FlowSettings = DEFAULT_FLOW_SETTINGS): StreamConfig[] {
  return [...Object.values(STREAMS).map((name) => streamConfig(name, settings)), advisoryStreamConfig(settings)];
}

/** The durable consumer of one service on one subject. Replicas of a service share it and split the work. */
export function durableName(service: string, subject: Subject): string {
  return `${service}-${subject.replaceAll(".", "-")}`;
}

/**
 * Consumer settings. No BackOff list: on nats-server 2.9 it must be shorter than MaxDeliver, and when present it
 * silently replaces AckWait with its first value. Retry delays are applied by NAKing with the attempt's delay
 * (see consume.ts); AckWait stays what it says, the time to notice a crashed consumer.
 */
export function consumerConfig(
  service: string,
  subject: Subject,
  settings: FlowSettings = DEFAULT_FLOW_SETTINGS,
): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: durableName(service, subject),
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: serverMaxDeliver(settings),
    max_ack_pending: settings.maxAckPending,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    num_replicas: 0, // inherit the stream's
  };
}

/**
 * Creates every stream, or brings it to the configured settings. Safe to run from every service at once. An existing
 * stream keeps subjects this version does not know: during a rolling upgrade a service of the previous version,
 * starting while newer ones already publish on a subject it lacks (the worker pools' tasks.worker.*.* was one), must
 * not take that subject out of the stream under them.
 */
export async function provisionStreams(jsm: JetStreamManager, settings: FlowSettings = DEFAULT_FLOW_SETTINGS) {
  for (const wanted of allStreamConfigs(settings)) {
    const name = wanted.name;
    const existing = await findStream(jsm, name);
    if (!existing) {
      await jsm.streams.add(wanted).catch(async (error: unknown) => {
        // Another service won the race: fall through to the update path.
        if (!(await lostCreateRace(error, async () => (await findStream(jsm, name)) !== undefined))) throw error;
        const created = await findStream(jsm, name);
        await jsm.streams.update(name, keepingSubjects(wanted, created?.config));
      });
    } else {
      const target = keepingSubjects(wanted, existing.config);
      if (streamDiffers(existing.config, target)) await jsm.streams.update(name, target);
    }
  }
}

/** `wanted`, with the subjects `current` has beside its own. */
export function keepingSubjects(wanted: StreamConfig, current: StreamConfig | undefined): StreamConfig {
  const extra = (current?.subjects ?? []).filter((subject) => !wanted.subjects.includes(subject));
  return extra.length === 0 ? wanted : { ...wanted, subjects: [...wanted.subjects, ...extra] };
}

/**
 * Whether a refused stream creation only lost a race with another service creating the same stream. nats-server
 * answers the loser "stream name already in use" or, now and then, "subjects overlap with an existing stream" (10065;
 * 2 of 480 creates of one stream from 12 connections at once on 2.9.10), apparently because it compares the subjects
 * with the streams that exist before it finds the name taken, and by then the winner's stream is one of them. An
 * overlap is a lost race only if the stream of this name now exists; an overlap with another stream is a
 * configuration error, reported as the server worded it.
 */
export async function lostCreateRace(error: unknown, streamExists: () => Promise<boolean>): Promise<boolean> {
  const e = error as { api_error?: { err_code?: number }; message?: string } | undefined;
  if (/already in use|already exists/i.test(String(e?.message))) return true;
  if (e?.api_error?.err_code === 10065 || /subjects overlap/i.test(String(e?.message))) return streamExists();
  return false;
}

/** The stream's info, or undefined when there is no stream of that name. */
function findStream(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  return jsm.streams.info(name).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
}

/**
 * Creates the durable consumer, or updates its editable settings (AckWait, MaxDeliver, MaxAckPending). Idempotent,
 * and safe to run from every replica of a service at once, even with different settings (a rolling upgrade): each
 * call succeeds and the consumer ends with the settings of whichever create or update the server applied last.
 */
export async function provisionConsumer(
  jsm: JetStreamManager,
  service: string,
  subject: Subject,
  settings: FlowSettings = DEFAULT_FLOW_SETTINGS,
): Promise<string> {
  const config = consumerConfig(service, subject, settings);
  const stream = streamOf(subject);
  let existing = await jsm.consumers.info(stream, config.durable_name).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  if (!existing) {
    try {
      await jsm.consumers.add(stream, config);
      return config.durable_name;
    } catch (error) {
      // Another replica created it since our lookup. nats-server 2.9 applies such a create as an update, but 2.10+
      // refuses it when the config differs, so a replica with other settings would fail to start: take the
      // existing-consumer path instead.
      if (!isConsumerExists(error)) throw error;
      existing = await jsm.consumers.info(stream, config.durable_name);
    }
  }
  if (
    existing.config.ack_wait !== config.ack_wait ||
    existing.config.max_deliver !== config.max_deliver ||
    existing.config.max_ack_pending !== config.max_ack_pending
  ) {
    await jsm.consumers.update(stream, config.durable_name, {
      ack_wait: config.ack_wait,
      max_deliver: config.max_deliver,
      max_ack_pending: config.max_ack_pending,
    });
  }
  return config.durable_name;
}

function streamDiffers(current: StreamConfig, wanted: StreamConfig): boolean {
  return (
    current.max_age !== wanted.max_age ||
    current.max_msgs !== wanted.max_msgs ||
    current.max_bytes !== wanted.max_bytes ||
    current.duplicate_window !== wanted.duplicate_window ||
    current.num_replicas !== wanted.num_replicas ||
    [...current.subjects].sort().join() !== [...wanted.subjects].sort().join()
  );
}

/** A consumer create refused because the consumer exists (the codes of nats-server's errors.json). */
function isConsumerExists(error: unknown): boolean {
  const code = (error as { api_error?: { err_code?: number } })?.api_error?.err_code;
  return (
    code === 10148 || // JSConsumerAlreadyExists "consumer already exists" (2.10+: a create whose config differs)
    code === 10013 || // JSConsumerNameExistErr "consumer name already in use"
    code === 10105 // JSConsumerExistingActiveErr "consumer already exists and is still active"
  );
}

/**
 * A JetStream call refused because the stream or the durable it names does not exist: deleted by an operator, or a
 * nats-server that came back without its store (a lost volume). Not an outage to wait out: nothing re-creates them
 * but provisioning (Consumer's `recreate`).
 */
export function isMissingStreamOrConsumer(error: unknown): boolean {
  const code = (error as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
  return code === 10059 || code === 10014;
}

function isNotFound(error: unknown): boolean {
  const e = error as { code?: string; api_error?: { err_code?: number }; message?: string };
  return (
    e?.api_error?.err_code === 10059 || // stream not found
    e?.api_error?.err_code === 10014 || // consumer not found
    /not found/i.test(String(e?.message))
  );
}

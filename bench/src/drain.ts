/**
 * `--drain SERVICE`: the CPU one service spends per message, without the rest of the pipeline. The service runs as
 * deployed (its package's start script) on fresh servers; after a warm-up the benchmark publishes a batch of
 * realistic messages on its subject as fast as JetStream takes them and waits until its durable consumer has acked
 * them all. CPU per message of the service, nats-server and redis-server over exactly that span is the figure.
 * Then a bare consumer (hops/bare-consumer.mjs: receive, parse, ack, nothing else) drains the same kind of batch on
 * fresh servers: the difference is what the service does per message beyond receiving and acking it.
 *
 * Whole-pipeline runs on this machine drift by up to ~1.6×; one process draining a stream is much steadier, which is
 * what cutting per-message cost needs (compare builds in interleaved runs, as always).
 */
import { mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { durableName, provisionStreams, type Subject, Subjects, statusEvent, streamOf } from "@tm/flow";
import { type NatsServer, type RedisServer, spawnService, startNats, startRedis, waitFor } from "@tm/testkit";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { callgrindWrapper, type InstructionShares, startCounting, stopCounting } from "./callgrind.js";
import { type OtlpSink, startOtlpSink } from "./otlp-sink.js";
import { cpuBetween, peakRssMbOf, snapshotCpu, syscallsOf, type WatchedProcess } from "./proc.js";
import { machineInfo } from "./run.js";
import type { TelemetryMode } from "./systems/pipeline.js";
import { benchConsumer, startHopProcesses } from "./systems/raw.js";

/** The services --drain can measure: the stages whose input needs nothing else prepared (audit and notifier write
 *  to Redis; the scheduler checks Redis for a cancel mark and publishes three messages; the result-store stores the
 *  result in one script, cancel and first-write checks included, and publishes an audit event; the worker checks
 *  the cancel mark, runs the echo handler and publishes RUNNING, the result, then SUCCEEDED with its audit event). */
export const DRAINABLE = ["audit", "notifier", "scheduler", "result-store", "worker"] as const;
export type Drainable = (typeof DRAINABLE)[number];

/** Messages per measured batch by --size; the warm-up batch is a tenth of it (at least 500). */
export const DRAIN_MESSAGES = { small: 5_000, medium: 20_000, large: 50_000 } as const;

const SUBJECT_OF: Record<Drainable, Subject> = {
  audit: Subjects.audit,
  notifier: Subjects.status,
  scheduler: Subjects.schedule,
  "result-store": Subjects.results,
  worker: Subjects.workerMedium,
};
/** What the baseline does per message: a sink's is receive, parse, ack; a stage that publishes also publishes what
 *  it does (the scheduler: the task on tasks.worker.medium, a status and an audit event; the result-store: its audit
 *  event), then acks. */
const BASELINE: Record<Drainable, string> = {
  audit: "bare consumer",
  notifier: "bare consumer",
  scheduler: "bare consumer + 3 publishes",
  "result-store": "bare consumer + 1 publish",
  worker: "bare consumer + 4 publishes in 3 rounds",
};
/** The bare consumer's BENCH_REPUBLISH mode per service: what it publishes before acking. */
const REPUBLISH: Partial<Record<Drainable, string>> = {
  scheduler: "scheduler",
  "result-store": "result-store",
  worker: "worker",
};
const STATUS_STATES = ["PENDING", "INGESTED", "SCHEDULED", "RUNNING"] as const;
const BARE_CONSUMER = fileURLToPath(new URL("../hops/bare-consumer.mjs", import.meta.url));

interface DrainMessage {
  subject: Subject;
  body: string;
  msgId: string;
}

/** Message `i` of a batch for `service`, for tasks whose ids start with `prefix` (unique per batch). */
export function drainMessage(service: Drainable, prefix: string, i: number): DrainMessage {
  if (service === "scheduler" || service === "worker") {
    const taskId = taskIdOf(prefix, i);
    const at = new Date().toISOString();
    const task = {
      taskId,
      type: "echo",
      priority: "medium",
      payload: { text: "benchmark payload ".repeat(6).trim() },
      metadata: {},
      createdAt: at,
      generation: 0,
      enrichment: { payloadBytes: 120, payloadSha256: "0".repeat(64), fieldCount: 1, receivedAt: at, enrichedAt: at },
    };
    return service === "scheduler"
      ? { subject: Subjects.schedule, body: JSON.stringify(task), msgId: `${taskId}:schedule:0` }
      : { subject: Subjects.workerMedium, body: JSON.stringify(task), msgId: `${taskId}:worker:0` };
  }
  if (service === "result-store") {
    const taskId = taskIdOf(prefix, i);
    const at = new Date().toISOString();
    const result = {
      taskId,
      type: "echo",
      priority: "medium",
      output: { text: "benchmark payload ".repeat(6).trim() },
      attempts: 1,
      startedAt: at,
      completedAt: at,
      durationMs: 1,
      generation: 0,
    };
    return { subject: Subjects.results, body: JSON.stringify(result), msgId: `${taskId}:result:0` };
  }
  if (service === "audit") {
    const taskId = taskIdOf(prefix, i);
    const body = { taskId, service: "ingest", action: "ingested", at: new Date().toISOString() };
    return { subject: Subjects.audit, body: JSON.stringify(body), msgId: `${taskId}:audit:ingest:ingested:0` };
  }
  // A task's status events in lifecycle order (SUCCEEDED is left out: the notifier holds it for the task's result),
  // so every update is applied, as in the pipeline.
  const taskId = taskIdOf(prefix, Math.floor(i / STATUS_STATES.length));
  const state = STATUS_STATES[i % STATUS_STATES.length] as (typeof STATUS_STATES)[number];
  const event = statusEvent({ taskId, state, source: "bench", attempt: state === "RUNNING" ? 1 : 0 });
  return { subject: Subjects.status, body: JSON.stringify(event), msgId: `${taskId}:status:${event.version}` };
}

function taskIdOf(prefix: string, n: number): string {
  return `${prefix}-0000-4000-8000-${String(n).padStart(12, "0")}`;
}

export interface DrainFigures {
  /** The service, or "bare consumer". */
  consumer: string;
  messages: number;
  elapsedMs: number;
  messagesPerSec: number;
  /** CPU microseconds per message. */
  perMessageUs: { consumer: number; natsServer: number; redisServer: number };
  /** The consumer's peak RSS (VmHWM) over its life, warm-up and batch included. */
  peakRssMb: number;
  /** NATS protocol traffic per message over the same span, from nats-server's /varz: what every client sent
   *  (messages in: publishes, acks, pull requests) and received (messages out: deliveries, PubAcks, replies),
   *  the benchmark's own publishing of the batch included (one message in and one PubAck out per message). */
  natsPerMessage?: NatsTraffic;
  /** Read and write system calls per message over the same span (/proc/<pid>/io): fewer means more messages per
   *  socket read or write. */
  syscallsPerMessage?: { consumer: SyscallCounts; natsServer: SyscallCounts };
  /** With --instructions: the instructions the consumer executed per message over the measured batch, by kind
   *  (callgrind; its CPU figures are then those of a process running ~75× slower, not comparable with other runs). */
  instructionsPerMessage?: InstructionShares;
}

export interface SyscallCounts {
  reads: number;
  writes: number;
}

export interface NatsTraffic {
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
}

export interface DrainResult {
  startedAt: string;
  finishedAt: string;
  machine: ReturnType<typeof machineInfo>;
  service: Drainable;
  subject: Subject;
  telemetry: TelemetryMode;
  warmupMessages: number;
  /** --bare-fetch: the baseline pulled this many messages per fetch() (absent: one consume() subscription). */
  bareFetch?: number;
  runs: DrainFigures[];
}

export interface DrainOptions {
  service: Drainable;
  messages: number;
  warmupMessages: number;
  telemetry: TelemetryMode;
  /** The bare consumer pulls this many messages at a time with fetch() instead of one consume() subscription. */
  bareFetch?: number;
  /** Count the consumers' instructions under callgrind (--instructions), its files written into this directory. */
  callgrindDir?: string;
  log: (line: string) => void;
}

export async function runDrain(options: DrainOptions): Promise<DrainResult> {
  const startedAt = new Date().toISOString();
  const loadAvgAtStart = loadavg();
  const runs: DrainFigures[] = [];
  const baseline = options.bareFetch
    ? `${BASELINE[options.service]} (fetch ${options.bareFetch})`
    : BASELINE[options.service];
  // Both consumers run under the same wrapper, so their counts compare.
  const wrapperBefore = process.env.TM_SERVICE_WRAPPER;
  if (options.callgrindDir) {
    mkdirSync(options.callgrindDir, { recursive: true });
    process.env.TM_SERVICE_WRAPPER = callgrindWrapper(options.callgrindDir);
  }
  try {
    for (const who of [options.service, baseline]) {
      options.log(`drain: ${who}, ${options.warmupMessages} warm-up + ${options.messages} messages`);
      runs.push(await drainOnce(who, options));
    }
  } finally {
    if (wrapperBefore === undefined) delete process.env.TM_SERVICE_WRAPPER;
    else process.env.TM_SERVICE_WRAPPER = wrapperBefore;
  }
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: machineInfo(loadAvgAtStart),
    service: options.service,
    subject: SUBJECT_OF[options.service],
    telemetry: options.telemetry,
    warmupMessages: options.warmupMessages,
    ...(options.bareFetch ? { bareFetch: options.bareFetch } : {}),
    runs,
  };
}

async function drainOnce(who: string, options: DrainOptions): Promise<DrainFigures> {
  const bare = who !== options.service;
  const subject = SUBJECT_OF[options.service];
  const stream = streamOf(subject);
  const nats = await startNats();
  let redis: RedisServer | undefined;
  let sink: OtlpSink | undefined;
  let nc: NatsConnection | undefined;
  let consumer: { pid: number; stop(): Promise<void> } | undefined;
  try {
    redis = await startRedis();
    if (!bare && options.telemetry === "export") sink = await startOtlpSink();
    nc = await connect({ servers: nats.url, noAsyncTraces: true, name: "bench-drain" });
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm);
    let durable: string;
    if (bare) {
      durable = `bare-${subject.replaceAll(".", "-")}`;
      consumer = await startBareConsumer(
        nats,
        jsm,
        stream,
        durable,
        subject,
        REPUBLISH[options.service],
        options.bareFetch,
      );
    } else {
      durable = durableName(options.service, subject);
      const service = await spawnService(options.service, {
        NATS_URL: nats.url,
        REDIS_URL: redis.url,
        ...(options.telemetry === "off" ? { OTEL_SDK_DISABLED: "true" } : {}),
        ...(sink ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url } : {}),
      });
      consumer = { pid: service.process.pid ?? 0, stop: () => service.process.stop() };
    }
    const watched: WatchedProcess[] = [
      { role: who, kind: "system", pid: consumer.pid },
      { role: "nats-server", kind: "infra", pid: nats.process.pid ?? 0 },
      { role: "redis-server", kind: "infra", pid: redis.process.pid ?? 0 },
    ];
    const publishAndDrain = async (prefix: string, count: number) => {
      await publishBatch(nc as NatsConnection, options.service, prefix, count);
      await waitFor(
        `${who} drained ${count} messages`,
        async () => {
          const info = await jsm.consumers.info(stream, durable);
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        { timeoutMs: 300_000, intervalMs: 20 },
      );
    };
    await publishAndDrain("00000001", options.warmupMessages);
    const trafficBefore = await natsTraffic(nats);
    const syscallsBefore = [syscallsOf(consumer.pid), syscallsOf(nats.process.pid ?? 0)] as const;
    if (options.callgrindDir) await startCounting(consumer.pid);
    const before = snapshotCpu(watched);
    const startedAt = performance.now();
    await publishAndDrain("00000002", options.messages);
    const elapsedMs = performance.now() - startedAt;
    const after = snapshotCpu(watched);
    const instructions = options.callgrindDir ? await stopCounting(consumer.pid, options.callgrindDir) : undefined;
    const syscallsAfter = [syscallsOf(consumer.pid), syscallsOf(nats.process.pid ?? 0)] as const;
    const trafficAfter = await natsTraffic(nats);
    const [consumerUs = 0, natsUs = 0, redisUs = 0] = cpuBetween(watched, before, after).map(
      (usage) => (usage.cpuSeconds / options.messages) * 1e6,
    );
    return {
      consumer: who,
      messages: options.messages,
      elapsedMs,
      messagesPerSec: options.messages / (elapsedMs / 1000),
      perMessageUs: { consumer: consumerUs, natsServer: natsUs, redisServer: redisUs },
      peakRssMb: peakRssMbOf(consumer.pid),
      natsPerMessage: perMessage(trafficBefore, trafficAfter, options.messages),
      syscallsPerMessage: {
        consumer: perMessage(syscallsBefore[0], syscallsAfter[0], options.messages),
        natsServer: perMessage(syscallsBefore[1], syscallsAfter[1], options.messages),
      },
      ...(instructions !== undefined
        ? { instructionsPerMessage: perMessage(ZERO, instructions, options.messages) }
        : {}),
    };
  } finally {
    await consumer?.stop().catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await Promise.all([nats.dispose(), redis?.dispose(), sink?.close()]);
  }
}

const ZERO: InstructionShares = { total: 0, javascript: 0, gc: 0, compiling: 0, other: 0 };

/** nats-server's cumulative message and byte counters (its monitoring endpoint). */
async function natsTraffic(nats: NatsServer): Promise<NatsTraffic> {
  const response = await fetch(`http://127.0.0.1:${nats.monitorPort}/varz`);
  const varz = (await response.json()) as { in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number };
  return { inMsgs: varz.in_msgs, outMsgs: varz.out_msgs, inBytes: varz.in_bytes, outBytes: varz.out_bytes };
}

/** Each counter's growth from `before` to `after`, divided by `messages`. */
export function perMessage<T extends object>(before: T, after: T, messages: number): T {
  const per: Record<string, number> = {};
  for (const key of Object.keys(after) as Array<keyof T & string>)
    per[key] = ((after[key] as number) - (before[key] as number)) / messages;
  return per as T;
}

/** Publishes `count` messages, 500 PubAcks awaited at a time (JetStream's own pace, not the consumer's). */
async function publishBatch(nc: NatsConnection, service: Drainable, prefix: string, count: number): Promise<void> {
  const js = nc.jetstream();
  for (let start = 0; start < count; start += 500) {
    const acks = [];
    for (let i = start; i < Math.min(count, start + 500); i++) {
      const message = drainMessage(service, prefix, i);
      acks.push(js.publish(message.subject, message.body, { msgID: message.msgId }));
    }
    await Promise.all(acks);
  }
}

async function startBareConsumer(
  nats: NatsServer,
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  subject: Subject,
  republish: string | undefined,
  fetchSize: number | undefined,
): Promise<{ pid: number; stop(): Promise<void> }> {
  await jsm.consumers.add(stream, benchConsumer(durable, subject));
  const env = {
    NATS_URL: nats.url,
    BENCH_STREAM: stream,
    BENCH_CONSUMER: durable,
    ...(fetchSize ? { BENCH_FETCH: String(fetchSize) } : {}),
  };
  const [child] = await startHopProcesses(BARE_CONSUMER, [
    { name: "bare-consumer", env: republish ? { ...env, BENCH_REPUBLISH: republish } : env },
  ]);
  return { pid: child?.pid ?? 0, stop: async () => child?.stop(5_000) };
}

/**
 * Runs the benchmark: for each system, fresh nats-server/redis-server, warm-up, a closed-loop saturation phase
 * (throughput, and CPU per 1,000 tasks over exactly that phase), then open-loop phases at 25/50/75 % of the
 * reference peak (latency), then tasks one at a time (the latency floor: nothing else in flight) and the system's
 * round-trip probes, then peak RSS per process; last, round trips to fresh servers alone. The reference peak is our
 * pipeline's when it ran (it runs first); otherwise the first measured system's.
 */
import { cpus, loadavg } from "node:os";
import { type NatsServer, type RedisServer, startNats, startRedis } from "@tm/testkit";
import { closedLoop, type LoadResult, openLoop } from "./load.js";
import { cpuBetween, type ProcessUsage, peakRssMbOf, snapshotCpu, type WatchedProcess } from "./proc.js";
import { infraRoundTrips, measureRoundTrip, type RoundTrip } from "./round-trips.js";
import { OPEN_LOOP_FRACTIONS, openLoopTasks, type SizeProfile } from "./sizes.js";
import { cpuPerThousand, type LatencySummary, ratio, summarize } from "./stats.js";
import { type StoragePerTask, type StorageSnapshot, storagePerTask } from "./storage.js";
import type { SystemUnderTest } from "./system.js";
import { startBullmq } from "./systems/bullmq.js";
import {
  type ClientFlow,
  type ConcurrencyKeys,
  type FairnessKeys,
  missingServiceBuilds,
  type PipelineConfig,
  pipelineConfigOf,
  startPipeline,
  type TelemetryMode,
} from "./systems/pipeline.js";
import { startRawChain } from "./systems/raw.js";
import { startRawFlow } from "./systems/raw-flow.js";

export type SystemName = "raw" | "raw-flow" | "bullmq" | "pipeline";
export const ALL_SYSTEMS: readonly SystemName[] = ["pipeline", "raw", "raw-flow", "bullmq"];

export interface BenchOptions {
  sizeName: string;
  size: SizeProfile;
  only: readonly SystemName[];
  workers: number;
  gateways: number;
  /** Services sharing one services/combined process (--combine). */
  combine?: readonly string[];
  /** What the pipeline's services do with OpenTelemetry (--telemetry; default "on"). */
  telemetry?: TelemetryMode;
  /** How the driver submits and follows a pipeline task (--client-flow; default "two-calls"). */
  clientFlow?: ClientFlow;
  /** Redis replicas whose acknowledgement every write waits for (--redis-replicas; default 0). */
  redisReplicas?: number;
  /** The pipeline's tasks spread over concurrency keys (--concurrency-keys; default none). */
  concurrencyKeys?: ConcurrencyKeys;
  /** The pipeline's tasks spread over fairness keys through a window (--fairness-keys; default none). */
  fairnessKeys?: FairnessKeys;
  /** The open loops' rates are fractions of this many tasks/s instead of the first measured peak (--reference-rate). */
  referenceRate?: number;
  scaling: boolean;
  taskTimeoutMs: number;
  log: (line: string) => void;
}

export interface PhaseResult {
  tasks: number;
  completed: number;
  failed: number;
  elapsedMs: number;
  tasksPerSec: number;
  firstError?: string;
}

export interface OpenLoopResult extends PhaseResult {
  fractionOfReference: number;
  offeredPerSec: number;
  latencyMs: LatencySummary;
  /** CPU seconds per 1,000 completed tasks during this phase: the system's processes plus nats-server and
   *  redis-server. Compared with the saturation phase's figure it shows what batching under load saves. */
  cpuPer1000?: number;
  /** The same per process (the driver included), by role: which processes pay for the smaller batches. */
  processCpuPer1000?: Record<string, number>;
}

export interface ProcessFigures {
  role: string;
  kind: WatchedProcess["kind"];
  cpuSeconds: number;
  cpuSecondsPer1000: number;
  peakRssMb: number;
}

export interface SystemResult {
  system: SystemName;
  config?: PipelineConfig;
  skipped?: string;
  saturation?: PhaseResult & { inFlight: number };
  openLoop?: OpenLoopResult[];
  /** Tasks run one after another, never two in flight: the latency of a task on an otherwise idle system. */
  oneAtATime?: PhaseResult & { latencyMs: LatencySummary };
  /** The system's own probes (SystemUnderTest.probes), timed back to back and after an idle gap. */
  roundTrips?: RoundTrip[];
  /** With --telemetry export: what the services sent to the OTLP sink over the whole run, by path. */
  otlpReceived?: Record<string, { requests: number; bytes: number }>;
  cpu?: { systemPer1000: number; infraPer1000: number; driverPer1000: number };
  processes?: ProcessFigures[];
  /** Redis bytes and keys per finished task over warm-up + saturation, overall and by key prefix (systems with
   *  SystemUnderTest.storage: the pipeline). */
  storage?: StoragePerTask;
}

export interface ScalingResult {
  workers: number;
  gateways: number;
  tasksPerSec?: number;
  offeredPerSec?: number;
  p99Ms?: number;
  skipped?: string;
}

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; loadAvgAtStart: number[] };
  size: string;
  profile: SizeProfile;
  options: { only: readonly SystemName[] } & PipelineConfig;
  reference: { source: string; tasksPerSec: number } | null;
  systems: SystemResult[];
  ratios: Ratios;
  scaling?: ScalingResult[];
  /** Round trips to Redis, core NATS and JetStream from the driver, on fresh servers. */
  roundTrips?: RoundTrip[];
}

export interface Ratios {
  /** Each is ours ÷ theirs: below 1 for throughput means we are slower; above 1 for latency/CPU means costlier. */
  oursOverRaw: RatioSet;
  oursOverBullmq: RatioSet;
  /** Ours ÷ the contract's messages alone (raw-flow): what everything but the message flow costs. */
  oursOverRawFlow: RatioSet;
  /** The contract's messages alone ÷ the 6-hop chain: the most any implementation of the contract could reach. */
  rawFlowOverRaw: RatioSet;
}
export interface RatioSet {
  tasksPerSec: number | null;
  cpuPer1000: number | null;
  p50AtReference: Record<string, number | null>;
  p99AtReference: Record<string, number | null>;
  /** p50 and p99 of the one-at-a-time phase. */
  oneAtATimeP50: number | null;
  oneAtATimeP99: number | null;
}

export interface Infra {
  nats?: NatsServer;
  redis?: RedisServer;
}

export async function startInfra(system: SystemName): Promise<Infra> {
  const [nats, redis] = await Promise.all([
    system === "bullmq" ? undefined : startNats(),
    system === "raw" || system === "raw-flow" ? undefined : startRedis(),
  ]);
  return { nats, redis };
}

export async function disposeInfra(infra: Infra): Promise<void> {
  await Promise.all([infra.nats?.dispose(), infra.redis?.dispose()]);
}

export async function startSystem(
  name: SystemName,
  infra: Infra,
  options: Pick<BenchOptions, "taskTimeoutMs">,
  config: PipelineConfig & { keepSpans?: boolean },
): Promise<SystemUnderTest> {
  const timeouts = { taskTimeoutMs: options.taskTimeoutMs };
  if (name === "raw") return startRawChain(infra.nats!, timeouts);
  if (name === "raw-flow") return startRawFlow(infra.nats!, timeouts);
  if (name === "bullmq") return startBullmq(infra.redis!, timeouts);
  return startPipeline(infra.nats!, infra.redis!, { ...timeouts, ...config });
}

export function phaseOf(result: LoadResult, tasks: number): PhaseResult {
  return {
    tasks,
    completed: result.completed,
    failed: result.failed,
    elapsedMs: result.elapsedMs,
    tasksPerSec: result.tasksPerSec,
    ...(result.firstError ? { firstError: result.firstError } : {}),
  };
}

export const DRIVER: WatchedProcess = { role: "bench-driver", kind: "driver", pid: process.pid };

/** Warm-up: connections, JIT, consumers (closed loop, not measured; its count of finished tasks is used). */
export async function warmUp(system: SystemUnderTest, size: SizeProfile): Promise<LoadResult> {
  return closedLoop(system.runOne, { total: size.warmup, inFlight: size.inFlight });
}

/**
 * Warm-up, then the closed-loop saturation phase with CPU snapshots of `watched`
 * around exactly that phase. Shared by the normal run and the soak (which uses it for the peak its rate is half of).
 */
export async function warmUpAndSaturate(
  name: SystemName,
  system: SystemUnderTest,
  watched: readonly WatchedProcess[],
  options: Pick<BenchOptions, "size" | "log">,
): Promise<{ warmup: LoadResult; saturation: LoadResult; usage: ProcessUsage[] }> {
  const { size, log } = options;
  const warmup = await warmUp(system, size);
  log(`${name}: saturation, ${size.saturationTasks} tasks with ${size.inFlight} in flight`);
  const before = snapshotCpu(watched);
  const saturation = await closedLoop(system.runOne, { total: size.saturationTasks, inFlight: size.inFlight });
  const usage = cpuBetween(watched, before, snapshotCpu(watched));
  log(`${name}: ${saturation.tasksPerSec.toFixed(0)} tasks/s`);
  return { warmup, saturation, usage };
}

/** Measures one system; `reference` is the peak the open-loop rates are fractions of (null: use this one's). */
async function measureSystem(
  name: SystemName,
  options: BenchOptions,
  config: PipelineConfig,
  reference: number | null,
  fractions: readonly number[] = OPEN_LOOP_FRACTIONS,
  /** The one-at-a-time phase, the system's round-trip probes and its Redis footprint (the scaling runs leave them
   *  out). */
  floor = true,
): Promise<SystemResult> {
  const { size, log } = options;
  const infra = await startInfra(name);
  let system: SystemUnderTest | undefined;
  try {
    log(`${name}: starting`);
    system = await startSystem(name, infra, options, config);
    const watched = [...system.processes(), DRIVER];
    // Redis's footprint before any task ran, and after warm-up + saturation: the difference per finished task.
    const storageBefore: StorageSnapshot | undefined = floor ? await system.storage?.() : undefined;
    const { warmup, saturation, usage } = await warmUpAndSaturate(name, system, watched, options);
    let storage: StoragePerTask | undefined;
    if (storageBefore && system.storage) {
      // A task counts as finished when the client saw SUCCEEDED and its result stored, but the services may still be
      // writing about the last ones (audit events, their history, the status's last fields): the after-snapshot
      // first polls DBSIZE until it has not changed for ~1 s, or 5 s passed (storage.ts waitForQuiet; the settle
      // field says which). It is taken after the saturation phase's CPU snapshot, so its SCAN costs that phase nothing.
      const storageAfter = await system.storage({ settle: true });
      storage = storagePerTask(storageBefore, storageAfter, warmup.completed + saturation.completed);
      log(
        `${name}: Redis ${storage.usedMemoryPerTask.toFixed(0)} bytes (used_memory) per finished task, ` +
          `${storage.keysPerTask.toFixed(2)} keys`,
      );
    }

    const base = reference ?? saturation.tasksPerSec;
    const openLoopResults: OpenLoopResult[] = [];
    for (const fraction of fractions) {
      const offeredPerSec = Math.max(1, base * fraction);
      const tasks = openLoopTasks(size, offeredPerSec);
      log(`${name}: open loop at ${offeredPerSec.toFixed(0)}/s (${fraction * 100}% of reference), ${tasks} tasks`);
      const before = snapshotCpu(watched);
      const result = await openLoop(system.runOne, { ratePerSec: offeredPerSec, total: tasks });
      const phaseUsage = cpuBetween(watched, before, snapshotCpu(watched));
      const phaseCpu = phaseUsage.filter((u) => u.kind !== "driver").reduce((total, u) => total + u.cpuSeconds, 0);
      openLoopResults.push({
        ...phaseOf(result, tasks),
        fractionOfReference: fraction,
        offeredPerSec,
        latencyMs: summarize(result.latenciesMs),
        cpuPer1000: cpuPerThousand(phaseCpu, result.completed),
        processCpuPer1000: Object.fromEntries(
          phaseUsage.map((u) => [u.role, cpuPerThousand(u.cpuSeconds, result.completed)]),
        ),
      });
    }

    let serial: LoadResult | undefined;
    const roundTrips: RoundTrip[] = [];
    if (floor) {
      log(`${name}: one task at a time, ${size.oneAtATimeTasks} tasks`);
      serial = await closedLoop(system.runOne, { total: size.oneAtATimeTasks, inFlight: 1 });
      for (const [probe, call] of Object.entries(system.probes ?? {}))
        roundTrips.push(await measureRoundTrip(probe, call, roundTripSamples(size)));
    }

    const otlpReceived = system.exported?.();

    const processes = usage.map((u) => ({
      role: u.role,
      kind: u.kind,
      cpuSeconds: u.cpuSeconds,
      cpuSecondsPer1000: cpuPerThousand(u.cpuSeconds, saturation.completed),
      peakRssMb: peakRssMbOf(u.pid),
    }));
    const per1000 = (kind: WatchedProcess["kind"]) =>
      processes.filter((p) => p.kind === kind).reduce((total, p) => total + p.cpuSecondsPer1000, 0);
    return {
      system: name,
      ...(name === "pipeline" ? { config } : {}),
      saturation: { ...phaseOf(saturation, size.saturationTasks), inFlight: size.inFlight },
      openLoop: openLoopResults,
      ...(serial
        ? { oneAtATime: { ...phaseOf(serial, size.oneAtATimeTasks), latencyMs: summarize(serial.latenciesMs) } }
        : {}),
      ...(roundTrips.length > 0 ? { roundTrips } : {}),
      ...(otlpReceived ? { otlpReceived } : {}),
      cpu: { systemPer1000: per1000("system"), infraPer1000: per1000("infra"), driverPer1000: per1000("driver") },
      processes,
      ...(storage ? { storage } : {}),
    };
  } finally {
    await system?.stop().catch((error) => log(`${name}: stop failed: ${error}`));
    await disposeInfra(infra);
  }
}

function ratioSet(ours: SystemResult | undefined, theirs: SystemResult | undefined): RatioSet {
  const p50: Record<string, number | null> = {};
  const p99: Record<string, number | null> = {};
  for (const fraction of OPEN_LOOP_FRACTIONS) {
    const a = ours?.openLoop?.find((o) => o.fractionOfReference === fraction)?.latencyMs;
    const b = theirs?.openLoop?.find((o) => o.fractionOfReference === fraction)?.latencyMs;
    p50[`${fraction * 100}%`] = ratio(a?.p50, b?.p50);
    p99[`${fraction * 100}%`] = ratio(a?.p99, b?.p99);
  }
  const cpu = (r: SystemResult | undefined) => (r?.cpu ? r.cpu.systemPer1000 + r.cpu.infraPer1000 : undefined);
  return {
    tasksPerSec: ratio(ours?.saturation?.tasksPerSec, theirs?.saturation?.tasksPerSec),
    cpuPer1000: ratio(cpu(ours), cpu(theirs)),
    p50AtReference: p50,
    p99AtReference: p99,
    oneAtATimeP50: ratio(ours?.oneAtATime?.latencyMs.p50, theirs?.oneAtATime?.latencyMs.p50),
    oneAtATimeP99: ratio(ours?.oneAtATime?.latencyMs.p99, theirs?.oneAtATime?.latencyMs.p99),
  };
}

/** Samples per round-trip probe: enough for a stable p50 without making a small run long. */
function roundTripSamples(size: SizeProfile): number {
  return Math.max(10, Math.min(100, size.oneAtATimeTasks));
}

/** Round trips to the infrastructure alone, on fresh servers with nothing else running. */
async function measureInfraRoundTrips(size: SizeProfile): Promise<RoundTrip[]> {
  const nats = await startNats();
  const redis = await startRedis().catch(async (error) => {
    await nats.dispose();
    throw error;
  });
  try {
    return await infraRoundTrips(nats, redis, roundTripSamples(size));
  } finally {
    await Promise.all([nats.dispose(), redis.dispose()]);
  }
}

export function pipelineSkipReason(combine: readonly string[] = []): string | undefined {
  const missing = missingServiceBuilds(combine);
  if (missing.length === 0) return undefined;
  return `services/{${missing.join(",")}}/dist/bundle/index.js missing: run \`pnpm build\` (a service that does not build yet cannot be measured)`;
}

async function runScaling(options: BenchOptions): Promise<ScalingResult[]> {
  const configs = [
    { workers: 1, gateways: 1 },
    { workers: 2, gateways: 1 },
    { workers: 4, gateways: 1 },
    { workers: 1, gateways: 2 },
  ];
  const skipped = pipelineSkipReason();
  if (skipped) return configs.map((c) => ({ ...c, skipped }));
  const results: ScalingResult[] = [];
  let reference: number | null = null;
  for (const config of configs) {
    // p99 at one fixed offered rate (half the first configuration's peak) so configurations compare like for like.
    const layout = { ...config, telemetry: options.telemetry ?? "on", clientFlow: options.clientFlow ?? "two-calls" };
    const measured = await measureSystem("pipeline", options, layout, reference, [0.5], false);
    reference ??= measured.saturation?.tasksPerSec ?? null;
    const paced = measured.openLoop?.[0];
    results.push({
      ...config,
      tasksPerSec: measured.saturation?.tasksPerSec,
      offeredPerSec: paced?.offeredPerSec,
      p99Ms: paced?.latencyMs.p99,
    });
  }
  return results;
}

export function machineInfo(loadAvgAtStart: number[]): BenchResult["machine"] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    node: process.version,
    platform: process.platform,
    loadAvgAtStart,
  };
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const loadAvgAtStart = loadavg();
  const systems: SystemResult[] = [];
  let reference: BenchResult["reference"] =
    options.referenceRate !== undefined
      ? { source: "rate given with --reference-rate", tasksPerSec: options.referenceRate }
      : null;
  const config = pipelineConfigOf(options);
  for (const name of ALL_SYSTEMS.filter((s) => options.only.includes(s))) {
    const skipped = name === "pipeline" ? pipelineSkipReason(config.combine) : undefined;
    if (skipped) {
      options.log(`pipeline: SKIPPED: ${skipped}`);
      systems.push({ system: name, skipped });
      continue;
    }
    const result: SystemResult = await measureSystem(name, options, config, reference?.tasksPerSec ?? null).catch(
      // One system failing to start (e.g. a service crashing at start-up) must not cost the others' figures.
      (error: Error): SystemResult => ({ system: name, skipped: `failed: ${error.message ?? error}` }),
    );
    if (result.skipped) options.log(`${name}: SKIPPED: ${result.skipped}`);
    systems.push(result);
    if (!reference && result.saturation && result.saturation.tasksPerSec > 0)
      reference = {
        source: name === "pipeline" ? "pipeline peak" : `${name} peak (pipeline not measured)`,
        tasksPerSec: result.saturation.tasksPerSec,
      };
  }
  const find = (name: SystemName) => systems.find((s) => s.system === name && !s.skipped);
  const scaling = options.scaling ? await runScaling(options) : undefined;
  options.log("round trips to redis-server and nats-server");
  const roundTrips = await measureInfraRoundTrips(options.size).catch((error: Error) => {
    options.log(`round trips: failed: ${error.message ?? error}`);
    return undefined;
  });
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: machineInfo(loadAvgAtStart),
    size: options.sizeName,
    profile: options.size,
    options: { only: options.only, ...config },
    reference,
    systems,
    ratios: {
      oursOverRaw: ratioSet(find("pipeline"), find("raw")),
      oursOverBullmq: ratioSet(find("pipeline"), find("bullmq")),
      oursOverRawFlow: ratioSet(find("pipeline"), find("raw-flow")),
      rawFlowOverRaw: ratioSet(find("raw-flow"), find("raw")),
    },
    ...(scaling ? { scaling } : {}),
    ...(roundTrips ? { roundTrips } : {}),
  };
}

/**
 * Our pipeline end to end, every service its own process as deployed (spawnService runs services/<name>/dist with
 * telemetry preloaded). A task is an `echo` submitted over gRPC to a gateway; it counts as done when SUCCEEDED is
 * seen on StreamTaskStatus (opened right after submit; the stream sends the current status first, so nothing is
 * missed) AND the result is stored (GET /results/:id on result-store answers 200). With `--client-flow one-call` the
 * task is submitted and followed with SubmitTaskAndStreamStatus instead, one call where the headline makes two.
 */
import { existsSync } from "node:fs";
import { Agent, get as httpGet } from "node:http";
import { join } from "node:path";
import { Priority, TaskState } from "@tm/proto";
import {
  type NatsServer,
  REPO_ROOT,
  type RedisServer,
  type SpawnedCombined,
  type SpawnedService,
  serviceEntryOf,
  spawnCombined,
  spawnService,
  startRedis,
  waitForReplicas,
} from "@tm/testkit";
import { createDriverClient, type DriverClient } from "../grpc-driver.js";
import { within } from "../load.js";
import { startOtlpSink } from "../otlp-sink.js";
import type { WatchedProcess } from "../proc.js";
import { redisStorage } from "../storage.js";
import type { SystemUnderTest } from "../system.js";

export const PIPELINE_SERVICES = [
  "gateway",
  "ingest",
  "enricher",
  "scheduler",
  "worker",
  "result-store",
  "notifier",
  "audit",
  "deadletter",
] as const;

/** The services startPipeline starts with wiring of their own (ports, order, replicas). */
const SPECIALLY_STARTED = new Set<string>(["enricher", "gateway", "result-store", "worker", "ingest"]);

/** The services whose build output is missing (the pipeline phase is skipped, with their names, when any is). */
export function missingServiceBuilds(combine: readonly string[] = []): string[] {
  return [...PIPELINE_SERVICES, ...(combine.length > 0 ? ["combined"] : [])].filter(
    (name) => !existsSync(join(REPO_ROOT, "services", name, serviceEntryOf(join(REPO_ROOT, "services", name)))),
  );
}

/** How the pipeline is laid out: replicas, and which services share one process (services/combined). */
export interface PipelineConfig {
  workers: number;
  gateways: number;
  /** Services run together in one services/combined process instead of one process each (empty: none). */
  combine?: readonly string[];
  /** What the services do with OpenTelemetry (default "on"): see TELEMETRY_MODES. */
  telemetry?: TelemetryMode;
  /** How the driver runs a task (default "two-calls"): see CLIENT_FLOWS. */
  clientFlow?: ClientFlow;
  /** Redis replicas started beside the pipeline's Redis, each stage waiting for them to hold its writes before it
   *  acks (REDIS_WAIT_REPLICAS = this; default 0: no replica, no wait). */
  redisReplicas?: number;
  /** The tasks spread round robin over `keys` concurrency keys of limit `limit` (default none). */
  concurrencyKeys?: ConcurrencyKeys;
  /** The tasks spread round robin over `keys` fairness keys, through a window of `window` (default none). */
  fairnessKeys?: FairnessKeys;
}

/** Concurrency keys for the benchmark's tasks: `keys` 0 is none (the default). */
export interface ConcurrencyKeys {
  keys: number;
  limit: number;
}
export const NO_CONCURRENCY_KEYS: ConcurrencyKeys = { keys: 0, limit: 0 };

/** Fairness keys for the benchmark's tasks, and the gateway's window (GATEWAY_FAIRNESS_WINDOW): `keys` 0 is none. */
export interface FairnessKeys {
  keys: number;
  window: number;
}
export const NO_FAIRNESS_KEYS: FairnessKeys = { keys: 0, window: 0 };

/**
 * - two-calls: SubmitTask, then StreamTaskStatus read to its end (what the benchmark defines, the headline);
 * - one-call: SubmitTaskAndStreamStatus read to its end (the same task, submitted and followed in one gRPC call).
 */
export const CLIENT_FLOWS = ["two-calls", "one-call"] as const;
export type ClientFlow = (typeof CLIENT_FLOWS)[number];

/**
 * - on: the SDK and its instrumentations run, with no exporter (spans are non-recording; trace context still flows);
 * - off: OTEL_SDK_DISABLED=true in every service (no instrumentations, no context manager);
 * - export: as deployed with a collector: spans recorded and exported over OTLP, with metrics, to a sink that
 *   discards them (otlp-sink.ts).
 */
export const TELEMETRY_MODES = ["on", "off", "export"] as const;
export type TelemetryMode = (typeof TELEMETRY_MODES)[number];

/** The layout asked for, defaults filled in: what runBench and runSoak measure and report. */
export function pipelineConfigOf(options: PipelineConfig): Required<PipelineConfig> {
  return {
    workers: options.workers,
    gateways: options.gateways,
    combine: options.combine ?? [],
    telemetry: options.telemetry ?? "on",
    clientFlow: options.clientFlow ?? "two-calls",
    redisReplicas: options.redisReplicas ?? 0,
    concurrencyKeys: options.concurrencyKeys ?? NO_CONCURRENCY_KEYS,
    fairnessKeys: options.fairnessKeys ?? NO_FAIRNESS_KEYS,
  };
}

export interface PipelineOptions extends PipelineConfig {
  taskTimeoutMs: number;
  /** With telemetry "export": decode and keep the exported spans (system.spans()), for --breakdown. */
  keepSpans?: boolean;
}

/** What --combine may name: any service, but not one that runs as several replicas. */
export function combineProblem(config: PipelineConfig): string | undefined {
  const combine = config.combine ?? [];
  if (combine.length === 0) return undefined;
  if (combine.length < 2) return "--combine needs at least two services";
  const unknown = combine.filter((name) => !(PIPELINE_SERVICES as readonly string[]).includes(name));
  if (unknown.length > 0)
    return `--combine: unknown service ${unknown.join(", ")} (known: ${PIPELINE_SERVICES.join(", ")})`;
  if (new Set(combine).size !== combine.length) return "--combine names a service twice";
  if (combine.includes("worker") && config.workers > 1) return "--combine cannot include worker with --workers > 1";
  if (combine.includes("gateway") && config.gateways > 1) return "--combine cannot include gateway with --gateways > 1";
  return undefined;
}

/** `count` replicas of `primary`, each past its first sync before the services start. */
async function startReplicas(primary: RedisServer, count: number): Promise<RedisServer[]> {
  const replicas = await Promise.all(Array.from({ length: count }, () => startRedis({ replicaOf: primary.port })));
  await waitForReplicas(primary, count);
  return replicas;
}

const ECHO_PAYLOAD = { text: "benchmark payload ".repeat(6).trim() };

export async function startPipeline(
  nats: NatsServer,
  redis: RedisServer,
  options: PipelineOptions,
): Promise<SystemUnderTest> {
  const sink =
    options.telemetry === "export" ? await startOtlpSink({ keepSpans: options.keepSpans === true }) : undefined;
  const replicas = await startReplicas(redis, options.redisReplicas ?? 0);
  const base = {
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    ...(replicas.length > 0 ? { REDIS_WAIT_REPLICAS: String(replicas.length) } : {}),
    ...(options.telemetry === "off" ? { OTEL_SDK_DISABLED: "true" } : {}),
    ...(sink ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url } : {}),
    ...(options.fairnessKeys?.keys ? { GATEWAY_FAIRNESS_WINDOW: String(options.fairnessKeys.window) } : {}),
  };
  const services: SpawnedService[] = [];
  const combine = options.combine ?? [];
  let combined: SpawnedCombined | undefined;
  const spawn = async (name: string, env: NodeJS.ProcessEnv = {}) => {
    const service = await spawnService(name, { ...base, ...env });
    services.push(service);
    return service;
  };
  // The main ports of a service, whether it runs alone or in the combined process.
  const portOf = (name: string, alone?: SpawnedService) => alone?.port ?? (combined?.services[name]?.port as number);
  try {
    const alone = (name: string) => !combine.includes(name);
    // The enricher uses no NATS: it goes first, so ingest (alone or combined) can be told its port.
    const enricher = alone("enricher") ? await spawn("enricher") : undefined;
    // The first process to start creates the streams; start one alone so two do not race to create them.
    if (combine.length > 0) {
      // A combined ingest calls the enricher alone, or (spawnCombined's default) the one of its own process.
      const env = enricher ? { ...base, INGEST__ENRICHER_URL: `http://127.0.0.1:${enricher.port}` } : base;
      combined = await spawnCombined(combine, env);
    }
    const enricherUrl = () => `http://127.0.0.1:${portOf("enricher", enricher)}`;
    const gateways: SpawnedService[] = alone("gateway") ? [await spawn("gateway")] : [];
    const resultStore = alone("result-store") ? await spawn("result-store") : undefined;
    await Promise.all([
      ...Array.from({ length: alone("gateway") ? options.gateways - 1 : 0 }, () =>
        spawn("gateway").then((g) => gateways.push(g)),
      ),
      ...Array.from({ length: alone("worker") ? options.workers : 0 }, () => spawn("worker")),
      ...(alone("ingest") ? [spawn("ingest", { ENRICHER_URL: enricherUrl() })] : []),
      // The rest need no wiring of their own (scheduler, notifier, audit, deadletter, and any service added later).
      ...PIPELINE_SERVICES.filter((name) => !SPECIALLY_STARTED.has(name) && alone(name)).map((name) => spawn(name)),
    ]);
    const gatewayPorts = alone("gateway") ? gateways.map((g) => g.port) : [portOf("gateway")];
    const resultStorePort = portOf("result-store", resultStore);
    const clients: DriverClient[] = gatewayPorts.map((port) => createDriverClient(`127.0.0.1:${port}`));
    let next = 0;

    // node:http over keep-alive connections, not the global fetch: on Node 20 fetch cost the driver about 1 ms of CPU
    // per call, CPU taken from the same two cores the pipeline runs on.
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const getStatus = (path: string) =>
      new Promise<number>((resolve, reject) => {
        httpGet({ host: "127.0.0.1", port: resultStorePort, path, agent }, (response) => {
          response.resume(); // the body is not needed, only that it can be read
          response.on("end", () => resolve(response.statusCode ?? 0));
          response.on("error", reject);
        }).on("error", reject);
      });
    const resultStored = async (taskId: string) => {
      // The worker publishes the result and the SUCCEEDED status separately: the result may land a moment later.
      for (;;) {
        const status = await getStatus(`/results/${taskId}`);
        if (status === 200) return;
        if (status !== 404) throw new Error(`GET /results/${taskId} answered ${status}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };

    const plain = { type: "echo", payload: ECHO_PAYLOAD, priority: Priority.MEDIUM };
    // With concurrency keys, each task the next key round robin (this run's own keys: a fresh Redis anyway).
    // With fairness keys the same way, each through the gateway's window.
    const keys = options.concurrencyKeys ?? NO_CONCURRENCY_KEYS;
    const fairness = options.fairnessKeys ?? NO_FAIRNESS_KEYS;
    let submitted = 0;
    const taskOf = () => {
      const n = submitted++;
      return {
        ...plain,
        ...(keys.keys === 0 ? {} : { concurrencyKey: `bench-${n % keys.keys}`, concurrencyLimit: keys.limit }),
        ...(fairness.keys === 0 ? {} : { fairnessKey: `tenant-${n % fairness.keys}` }),
      };
    };
    // The gateway ends the stream right after the terminal state (the contract): its last state is the outcome.
    const submitAndFollow =
      options.clientFlow === "one-call"
        ? (client: DriverClient) => client.submitAndFollow(taskOf())
        : async (client: DriverClient) => {
            const taskId = await client.submit(taskOf());
            return { taskId, last: await client.lastState(taskId) };
          };
    const runTask = async (client: DriverClient) => {
      const { taskId, last } = await submitAndFollow(client);
      if (last !== TaskState.SUCCEEDED) throw new Error(`task ${taskId} ended ${TaskState[last ?? 0]}`);
      await resultStored(taskId);
    };

    // Its own connection (connected on first use), for the storage footprint only.
    const storage = redisStorage(redis.url);

    return {
      name: "pipeline",
      runOne() {
        // Round robin over the gateway replicas (what a load balancer in front of them would do).
        const client = clients[next++ % clients.length] as DriverClient;
        return within(runTask(client), options.taskTimeoutMs, "pipeline task");
      },
      ...(sink ? { exported: () => sink.received(), spans: () => sink.spans() } : {}),
      storage: (snapshotOptions) => storage.snapshot(snapshotOptions),
      probes: {
        "gRPC unary call to the gateway (Health/Check)": () => (clients[0] as DriverClient).check(),
        "HTTP GET to result-store (/healthz)": () => getStatus("/healthz"),
      },
      processes(): WatchedProcess[] {
        const counts = new Map<string, number>();
        return [
          ...services.map((s) => {
            const n = (counts.get(s.name) ?? 0) + 1;
            counts.set(s.name, n);
            return { role: n > 1 ? `${s.name}#${n}` : s.name, kind: "system" as const, pid: s.process.pid ?? 0 };
          }),
          ...(combined
            ? [{ role: `combined(${combine.join("+")})`, kind: "system" as const, pid: combined.process.pid ?? 0 }]
            : []),
          { role: "nats-server", kind: "infra", pid: nats.process.pid ?? 0 },
          { role: "redis-server", kind: "infra", pid: redis.process.pid ?? 0 },
          ...replicas.map((r, i) => ({
            role: `redis-replica#${i + 1}`,
            kind: "infra" as const,
            pid: r.process.pid ?? 0,
          })),
        ];
      },
      async stop() {
        agent.destroy();
        storage.close();
        for (const client of clients) client.close();
        await Promise.all([...services.map((s) => s.process.stop(20_000)), combined?.process.stop(20_000)]);
        await sink?.close();
        await Promise.all(replicas.map((r) => r.dispose()));
      },
    };
  } catch (error) {
    await Promise.all([...services.map((s) => s.process.kill()), combined?.process.kill()]);
    await sink?.close();
    await Promise.all(replicas.map((r) => r.dispose()));
    throw error;
  }
}

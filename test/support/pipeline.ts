/**
 * The whole pipeline for end-to-end tests: real nats-server and redis-server, and by default every service as its
 * own process (built dist, telemetry preloaded), as deployed. Returns clients and helpers to drive and observe it.
 *
 * With `ownProcess` (see its comment in startPipeline's options), only the services listed there run as their own
 * process and the others share one services/combined process: a file lists what it kills, restarts, signals or reads
 * per process, and the rest costs one process start instead of several.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { createTaskClient, type StreamTaskStatusResponse, type TaskClient, TaskState } from "@tm/proto";
import {
  type ManagedProcess,
  type NatsServer,
  type RedisSentinel,
  type RedisServer,
  readyOrRespawn,
  type SpawnedCombined,
  type SpawnedService,
  spawnCombined,
  spawnService,
  startNats,
  startRedis,
  startRedisSentinel,
  TcpProxy,
  waitForReadyz,
  waitForReplicas,
} from "@tm/testkit";
import { Redis } from "ioredis";

export const SERVICE_ORDER = [
  "enricher",
  "notifier",
  "audit",
  "deadletter",
  "result-store",
  "ingest",
  "scheduler",
  "worker",
  "gateway",
] as const;
export type ServiceName = (typeof SERVICE_ORDER)[number];

/** Short JetStream timings so retries and redeliveries happen within a test's patience. */
export const FAST_FLOW: NodeJS.ProcessEnv = {
  FLOW_ACK_WAIT_MS: "3000",
  FLOW_RETRY_DELAYS_MS: "100,150,200,250,300",
  SHUTDOWN_TIMEOUT_MS: "3000",
};

export interface Pipeline {
  nats: NatsServer;
  redis: RedisServer;
  /** Every service by name (and replicas by their key). Those not in `ownProcess` share one `process`: stopping it
   *  would stop them all, and its /metrics, pid and log lines are the combined process's. */
  services: Map<string, SpawnedService>;
  env: NodeJS.ProcessEnv;
  client: TaskClient;
  redisClient: Redis;
  /** With `redisProxy`: the address the services use for Redis, which a test can point at another server. */
  redisProxy?: TcpProxy;
  /** With `redisSentinel`: the replica of `redis` and the Sentinel the services ask for the primary. */
  redisHa?: { replica: RedisServer; sentinel: RedisSentinel };
  gatewayUrl: string;
  resultStoreUrl: string;
  enricherUrl: string;
  spawn(name: ServiceName, extraEnv?: NodeJS.ProcessEnv, key?: string): Promise<SpawnedService>;
  dispose(): Promise<void>;
}

export async function startPipeline(
  options: {
    env?: NodeJS.ProcessEnv;
    perService?: Partial<Record<ServiceName, NodeJS.ProcessEnv>>;
    redisAof?: boolean;
    /** Services reach Redis through a TCP proxy (a failover's DNS name), not directly. */
    redisProxy?: boolean;
    /** A replica and a Sentinel beside `redis`; the services find the primary through the Sentinel. */
    redisSentinel?: boolean;
    /**
     * The services that run as their own process; the others run together in ONE services/combined process
     * (TM_SERVICES, their perService variables as `<SERVICE>__<VAR>`). Absent: every service its own process, as
     * deployed (test/pipeline.int.test.ts, the observability tests). `[]`: all nine together.
     *
     * Fidelity against CPU: each service process costs ~0.9 CPU-s to start (bundle, grpc-js, ioredis, pino,
     * OpenTelemetry), and service processes took ~590 of the suite's ~930 CPU-s on two cores (docs/PERFORMANCE.md,
     * sessions 43 and 44). Combined, each service keeps its own NATS and Redis connections, durables, ops port and ordered
     * shutdown, so what a test sees through NATS, Redis and the APIs is unchanged. What is shared is per process:
     * one pid, one stderr, one metrics registry (each /metrics shows all of them), one telemetry service.name, and
     * one SIGTERM or SIGKILL for all. So list every service the test kills, stops, restarts, signals or replaces,
     * or reads per-process things from (its /metrics, pid, log lines, RSS). TM_TEST_SEPARATE=1 ignores it (every
     * service its own process): to tell whether a failure comes from combining, and to measure what it saves.
     */
    ownProcess?: readonly ServiceName[];
  } = {},
): Promise<Pipeline> {
  const [nats, redis] = await Promise.all([startNats(), startRedis({ appendonly: options.redisAof ?? false })]);
  const redisProxy = options.redisProxy ? await TcpProxy.start(redis.port) : undefined;
  const redisUrl = redisProxy ? `redis://127.0.0.1:${redisProxy.port}` : redis.url;
  const redisHa = options.redisSentinel ? await startRedisHa(redis) : undefined;
  const env: NodeJS.ProcessEnv = {
    NATS_URL: nats.url,
    REDIS_URL: redisUrl,
    ...(redisHa && {
      REDIS_SENTINELS: `127.0.0.1:${redisHa.sentinel.port}`,
      REDIS_SENTINEL_MASTER: redisHa.sentinel.master,
    }),
    ...FAST_FLOW,
    ...options.env,
  };
  const services = new Map<string, SpawnedService>();
  // Starts a service's process without waiting for it: its ports are chosen before it starts, so they are known at
  // once (the enricher's is ingest's ENRICHER_URL).
  const launch = async (name: ServiceName, extraEnv: NodeJS.ProcessEnv = {}, key: string = name) => {
    const service = await spawnService(
      name,
      { ...env, ...options.perService?.[name], ...extraEnv },
      { waitReady: false },
    );
    services.set(key, service);
    return service;
  };
  // The services not in ownProcess; one alone gains nothing from the combined runner and runs as its own process.
  const ownProcess = new Set<ServiceName>(
    process.env.TM_TEST_SEPARATE === "1" ? SERVICE_ORDER : (options.ownProcess ?? SERVICE_ORDER),
  );
  let together = SERVICE_ORDER.filter((n) => !ownProcess.has(n));
  if (together.length === 1) together = [];
  const separate = SERVICE_ORDER.filter((n) => !together.includes(n));
  // Starts the combined process without waiting for it, and enters each of its services in `services` with the
  // shared process. A restart (its port taken) keeps the enricher's port: ingest may already have its address.
  const launchTogether = async (): Promise<SpawnedCombined> => {
    const perService: Record<string, NodeJS.ProcessEnv> = {};
    for (const name of together) perService[name] = { ...options.perService?.[name] };
    const started = services.get("enricher");
    if (started && perService.enricher) perService.enricher.PORT = String(started.port);
    const combined = await spawnCombined(together, env, { waitReady: false, perService });
    for (const name of together) {
      const { opsPort, port } = combined.services[name]!;
      services.set(name, {
        name,
        process: combined.process,
        opsPort,
        port,
        env: combined.env,
        ready: (timeoutMs = 60_000) => waitForReadyz(name, combined.process, opsPort, timeoutMs),
        // Its process is the others' too: a test that restarts it lists it in ownProcess.
        restart: () => Promise.reject(new Error(`${name} runs in a combined process: list it in ownProcess`)),
      });
    }
    return combined;
  };
  // A service started later (a second replica, a restart): as at start, one whose chosen port was taken before it
  // bound it is started again on new ports. Nine Node processes on two shared cores can take a while to be ready.
  const spawn = async (name: ServiceName, extraEnv: NodeJS.ProcessEnv = {}, key: string = name) => {
    // Under its own name while it runs combined, it would run beside the combined one, not instead of it.
    if (key === name && together.includes(name)) {
      throw new Error(`${name} runs in a combined process: list it in ownProcess to start it on its own`);
    }
    return readyOrRespawn(await launch(name, extraEnv, key), () => launch(name, extraEnv, key), 60_000);
  };
  try {
    // All start together. Ingest needs only the enricher's address at start (it calls it per task, and no task is
    // sent before every service is ready), so whichever process runs the enricher is launched first. Streams: every
    // NATS service provisions them at start, and provisionStreams (pkg/flow) is safe to run from all at once
    // (pkg/flow/test/streams-race.int.test.ts).
    let combined = together.includes("enricher") ? await launchTogether() : undefined;
    const enricher = combined ? undefined : await launch("enricher");
    env.ENRICHER_URL = `http://127.0.0.1:${services.get("enricher")!.port}`;
    const others = separate.filter((n) => n !== "enricher");
    const launched = await Promise.allSettled([
      ...others.map((n) => launch(n)),
      ...(together.length > 0 && !combined ? [launchTogether().then((c) => (combined = c))] : []),
    ]);
    const failed = launched.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    // A process whose chosen port was taken before it bound it is launched again on new ports; not a separate
    // enricher, whose address ingest already has.
    await Promise.all([
      enricher?.ready(60_000),
      ...others.map((name) => readyOrRespawn(services.get(name)!, () => launch(name), 60_000)),
      combined && readyOrRespawn(combined, launchTogether, 60_000),
    ]);
  } catch (error) {
    await Promise.all(processesOf(services).map((p) => p.kill()));
    await redisProxy?.close();
    await disposeRedisHa(redisHa);
    await Promise.all([nats.dispose(), redis.dispose()]);
    throw error;
  }
  const gateway = services.get("gateway")!;
  const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
  const redisClient = new Redis(redis.url, { maxRetriesPerRequest: 50 });
  redisClient.on("error", () => undefined);
  return {
    nats,
    redis,
    services,
    env,
    client: createTaskClient({ baseUrl: gatewayUrl }),
    redisClient,
    redisProxy,
    redisHa,
    gatewayUrl,
    resultStoreUrl: `http://127.0.0.1:${services.get("result-store")!.port}`,
    enricherUrl: env.ENRICHER_URL,
    spawn,
    async dispose() {
      redisClient.disconnect();
      await Promise.all(processesOf(services).map((p) => p.kill()));
      await redisProxy?.close();
      await disposeRedisHa(redisHa);
      await Promise.all([nats.dispose(), redis.dispose()]);
    },
  };
}

/** Each process once: the services of a combined process share one. */
function processesOf(services: Map<string, SpawnedService>): ManagedProcess[] {
  return [...new Set([...services.values()].map((s) => s.process))];
}

async function startRedisHa(primary: RedisServer): Promise<{ replica: RedisServer; sentinel: RedisSentinel }> {
  const replica = await startRedis({ replicaOf: primary.port });
  await waitForReplicas(primary, 1);
  return { replica, sentinel: await startRedisSentinel(primary) };
}

async function disposeRedisHa(ha: { replica: RedisServer; sentinel: RedisSentinel } | undefined): Promise<void> {
  await ha?.sentinel.dispose();
  await ha?.replica.dispose();
}

export const TERMINAL = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED]);

/** Collects a task's status stream until it ends (after a terminal state) or the deadline passes. */
export async function collectStream(
  client: TaskClient,
  taskId: string,
  timeoutMs = 30_000,
): Promise<StreamTaskStatusResponse[]> {
  const updates: StreamTaskStatusResponse[] = [];
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    for await (const update of client.streamTaskStatus({ taskId }, { signal })) updates.push(update);
  } catch (error) {
    const states = updates.map((u) => TaskState[u.status?.state ?? 0]).join(" → ");
    throw new Error(`stream of ${taskId} failed after [${states}]: ${(error as ConnectError).message ?? error}`);
  }
  return updates;
}

/**
 * Follows a task's status until its stream ends, re-opening it while it fails UNAVAILABLE (what the gateway answers
 * when its Redis subscriber connection drops: a client re-opens and gets the current status first). Returns the
 * states of the last opening and how many times it was re-opened.
 */
export async function followToEnd(
  client: TaskClient,
  taskId: string,
  timeoutMs = 60_000,
): Promise<{ states: string[]; reopened: number }> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (let reopened = 0; ; reopened++) {
    const states: string[] = [];
    try {
      for await (const update of client.streamTaskStatus({ taskId }, { signal })) states.push(stateNames([update])[0]!);
      return { states, reopened };
    } catch (error) {
      if (ConnectError.from(error).code !== Code.Unavailable || signal.aborted) {
        throw new Error(
          `stream of ${taskId} failed after [${states.join(" → ")}]: ${ConnectError.from(error).message}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100)); // the gateway resubscribes meanwhile
    }
  }
}

export function stateNames(updates: StreamTaskStatusResponse[]): string[] {
  return updates.map((u) => TaskState[u.status?.state ?? 0] ?? "?");
}

/**
 * The wiring every service shares, so that a service's own code is only its handlers:
 * read config → logger → NATS (streams provisioned) and Redis → ops server → the service's start() → run until
 * SIGTERM, then stop in order: readiness off, the service's own stop, consumers (finish in-flight work within
 * SHUTDOWN_TIMEOUT_MS, hand back the rest), drain NATS, close Redis, close the ops server, flush telemetry (when the
 * service runs as its own process: runService).
 *
 * `startService` runs a service inside the current process (tests); `runService` is a service's main().
 */
import { type Meter, metrics } from "@opentelemetry/api";
import {
  Consumer,
  type ConsumerHooks,
  durableName,
  type FlowSettings,
  type MessageFor,
  type MessageHandler,
  type Publisher,
  provisionConsumer,
  provisionStreams,
  type Subject,
} from "@tm/flow";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type * as z from "zod";
import { type BaseConfig, ConfigError, flowSettingsOf, loadConfig } from "./config.js";
import { credentialFilesOf, exportCredentialExpiry } from "./credential-expiry.js";
import { retryWhileJetStreamStarts } from "./jetstream-startup.js";
import { LogThrottle } from "./log-throttle.js";
import { createLogger, type Logger } from "./logger.js";
import { connectNats, type NatsHandle, natsAuthOf, natsInboxPrefixOf, natsTlsOf } from "./nats.js";
import {
  closeApp,
  createOpsServer,
  HTTP_CLOSE_GRACE_MS,
  listen,
  type ReadinessCheck,
  registerOpsRoutes,
} from "./ops-server.js";
import { isOutage } from "./outage.js";
import { connectRedis, redisTargetOf } from "./redis.js";
import { NO_REPLICA_ACKS, replicaAcks } from "./replica-acks.js";
import { Shutdown } from "./shutdown.js";
import { ConsumerMetrics, withStageMetrics } from "./stage-metrics.js";
import { telemetry } from "./telemetry.js";

export interface ServiceDefinition<S extends z.ZodRawShape, Started = unknown> {
  name: string;
  /** The service's own environment variables (beyond the base ones). */
  config?: S;
  /** Default ops port (OPS_PORT overrides). Use "api" when the service serves ops routes on its own HTTP app. */
  opsPort: number | "api";
  /** Which connections the service needs. Both by default. */
  needs?: { nats?: boolean; redis?: boolean };
  start(runtime: Runtime<BaseConfig & z.infer<z.ZodObject<S>>>): Promise<Started>;
}

export interface ConsumeOptions<S extends Subject> {
  concurrency?: number;
  hooks?: ConsumerHooks<S>;
  /** Handle messages with the same key one after another, in stream order (e.g. `(m) => m.taskId`). */
  orderKey?: (message: MessageFor<S>) => string | undefined;
  /** Start deliveries in batches gathered over this many ms (ConsumerOptions.gatherMs): for latency-insensitive
   *  consumers only. */
  gatherMs?: number;
  /** False for a handler that only reads Redis: its deliveries are acked without waiting for replicas
   *  (REDIS_WAIT_REPLICAS), which would cost a round trip to them for nothing. Default true. */
  writesRedis?: boolean;
}

export interface Runtime<C extends BaseConfig = BaseConfig> {
  name: string;
  config: C;
  log: Logger;
  settings: FlowSettings;
  meter: Meter;
  shutdown: Shutdown;
  /** Present unless the service declared needs.nats = false. */
  nats: NatsHandle;
  publisher: Publisher;
  /** Present unless the service declared needs.redis = false. */
  redis: Redis;
  /** Resolves once REDIS_WAIT_REPLICAS replicas hold every write sent on `redis` before the call (at once when 0);
   *  fails as a Redis outage otherwise. rt.consume runs it before each ack; a service answering a caller runs it
   *  before it answers (or before it publishes what the writes are for). */
  confirmRedisWrites(): Promise<void>;
  /** Provisions the durable consumer for (service, subject), starts it, and stops it on shutdown. */
  consume<S extends Subject>(subject: S, handler: MessageHandler<S>, options?: ConsumeOptions<S>): Promise<Consumer<S>>;
  /** Stage metrics, consumer lag gauges and outcome logs for a consumer the service runs itself (rt.consume
   *  already applies them). */
  stageHooks<S extends Subject>(subject: S, hooks?: ConsumerHooks<S>): ConsumerHooks<S>;
  /** Adds a readiness check to /readyz. */
  addCheck(name: string, check: ReadinessCheck): void;
  /** Registers /healthz, /readyz and /metrics on the service's own HTTP app (opsPort "api"). */
  registerOps(app: FastifyInstance): void;
  /** Runs `stop` early in shutdown (before consumers stop): stop accepting requests, close servers. */
  onStop(name: string, stop: () => Promise<unknown> | unknown): void;
  /** True once shutdown began. */
  readonly stopping: boolean;
  /**
   * Asks for a fresh process: runs the service's ordered shutdown, then, when the service owns its process (runService,
   * runServices), exits with EXIT_RESTART so that its supervisor (Kubernetes, compose's restart policy) starts a new
   * one. In-process (tests) the service only stops. For a state only a new process clears (handlers that will not
   * stop). Idempotent: later calls join the first.
   */
  restart(reason: string): void;
}

/** The exit code of a service that asked for a fresh process (Runtime.restart): EX_TEMPFAIL, "try again". */
export const EXIT_RESTART = 75;

export interface StartedService<Started> {
  runtime: Runtime;
  started: Started;
  /** The port the ops server listens on (undefined with opsPort "api"). */
  opsPort: number | undefined;
  stop(): Promise<void>;
  /** Replaces what Runtime.restart does (by default: stop the service); runService makes it exit the process. */
  onRestart(handler: (reason: string) => void): void;
  /** Resolves with the reason once Runtime.restart was called (for tests and runners). */
  readonly restartRequested: Promise<string>;
}

/**
 * Creates a consumer's stream and durable again after a pull found them gone: an operator deleted one, or a
 * nats-server came back without its store (a lost volume), which leaves every service connected to a JetStream that
 * knows none of them. Messages that were in the lost store are gone with it (taskctl ls --stalled-for and
 * taskctl requeue bring their tasks back: docs/OPERATIONS.md); new ones flow again at once.
 */
export async function recreateConsumer(
  nats: NatsHandle,
  service: string,
  subject: Subject,
  settings: FlowSettings,
  { log, warnings }: { log: Logger; warnings: LogThrottle },
): Promise<void> {
  const heldBack = warnings.pass();
  if (heldBack !== undefined) {
    log.warn(
      { subject, consumer: durableName(service, subject), heldBack },
      "the durable consumer or its stream is gone (deleted, or NATS lost its store): creating them again",
    );
  }
  await provisionStreams(nats.jsm, settings);
  await provisionConsumer(nats.jsm, service, subject, settings);
}

export async function startService<S extends z.ZodRawShape, Started>(
  definition: ServiceDefinition<S, Started>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<StartedService<Started>> {
  const config = loadConfig(definition.config ?? ({} as S), env);
  const log = createLogger(definition.name, config.LOG_LEVEL);
  const settings = flowSettingsOf(config);
  const shutdown = new Shutdown(log);
  const checks: Record<string, ReadinessCheck> = {};
  const earlyStops: Array<{ name: string; stop: () => Promise<unknown> | unknown }> = [];
  const consumers: Consumer<Subject>[] = [];
  const needsNats = definition.needs?.nats ?? true;
  const needsRedis = definition.needs?.redis ?? true;
  telemetry(definition.name);

  let nats: NatsHandle | undefined;
  let redis: Redis | undefined;
  try {
    if (needsNats) {
      nats = await connectNats({
        url: config.NATS_URL,
        name: definition.name,
        ...natsAuthOf(config),
        tls: natsTlsOf(config),
        inboxPrefix: natsInboxPrefixOf(config),
        settings,
        log,
        onLost: () => void shutdown.run("NATS connection lost").then(() => process.exit(1)),
      });
      const nc = nats.nc;
      checks.nats = async () => {
        if (nc.isClosed()) throw new Error("connection closed");
        await nc.flush();
        return true;
      };
    }
    if (needsRedis) {
      redis = connectRedis(redisTargetOf(config), definition.name, log);
      const r = redis;
      checks.redis = async () => (await r.ping()) === "PONG";
    }
  } catch (error) {
    await nats?.nc.close().catch(() => undefined);
    redis?.disconnect();
    throw error;
  }

  // When the credential files it connects with stop being valid, as gauges to alert on before a reconnection is
  // refused (credential-expiry.ts): only the files of the connections this service makes.
  const stopCredentialExpiry = exportCredentialExpiry(
    metrics.getMeter(`tm.${definition.name}`),
    credentialFilesOf(config).filter(({ credential }) => (credential.startsWith("nats") ? needsNats : needsRedis)),
  );
  const redisWrites = redis
    ? replicaAcks(redis, config.REDIS_WAIT_REPLICAS, config.REDIS_WAIT_TIMEOUT_MS)
    : NO_REPLICA_ACKS;
  const consumerMetrics = new ConsumerMetrics(metrics.getMeter("tm.flow"));
  const recreations = { log, warnings: new LogThrottle(10_000) };
  let restartHandler: (reason: string) => void = (reason) => void shutdown.run(reason);
  let askedRestart: ((reason: string) => void) | undefined;
  const restartRequested = new Promise<string>((resolve) => (askedRestart = resolve));
  let restarting = false;
  const runtime: Runtime = {
    name: definition.name,
    config,
    log,
    settings,
    meter: metrics.getMeter(`tm.${definition.name}`),
    shutdown,
    get nats(): NatsHandle {
      if (!nats) throw new Error(`${definition.name} declared it does not use NATS`);
      return nats;
    },
    get publisher(): Publisher {
      if (!nats) throw new Error(`${definition.name} declared it does not use NATS`);
      return nats.publisher;
    },
    get redis(): Redis {
      if (!redis) throw new Error(`${definition.name} declared it does not use Redis`);
      return redis;
    },
    async consume(subject, handler, options = {}) {
      if (!nats) throw new Error(`${definition.name} declared it does not use NATS`);
      await retryWhileJetStreamStarts(
        `provisioning the ${subject} consumer`,
        () => provisionConsumer(nats.jsm, definition.name, subject, settings),
        { log },
      );
      const consumer = new Consumer({
        js: nats.js,
        publisher: nats.publisher,
        service: definition.name,
        subject,
        handler,
        settings,
        ...(options.concurrency ? { concurrency: options.concurrency } : {}),
        ...(options.orderKey ? { orderKey: options.orderKey } : {}),
        ...(options.gatherMs ? { gatherMs: options.gatherMs } : {}),
        isOutage,
        recreate: () => recreateConsumer(nats, definition.name, subject, settings, recreations),
        ...(redis &&
          config.REDIS_WAIT_REPLICAS > 0 &&
          options.writesRedis !== false && { confirmWrites: () => redisWrites.confirm() }),
        hooks: withStageMetrics(consumerMetrics, definition.name, subject, options.hooks, log, config.TASK_TYPES),
      });
      consumerMetrics.watch(nats.jsm, subject, consumer.durable);
      await retryWhileJetStreamStarts(`starting the ${subject} consumer`, () => consumer.start(), { log });
      consumers.push(consumer as unknown as Consumer<Subject>);
      nats.onReconnect(() => consumer.repull());
      return consumer;
    },
    stageHooks(subject, hooks) {
      if (!nats) throw new Error(`${definition.name} declared it does not use NATS`);
      consumerMetrics.watch(nats.jsm, subject, durableName(definition.name, subject));
      return withStageMetrics(consumerMetrics, definition.name, subject, hooks, log, config.TASK_TYPES);
    },
    confirmRedisWrites: () => redisWrites.confirm(),
    addCheck(name, check) {
      checks[name] = check;
    },
    registerOps(app) {
      registerOpsRoutes(app, { service: definition.name, checks, isShuttingDown: () => shutdown.started });
    },
    onStop(name, stop) {
      earlyStops.push({ name, stop });
    },
    get stopping() {
      return shutdown.started;
    },
    restart(reason) {
      if (restarting) return;
      restarting = true;
      log.error({ reason }, "this process needs replacing: stopping, to be started afresh");
      askedRestart?.(reason);
      restartHandler(reason);
    },
  };

  let ops: FastifyInstance | undefined;
  let opsPort: number | undefined;
  shutdown.add("service", async () => {
    for (const { name, stop } of earlyStops) {
      try {
        await stop();
      } catch (error) {
        log.warn({ err: error, step: name }, "stop step failed; continuing");
      }
    }
  });
  shutdown.add("consumers", () => Promise.all(consumers.map((c) => c.stop(config.SHUTDOWN_TIMEOUT_MS))));
  shutdown.add("metrics", () => {
    stopCredentialExpiry();
    return consumerMetrics.stop();
  });
  shutdown.add("nats", () => nats?.nc.drain());
  shutdown.add("redis", async () => {
    if (redis && redis.status === "ready") await redis.quit();
    else redis?.disconnect();
  });
  shutdown.add("ops server", () => (ops ? closeApp(ops, HTTP_CLOSE_GRACE_MS, log) : undefined));

  let started: Started;
  try {
    started = await definition.start(runtime as Runtime<BaseConfig & z.infer<z.ZodObject<S>>>);
    if (definition.opsPort !== "api") {
      ops = createOpsServer(log, { service: definition.name, checks, isShuttingDown: () => shutdown.started });
      opsPort = await listen(ops, config.OPS_PORT ?? definition.opsPort, "0.0.0.0", `${definition.name} ops server`);
    }
  } catch (error) {
    await shutdown.run("start-up failed");
    throw error;
  }
  log.info({ opsPort }, `${definition.name} started`);
  return {
    runtime,
    started,
    opsPort,
    stop: () => shutdown.run("stop requested"),
    onRestart(handler) {
      restartHandler = handler;
    },
    restartRequested,
  };
}

/** A service's main(): starts it, installs signal handlers, and exits with a clear message on a bad start. */
export function runService<S extends z.ZodRawShape, Started>(definition: ServiceDefinition<S, Started>): void {
  startService(definition).then(
    (service) => {
      // Last step, and only when the service owns its process: export the spans and metrics still buffered (the
      // batch processor holds up to 5 s of spans; `beforeExit` never fires on process.exit). In-process tests
      // share one telemetry between services, so startService leaves it running.
      service.runtime.shutdown.add("telemetry", () => telemetry(definition.name).shutdown());
      service.runtime.shutdown.installSignalHandlers(service.runtime.config.SHUTDOWN_TIMEOUT_MS + 15_000);
      service.onRestart((reason) => service.runtime.shutdown.exitAfterRun(reason, EXIT_RESTART));
      process.on("unhandledRejection", (error) => service.runtime.log.error({ err: error }, "unhandled rejection"));
    },
    (error: unknown) => {
      if (error instanceof ConfigError) {
        process.stderr.write(`${definition.name}: ${error.message}\n`);
        process.exit(78); // EX_CONFIG
      }
      process.stderr.write(`${definition.name}: failed to start: ${(error as Error).message ?? error}\n`);
      process.exit(1);
    },
  );
}

/** Any service definition, whatever its own config and start() result (for runners of several services). */
// biome-ignore lint/suspicious/noExplicitAny: a definition's config shape only matters inside its own start()
export type AnyServiceDefinition = ServiceDefinition<any, any>;

/**
 * Several services in one process (services/combined): each is started as runService would start it, one after
 * another (the first creates the streams), with its own environment, connections, consumers and ops server. On
 * SIGTERM/SIGINT all of them stop at once (each its own ordered shutdown), then telemetry is flushed and the process
 * exits 0. A service that fails to start stops those already started and exits 78 (configuration) or 1.
 */
export function runServices(
  processName: string,
  services: ReadonlyArray<{ definition: AnyServiceDefinition; env: NodeJS.ProcessEnv }>,
): void {
  const started: Array<StartedService<unknown>> = [];
  const startAll = async () => {
    for (const { definition, env } of services) {
      try {
        started.push(await startService(definition, env));
      } catch (error) {
        // Name the service: several share this process's stderr.
        if (error instanceof ConfigError) throw new ConfigError(`${definition.name}: ${error.message}`);
        throw new Error(`${definition.name}: ${(error as Error).message ?? error}`);
      }
    }
  };
  startAll().then(
    () => {
      const first = started[0]?.runtime;
      if (!first) return;
      const log = first.log.child({ service: processName, services: started.map((s) => s.runtime.name) });
      const whole = new Shutdown(log);
      whole.add("services", () => Promise.all(started.map((s) => s.stop())));
      whole.add("telemetry", () => telemetry(processName).shutdown());
      const longest = Math.max(...started.map((s) => s.runtime.config.SHUTDOWN_TIMEOUT_MS));
      whole.installSignalHandlers(longest + 15_000);
      // One service asking for a fresh process stops them all, in order, and the process exits for its supervisor.
      for (const service of started) service.onRestart((reason) => whole.exitAfterRun(reason, EXIT_RESTART));
      process.on("unhandledRejection", (error) => log.error({ err: error }, "unhandled rejection"));
      log.info(`${processName} started ${started.length} services`);
    },
    async (error: unknown) => {
      await Promise.all(started.map((s) => s.stop()));
      if (error instanceof ConfigError) {
        process.stderr.write(`${processName}: ${error.message}\n`);
        process.exit(78); // EX_CONFIG
      }
      process.stderr.write(`${processName}: failed to start: ${(error as Error).message ?? error}\n`);
      process.exit(1);
    },
  );
}

/** Declares a service with its config typed from its own variables (`rt.config.MY_VAR` is checked). */
export function defineService<S extends z.ZodRawShape, Started>(
  definition: ServiceDefinition<S, Started>,
): ServiceDefinition<S, Started> {
  return definition;
}

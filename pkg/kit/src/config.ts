/**
 * Configuration from the environment, validated with zod at start-up. A bad value stops the service with a message
 * naming the variable, the problem and the value it got.
 */
import { DEFAULT_FLOW_SETTINGS, type FlowSettings, parseTaskRoutes, parseTaskTypes } from "@tm/flow";
import * as z from "zod";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const url = (schemes: string[]) =>
  z.string().refine(
    (value) =>
      value.split(",").every((part) => {
        try {
          return schemes.includes(new URL(part.trim()).protocol.replace(/:$/, ""));
        } catch {
          return false;
        }
      }),
    { message: `must be a ${schemes.join("/")} URL (comma-separated for several)` },
  );

/** "host:port,host:port" (Redis Sentinel's addresses), each port 1-65535. */
const hostPortList = z.string().transform((value, ctx) => {
  const addresses = value.split(",").map((part) => part.trim());
  const parsed = addresses.map((address) => {
    const match = /^(\[[^\]]+\]|[^\s:,]+):(\d{1,5})$/.exec(address);
    const port = Number(match?.[2]);
    return match && port >= 1 && port <= 65535 ? { host: match[1]!.replace(/^\[|\]$/g, ""), port } : undefined;
  });
  if (parsed.every((address) => address !== undefined)) return parsed as Array<{ host: string; port: number }>;
  ctx.addIssue({
    code: "custom",
    message: `must be comma-separated host:port pairs, e.g. redis-sentinel-0:26379,redis-sentinel-1:26379 (bad: "${addresses[parsed.indexOf(undefined)]}")`,
  });
  return z.NEVER;
});

export const port = z.coerce
  .number({ message: "must be a number" })
  .int({ message: "must be an integer" })
  .min(0, { message: "must be 0-65535" })
  .max(65535, { message: "must be 0-65535" });

export const positiveInt = z.coerce.number({ message: "must be a number" }).int().positive({ message: "must be > 0" });
export const nonNegativeInt = z.coerce
  .number({ message: "must be a number" })
  .int({ message: "must be an integer" })
  .min(0, { message: "must be >= 0" });

/** true/false (also 1/0, yes/no), case-insensitive. */
export const booleanFlag = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine((value) => ["true", "false", "1", "0", "yes", "no"].includes(value), {
    message: "must be true or false",
  })
  .transform((value) => value === "true" || value === "1" || value === "yes");

const msList = z
  .string()
  .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, { message: "must be comma-separated milliseconds, e.g. 1000,5000,15000" })
  .default(DEFAULT_FLOW_SETTINGS.retryDelaysMs.join(","))
  .transform((value) => value.split(",").map((part) => Number(part.trim())));

/** A variable parsed by a function that throws an Error saying what is wrong (reported as the variable's problem). */
export function parsedText<T>(parse: (text: string) => T, defaultText = "") {
  return z
    .string()
    .default(defaultText)
    .transform((text, ctx) => {
      try {
        return parse(text);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    });
}

/** Variables every service reads. */
/** TASK_RETENTION_SECONDS's default: a week (@tm/store's Bounds.taskTtlSeconds). */
export const DEFAULT_TASK_RETENTION_SECONDS = 7 * 24 * 3600;

export const baseConfigShape = {
  NATS_URL: url(["nats", "tls", "ws", "wss"]).default("nats://127.0.0.1:4222"),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  /** Instead of a user and password: a token (authorization { token }), an NKEY seed file (users [{ nkey }]), or a
   *  creds file (NATS_CREDS_FILE). At most one of NATS_USER, NATS_TOKEN, NATS_NKEY_SEED_FILE and NATS_CREDS_FILE. */
  NATS_TOKEN: z.string().optional(),
  /** The prefix of the connection's reply subjects; default `_INBOX_<NATS_USER>` with a user (what the rendered
   *  permissions allow it, configs/nats/render.mjs), else `_INBOX`. */
  NATS_INBOX_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, { message: "must be one subject token: letters, digits, _ and -" })
    .optional(),
  NATS_NKEY_SEED_FILE: z.string().optional(),
  /** A user's credentials file (.creds: its JWT and NKEY seed, `nsc generate creds`) for a server in operator mode;
   *  read again at each (re)connection, so a renewed file needs no restart. */
  NATS_CREDS_FILE: z.string().optional(),
  /** A PEM file of the CA(s) to trust for NATS TLS instead of the system's (a private CA); with it, or with a client
   *  certificate, the connection uses TLS whatever the URL's scheme (nats-server decides: its tls block). */
  NATS_TLS_CA_FILE: z.string().optional(),
  /** A client certificate and its key (PEM), for a nats-server that verifies clients (tls { verify: true }). */
  NATS_TLS_CERT_FILE: z.string().optional(),
  NATS_TLS_KEY_FILE: z.string().optional(),
  REDIS_URL: url(["redis", "rediss"]).default("redis://127.0.0.1:6379"),
  /** Redis Sentinel: its addresses. Set, the services ask them for the primary of REDIS_SENTINEL_MASTER (and again
   *  after a failover); REDIS_URL then gives only the data nodes' credentials, database and TLS, not their address. */
  REDIS_SENTINELS: hostPortList.optional(),
  REDIS_SENTINEL_MASTER: z.string().default("mymaster"),
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  /** The Sentinels' ACL user (Redis 6.2+), with REDIS_SENTINEL_PASSWORD; unset: the password alone (user default). */
  REDIS_SENTINEL_USERNAME: z.string().optional(),
  /** Reach the Sentinels over TLS (their tls-port), trusting REDIS_TLS_CA_FILE's CA if set, else the system's. */
  REDIS_SENTINEL_TLS: booleanFlag.default(false),
  /** A PEM file of the CA(s) to trust for Redis TLS (a rediss:// REDIS_URL, REDIS_SENTINEL_TLS) instead of the
   *  system's: a private CA. Read at start; a file that cannot be read stops the start, naming this variable. */
  REDIS_TLS_CA_FILE: z.string().optional(),
  /** A client certificate and its key (PEM) for Redis TLS, for servers that verify clients (tls-auth-clients yes). */
  REDIS_TLS_CERT_FILE: z.string().optional(),
  REDIS_TLS_KEY_FILE: z.string().optional(),
  /** Replicas that must hold a stage's Redis writes before its message is acked (Redis's WAIT; 0 = do not wait). */
  REDIS_WAIT_REPLICAS: z.coerce
    .number({ message: "must be a number" })
    .int({ message: "must be a whole number of replicas" })
    .min(0, { message: "must be >= 0" })
    .max(10, { message: "must be at most 10" })
    .default(0),
  REDIS_WAIT_TIMEOUT_MS: positiveInt.default(1_000),
  /** The deployment's own task types beside the built-in ones ("send-email,resize-image"), whose handlers the workers
   *  load from WORKER_HANDLER_MODULES: the same value on every service (the gateway and ingest accept them, the stages
   *  label their metrics with them). */
  TASK_TYPES: parsedText(parseTaskTypes),
  /** Worker pools: "transcode=gpu,render=gpu" sends those types to the workers started with WORKER_POOL=gpu (the
   *  scheduler routes by it, the gateway finds their queues by it); other types go to the default pool. The same
   *  value on every service; each type must be built in or in TASK_TYPES. */
  TASK_ROUTES: parsedText(parseTaskRoutes),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  OTEL_EXPORTER_OTLP_ENDPOINT: url(["http", "https"]).optional(),
  OTEL_SERVICE_NAME: z.string().optional(),
  /** Time in-flight work gets to finish on SIGTERM before it is handed back. */
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
  /** Overrides of the contract's JetStream numbers (tests shorten them; production keeps the defaults). */
  FLOW_ACK_WAIT_MS: positiveInt.default(DEFAULT_FLOW_SETTINGS.ackWaitMs),
  FLOW_MAX_DELIVER: positiveInt.default(DEFAULT_FLOW_SETTINGS.maxDeliver),
  FLOW_RETRY_DELAYS_MS: msList,
  FLOW_MAX_ACK_PENDING: positiveInt.default(DEFAULT_FLOW_SETTINGS.maxAckPending),
  /** How long a delivery is held through a Redis/NATS outage before it is failed as an attempt (0 = never hold). */
  FLOW_OUTAGE_HOLD_MS: nonNegativeInt.default(DEFAULT_FLOW_SETTINGS.outageHoldMs),
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(DEFAULT_FLOW_SETTINGS.replicas),
  /** The TASKS and EVENTS streams' limits (the contract's numbers by default). Every service provisions the streams
   *  at start-up with its own values, so set them alike on all (the shared config of compose and k8s). Full streams
   *  discard their oldest messages, handled or not: these bound how far behind a consumer may fall. */
  FLOW_STREAM_MAX_AGE_MS: positiveInt.default(DEFAULT_FLOW_SETTINGS.maxAgeMs),
  FLOW_STREAM_MAX_MSGS: positiveInt.default(DEFAULT_FLOW_SETTINGS.maxMsgs),
  FLOW_STREAM_MAX_BYTES: positiveInt.default(DEFAULT_FLOW_SETTINGS.maxBytes),
  /** How long a task's records are kept in Redis after their last write (task:<id>, task_status, task_result,
   *  task_history, task_cancel, and its task_index entry): BullMQ's removeOnComplete age, Celery's result_expires,
   *  Temporal's retention period. It bounds Redis's memory: tasks per day × this × a task's size. Read by the
   *  services that write them (gateway, notifier, result-store, audit): set it alike on all (the shared config). */
  TASK_RETENTION_SECONDS: z.coerce
    .number({ message: "must be a number" })
    .int({ message: "must be a whole number of seconds" })
    .min(3_600, { message: "must be at least 3600 (1 hour): a task's records must outlive its queueing and retries" })
    .max(7_776_000, { message: "must be at most 7776000 (90 days)" })
    .default(DEFAULT_TASK_RETENTION_SECONDS),
  /** How long the records of a task that SUCCEEDED are kept from then on, when shorter than TASK_RETENTION_SECONDS:
   *  failures kept for a week to look into, successes dropped within the hour (BullMQ's removeOnComplete beside
   *  removeOnFail, Asynq's Retention). Unset: TASK_RETENTION_SECONDS. A task's own SubmitTaskRequest.succeeded_retention
   *  comes first; a task that others wait for (depends_on) keeps TASK_RETENTION_SECONDS, for their handlers to read
   *  its result. Applied by the notifier when it stores SUCCEEDED (shared config). */
  TASK_SUCCEEDED_RETENTION_SECONDS: z.coerce
    .number({ message: "must be a number" })
    .int({ message: "must be a whole number of seconds" })
    .min(60, { message: "must be at least 60: a client that saw SUCCEEDED must still find the result" })
    .optional(),
  /** Port of /healthz, /readyz and /metrics (services with an HTTP API serve them there instead). */
  OPS_PORT: port.optional(),
};

export type BaseConfig = z.infer<z.ZodObject<typeof baseConfigShape>>;

/** Parses `env` against the base variables plus a service's own; throws ConfigError naming every bad variable. */
export function loadConfig<S extends z.ZodRawShape>(
  shape: S,
  env: NodeJS.ProcessEnv = process.env,
): BaseConfig & z.infer<z.ZodObject<S>> {
  const schema = z.object({ ...baseConfigShape, ...shape }).superRefine((parsed, ctx) => {
    // A sibling's value: the schema of one variable cannot see another.
    const config = parsed as unknown as BaseConfig;
    if (
      config.TASK_SUCCEEDED_RETENTION_SECONDS !== undefined &&
      config.TASK_SUCCEEDED_RETENTION_SECONDS > config.TASK_RETENTION_SECONDS
    ) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["TASK_SUCCEEDED_RETENTION_SECONDS"],
        message: `must not exceed TASK_RETENTION_SECONDS (${config.TASK_RETENTION_SECONDS}): it shortens how long a succeeded task is kept`,
      });
    }
    const unknown = config.TASK_ROUTES.unknownTypes(config.TASK_TYPES);
    if (unknown.length > 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["TASK_ROUTES"],
        message: `routes ${unknown.map((type) => `"${type}"`).join(", ")}, not a task type of this deployment (${config.TASK_TYPES}): add it to TASK_TYPES, or remove its route`,
      });
    }
  });
  // Empty strings mean "unset": compose files often pass VAR= for optional variables.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = issue.path.join(".");
      const got = cleaned[name];
      return `  ${name}: ${issue.message}${got === undefined ? " (not set)" : ` (got "${String(got).slice(0, 100)}")`}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return result.data as BaseConfig & z.infer<z.ZodObject<S>>;
}

export function flowSettingsOf(config: BaseConfig): FlowSettings {
  return {
    ...DEFAULT_FLOW_SETTINGS,
    ackWaitMs: config.FLOW_ACK_WAIT_MS,
    maxDeliver: config.FLOW_MAX_DELIVER,
    retryDelaysMs: config.FLOW_RETRY_DELAYS_MS,
    maxAckPending: config.FLOW_MAX_ACK_PENDING,
    outageHoldMs: config.FLOW_OUTAGE_HOLD_MS,
    replicas: config.NATS_STREAM_REPLICAS,
    maxAgeMs: config.FLOW_STREAM_MAX_AGE_MS,
    maxMsgs: config.FLOW_STREAM_MAX_MSGS,
    maxBytes: config.FLOW_STREAM_MAX_BYTES,
  };
}

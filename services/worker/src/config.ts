/** The worker's own environment variables (the base ones come from @tm/kit). */
import { BUILT_IN_TASK_TYPES, poolNameProblem, type TaskRoutes, type TaskTypes } from "@tm/flow";
import { nonNegativeInt, parsedText as parsed, positiveInt } from "@tm/kit";
import * as z from "zod";
import { DEFAULT_RATE_LIMIT_HOLD_MS } from "./dispatcher.js";
import { parseModuleList } from "./handler-modules.js";
import { DEFAULT_WORKER_ID } from "./presence.js";
import { DEFAULT_TASK_LOG_LINES } from "./task-log.js";
import { parseTypeConcurrency, parseTypeIsolation, parseTypeRates } from "./type-limits-config.js";
import { DEFAULT_PRIORITY_WEIGHTS, parsePriorityWeights } from "./weighted-picker.js";

export const workerConfig = {
  /** The worker pool this worker serves (TASK_ROUTES sends types to pools): it takes the tasks of the types routed
   *  there, and only those. Unset: the default pool, the types TASK_ROUTES does not route. */
  WORKER_POOL: z
    .string()
    .superRefine((value, ctx) => {
      const problem = poolNameProblem(value);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    })
    .optional(),
  /** Tasks run at once by this process. */
  WORKER_CONCURRENCY: positiveInt.default(8),
  /** Share of free slots given to the high, medium and low queues when all have work. */
  WORKER_PRIORITY_WEIGHTS: parsed(parsePriorityWeights, DEFAULT_PRIORITY_WEIGHTS),
  /** A single attempt running longer than this is aborted and counts as a failed attempt (retried). */
  TASK_TIMEOUT_MS: positiveInt.default(60_000),
  /** How often the paused queues (queue_paused, set by PauseQueue / ResumeQueue) are read: a pause takes effect within it. */
  WORKER_PAUSE_POLL_MS: positiveInt.default(1_000),
  /** "checksum=2,sleep=4": at most that many tasks of a type run at once in this process (none by default). */
  WORKER_TYPE_CONCURRENCY: parsed(parseTypeConcurrency),
  /** "checksum=10/s,email=100/m:10": at most that many starts of a type per second / minute / hour across every
   *  worker, after a burst of `:B` (default 1); the same value on every replica (none by default). */
  WORKER_TYPE_RATES: parsed(parseTypeRates),
  /** "checksum=10": at most that many tasks of a type run at once across every worker (slots in Redis); the same
   *  value on every replica (none by default). */
  WORKER_TYPE_GLOBAL_CONCURRENCY: parsed(parseTypeConcurrency),
  /** ES modules whose handlers run the deployment's own task types (TASK_TYPES), loaded at start: paths (from the
   *  working directory) or package names, comma-separated (none by default). handler-modules.ts. */
  WORKER_HANDLER_MODULES: parsed(parseModuleList),
  /** How long, in all, one delivery may wait on its handler's RateLimitedErrors without spending an attempt; past it,
   *  one is an ordinary retry (0: every one is). */
  WORKER_RATE_LIMIT_HOLD_MS: nonNegativeInt.default(DEFAULT_RATE_LIMIT_HOLD_MS),
  /** At this many handlers abandoned at once (they ignored their AbortSignal and still run), the worker asks for a
   *  fresh process: it stops gracefully and exits 75 for its supervisor to restart it (0: never). */
  WORKER_MAX_ABANDONED_HANDLERS: nonNegativeInt.max(10_000, { message: "must be at most 10000" }).default(0),
  /** Deliveries each worker consumer allows beyond FLOW_MAX_DELIVER for tasks handed back unstarted (a stopping or
   *  quiet worker's buffer), which are not attempts: its MaxDeliver on the server is the sum. */
  WORKER_HANDBACK_DELIVERIES: nonNegativeInt.max(100, { message: "must be at most 100" }).default(10),
  /** This worker's id in its reports, audit records and QuietWorker: host:pid unless set (at most 200 characters,
   *  no spaces; unique among the live workers). */
  WORKER_ID: z
    .string()
    .regex(/^\S{1,200}$/, { message: "must be 1 to 200 characters without spaces" })
    .default(DEFAULT_WORKER_ID),
  /** How often this worker reports what it runs to Redis (worker:<id>, for ListWorkers / taskctl workers); a worker
   *  not heard of for three intervals drops out of the list. */
  WORKER_REPORT_INTERVAL_MS: positiveInt
    .min(100, { message: "must be at least 100" })
    .max(60_000, { message: "must be at most 60000 (a minute)" })
    .default(5_000),
  /** The gateway's gRPC address for the child tasks handlers submit (ctx.submitTask), e.g. http://envoy:50051;
   *  unset: ctx.submitTask fails, naming this setting. */
  WORKER_GATEWAY_URL: z
    .url({ protocol: /^https?$/, message: "must be an http(s) URL, e.g. http://envoy:50051" })
    .optional(),
  /** The API key the worker submits child tasks with (sent as `authorization: Bearer <key>`), when the gateway
   *  authenticates (GATEWAY_AUTH_MODE=api-key: one of its GATEWAY_API_KEYS; jwt: a token). */
  WORKER_GATEWAY_API_KEY: z.string().optional(),
  /** Instead of WORKER_GATEWAY_API_KEY: a file holding the key (a mounted Secret), read again when it changes (checked
   *  at most every 2 s), so the key rotates without a restart. */
  WORKER_GATEWAY_API_KEY_FILE: z.string().min(1, { message: "must be a path" }).optional(),
  /** With an https:// WORKER_GATEWAY_URL behind a proxy that terminates TLS: a private CA's certificate to trust
   *  instead of the system's, and a client certificate with its key to present (PEM files, read at start). */
  WORKER_GATEWAY_TLS_CA_FILE: z.string().min(1, { message: "must be a path" }).optional(),
  WORKER_GATEWAY_TLS_CERT_FILE: z.string().min(1, { message: "must be a path" }).optional(),
  WORKER_GATEWAY_TLS_KEY_FILE: z.string().min(1, { message: "must be a path" }).optional(),
  /** The most children one SubmitTasks call of ctx.submitTasks carries (a longer list takes several calls): at most
   *  the gateway's GATEWAY_MAX_BATCH_TASKS and GATEWAY_RATE_LIMIT_BURST, which refuse a larger call. */
  WORKER_CHILD_BATCH_SIZE: positiveInt.max(10_000, { message: "must be at most 10000" }).default(100),
  /** The most worker threads that run the attempts of handlers declared `isolation: "thread"` at once; started when
   *  needed, ended after a minute idle. Unset: WORKER_CONCURRENCY (no attempt waits for a thread). Fewer caps their
   *  CPU and memory, but an attempt waiting for a thread has started: its timeout counts. */
  WORKER_THREADS: positiveInt.max(256, { message: "must be at most 256" }).optional(),
  /** Each handler thread's heap limit (V8's old generation, MB): a thread past it dies and fails its attempt, which is
   *  retried, instead of taking the worker's heap with it. Unset: V8's default. */
  WORKER_THREAD_HEAP_MB: positiveInt.min(16, { message: "must be at least 16" }).optional(),
  /** "resize=thread,quick=none": where the attempts of the deployment's own types run, replacing what their handlers
   *  declare (`isolation`): an operator moves a type that stalls the worker into threads without a release. */
  WORKER_TYPE_ISOLATION: parsed(parseTypeIsolation),
  /** The newest lines a handler logs with ctx.log kept with each task (task_logs:<id>, read with GetTaskLogs,
   *  `taskctl logs`, the console), as BullMQ's job.log(); 0 keeps none (ctx.log then writes to this log only). */
  WORKER_TASK_LOG_LINES: nonNegativeInt
    .max(100_000, { message: "must be at most 100000" })
    .default(DEFAULT_TASK_LOG_LINES),
  /** The least level of a ctx.log line kept with its task (trace … fatal); unset: the worker's LOG_LEVEL. Below it
   *  (debug with LOG_LEVEL=info), a handler's debug lines are kept with its task but stay out of the worker's log;
   *  above it, the task keeps only the more severe ones. */
  WORKER_TASK_LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal"], {
      message: "must be one of trace, debug, info, warn, error, fatal",
    })
    .optional(),
};

type TypeLimitSettings = Record<
  "WORKER_TYPE_CONCURRENCY" | "WORKER_TYPE_RATES" | "WORKER_TYPE_GLOBAL_CONCURRENCY" | "WORKER_TYPE_ISOLATION",
  ReadonlyMap<string, unknown>
>;

/**
 * A pool worker with no type routed to its pool would wait for ever (a typo in WORKER_POOL or TASK_ROUTES): the
 * problem, naming the variables, or undefined.
 */
export function poolProblem(pool: string | undefined, routes: TaskRoutes): string | undefined {
  if (pool === undefined || routes.pools.includes(pool)) return undefined;
  return (
    `WORKER_POOL: no task type is routed to pool "${pool}" (TASK_ROUTES: ${routes.toString() || "empty"}): ` +
    "this worker would take no task"
  );
}

/**
 * The per-type settings name only types this worker runs (built in or in TASK_TYPES): a typo would otherwise limit
 * nothing. Checked at start rather than in the schema, which parses each variable on its own. The problem, naming
 * the variable, or undefined.
 */
export function typeNamesProblem(config: TypeLimitSettings, taskTypes: TaskTypes): string | undefined {
  for (const variable of [
    "WORKER_TYPE_CONCURRENCY",
    "WORKER_TYPE_RATES",
    "WORKER_TYPE_GLOBAL_CONCURRENCY",
    "WORKER_TYPE_ISOLATION",
  ] as const) {
    for (const type of config[variable].keys()) {
      if (!taskTypes.has(type)) {
        return `${variable}: "${type}" is not a task type this worker runs (known: ${taskTypes})`;
      }
    }
  }
  // A thread imports the handler's module: the built-in handlers are in the worker's own bundle.
  for (const [type, isolation] of config.WORKER_TYPE_ISOLATION) {
    if (isolation === "thread" && (BUILT_IN_TASK_TYPES as readonly string[]).includes(type)) {
      return `WORKER_TYPE_ISOLATION: "${type}" is a built-in type: only the types of WORKER_HANDLER_MODULES run in threads`;
    }
  }
  return undefined;
}

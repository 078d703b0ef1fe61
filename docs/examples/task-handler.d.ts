/**
 * Types for a handler module (WORKER_HANDLER_MODULES; services/worker/README.md, "Your own task types"). Copy this
 * file next to your module, or reference it: a TypeScript module can `import type { TaskHandler } from
 * "./task-handler.js"`, a JavaScript one can say `/** @type {import("./task-handler.js").TaskHandler[]} *\/` (as
 * handlers.mjs beside it does, checked by `pnpm typecheck`). The worker's own types are checked against these
 * (services/worker/test/handler-types.unit.test.ts), so what they promise is what the worker gives.
 */

/** The result of a payload schema's check: the payload as the handler gets it, or the problems. */
export type PayloadCheck<Payload> =
  | { readonly value: Payload; readonly issues?: undefined }
  | {
      readonly issues: ReadonlyArray<{
        readonly message: string;
        readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>;
      }>;
    };

/** A Standard Schema (https://standardschema.dev): what zod (3.24+, 4), valibot and arktype schemas are. */
export interface PayloadSchema<Payload = unknown> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    validate(value: unknown): PayloadCheck<Payload> | Promise<PayloadCheck<Payload>>;
  };
}

/** The part of the worker's pino logger a handler gets: `log.info({ rows }, "imported")`. */
export interface TaskLogger {
  error(context: object, message?: string): void;
  warn(context: object, message?: string): void;
  info(context: object, message?: string): void;
  debug(context: object, message?: string): void;
}

/** What a handler gets besides its payload. */
export interface TaskContext {
  readonly taskId: string;
  /** 1 on the first attempt. */
  readonly attempt: number;
  /** How many times this attempt was put off by a RateLimitedError and resumed (0 on its first run). */
  readonly deferrals: number;
  /** Aborts on cancellation, on the attempt's timeout and on shutdown: stop then. */
  readonly signal: AbortSignal;
  /** How far the attempt got: 0-100 (never back within an attempt: a lower one counts as the highest so far), and
   *  optionally a message (≤ 1,024 characters) and details (a JSON object ≤ 4 KiB), shown by GetTask,
   *  StreamTaskStatus, `taskctl watch` and the console. At most one report per 250 ms is published: a sooner one
   *  waits for the interval's end unless a later one replaces it. Throws a RangeError for a message or details that
   *  cannot be carried. */
  reportProgress(percent: number, message?: string, details?: Record<string, unknown>): void;
  /** The worker's logger with the task's id, type and attempt. Its lines (at the worker's LOG_LEVEL) are also kept
   *  with the task, the newest WORKER_TASK_LOG_LINES of them: `taskctl logs <id>`, GetTaskLogs, the console. */
  readonly log: TaskLogger;
  /** The outcomes of the tasks this one waited for (its depends_on), in their order; [] without dependencies. */
  dependencies(): Promise<DependencyOutcome[]>;
  /** Submits a child task through the gateway (the worker's WORKER_GATEWAY_URL): once per key across this task's
   *  attempts (a retry gets the same child back, `deduplicated`); the key is `request.key`, else the child's place
   *  among the attempt's children (submitTask and submitTasks number them together). The child links to this task
   *  (parent_task_id), continues its trace and takes its priority unless it sets one. Rejects with an Error named
   *  "PermanentError" for a request the gateway refuses (not retried), else with one the attempt is retried after. */
  submitTask(request: ChildTaskRequest): Promise<SubmittedChild>;
  /** submitTask for a list, in as few gateway calls as WORKER_CHILD_BATCH_SIZE allows; a request's
   *  `dependsOnBatchItems` names earlier requests of the list (by place, from 0) it waits for. Resolves to the
   *  children in the list's order; every request is checked before any is sent. Should the gateway refuse some, it
   *  rejects with the first refusal (named "PermanentError" when one is), the others submitted: a retry gets them
   *  back. */
  submitTasks(requests: readonly ChildBatchRequest[]): Promise<SubmittedChild[]>;
}

/** A child task (ctx.submitTask): a task request as TaskManagerClient takes it (docs/CLIENT.md), named by `key`. */
export interface ChildTaskRequest {
  /** A task type the deployment runs (TASK_TYPES). */
  type: string;
  payload?: Record<string, unknown>;
  /** Names it among this task's children (1 to 128 characters): the same key on a retry is the same child. */
  key?: string;
  /** Default: this task's. */
  priority?: "high" | "medium" | "low";
  /** Released this long after it is submitted (ms). */
  delayMs?: number;
  /** Released at this time (not with delayMs). */
  runAt?: Date;
  /** Tasks it waits for (for a fan-in: the other children's ids). */
  dependsOn?: string[];
  /** "all-finished": it runs once they all finished, whatever the outcome; default "all-succeeded". */
  dependencyPolicy?: "all-succeeded" | "all-finished";
  metadata?: Record<string, string>;
  /** One attempt's limit (ms). */
  timeoutMs?: number;
  maxAttempts?: number;
  /** An attempt reporting no progress this long is aborted (ms). */
  heartbeatTimeoutMs?: number;
  /** Not run if not started this long after it was due (ms). */
  expiresAfterMs?: number;
  /** Kept this long once it SUCCEEDED (s, at least 60). */
  succeededRetentionSeconds?: number;
  /** The waits between its attempts (ms). */
  retryBackoff?: { delayMs: number; multiplier?: number; maxDelayMs?: number; jitter?: number };
  /** At most `limit` tasks of `key` in the pipeline at once; the others wait PENDING, by priority and then oldest
   *  first (key: 1 to 128 letters, digits or `_ . : @ / = + -`; limit: 1 to 1,000). */
  concurrency?: { key: string; limit: number };
  /** Its tenant within its type's fair share: past the gateway's window, keys with tasks waiting take turns in
   *  proportion to their weights (key: as concurrency's; weight: 1 to 1,000, default 1). */
  fairness?: { key: string; weight?: number };
}

/** A request of ctx.submitTasks: a child that may wait for earlier requests of the same list. */
export interface ChildBatchRequest extends ChildTaskRequest {
  /** The places (from 0) of earlier requests of the list it waits for: a fan-in in the same call as its fan-out. */
  dependsOnBatchItems?: number[];
}

/** A child ctx.submitTask made, or found made by an earlier attempt (`deduplicated`). */
export interface SubmittedChild {
  readonly taskId: string;
  readonly deduplicated: boolean;
}

/** One of the tasks a task waited for, as its handler reads it (ctx.dependencies()). */
export interface DependencyOutcome {
  readonly taskId: string;
  /** SUCCEEDED; FAILED or CANCELLED when the task runs once they all finished, whatever the outcome (dependency_policy
   *  ALL_FINISHED); undefined when its records expired. */
  readonly state: string | undefined;
  /** What its handler returned, when it SUCCEEDED (and its result is still stored). */
  readonly result?: unknown;
  /** Why it FAILED, or was CANCELLED. */
  readonly error?: string;
}

/**
 * One task type. Errors: anything thrown is a failed attempt; an Error named "PermanentError" is not retried; one named
 * "RetryAfterError" or "RateLimitedError" with a numeric `retryAfterMs` is retried after that wait.
 */
// biome-ignore lint/suspicious/noExplicitAny: a list of handlers (TaskHandler[]) holds payloads of different types
export interface TaskHandler<Payload = any> {
  /** Listed in TASK_TYPES on every service: 1 to 64 letters, digits, ".", "_" or "-". */
  type: string;
  /** Its payload's schema; none: any JSON object. */
  payload?: PayloadSchema<Payload>;
  /** What it returns is the task's result (JSON, at most 256 KiB). */
  run(payload: Payload, ctx: TaskContext): unknown;
  /** One attempt's limit, in place of TASK_TIMEOUT_MS (1 ms to 24 h). */
  timeoutMs?: number;
  /** An attempt that calls reportProgress for none of this long is aborted and fails as timed out (Temporal's
   *  heartbeat timeout); 1 ms to 24 h. */
  heartbeatTimeoutMs?: number;
  /** The most attempts (1 to FLOW_MAX_DELIVER) for a task submitted without its own max_attempts. */
  maxAttempts?: number;
  /** The waits between attempts for a task submitted without its own retry_backoff. */
  retryBackoff?: { delayMs: number; multiplier?: number; maxDelayMs?: number; jitter?: number };
  /** At most this many run at once in one worker (WORKER_TYPE_CONCURRENCY's entry for the type replaces it). */
  concurrency?: number;
  /** At most this many run at once across every worker (WORKER_TYPE_GLOBAL_CONCURRENCY's entry replaces it). */
  globalConcurrency?: number;
  /** "N/UNIT[:BURST]" with UNIT s, m or h, e.g. "100/m:10": starts across every worker (WORKER_TYPE_RATES' entry
   *  replaces it). */
  rate?: string;
  /** "thread": each attempt runs in a worker thread (up to WORKER_THREADS), for work that keeps the CPU busy, so it
   *  cannot stall the worker (its heartbeats, its other tasks). The payload reaches `run` and its result leaves it
   *  copied (structured clone); ctx works the same; a thread that ignores its abort is terminated. Default "none". */
  isolation?: "none" | "thread";
}

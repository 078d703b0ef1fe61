/**
 * The deployment's own task types: handlers loaded at start from the ES modules WORKER_HANDLER_MODULES names, so a
 * deployment runs its own work with this worker's image unchanged (BullMQ's processor file, Celery's `imports`).
 *
 * A module exports `handlers` (an array) or a default export (a handler or an array). A handler is a plain object,
 * `{ type, payload?, run(payload, ctx), …its type's settings }`: `payload` is any Standard Schema
 * (zod, valibot, arktype; none: any object), and nothing needs importing from this code base (its errors are
 * recognised by name: handler-errors.ts). Everything is checked before the worker takes a task, each
 * problem named with its module: a type must be listed in TASK_TYPES (which the gateway and ingest read too, so a
 * type the workers cannot run is refused at submission, not failed here), and every type TASK_TYPES lists needs a
 * handler, so no worker takes a task it cannot run.
 */
import {
  BUILT_IN_TASK_TYPES,
  DEFAULT_FLOW_SETTINGS,
  describeIssues,
  errorMessage,
  MAX_RETRY_BACKOFF_MS,
  MAX_TASK_TIMEOUT_MS,
  NO_ROUTES,
  type RetryBackoff,
  RetryBackoffSchema,
  type TaskRoutes,
  type TaskTypes,
} from "@tm/flow";
import { ConfigError } from "@tm/kit";
import type { TypeRate } from "@tm/store";
import { handlersIn, importModule } from "./handler-module-import.js";
import { HANDLER_ISOLATIONS, type PayloadSchema, type TaskHandler } from "./handlers/types.js";
import { isConcurrency, MAX_CONCURRENCY, parseRate, RATE_SHAPE } from "./type-limits-config.js";

const VARIABLE = "WORKER_HANDLER_MODULES";

/**
 * How long one module may take to load. A module whose top level waits on something that never comes (a top-level
 * await on a database that is down) would otherwise hold the start for good, with no ops server and no message:
 * an orchestrator's liveness probe would restart it without saying why.
 */
export const MODULE_LOAD_TIMEOUT_MS = 30_000;

/** A handler declared without a schema takes any payload (the gateway has already checked it is a JSON object). */
const ANY_PAYLOAD: PayloadSchema = {
  "~standard": { version: 1, vendor: "task-manager", validate: (value) => ({ value }) },
};

/** A handler as loaded: also its module, as WORKER_HANDLER_MODULES names it, and where a path is taken from (a thread
 *  imports the module itself, handler-thread.ts). */
export interface LoadedHandler extends TaskHandler {
  module?: { specifier: string; cwd: string };
}

/** WORKER_HANDLER_MODULES: "./handlers/email.mjs,@acme/task-handlers", in order; empty: none. */
export function parseModuleList(text: string): string[] {
  const modules: string[] = [];
  for (const entry of text.split(",")) {
    const specifier = entry.trim();
    if (specifier === "") continue;
    if (modules.includes(specifier)) throw new Error(`"${specifier}" is listed twice`);
    modules.push(specifier);
  }
  return modules;
}

/**
 * Imports each module and returns its handlers, checked. A path ("./x.mjs", "/app/x.mjs") is taken from `cwd`;
 * anything else (a package name, a file: URL) is imported as it is: a package resolved from the worker's own module
 * (its node_modules).
 * Throws a ConfigError naming the variable, the module and the problem.
 */
export async function loadHandlerModules(
  specifiers: readonly string[],
  taskTypes: TaskTypes,
  {
    cwd = process.cwd(),
    loadTimeoutMs = MODULE_LOAD_TIMEOUT_MS,
    maxDeliver = DEFAULT_FLOW_SETTINGS.maxDeliver,
    pool,
    routes = NO_ROUTES,
  }: {
    /** Where a path is taken from. */
    cwd?: string;
    loadTimeoutMs?: number;
    /** FLOW_MAX_DELIVER: a type may ask for fewer attempts, not more. */
    maxDeliver?: number;
    /** WORKER_POOL and TASK_ROUTES: this worker must run the own types routed to its pool (the default pool: the
     *  unrouted ones); types routed to other pools may have a handler here or not. */
    pool?: string;
    routes?: TaskRoutes;
  } = {},
): Promise<LoadedHandler[]> {
  const handlers: LoadedHandler[] = [];
  const moduleOf = new Map<string, string>();
  for (const specifier of specifiers) {
    const fail = (problem: string) => new ConfigError(`${VARIABLE}: ${specifier}: ${problem}`);
    const exported = await withDeadline(importModule(specifier, cwd), loadTimeoutMs).catch((error: unknown) => {
      throw fail(`cannot be loaded: ${errorMessage(error)}`);
    });
    for (const [index, candidate] of handlersIn(exported, fail).entries()) {
      const handler = checkedHandler(candidate, maxDeliver, (problem) => fail(`handler ${index + 1}: ${problem}`));
      const { type } = handler;
      if ((BUILT_IN_TASK_TYPES as readonly string[]).includes(type)) {
        throw fail(`"${type}" is a built-in task type: give yours another name`);
      }
      if (!taskTypes.own.includes(type)) {
        throw fail(
          `its task type "${type}" is not in TASK_TYPES (${taskTypes.own.join(",") || "empty"}): add it there, on ` +
            "every service, so that the gateway accepts its tasks",
        );
      }
      const other = moduleOf.get(type);
      if (other !== undefined) throw fail(`"${type}" has a handler in ${other} already`);
      moduleOf.set(type, specifier);
      // A thread imports the module itself (handler-thread.ts): where from (kept for every handler, since
      // WORKER_TYPE_ISOLATION may move any of them into a thread).
      handlers.push({ ...handler, module: { specifier, cwd } });
    }
  }
  const missing = taskTypes.own.filter((type) => routes.poolOf(type) === pool && !moduleOf.has(type));
  if (missing.length > 0) {
    const names = missing.map((type) => `"${type}"`).join(", ");
    const modules = `${VARIABLE} (${specifiers.join(",") || "empty"})`;
    throw new ConfigError(
      pool === undefined
        ? `TASK_TYPES: no module in ${modules} has a handler for ${names}: the gateway would accept tasks no worker can run`
        : `WORKER_POOL: no module in ${modules} has a handler for ${names}, which TASK_ROUTES sends to pool "${pool}"`,
    );
  }
  return handlers;
}

/** `loading`, or a rejection once `ms` have passed (the import itself cannot be stopped: the process exits). */
function withDeadline<T>(loading: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`it did not finish loading within ${ms} ms (a top-level await?)`)), ms);
  });
  return Promise.race([loading, late]).finally(() => clearTimeout(timer));
}

function checkedHandler(candidate: unknown, maxDeliver: number, fail: (problem: string) => Error): TaskHandler {
  if (typeof candidate !== "object" || candidate === null) throw fail("is not an object { type, payload?, run }");
  const {
    type,
    payload,
    run,
    timeoutMs,
    heartbeatTimeoutMs,
    maxAttempts,
    retryBackoff,
    concurrency,
    globalConcurrency,
    rate,
    isolation,
  } = candidate as Record<string, unknown>;
  if (typeof type !== "string" || type === "") throw fail("has no `type` (a string)");
  if (typeof run !== "function") throw fail(`"${type}" has no \`run\` function`);
  if (payload !== undefined && !isStandardSchema(payload)) {
    throw fail(`"${type}": \`payload\` is not a Standard Schema (a zod 3.24+, valibot or arktype schema)`);
  }
  for (const [name, value] of Object.entries({ timeoutMs, heartbeatTimeoutMs })) {
    if (
      value !== undefined &&
      !(typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= MAX_TASK_TIMEOUT_MS)
    ) {
      throw fail(
        `"${type}": \`${name}\` must be a whole number of milliseconds from 1 to ${MAX_TASK_TIMEOUT_MS} (24 h)`,
      );
    }
  }
  if (
    maxAttempts !== undefined &&
    !(typeof maxAttempts === "number" && Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= maxDeliver)
  ) {
    throw fail(
      `"${type}": \`maxAttempts\` must be a whole number from 1 to ${maxDeliver} (FLOW_MAX_DELIVER: a type may ask ` +
        "for fewer attempts, not more)",
    );
  }
  for (const [name, value] of Object.entries({ concurrency, globalConcurrency })) {
    if (value !== undefined && !isConcurrency(value)) {
      throw fail(`"${type}": \`${name}\` must be a whole number from 1 to ${MAX_CONCURRENCY}`);
    }
  }
  if (isolation !== undefined && !(HANDLER_ISOLATIONS as readonly unknown[]).includes(isolation)) {
    throw fail(
      `"${type}": \`isolation\` must be ${HANDLER_ISOLATIONS.map((name) => `"${name}"`).join(" or ")} (got ${JSON.stringify(isolation)})`,
    );
  }
  return {
    type,
    payload: (payload as PayloadSchema | undefined) ?? ANY_PAYLOAD,
    run: run.bind(candidate) as TaskHandler["run"],
    ...(isolation === "thread" ? { isolation } : {}),
    ...(timeoutMs === undefined ? {} : { timeoutMs: timeoutMs as number }),
    ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs: heartbeatTimeoutMs as number }),
    ...(maxAttempts === undefined ? {} : { maxAttempts: maxAttempts as number }),
    ...(retryBackoff === undefined ? {} : { retryBackoff: checkedBackoff(type, retryBackoff, fail) }),
    ...(concurrency === undefined ? {} : { concurrency: concurrency as number }),
    ...(globalConcurrency === undefined ? {} : { globalConcurrency: globalConcurrency as number }),
    ...(rate === undefined ? {} : { rate: checkedRate(type, rate, fail) }),
  };
}

/** "N/UNIT[:BURST]", as an entry of WORKER_TYPE_RATES. */
function checkedRate(type: string, given: unknown, fail: (problem: string) => Error): TypeRate {
  let rate: TypeRate | undefined;
  try {
    rate = typeof given === "string" ? parseRate(given) : undefined;
  } catch (error) {
    throw fail(`"${type}": \`rate\` ${JSON.stringify(given)}: ${errorMessage(error)}`);
  }
  if (!rate) throw fail(`"${type}": \`rate\` must be ${RATE_SHAPE}`);
  return rate;
}

/** `{ delayMs, multiplier?, maxDelayMs?, jitter? }`, with SubmitTaskRequest.retry_backoff's defaults and bounds. */
function checkedBackoff(type: string, given: unknown, fail: (problem: string) => Error): RetryBackoff {
  const parsed = RetryBackoffSchema.safeParse(
    typeof given === "object" && given !== null
      ? { multiplier: 1, maxDelayMs: MAX_RETRY_BACKOFF_MS, jitter: 0, ...given }
      : given,
  );
  if (!parsed.success) {
    throw fail(
      `"${type}": \`retryBackoff\` must be { delayMs, multiplier?, maxDelayMs?, jitter? } (${describeIssues(parsed.error)})`,
    );
  }
  return parsed.data;
}

function isStandardSchema(value: unknown): value is PayloadSchema {
  const props = (value as { "~standard"?: { validate?: unknown } } | null)?.["~standard"];
  return typeof props?.validate === "function";
}

/**
 * What the worker and a handler thread (`isolation: "thread"`, handler-threads.ts) say to each other over the
 * attempt's MessagePort, and how errors cross it. A thread's messages are structured clones: an Error arrives as an
 * Error without its class, its own fields or, for a name outside JavaScript's own, its name. So errors travel as
 * plain objects carrying what the pipeline reads of them: the name (PermanentError, RetryAfterError and
 * RateLimitedError are recognised by it, handler-errors.ts), the message, the stack, and `retryAfterMs`.
 */
import type { MessagePort } from "node:worker_threads";

/** An error as it crosses between threads. */
export interface SentError {
  name: string;
  message: string;
  stack?: string;
  retryAfterMs?: number;
}

/** What a thread starts an attempt with (piscina's task; the port is transferred). */
export interface ThreadTask {
  /** The handler's module, as WORKER_HANDLER_MODULES names it, and where a path is taken from. */
  specifier: string;
  cwd: string;
  type: string;
  /** The payload as the handler's schema made it (validated by the worker, copied). */
  payload: unknown;
  taskId: string;
  attempt: number;
  deferrals: number;
  /** The fields of the worker's log lines for the attempt (service, taskId, type, attempt, trace_id …) and its level. */
  logBindings: Record<string, unknown>;
  logLevel: string;
  port: MessagePort;
}

/** The thread's answer: the handler's result, or what it threw. */
export type ThreadOutcome = { ok: true; value: unknown } | { ok: false; error: SentError };

/** The calls of ctx a thread makes in the worker, answered with the same id. */
export type ThreadCallMethod = "dependencies" | "submitTask" | "submitTasks";

/** Thread → worker. */
export type FromThread =
  | { kind: "progress"; percent: number; message?: string; details?: Record<string, unknown> }
  | { kind: "log"; line: string }
  | { kind: "call"; id: number; method: ThreadCallMethod; argument?: unknown }
  /** The attempt's end: sent on the port, after everything else it sent (the pool's own answer may come first). */
  | { kind: "outcome"; outcome: ThreadOutcome };

/** Worker → thread. */
export type ToThread =
  | { kind: "reply"; id: number; ok: true; value: unknown }
  | { kind: "reply"; id: number; ok: false; error: SentError }
  | { kind: "abort"; reason: SentError };

/** Anything thrown, as it can cross: an Error's name, message, stack and retryAfterMs; anything else as a message. */
export function sendableError(error: unknown): SentError {
  if (!(error instanceof Error)) {
    return { name: "Error", message: typeof error === "string" ? error : `non-error thrown: ${describe(error)}` };
  }
  const { retryAfterMs } = error as { retryAfterMs?: unknown };
  return {
    name: error.name,
    message: error.message,
    ...(error.stack === undefined ? {} : { stack: error.stack }),
    ...(typeof retryAfterMs === "number" ? { retryAfterMs } : {}),
  };
}

/** An Error again, with the sent name, message, stack and retryAfterMs (its class is Error: names are what count). */
export function receivedError(sent: SentError): Error {
  const error = new Error(sent.message);
  // An own property, as a class field would be: the name the thread's error had, PermanentError included.
  Object.defineProperty(error, "name", { value: sent.name, writable: true, configurable: true, enumerable: false });
  if (sent.stack !== undefined) error.stack = sent.stack;
  if (sent.retryAfterMs !== undefined) (error as { retryAfterMs?: number }).retryAfterMs = sent.retryAfterMs;
  return error;
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

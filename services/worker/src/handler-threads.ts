/**
 * Handlers declared `isolation: "thread"` run each attempt in a worker thread (a piscina pool of up to WORKER_THREADS,
 * by default WORKER_CONCURRENCY; each started when needed and ended after a minute idle), as BullMQ's sandboxed
 * processors and Celery's prefork pool run theirs apart from the worker's own loop.
 *
 * Why: a handler that keeps the CPU busy on the worker's event loop (parsing a large file, hashing, image work)
 * stops everything else the worker does meanwhile: the heartbeats that keep its deliveries from being redelivered
 * (after FLOW_ACK_WAIT_MS a busy handler's own task is delivered again, and run twice), the other tasks' progress and
 * results, the cancel notices, /healthz. In a thread it blocks only that thread.
 *
 * The handler gets the same ctx: its calls (reportProgress, log, dependencies(), submitTask(s)) are made here, in the
 * worker, on the attempt's own ctx, so limits, keys and traces are those of any handler; the abort is sent to the
 * thread's signal. A thread still running TERMINATE_GRACE_MS after its abort is terminated (piscina ends the thread and
 * starts another when needed): a handler that ignores its signal, or cannot see it in a busy loop, is stopped for
 * good instead of running on abandoned. A thread that dies (an uncaught error in a callback, out of memory with
 * WORKER_THREAD_HEAP_MB) fails its attempt, which is retried; the worker goes on.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MessageChannel } from "node:worker_threads";
import { activeTraceFields, type Logger } from "@tm/kit";
import { Piscina } from "piscina";
import type { LoadedHandler } from "./handler-modules.js";
import type { HandlerIsolation, TaskContext, TaskHandler } from "./handlers/types.js";
import { handlerLogLevel, type LineWritingContext, TASK_LOG_LINE, writeAttemptLine } from "./task-log.js";
import {
  type FromThread,
  receivedError,
  sendableError,
  type ThreadOutcome,
  type ThreadTask,
  type ToThread,
} from "./thread-protocol.js";

/** How long a thread may go on after its attempt's abort before it is terminated: less than the worker's abandon
 *  grace (run-task.ts), so a thread handler is never counted as abandoned. */
export const TERMINATE_GRACE_MS = 500;

/** An idle thread ends after this; the next attempt starts one again (~30 ms, plus importing the module). */
const IDLE_TIMEOUT_MS = 60_000;

export interface HandlerThreadsOptions {
  /** WORKER_THREADS (else WORKER_CONCURRENCY): attempts beyond it wait for a thread (their time counts toward their
   *  timeout). */
  maxThreads: number;
  /** WORKER_THREAD_HEAP_MB: each thread's old-generation heap limit; a thread past it dies, failing its attempt. */
  heapMb?: number;
  /** The worker's logger: a thread's log lines are written to its destination, between its own. */
  log: Logger;
  /** WORKER_TASK_LOG_LEVEL: below the worker's level, the threads' loggers write down to it (for the task's log). */
  taskLogLevel?: string;
  /** The service name on those lines (the worker's). */
  service: string;
  /** The threads' entry (the bundled handler-thread.js); found beside this module or in the package's bundle. */
  entry?: string;
  terminateGraceMs?: number;
  /** Told each time a thread is terminated (its handler still ran past the grace), with the handler's type. */
  onTerminated?: (type: string) => void;
}

/** The handlers with the isolation WORKER_TYPE_ISOLATION gives their types in place of their own. */
export function withIsolation(
  handlers: readonly LoadedHandler[],
  overrides: ReadonlyMap<string, HandlerIsolation>,
): LoadedHandler[] {
  return handlers.map((handler) => {
    const isolation = overrides.get(handler.type) ?? handler.isolation;
    const { isolation: _declared, ...rest } = handler;
    return isolation === "thread" ? { ...rest, isolation } : rest;
  });
}

/** The bundled thread entry: beside this module when it runs bundled (dist/bundle/) or as tsc's output; from the
 *  sources (the tests), in the package's dist/bundle, which `pnpm build` makes. */
export function threadEntry(): string {
  const candidates = [
    new URL("./handler-thread.js", import.meta.url),
    new URL("../dist/bundle/handler-thread.js", import.meta.url),
  ];
  const found = candidates.find((url) => existsSync(fileURLToPath(url)));
  if (!found) {
    throw new Error(
      `the handler threads' entry is missing (looked for ${candidates.map((url) => fileURLToPath(url)).join(", ")}): ` +
        "build the worker (pnpm build)",
    );
  }
  return found.href;
}

export class HandlerThreads {
  readonly #pool: Piscina;
  readonly #log: Logger;
  /** The level of a thread's logger: the worker's, or the task log's when that is below it (WORKER_TASK_LOG_LEVEL). */
  readonly #threadLogLevel: string;
  readonly #graceMs: number;
  readonly #heapMb: number | undefined;
  readonly #service: string;
  readonly #onTerminated: ((type: string) => void) | undefined;

  constructor({
    maxThreads,
    heapMb,
    log,
    taskLogLevel,
    service,
    entry = threadEntry(),
    terminateGraceMs = TERMINATE_GRACE_MS,
    onTerminated,
  }: HandlerThreadsOptions) {
    this.#log = log;
    this.#threadLogLevel = handlerLogLevel(log, taskLogLevel);
    this.#onTerminated = onTerminated;
    this.#service = service;
    this.#graceMs = terminateGraceMs;
    this.#heapMb = heapMb;
    this.#pool = new Piscina({
      filename: entry,
      minThreads: 0,
      maxThreads,
      idleTimeout: IDLE_TIMEOUT_MS,
      // One attempt per thread at a time: a busy handler must not hold up another in its thread.
      concurrentTasksPerWorker: 1,
      ...(heapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: heapMb } }),
    });
  }

  /** Threads running now (started and not yet ended idle). */
  get threads(): number {
    return this.#pool.threads.length;
  }

  /** Attempts waiting for a thread (all WORKER_THREADS busy). */
  get waiting(): number {
    return this.#pool.queueSize;
  }

  /** The handler with its `run` made in a thread; a handler without isolation "thread" as it is. */
  isolated(handler: LoadedHandler): TaskHandler {
    const { module } = handler;
    if (handler.isolation !== "thread" || !module) return handler;
    return {
      ...handler,
      run: (payload, ctx) =>
        this.#run({ specifier: module.specifier, cwd: module.cwd, type: handler.type }, payload, ctx),
    };
  }

  async #run(
    ref: Pick<ThreadTask, "specifier" | "cwd" | "type">,
    payload: unknown,
    ctx: TaskContext,
  ): Promise<unknown> {
    const { port1, port2 } = new MessageChannel();
    const terminate = new AbortController();
    let graceTimer: NodeJS.Timeout | undefined;
    let settle!: (outcome: ThreadOutcome) => void;
    const outcome = new Promise<ThreadOutcome>((resolve) => {
      settle = resolve;
    });
    const reply = (message: ToThread) => port1.postMessage(message);
    const writeLine = (ctx as LineWritingContext)[TASK_LOG_LINE];
    port1.on("message", (message: FromThread) => {
      switch (message.kind) {
        case "outcome":
          settle(message.outcome);
          return;
        case "progress":
          // Checked in the thread already; what the worker's own check refuses is dropped, not thrown here.
          try {
            ctx.reportProgress(message.percent, message.message, message.details);
          } catch (error) {
            this.#log.warn({ err: error, taskId: ctx.taskId }, "a handler thread's progress report was refused");
          }
          return;
        case "log":
          // The attempt's own writer (run-task.ts: the worker's log and the task's), else the worker's log.
          if (writeLine) writeLine(message.line);
          else writeAttemptLine(this.#log, undefined, message.line);
          return;
        case "call": {
          const { id, method, argument } = message;
          // Inside an async function: what a call throws at once is its answer too, never an uncaught exception here.
          const made = (async () =>
            method === "dependencies"
              ? ctx.dependencies()
              : method === "submitTask"
                ? ctx.submitTask(argument as Parameters<TaskContext["submitTask"]>[0])
                : ctx.submitTasks(argument as Parameters<TaskContext["submitTasks"]>[0]))();
          made.then(
            (value) => reply({ kind: "reply", id, ok: true, value }),
            (error: unknown) => reply({ kind: "reply", id, ok: false, error: sendableError(error) }),
          );
          return;
        }
      }
    });
    const onAbort = () => {
      reply({ kind: "abort", reason: sendableError(ctx.signal.reason) });
      graceTimer = setTimeout(() => {
        terminate.abort();
        this.#log.warn(
          { taskId: ctx.taskId, type: ref.type, reason: sendableError(ctx.signal.reason).message },
          `a handler thread was terminated: its handler was still running ${this.#graceMs} ms after its attempt ` +
            "ended (a handler must stop on ctx.signal; a busy loop cannot see it)",
        );
        this.#onTerminated?.(ref.type);
      }, this.#graceMs);
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener("abort", onAbort, { once: true });

    const task: ThreadTask = {
      ...ref,
      payload,
      taskId: ctx.taskId,
      attempt: ctx.attempt,
      deferrals: ctx.deferrals,
      logBindings: this.#logBindings(ctx, ref.type),
      logLevel: this.#threadLogLevel,
      port: port2,
    };
    try {
      // The pool's answer says only that the thread is done (its outcome comes on the port, after what it sent
      // before), or why it is not: terminated, dead.
      this.#pool
        .run(task, { transferList: [port2], signal: terminate.signal })
        .catch((error: unknown) => settle({ ok: false, error: sendableError(this.#threadFailure(error, terminate)) }));
      const ended = await outcome;
      if (ended.ok) return ended.value;
      throw receivedError(ended.error);
    } finally {
      clearTimeout(graceTimer);
      ctx.signal.removeEventListener("abort", onAbort);
      port1.close();
    }
  }

  /** Why a thread gave no outcome. */
  #threadFailure(error: unknown, terminate: AbortController): Error {
    if (terminate.signal.aborted) {
      return new Error(`the handler's thread was terminated: it was still running ${this.#graceMs} ms after its abort`);
    }
    if ((error as { code?: unknown }).code === "ERR_WORKER_OUT_OF_MEMORY") {
      return new Error(
        `the handler's thread ran out of memory${this.#heapMb === undefined ? "" : ` (WORKER_THREAD_HEAP_MB=${this.#heapMb})`}: ${(error as Error).message}`,
      );
    }
    return error instanceof Error ? error : new Error(String(error));
  }

  /** The fields of the worker's lines about the attempt, and its trace (the thread has no span of its own). */
  #logBindings(ctx: TaskContext, type: string): Record<string, unknown> {
    return {
      service: this.#service,
      ...this.#log.bindings(),
      taskId: ctx.taskId,
      type,
      attempt: ctx.attempt,
      ...activeTraceFields(),
    };
  }

  /** Ends every thread (after the worker's attempts ended: a thread still running is terminated). */
  close(): Promise<void> {
    return this.#pool.destroy();
  }
}

/**
 * A handler thread's entry (bundled to dist/bundle/handler-thread.js; piscina loads it in each of the worker's
 * handler threads, handler-threads.ts): runs one attempt of a handler declared `isolation: "thread"`. The handler gets
 * the ctx it would get in the worker; what ctx does in the worker (progress, log lines, dependencies(), child tasks)
 * is sent there over the attempt's port, and the outcome goes back the same way, after everything the attempt sent
 * before it. The module is imported once per thread.
 */
import { childWritingTo, createLogger, type Logger } from "@tm/kit/logger";
import { handlersIn, importModule } from "./handler-module-import.js";
import { checkedReport } from "./progress.js";
import {
  type FromThread,
  receivedError,
  sendableError,
  type ThreadCallMethod,
  type ThreadOutcome,
  type ThreadTask,
  type ToThread,
} from "./thread-protocol.js";

type Run = (payload: unknown, ctx: unknown) => unknown;

/** Each module's handlers by type, imported once per thread. */
const modules = new Map<string, Promise<Map<string, Run>>>();

function runsOf(specifier: string, cwd: string): Promise<Map<string, Run>> {
  const key = `${cwd}\n${specifier}`;
  let loading = modules.get(key);
  if (!loading) {
    loading = importModule(specifier, cwd).then((exported) => {
      const runs = new Map<string, Run>();
      for (const candidate of handlersIn(exported, (problem) => new Error(`${specifier}: ${problem}`))) {
        const { type, run } = candidate as { type?: unknown; run?: unknown };
        if (typeof type === "string" && typeof run === "function") runs.set(type, run.bind(candidate) as Run);
      }
      return runs;
    });
    // A failed import is not kept: the next attempt tries again.
    loading.catch(() => modules.delete(key));
    modules.set(key, loading);
  }
  return loading;
}

/** The thread's logger, made with its first attempt that logs; each attempt logs through a child of it. */
let threadLog: Logger | undefined;

export default async function runInThread(task: ThreadTask): Promise<void> {
  const { port } = task;
  const send = (message: FromThread) => port.postMessage(message);
  const controller = new AbortController();
  const calls = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let lastCall = 0;
  port.on("message", (message: ToThread) => {
    if (message.kind === "abort") {
      controller.abort(receivedError(message.reason));
      return;
    }
    const call = calls.get(message.id);
    if (!call) return;
    calls.delete(message.id);
    if (message.ok) call.resolve(message.value);
    else call.reject(receivedError(message.error));
  });
  const call = (method: ThreadCallMethod, argument?: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++lastCall;
      calls.set(id, { resolve, reject });
      send({ kind: "call", id, method, argument });
    });
  let log: Logger | undefined;
  const ctx = {
    taskId: task.taskId,
    attempt: task.attempt,
    deferrals: task.deferrals,
    signal: controller.signal,
    reportProgress(percent: number, message?: string, details?: Record<string, unknown>) {
      // Checked here, so that a report that cannot be carried throws at the call, as in the worker.
      checkedReport(message, details);
      send({
        kind: "progress",
        percent,
        ...(message === undefined ? {} : { message }),
        ...(details ? { details } : {}),
      });
    },
    // The worker's log line format; each line is written by the worker, in order with its own. One logger per thread
    // (pino's options compiled once), a child of it per attempt writing to the attempt's port.
    get log() {
      const { service, ...bindings } = task.logBindings;
      threadLog ??= createLogger(String(service), task.logLevel, { write: () => undefined });
      log ??= childWritingTo(threadLog, bindings, (line) => send({ kind: "log", line }));
      return log;
    },
    dependencies: () => call("dependencies"),
    submitTask: (request: unknown) => call("submitTask", request),
    submitTasks: (requests: unknown) => call("submitTasks", requests),
  };

  let outcome: ThreadOutcome;
  try {
    const run = (await runsOf(task.specifier, task.cwd)).get(task.type);
    if (!run) throw new Error(`${task.specifier} has no handler for task type "${task.type}" in a handler thread`);
    outcome = { ok: true, value: await run(task.payload, ctx) };
  } catch (error) {
    outcome = { ok: false, error: sendableError(error) };
  }
  try {
    send({ kind: "outcome", outcome });
  } catch (error) {
    // A result that cannot be copied to the worker (a function, a class with private state): the attempt's error.
    const problem = new Error(`the handler's result cannot leave its thread: ${(error as Error).message}`);
    send({ kind: "outcome", outcome: { ok: false, error: sendableError(problem) } });
  }
}

/**
 * TaskManagerClient: what a program that submits tasks needs beyond the generated client, as BullMQ's Queue.add and
 * job.waitUntilFinished, Celery's apply_async and AsyncResult.get, or Temporal's client.workflow.execute give it:
 * - submit(): a task from plain values (taskRequestProblem checks it first), retried while the gateway cannot take
 *   it (restarting, shedding, rate limited) under one idempotency key, so a retry never makes a second task;
 * - waitFor(): the task once it finished, with its result, following its status through gateway restarts;
 * - run(): both, resolving with the result or rejecting with a TaskFailedError.
 * The generated clients stay at hand (`tasks`) for everything else.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { JsonObject } from "@bufbuild/protobuf";
import { type RetryNotice, withSubmitRetries } from "./call-retry.js";
import { createTaskClient, type TaskClient, type TaskClientOptions } from "./client.js";
import { followTaskStatus } from "./follow-task.js";
import { type Task, TaskState, type TaskStatus } from "./gen/taskmanager/v1/taskmanager_pb.js";
import { type SubmissionOptions, submitTaskRequestOf, type TaskRequest, taskRequestProblem } from "./task-request.js";

export interface TaskManagerClientOptions extends TaskClientOptions {
  /** Retries of a call the gateway could not take (UNAVAILABLE, unreachable, rate limited); default 4, about 4 s of
   *  waiting (longer when the gateway's rate limit asks for it). 0: none. */
  retries?: number;
  /** How long one unary call (SubmitTask, GetTask, CancelTask) may take; default 10 s. */
  callTimeoutMs?: number;
  /** How long waitFor and run wait for a gateway that went away before giving up (GatewayOutageError); default 60 s. */
  maxOutageMs?: number;
}

export interface SubmittedTask {
  taskId: string;
  /** The idempotency key named an existing task, whose id this is. */
  deduplicated: boolean;
  /** With keyReuse "replace-waiting": the key's waiting task took this submission's payload and time. */
  replaced: boolean;
}

export interface WaitOptions {
  signal?: AbortSignal;
  /** Give up waiting after this long (a WaitTimeoutError); the task itself goes on. */
  timeoutMs?: number;
  /** Told each status of the task once, in order: its progress reports included. */
  onStatus?: (status: TaskStatus) => void;
}

export interface SubmitCallOptions {
  signal?: AbortSignal;
  /** Told before each retry of the submission. */
  onRetry?: (notice: RetryNotice) => void;
}

export interface RunOptions extends WaitOptions, Pick<SubmitCallOptions, "onRetry"> {
  /** Told the task's id once it is submitted (to log it, or cancel it). */
  onSubmitted?: (submitted: SubmittedTask) => void;
}

/** A task that SUCCEEDED, and what its handler returned. */
export interface CompletedTask<Result = JsonObject> {
  taskId: string;
  result: Result;
  task: Task;
}

/** The task ended FAILED or CANCELLED: its status says why (`reason`, the handler's error or the cancel reason). */
export class TaskFailedError extends Error {
  override readonly name = "TaskFailedError";
  readonly taskId: string;
  readonly state: "FAILED" | "CANCELLED";
  readonly reason: string;
  /** The attempts made (0 for a task cancelled before it ran). */
  readonly attempt: number;
  constructor(readonly task: Task) {
    const status = task.status;
    const state = status?.state === TaskState.CANCELLED ? "CANCELLED" : "FAILED";
    const reason = status?.error ?? "";
    super(`task ${task.taskId} (${task.type}) ended ${state}${reason ? `: ${reason}` : ""}`);
    this.taskId = task.taskId;
    this.state = state;
    this.reason = reason;
    this.attempt = status?.attempt ?? 0;
  }
}

/** waitFor or run gave up waiting (their timeoutMs); the task goes on, and can be waited for again. */
export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";
  constructor(
    readonly taskId: string,
    readonly timeoutMs: number,
  ) {
    super(`task ${taskId} had not finished after ${timeoutMs} ms of waiting (it goes on: wait again, or cancel it)`);
  }
}

export class TaskManagerClient {
  /** The generated TaskService client, for the calls this class does not wrap. */
  readonly tasks: TaskClient;
  readonly #retries: number;
  readonly #callTimeoutMs: number;
  readonly #maxOutageMs: number;

  constructor(options: TaskManagerClientOptions) {
    const { retries = 4, callTimeoutMs = 10_000, maxOutageMs = 60_000 } = options;
    for (const [name, value] of Object.entries({ retries, callTimeoutMs, maxOutageMs })) {
      if (!(Number.isSafeInteger(value) && value >= 0))
        throw new TypeError(`TaskManagerClient: ${name} must be a whole number ≥ 0 (got ${JSON.stringify(value)})`);
    }
    this.tasks = createTaskClient(options);
    this.#retries = retries;
    this.#callTimeoutMs = callTimeoutMs;
    this.#maxOutageMs = maxOutageMs;
  }

  /**
   * Submits a task. Rejects with a TypeError naming the field for a request that cannot be sent, and with the
   * gateway's ConnectError for one it refuses (INVALID_ARGUMENT: an unknown type, a payload its schema rejects, ...).
   * Without an idempotencyKey of its own, one is made for the call (`client-<uuid>`), so that retrying after an
   * attempt that did reach the gateway completes that submission rather than making a second task.
   */
  async submit(request: TaskRequest & SubmissionOptions, options: SubmitCallOptions = {}): Promise<SubmittedTask> {
    const problem = taskRequestProblem(request);
    if (problem) throw new TypeError(`invalid task request: ${problem}`);
    const idempotencyKey = request.idempotencyKey ?? (this.#retries > 0 ? `client-${crypto.randomUUID()}` : undefined);
    const message = submitTaskRequestOf({ ...request, ...(idempotencyKey ? { idempotencyKey } : {}) });
    const { value } = await this.#withRetries(
      () => this.tasks.submitTask(message, this.#callOptions(options.signal)),
      options,
    );
    return { taskId: value.taskId, deduplicated: value.deduplicated, replaced: value.replaced };
  }

  /** The task (GetTask), retried while the gateway is unavailable. NOT_FOUND for an unknown or expired task. */
  async getTask(taskId: string, options: { signal?: AbortSignal } = {}): Promise<Task> {
    const { value } = await this.#withRetries(
      () => this.tasks.getTask({ taskId }, this.#callOptions(options.signal)),
      options,
    );
    if (!value.task) throw new Error(`the gateway answered GetTask(${taskId}) without the task`);
    return value.task;
  }

  /**
   * Resolves with the task once it finished (SUCCEEDED, FAILED or CANCELLED), its result included: it does not
   * reject for a failed task (run does). Follows StreamTaskStatus, opened again while the gateway restarts (for up to
   * maxOutageMs without an answer: then a GatewayOutageError). Rejects with the gateway's NOT_FOUND for an unknown
   * task, with a WaitTimeoutError after `timeoutMs`, and with the signal's reason once it aborts.
   */
  async waitFor(taskId: string, options: WaitOptions = {}): Promise<Task> {
    return this.#waiting(taskId, options, async (signal) => {
      await followTaskStatus(this.tasks, taskId, {
        signal,
        maxOutageMs: this.#maxOutageMs,
        ...(options.onStatus ? { onStatus: options.onStatus } : {}),
      });
      // The final status comes after the result is stored (the notifier waits for it), so this read has it.
      return this.getTask(taskId, { signal });
    });
  }

  /**
   * Submits the task and waits for it: resolves with its result once it SUCCEEDED; rejects with a TaskFailedError
   * once it ended FAILED or CANCELLED, and as submit and waitFor do otherwise. `timeoutMs` counts from the call.
   */
  async run<Result = JsonObject>(
    request: TaskRequest & SubmissionOptions,
    options: RunOptions = {},
  ): Promise<CompletedTask<Result>> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const submitted = await this.submit(request, options);
    options.onSubmitted?.(submitted);
    const { taskId } = submitted;
    const task = await this.waitFor(taskId, {
      ...options,
      ...(deadline === undefined ? {} : { timeoutMs: Math.max(0, deadline - Date.now()) }),
    });
    if (task.status?.state !== TaskState.SUCCEEDED) throw new TaskFailedError(task);
    return { taskId, result: (task.result ?? {}) as Result, task };
  }

  /** Cancels the task (CancelTask): its status (CANCELLED). FAILED_PRECONDITION once it finished. */
  async cancel(
    taskId: string,
    options: { reason?: string; includeChildren?: boolean; signal?: AbortSignal } = {},
  ): Promise<TaskStatus | undefined> {
    const { value } = await this.#withRetries(
      () =>
        this.tasks.cancelTask(
          { taskId, reason: options.reason ?? "", includeChildren: options.includeChildren ?? false },
          this.#callOptions(options.signal),
        ),
      options,
    );
    return value.status;
  }

  #callOptions(signal: AbortSignal | undefined) {
    return { timeoutMs: this.#callTimeoutMs, ...(signal ? { signal } : {}) };
  }

  #withRetries<T>(call: () => Promise<T>, options: SubmitCallOptions) {
    const { signal } = options;
    return withSubmitRetries(
      this.#retries,
      call,
      (notice) => options.onRetry?.(notice),
      (ms) =>
        sleep(ms, undefined, signal ? { signal } : {}).catch(() => {
          throw signal?.reason;
        }),
    );
  }

  /** Runs `wait` under the caller's signal and timeout, rejecting with a WaitTimeoutError at the timeout. */
  async #waiting<T>(taskId: string, options: WaitOptions, wait: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const stop = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) stop();
    options.signal?.addEventListener("abort", stop, { once: true });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => controller.abort(new WaitTimeoutError(taskId, options.timeoutMs ?? 0)), options.timeoutMs);
    try {
      return await wait(controller.signal);
    } catch (error) {
      // A call cut short by the abort fails as cancelled: say why it was (the timeout, or the caller's reason).
      throw controller.signal.aborted ? controller.signal.reason : error;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", stop);
    }
  }
}

/**
 * TaskManagerClient: what a program that submits tasks needs beyond the generated client, as BullMQ's Queue.add and
 * job.waitUntilFinished, Celery's apply_async and AsyncResult.get, or Temporal's client.workflow.execute give it:
 * - submit(): a task from plain values (taskRequestProblem checks it first), retried while the gateway cannot take
 *   it (restarting, shedding, rate limited) under one idempotency key, so a retry never makes a second task;
 * - waitFor(): the task once it finished, with its result, following its status through gateway restarts;
 * - run(): both, resolving with the result or rejecting with a TaskFailedError;
 * - submitMany(): a list in SubmitTasks calls, each task's outcome of its own;
 * - logs(): what the task's handlers logged, followed until it has finished.
 * The generated clients stay at hand (`tasks`) for everything else.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type RetryNotice, retryDelayFor, withSubmitRetries } from "./call-retry.js";
import { createTaskClient, type TaskClient, type TaskClientOptions } from "./client.js";
import { followTaskStatus } from "./follow-task.js";
import {
  type SubmitTaskRequestSchema,
  type Task,
  type TaskLogLine,
  TaskState,
  type TaskStatus,
} from "./gen/taskmanager/v1/taskmanager_pb.js";
import { readTaskLogLines, type TaskLogReadOptions } from "./task-log-reader.js";
import { type SubmissionOptions, submitTaskRequestOf, type TaskRequest, taskRequestProblem } from "./task-request.js";

type SubmitTaskMessage = MessageInitShape<typeof SubmitTaskRequestSchema>;

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

/** One task of a submitMany list: a TaskRequest, its submission options, and the tasks of the list it waits for. */
export interface BatchTaskRequest extends TaskRequest, SubmissionOptions {
  /** Earlier tasks of the same list this one waits for, by their place in it (0-based), as if their ids were in
   *  dependsOn (together at most 20): a whole graph in one submitMany, as BullMQ's FlowProducer. A task can name only
   *  tasks before it, so a list cannot make a cycle. If one of them is refused, this task is refused too. */
  dependsOnBatchItems?: number[];
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

/** The task ended FAILED or CANCELLED: `reason` is its status's error (the last attempt's failure; for a cancelled
 *  task the cancel's reason, empty if none was given), `task` the whole of it. */
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

/** `run`'s timeoutMs ran out before the gateway answered the submission. The gateway may still have recorded it:
 *  submitting again with `idempotencyKey` (the caller's, or the one made for the call) answers that task, if any,
 *  rather than making a second. */
export class SubmitTimeoutError extends Error {
  override readonly name = "SubmitTimeoutError";
  constructor(
    readonly timeoutMs: number,
    readonly idempotencyKey: string | undefined,
  ) {
    super(
      `the submission was not answered within ${timeoutMs} ms` +
        (idempotencyKey
          ? `; it may have been recorded: submit again with idempotencyKey "${idempotencyKey}" to get its task, not a second one`
          : ""),
    );
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
    return this.#submitMessage(this.#messageOf(request), options);
  }

  async #submitMessage(message: SubmitTaskMessage, options: SubmitCallOptions): Promise<SubmittedTask> {
    const { value } = await this.#withRetries(
      () => this.tasks.submitTask(message, this.#callOptions(options.signal)),
      options,
    );
    return { taskId: value.taskId, deduplicated: value.deduplicated, replaced: value.replaced };
  }

  /**
   * Submits a list in SubmitTasks calls of `batchSize` (default 100; the gateway takes up to GATEWAY_MAX_BATCH_TASKS,
   * 500), as BullMQ's addBulk: one round trip per call instead of one per task. Resolves with one outcome per request,
   * in order, as Promise.allSettled does: `{ status: "fulfilled", value: SubmittedTask }`, or `{ status: "rejected",
   * reason: ConnectError }` for a task the gateway refused (the others are not refused with it). Every request is
   * checked before any is sent (a TypeError naming `requests[i]`). Tasks the gateway could not take (UNAVAILABLE, for
   * the call or for some of its tasks) are sent again, each under its idempotency key (its own, or one made for it),
   * up to `retries` times; a rate limit is waited out as its pushback says. A task waits for tasks of the list by
   * their place in it (`dependsOnBatchItems`): in the same call by the call's own references, in an earlier call by the
   * id it was given; a task whose dependency was refused is refused too (FAILED_PRECONDITION naming it, or the
   * dependency's code when that is UNAVAILABLE or CANCELLED), as the gateway does within a call.
   */
  async submitMany(
    requests: ReadonlyArray<BatchTaskRequest>,
    options: SubmitCallOptions & { batchSize?: number } = {},
  ): Promise<Array<PromiseSettledResult<SubmittedTask>>> {
    const { batchSize = 100 } = options;
    if (!(Number.isSafeInteger(batchSize) && batchSize >= 1))
      throw new TypeError(`submitMany: batchSize must be a whole number ≥ 1 (got ${JSON.stringify(batchSize)})`);
    if (!Array.isArray(requests)) throw new TypeError("submitMany: needs a list of task requests");
    const items = requests.map(({ dependsOnBatchItems, ...request }, i) => {
      const where = `requests[${i}]`;
      if (dependsOnBatchItems !== undefined && !Array.isArray(dependsOnBatchItems))
        throw new TypeError(`invalid task request: ${where}: dependsOnBatchItems must be a list of earlier places`);
      for (const item of dependsOnBatchItems ?? []) {
        if (!(Number.isSafeInteger(item) && item >= 0 && item < i))
          throw new TypeError(
            `invalid task request: ${where}: dependsOnBatchItems may name only earlier tasks of the list, ${i === 0 ? "and it is the first" : `0 to ${i - 1}`} (got ${JSON.stringify(item)})`,
          );
      }
      return {
        message: this.#messageOf(request, `${where}: `),
        waitsFor: [...new Set<number>(dependsOnBatchItems ?? [])],
      };
    });
    const outcomes: Array<PromiseSettledResult<SubmittedTask>> = [];
    const taken = { some: false };
    for (let start = 0; start < items.length; start += batchSize) {
      const end = Math.min(start + batchSize, items.length);
      await this.#submitChunk(items, start, end, outcomes, options, taken);
    }
    return outcomes;
  }

  /** One SubmitTasks call's tasks (items[start, end)), those the gateway could not take sent again; each outcome
   *  goes in `outcomes` at its request's place. */
  async #submitChunk(
    items: ReadonlyArray<{ message: SubmitTaskMessage; waitsFor: number[] }>,
    start: number,
    end: number,
    outcomes: Array<PromiseSettledResult<SubmittedTask>>,
    options: SubmitCallOptions,
    /** Whether a task of the list was taken (by this call or an earlier one). */
    taken: { some: boolean },
  ): Promise<void> {
    let pending = Array.from({ length: end - start }, (_, k) => start + k);
    for (let attempt = 1; ; attempt++) {
      // Each task's dependencies on the list: one being sent in this call by its place in the call, one already
      // taken by its id; one refused refuses this task without sending it.
      const sent: number[] = [];
      const messages: SubmitTaskMessage[] = [];
      for (const i of pending) {
        const item = items[i] as (typeof items)[number];
        const dependsOn = [...(item.message.dependsOn ?? [])];
        const callPlaces: number[] = [];
        let refusedBy: { item: number; error: ConnectError } | undefined;
        for (const j of item.waitsFor) {
          const place = sent.indexOf(j);
          if (place >= 0) {
            callPlaces.push(place);
            continue;
          }
          const outcome = outcomes[j];
          if (outcome?.status === "fulfilled") dependsOn.push(outcome.value.taskId);
          else {
            refusedBy = { item: j, error: ConnectError.from(outcome?.reason) };
            break;
          }
        }
        if (refusedBy) {
          const { code, rawMessage } = refusedBy.error;
          outcomes[i] = {
            status: "rejected",
            reason: new ConnectError(
              `dependency requests[${refusedBy.item}] was refused: ${rawMessage}`,
              code === Code.Unavailable || code === Code.Canceled ? code : Code.FailedPrecondition,
            ),
          };
          continue;
        }
        sent.push(i);
        messages.push({ ...item.message, dependsOn, dependsOnBatchItems: callPlaces });
      }
      if (sent.length === 0) return;
      let unavailable: ConnectError | undefined;
      const again: number[] = [];
      try {
        const response = await this.tasks.submitTasks({ tasks: messages }, this.#callOptions(options.signal));
        for (const [k, i] of sent.entries()) {
          const outcome = response.outcomes[k]?.outcome;
          if (outcome?.case === "accepted") {
            taken.some = true;
            const { taskId, deduplicated, replaced } = outcome.value;
            outcomes[i] = { status: "fulfilled", value: { taskId, deduplicated, replaced } };
            continue;
          }
          const error =
            outcome?.case === "error"
              ? new ConnectError(outcome.value.message, outcome.value.code as Code)
              : new ConnectError("the gateway answered without this task's outcome", Code.Internal);
          outcomes[i] = { status: "rejected", reason: error };
          if (error.code === Code.Unavailable) {
            again.push(i);
            unavailable = error;
          }
        }
      } catch (error) {
        // The call failed whole, nothing answered: every task of it is sent again. Once no retry is left, or for an
        // error no retry changes, the call's error is thrown while nothing has been taken yet; after that, it
        // becomes the outcome of each task still pending, so the tasks already taken are still reported.
        const delayMs = retryDelayFor(error, attempt);
        if (delayMs === undefined || attempt > this.#retries || options.signal?.aborted) {
          if (!taken.some) throw options.signal?.aborted ? options.signal.reason : error;
          for (const i of sent) outcomes[i] = { status: "rejected", reason: ConnectError.from(error) };
          return;
        }
        options.onRetry?.({ error, attempt: attempt + 1, attempts: this.#retries + 1, delayMs });
        await this.#sleep(delayMs, options.signal);
        pending = sent;
        continue;
      }
      if (again.length === 0 || attempt > this.#retries) return;
      const delayMs = retryDelayFor(unavailable, attempt) as number;
      options.onRetry?.({ error: unavailable, attempt: attempt + 1, attempts: this.#retries + 1, delayMs });
      await this.#sleep(delayMs, options.signal);
      pending = again;
    }
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
    const message = this.#messageOf(request);
    // timeoutMs bounds the submission too: a gateway that hangs would otherwise hold it for every attempt's call
    // timeout and the waits between them (about a minute with the defaults).
    const timedOut = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
    const signal =
      timedOut && options.signal ? AbortSignal.any([timedOut, options.signal]) : (timedOut ?? options.signal);
    let submitted: SubmittedTask;
    try {
      submitted = await this.#submitMessage(message, { ...options, ...(signal ? { signal } : {}) });
    } catch (error) {
      if (timedOut?.aborted && !options.signal?.aborted)
        throw new SubmitTimeoutError(options.timeoutMs ?? 0, message.idempotencyKey);
      throw error;
    }
    options.onSubmitted?.(submitted);
    const { taskId } = submitted;
    const task = await this.waitFor(taskId, {
      ...options,
      ...(deadline === undefined ? {} : { timeoutMs: Math.max(0, deadline - Date.now()) }),
    });
    if (task.status?.state !== TaskState.SUCCEEDED) throw new TaskFailedError(task);
    return { taskId, result: (task.result ?? {}) as Result, task };
  }

  /**
   * What the task's handlers logged with ctx.log, oldest first (GetTaskLogs, a page at a time); with `follow`, what
   * they log from then on too, until the task has finished (then the iteration ends). NOT_FOUND for an unknown task.
   */
  logs(
    taskId: string,
    options: Omit<TaskLogReadOptions, "callTimeoutMs" | "maxOutageMs"> = {},
  ): AsyncGenerator<TaskLogLine> {
    return readTaskLogLines(this.tasks, taskId, {
      callTimeoutMs: this.#callTimeoutMs,
      maxOutageMs: this.#maxOutageMs,
      ...options,
    });
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

  /** The SubmitTaskRequest of a checked request (a TypeError naming the field, after `where`), with an idempotency
   *  key made for it when it has none and calls are retried: a retry then completes the first attempt's submission. */
  #messageOf(request: TaskRequest & SubmissionOptions, where = ""): SubmitTaskMessage {
    // submitMany takes its places out before this; anywhere else they could name nothing.
    if ((request as BatchTaskRequest).dependsOnBatchItems !== undefined)
      throw new TypeError("invalid task request: dependsOnBatchItems names places in a submitMany list: use dependsOn");
    const problem = taskRequestProblem(request);
    if (problem) throw new TypeError(`invalid task request: ${where}${problem}`);
    const idempotencyKey = request.idempotencyKey ?? (this.#retries > 0 ? `client-${crypto.randomUUID()}` : undefined);
    return submitTaskRequestOf({ ...request, ...(idempotencyKey ? { idempotencyKey } : {}) });
  }

  #callOptions(signal: AbortSignal | undefined) {
    return { timeoutMs: this.#callTimeoutMs, ...(signal ? { signal } : {}) };
  }

  #withRetries<T>(call: () => Promise<T>, options: SubmitCallOptions) {
    return withSubmitRetries(
      this.#retries,
      call,
      (notice) => options.onRetry?.(notice),
      (ms) => this.#sleep(ms, options.signal),
    );
  }

  /** Waits `ms`, or rejects with the signal's reason once it aborts. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return sleep(ms, undefined, signal ? { signal } : {}).catch(() => {
      throw signal?.reason;
    });
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

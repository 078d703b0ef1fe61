/** The operator commands over AdminService: stats, workers, concurrency, fairness, ls, history, dlq ls, dlq replay,
 *  requeue (and --all-stalled). */
import { toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AdminClient,
  CancelResult,
  type CancelTaskOutcome,
  CancelTasksResponseSchema,
  DiscardDeadLettersResponseSchema,
  DiscardResult,
  GetConcurrencyKeyResponseSchema,
  GetFairnessQueueResponseSchema,
  GetQueueStatsResponseSchema,
  GetTaskHistoryResponseSchema,
  ListDeadLettersResponseSchema,
  ListTasksResponseSchema,
  ListWorkersResponseSchema,
  type PausedQueue,
  PauseQueueResponseSchema,
  QuietWorkerResponseSchema,
  ReplayDeadLettersResponseSchema,
  ReplayResult,
  type RequeueOutcome,
  RequeueResult,
  RequeueTasksResponseSchema,
  ResumeQueueResponseSchema,
  ResumeWorkerResponseSchema,
} from "@tm/proto";
import { MAX_LIST_LIMIT, type TaskListFilter } from "../admin-args.js";
import {
  priorityName,
  renderCancelled,
  renderConcurrencyKey,
  renderDeadLetters,
  renderDiscard,
  renderFairnessQueue,
  renderHistory,
  renderPausedQueues,
  renderReplay,
  renderRequeue,
  renderRequeuedStalled,
  renderStats,
  renderTasks,
  renderWorkers,
} from "../admin-render.js";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";

const options = { timeoutMs: UNARY_TIMEOUT_MS };
// Replaying up to 500 letters (or requeuing 500 tasks) is a write per item: give it longer than a read.
const REPLAY_TIMEOUT_MS = 60_000;

/** ListTasks' filter fields (which CancelTasks repeats) from `ls`'s flags. */
function filterFields(filter: TaskListFilter) {
  return {
    ...(filter.state === undefined ? {} : { state: filter.state }),
    ...(filter.type === undefined ? {} : { type: filter.type }),
    ...(filter.priority === undefined ? {} : { priority: filter.priority }),
    ...(filter.since ? { createdAfter: timestampFromDate(filter.since) } : {}),
    ...(filter.until ? { createdBefore: timestampFromDate(filter.until) } : {}),
    ...(filter.query === undefined ? {} : { query: filter.query }),
    ...(filter.parentTaskId === undefined ? {} : { parentTaskId: filter.parentTaskId }),
  };
}

function nextPageHint(token: string): string {
  return token ? `\nmore: --page-token ${token}` : "";
}

export async function statsCommand(io: Io, client: AdminClient, json: boolean): Promise<ExitCode> {
  const stats = await client.getQueueStats({}, options);
  println(io.stdout, json ? JSON.stringify(toJson(GetQueueStatsResponseSchema, stats)) : renderStats(stats));
  return ExitCode.Ok;
}

/** `taskctl workers`: the live workers and the tasks each runs now (AdminService ListWorkers). */
export async function workersCommand(io: Io, client: AdminClient, json: boolean): Promise<ExitCode> {
  const response = await client.listWorkers({}, options);
  println(
    io.stdout,
    json ? JSON.stringify(toJson(ListWorkersResponseSchema, response)) : renderWorkers(response.workers, Date.now()),
  );
  return ExitCode.Ok;
}

/** `taskctl concurrency <key> [--owner CALLER]`: one concurrency key's tasks in the pipeline and waiting
 *  (AdminService GetConcurrencyKey). */
export async function concurrencyCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "concurrency" }>,
): Promise<ExitCode> {
  const { key, owner } = invocation;
  const response = await client.getConcurrencyKey({ key, owner: owner ?? "" }, options);
  println(
    io.stdout,
    invocation.globals.json
      ? JSON.stringify(toJson(GetConcurrencyKeyResponseSchema, response))
      : renderConcurrencyKey(key, response, owner),
  );
  return ExitCode.Ok;
}

/** `taskctl fairness <type>`: one task type's fairness window, its tasks and the keys waiting for their turn
 *  (AdminService GetFairnessQueue). */
export async function fairnessCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "fairness" }>,
): Promise<ExitCode> {
  const { taskType } = invocation;
  const response = await client.getFairnessQueue({ taskType }, options);
  println(
    io.stdout,
    invocation.globals.json
      ? JSON.stringify(toJson(GetFairnessQueueResponseSchema, response))
      : renderFairnessQueue(taskType, response),
  );
  return ExitCode.Ok;
}

/** `taskctl workers quiet|resume <id>` (AdminService QuietWorker / ResumeWorker). */
export async function workerQuietCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "workers-quiet" | "workers-resume" }>,
): Promise<ExitCode> {
  const workerId = await resolveWorkerId(client, invocation.workerId);
  let json: string;
  let done: string;
  if (invocation.command === "workers-quiet") {
    const response = await client.quietWorker({ workerId }, options);
    json = JSON.stringify(toJson(QuietWorkerResponseSchema, response));
    done = response.changed
      ? `${workerId}: quiet (takes no new tasks from its next poll; what it holds buffered goes to the other workers)`
      : `${workerId}: was quiet already`;
  } else {
    const response = await client.resumeWorker({ workerId }, options);
    json = JSON.stringify(toJson(ResumeWorkerResponseSchema, response));
    done = response.changed ? `${workerId}: resumed (takes tasks again)` : `${workerId}: was not quiet`;
  }
  println(io.stdout, invocation.globals.json ? json : done);
  return ExitCode.Ok;
}

/** A worker named by its id, or by its host alone when one live worker runs there (a pod's name, `pod-0` for
 *  `pod-0:1`). Anything else goes to the gateway as given, which says what it does not know. */
async function resolveWorkerId(client: AdminClient, named: string): Promise<string> {
  const { workers } = await client.listWorkers({}, options);
  if (workers.some((worker) => worker.id === named)) return named;
  const onHost = workers.filter((worker) => worker.id.startsWith(`${named}:`));
  return onHost.length === 1 ? (onHost[0]?.id ?? named) : named;
}

export async function lsCommand(
  io: Io,
  client: AdminClient,
  request: { filter: TaskListFilter; limit: number; pageToken?: string; json: boolean },
): Promise<ExitCode> {
  const { filter } = request;
  const response = await client.listTasks(
    {
      ...filterFields(filter),
      ...(filter.stalledForSeconds === undefined ? {} : { stalledForSeconds: filter.stalledForSeconds }),
      stalled: filter.stalled === true,
      pageSize: request.limit,
      pageToken: request.pageToken ?? "",
    },
    options,
  );
  println(
    io.stdout,
    request.json
      ? JSON.stringify(toJson(ListTasksResponseSchema, response))
      : renderTasks(response.tasks, Date.now()) + nextPageHint(response.nextPageToken),
  );
  return ExitCode.Ok;
}

export async function historyCommand(io: Io, client: AdminClient, taskId: string, json: boolean): Promise<ExitCode> {
  const response = await client.getTaskHistory({ taskId }, options);
  println(
    io.stdout,
    json ? JSON.stringify(toJson(GetTaskHistoryResponseSchema, response)) : renderHistory(response.events, Date.now()),
  );
  return ExitCode.Ok;
}

export async function dlqCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "dlq" }>,
): Promise<ExitCode> {
  const json = invocation.globals.json;
  if (invocation.action === "ls") {
    const response = await client.listDeadLetters(
      { pageSize: invocation.limit, pageToken: invocation.pageToken ?? "", filter: invocation.filter },
      options,
    );
    println(
      io.stdout,
      json
        ? JSON.stringify(toJson(ListDeadLettersResponseSchema, response))
        : renderDeadLetters(response.deadLetters, Date.now()) + nextPageHint(response.nextPageToken),
    );
    return ExitCode.Ok;
  }
  const letters = { ids: invocation.ids, all: invocation.all, filter: invocation.filter };
  if (invocation.action === "discard") {
    const response = await client.discardDeadLetters(letters, { timeoutMs: REPLAY_TIMEOUT_MS });
    const text = json
      ? JSON.stringify(toJson(DiscardDeadLettersResponseSchema, response))
      : renderDiscard(response.outcomes, response.more);
    println(io.stdout, text);
    return exitFor(response.outcomes, DiscardResult.DISCARDED, DiscardResult.UNAVAILABLE);
  }
  const response = await client.replayDeadLetters(letters, { timeoutMs: REPLAY_TIMEOUT_MS });
  const text = json
    ? JSON.stringify(toJson(ReplayDeadLettersResponseSchema, response))
    : renderReplay(response.outcomes, response.more);
  println(io.stdout, text);
  return exitFor(response.outcomes, ReplayResult.REPLAYED, ReplayResult.UNAVAILABLE);
}

export async function requeueCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "requeue" }>,
): Promise<ExitCode> {
  const response = await client.requeueTasks(
    {
      taskIds: invocation.taskIds,
      ...(invocation.stalledForSeconds === undefined ? {} : { stalledForSeconds: invocation.stalledForSeconds }),
    },
    { timeoutMs: REPLAY_TIMEOUT_MS },
  );
  println(
    io.stdout,
    invocation.globals.json
      ? JSON.stringify(toJson(RequeueTasksResponseSchema, response))
      : renderRequeue(response.outcomes),
  );
  return exitFor(response.outcomes, RequeueResult.REQUEUED, RequeueResult.UNAVAILABLE);
}

/**
 * `taskctl requeue --all-stalled [filter]`: every task `ls --stalled` lists (what the gateway counts as stalled and
 * did not requeue on its own: past GATEWAY_STALLED_REQUEUE_LIMIT, or with the limit 0), 500 per RequeueTasks call,
 * page after page until none is left or an outage stops it (--json: one response per line). The requeue asks for the
 * gateway's own stall threshold (GetQueueStats' stalled_after_seconds) unless --stalled-for is given, so that a task
 * that moved after it was listed is refused rather than requeued while it runs.
 */
export async function requeueStalledCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "requeue-stalled" }>,
): Promise<ExitCode> {
  const stalledForSeconds =
    invocation.stalledForSeconds ?? (await client.getQueueStats({}, options)).stalledAfterSeconds;
  const outcomes: RequeueOutcome[] = [];
  let pageToken = "";
  let stopped = false;
  for (;;) {
    const page = await client.listTasks(
      { ...filterFields(invocation.filter), stalled: true, pageSize: MAX_LIST_LIMIT, pageToken },
      options,
    );
    if (page.tasks.length > 0) {
      const response = await client.requeueTasks(
        { taskIds: page.tasks.map((task) => task.taskId), stalledForSeconds },
        { timeoutMs: REPLAY_TIMEOUT_MS },
      );
      if (invocation.globals.json) println(io.stdout, JSON.stringify(toJson(RequeueTasksResponseSchema, response)));
      outcomes.push(...response.outcomes);
      stopped = response.outcomes.some((o) => o.result === RequeueResult.UNAVAILABLE);
    }
    if (stopped || !page.nextPageToken) break;
    pageToken = page.nextPageToken;
  }
  if (!invocation.globals.json) println(io.stdout, renderRequeuedStalled(outcomes, stopped));
  return exitFor(outcomes, RequeueResult.REQUEUED, RequeueResult.UNAVAILABLE);
}

/**
 * `taskctl cancel --all <filter>`: AdminService CancelTasks, 500 tasks per call, each call going on from where the
 * last stopped (its page token) until none is left, or an outage stops it (--json: one response per line).
 */
export async function cancelAllCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "cancel-all" }>,
): Promise<ExitCode> {
  const outcomes: CancelTaskOutcome[] = [];
  let pageToken = "";
  let stopped = false;
  for (;;) {
    const response = await client.cancelTasks(
      {
        all: true,
        ...filterFields(invocation.filter),
        reason: invocation.reason ?? "",
        pageToken,
        dryRun: invocation.dryRun,
      },
      { timeoutMs: REPLAY_TIMEOUT_MS },
    );
    if (invocation.globals.json) println(io.stdout, JSON.stringify(toJson(CancelTasksResponseSchema, response)));
    outcomes.push(...response.outcomes);
    stopped = response.outcomes.some((o) => o.result === CancelResult.UNAVAILABLE);
    if (stopped || !response.nextPageToken) break;
    pageToken = response.nextPageToken;
  }
  if (!invocation.globals.json) println(io.stdout, renderCancelled(outcomes, stopped, invocation.dryRun));
  const done = invocation.dryRun ? CancelResult.WOULD_CANCEL : CancelResult.CANCELLED;
  return exitFor(outcomes, done, CancelResult.UNAVAILABLE);
}

/** 0 when every item was done, 4 when an outage stopped the call (call again), 1 when any was refused. */
export function exitFor<R extends number>(outcomes: readonly { result: R }[], done: R, unavailable: R): ExitCode {
  if (outcomes.some((o) => o.result === unavailable)) return ExitCode.Unavailable;
  return outcomes.every((o) => o.result === done) ? ExitCode.Ok : ExitCode.TaskFailed;
}

/** `taskctl pause|resume <priority>`: prints the paused queues after the call. */
export async function queuePauseCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "pause" | "resume" }>,
): Promise<ExitCode> {
  const { priority } = invocation;
  const name = priorityName(priority);
  let json: string;
  let done: string;
  let paused: PausedQueue[];
  if (invocation.command === "pause") {
    const response = await client.pauseQueue({ priority }, options);
    json = JSON.stringify(toJson(PauseQueueResponseSchema, response));
    done = `${name}: paused (workers start no new tasks of it)`;
    paused = response.pausedQueues;
  } else {
    const response = await client.resumeQueue({ priority }, options);
    json = JSON.stringify(toJson(ResumeQueueResponseSchema, response));
    done = response.wasPaused ? `${name}: resumed` : `${name}: was not paused`;
    paused = response.pausedQueues;
  }
  println(
    io.stdout,
    invocation.globals.json ? json : `${done}\npaused queues  ${renderPausedQueues(paused, Date.now())}`,
  );
  return ExitCode.Ok;
}

/**
 * Tasks a handler submits (ctx.submitTask): fan-out from a running task, as a Celery task calls `.delay()`, a BullMQ
 * processor adds jobs or a Temporal workflow starts a child. They go through the gateway's SubmitTask, so a child is
 * validated, limited, shed and authenticated as any submission is (one way in), and carries the attempt's trace
 * (the connect client sends `traceparent`).
 *
 * Exactly one child per key for the parent task: each call's idempotency key is derived from the parent's id and the
 * child's key (by default its place among the attempt's submissions, 1, 2, …), so an attempt that fails after
 * submitting and is retried gets the same children back (`deduplicated`), never a second set. Not from its
 * generation: a requeue (a stalled task sent again) is one, and must not double its fan-out; a replay is handed the
 * children it had too (each of them is replayed on its own if it failed).
 */
import { PermanentError, type Priority as PriorityName } from "@tm/flow";
import { type TaskClientOptions, type TaskRequest, taskRequestProblem } from "@tm/proto/client";

/** What a handler asks for: a task as plain values (@tm/proto TaskRequest, as TaskManagerClient takes it), named
 *  among its parent's children by `key`. Its priority defaults to the parent's. */
export interface ChildTaskRequest extends TaskRequest {
  /** Names the child among its parent's: the same key on a later attempt returns the same child. 1 to 128 characters;
   *  default: its place among the attempt's submissions (1, 2, …), right for a handler that submits the same
   *  children in the same order each time. */
  key?: string;
}

/** A request of ctx.submitTasks: a child, which may wait for earlier children of the same call. */
export interface ChildBatchRequest extends ChildTaskRequest {
  /** Earlier requests of this call it waits for, by their place in the list (from 0): a fan-out and its fan-in in one
   *  call, their ids being made by the gateway. */
  dependsOnBatchItems?: number[];
}

/** The child, and whether an earlier attempt had submitted it already. */
export interface SubmittedChild {
  taskId: string;
  deduplicated: boolean;
}

/** The task whose attempt submits. */
export interface ParentTask {
  taskId: string;
  priority: PriorityName;
}

/** A child ready to send: its idempotency key, and how its failure is named (`ctx.submitTask("echo")`). */
export interface PreparedChild {
  label: string;
  idempotencyKey: string;
  request: ChildTaskRequest;
  /** Places, within the same SubmitTasks call, of the children it waits for. */
  dependsOnBatchItems?: number[];
}

/** The attempt a call belongs to: it ends with `signal`; `keepAlive` holds off its heartbeat timeout while the call
 *  waits out the gateway's rate limit (waiting is not being stuck). */
export interface AttemptCall {
  signal: AbortSignal;
  keepAlive?: () => void;
}

/** Sends children to the gateway: one (SubmitTask), or up to `batchSize` in one call (SubmitTasks), each answered
 *  with the child or the error the attempt fails with. */
export interface ChildSubmitter {
  readonly batchSize: number;
  submit(parent: ParentTask, child: PreparedChild, call: AttemptCall): Promise<SubmittedChild>;
  submitBatch(
    parent: ParentTask,
    children: readonly PreparedChild[],
    call: AttemptCall,
  ): Promise<Array<SubmittedChild | Error>>;
}

export const MAX_CHILD_KEY_CHARS = 128;

/** The idempotency key of a parent's child, by its own key or its place (`n`): the same for every attempt and
 *  generation of the parent; a key and a place never name the same child. */
export function childIdempotencyKey(
  parent: Pick<ParentTask, "taskId">,
  child: { key: string } | { n: number },
): string {
  const name = "key" in child ? `key:${child.key}` : `n:${child.n}`;
  return `child:${parent.taskId}:${name}`;
}

/** The problem with a request, named as the handler wrote it, or undefined. */
export function childRequestProblem(request: ChildTaskRequest): string | undefined {
  // Its idempotency key is made from its parent's id and its own key: a submission option of its own would not hold.
  for (const own of ["idempotencyKey", "keyReuse"]) {
    if (
      typeof request === "object" &&
      request !== null &&
      (request as unknown as Record<string, unknown>)[own] !== undefined
    )
      return `${own} is not for a child task (its key names it among its parent's)`;
  }
  const problem = taskRequestProblem(request);
  if (problem) return problem;
  const { key } = request;
  if (key !== undefined && (typeof key !== "string" || key.length === 0 || key.length > MAX_CHILD_KEY_CHARS))
    return `key must be 1 to ${MAX_CHILD_KEY_CHARS} characters`;
  return undefined;
}

/** Where and how children are submitted: the gateway's address and the workers' key (TaskClientOptions), the
 *  most children per SubmitTasks call, and who is told of each rate-limit wait. */
export interface GatewayChildSubmitterOptions extends TaskClientOptions {
  batchSize: number;
  onRateLimited?: (waitMs: number) => void;
}

/** The most requests one ctx.submitTasks call takes (sent in SubmitTasks calls of the submitter's batchSize). */
export const MAX_CHILD_BATCH = 10_000;

/**
 * Submits children through the gateway at `baseUrl` (WORKER_GATEWAY_URL), as the caller `apiKey` names, at most
 * `batchSize` per SubmitTasks call (WORKER_CHILD_BATCH_SIZE). The client (connect, the generated messages) is loaded
 * on the first child: a worker whose handlers submit none never holds it (~3 MB of RSS, docs/PERFORMANCE.md).
 */
export function gatewayChildSubmitter(options: GatewayChildSubmitterOptions): ChildSubmitter {
  let loaded: Promise<ChildSubmitter> | undefined;
  const client = () =>
    (loaded ??= import("./gateway-child-submitter.js").then(({ grpcChildSubmitter }) => grpcChildSubmitter(options)));
  return {
    batchSize: options.batchSize,
    submit: async (parent, child, call) => (await client()).submit(parent, child, call),
    submitBatch: async (parent, children, call) => (await client()).submitBatch(parent, children, call),
  };
}

/** Without WORKER_GATEWAY_URL: every call fails, saying what to set (retried: the setting can be added). */
export const unconfiguredChildSubmitter: ChildSubmitter = {
  batchSize: 1,
  submit: async (_parent, child) => {
    throw new Error(
      `${child.label} needs WORKER_GATEWAY_URL on this worker (the gateway's gRPC address, e.g. http://envoy:50051)`,
    );
  },
  submitBatch: async (parent, [first], call) => [await unconfiguredChildSubmitter.submit(parent, first!, call)],
};

/** What a handler's ctx offers to submit children: one, or a list in as few gateway calls as the batch size allows. */
export interface ChildTasks {
  submitTask(request: ChildTaskRequest): Promise<SubmittedChild>;
  submitTasks(requests: readonly ChildBatchRequest[]): Promise<SubmittedChild[]>;
}

/**
 * One attempt's ctx.submitTask and ctx.submitTasks. They number their children together, one place per child in the
 * order the calls were made (a submitTasks call takes as many places as it has requests), so a handler that
 * submits the same children in the same order each attempt is handed the same ones.
 */
export function attemptChildTasks(submitter: ChildSubmitter, parent: ParentTask, call: AttemptCall): ChildTasks {
  let places = 0;
  /** The default or own key of the child at `place`. */
  const keyOf = (request: ChildTaskRequest, place: number) =>
    childIdempotencyKey(parent, request.key === undefined ? { n: place } : { key: request.key });
  return {
    async submitTask(request) {
      // Numbered at the call, before anything is awaited: children submitted together (Promise.all over a list) keep
      // the list's order on every attempt.
      places += 1;
      const place = places;
      const problem = childRequestProblem(request);
      if (problem) throw new PermanentError(`ctx.submitTask: ${problem}`);
      call.signal.throwIfAborted();
      const label = `ctx.submitTask(${JSON.stringify(request.type)})`;
      return submitter.submit(parent, { label, idempotencyKey: keyOf(request, place), request }, call);
    },

    async submitTasks(requests) {
      const problem = batchProblem(requests);
      if (problem) throw new PermanentError(`ctx.submitTasks: ${problem}`);
      const first = places + 1;
      places += requests.length;
      call.signal.throwIfAborted();
      const children = requests.map(({ dependsOnBatchItems: _, ...request }, i) => ({
        label: `ctx.submitTasks: requests[${i}] (${JSON.stringify(request.type)})`,
        idempotencyKey: keyOf(request, first + i),
        request,
      }));
      const submitted: SubmittedChild[] = [];
      for (let start = 0; start < requests.length; start += submitter.batchSize) {
        const end = Math.min(start + submitter.batchSize, requests.length);
        // A dependency sent in this call is named by its place in it; one an earlier call accepted, by its id.
        const chunk = children.slice(start, end).map((child, i) => {
          const after = requests[start + i]?.dependsOnBatchItems ?? [];
          const earlier = after
            .filter((place) => place < start)
            .map((place) => (submitted[place] as SubmittedChild).taskId);
          const request = earlier.length
            ? { ...child.request, dependsOn: [...(child.request.dependsOn ?? []), ...earlier] }
            : child.request;
          const inCall = after.filter((place) => place >= start).map((place) => place - start);
          return { ...child, request, ...(inCall.length ? { dependsOnBatchItems: inCall } : {}) };
        });
        const outcomes = await submitter.submitBatch(parent, chunk, call);
        const refused = outcomes.filter((outcome): outcome is Error => outcome instanceof Error);
        if (refused.length > 0) throw batchRefusal(refused);
        submitted.push(...(outcomes as SubmittedChild[]));
      }
      return submitted;
    },
  };
}

/** The problem with a list of requests (the first), named by its place, or undefined. */
export function batchProblem(requests: readonly ChildBatchRequest[]): string | undefined {
  if (!Array.isArray(requests)) return "needs a list of requests ([{ type, payload?, … }, …])";
  if (requests.length > MAX_CHILD_BATCH)
    return `${requests.length} requests are more than the ${MAX_CHILD_BATCH} one call takes: split the list`;
  const keys = new Set<string>();
  for (const [i, request] of requests.entries()) {
    const problem = childRequestProblem(request);
    if (problem) return `requests[${i}]: ${problem}`;
    if (request.key !== undefined) {
      if (keys.has(request.key)) return `requests[${i}]: key ${JSON.stringify(request.key)} is given twice`;
      keys.add(request.key);
    }
    const after = request.dependsOnBatchItems;
    if (after === undefined) continue;
    if (!Array.isArray(after)) return `requests[${i}]: dependsOnBatchItems must be a list of earlier places`;
    for (const [k, place] of after.entries()) {
      if (!(Number.isSafeInteger(place) && place >= 0 && place < i))
        return `requests[${i}]: dependsOnBatchItems[${k}] must be the place of an earlier request (0 to ${i - 1}), got ${JSON.stringify(place)}`;
      if (after.indexOf(place) !== k) return `requests[${i}]: dependsOnBatchItems[${k}]: ${place} is named twice`;
    }
  }
  return undefined;
}

/**
 * The attempt's failure when the gateway refused some children of a call (the others were accepted, and a retry is
 * handed them again): permanent when one refusal is (no retry could change it), else an ordinary failure.
 */
function batchRefusal(refused: readonly Error[]): Error {
  const permanent = refused.find((error) => error instanceof PermanentError);
  const shown = permanent ?? (refused[0] as Error);
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more of the call refused)` : "";
  const message = `${shown.message}${more}`;
  return permanent ? new PermanentError(message, { cause: shown }) : new Error(message, { cause: shown });
}

/**
 * SubmitTasks: a batch of tasks, each submitted as SubmitTask submits one, answered with one outcome per task in the
 * request's order. Up to BATCH_CONCURRENCY tasks are in flight at once, so their Redis commands share round trips
 * (ioredis pipelines what is sent in the same turn) and their publishes share PubAck waits, instead of one task's
 * round trips after another's.
 *
 * One task's refusal (an unknown type, a payload over its limit, a delay too far, …) is its own outcome. An
 * outage (UNAVAILABLE: Redis or NATS did not answer) is different: the dependency is most likely down for every
 * task, and each would wait for it, so once one task meets it no further task is started. Those get an UNAVAILABLE
 * outcome saying they were not attempted; the tasks already in flight finish as they do. The client retries the
 * refused ones (their idempotency keys make a retry of one that was in fact accepted harmless).
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Tasks of one batch in flight at once: enough to fill a pipeline round trip, few enough not to hog the gateway's
 *  event loop (each task is a few Redis commands and two publishes). */
export const BATCH_CONCURRENCY = 64;

export type BatchOutcome =
  | { case: "accepted"; value: { taskId: string; deduplicated: boolean } }
  | { case: "error"; value: { code: number; message: string } };

/** The batch's size is within bounds, or INVALID_ARGUMENT naming the bound. */
export function checkBatchSize(count: number, maxTasks: number): void {
  if (count === 0) throw new ConnectError("tasks: a batch needs at least one task", Code.InvalidArgument);
  if (count > maxTasks) {
    throw new ConnectError(
      `tasks: ${count} tasks are more than the ${maxTasks} one call may carry (GATEWAY_MAX_BATCH_TASKS): split the batch`,
      Code.InvalidArgument,
    );
  }
}

/**
 * Submits each item with `submit`, at most `concurrency` at a time, and returns their outcomes in the items' order.
 * Items are started in their order, so an item may wait for an earlier one's outcome (`outcomeOf`, for a task that
 * waits for an earlier task of its batch): that one is in flight or done, and cannot be waiting for a later one.
 * Once `signal` aborts (the call's: the client cancelled or its deadline passed) no further item is started either.
 * What `submit` throws becomes the item's error outcome: a ConnectError's code and message, prefixed with the item's
 * place; anything else (a bug: `submit` reports it) as Connect would answer it for SubmitTask, UNKNOWN with its
 * message. The other items' outcomes are answered all the same.
 */
export async function submitEach<I>(
  items: readonly I[],
  submit: (
    item: I,
    index: number,
    outcomeOf: (earlier: number) => Promise<BatchOutcome>,
  ) => Promise<{ taskId: string; deduplicated: boolean }>,
  { concurrency = BATCH_CONCURRENCY, signal }: { concurrency?: number; signal?: AbortSignal } = {},
): Promise<BatchOutcome[]> {
  const outcomes: Promise<BatchOutcome>[] = new Array(items.length);
  let next = 0;
  let outage: string | undefined;
  const refused = (index: number, code: Code, message: string): BatchOutcome => ({
    case: "error",
    value: { code, message: `tasks[${index}]: ${message}` },
  });
  const outcomeOf = (earlier: number): Promise<BatchOutcome> => {
    const outcome = outcomes[earlier];
    if (!outcome)
      throw new Error(`tasks[${earlier}] has not been started: only an earlier task's outcome can be awaited`);
    return outcome;
  };
  async function settle(index: number): Promise<BatchOutcome> {
    // The client is gone (cancelled, or past its deadline): it will never read an outcome, so start nothing more.
    if (signal?.aborted) {
      return refused(index, Code.Canceled, "not attempted: the call ended before this task was started");
    }
    if (outage !== undefined) return refused(index, Code.Unavailable, `not attempted: ${outage}; submit it again`);
    try {
      return { case: "accepted", value: await submit(items[index] as I, index, outcomeOf) };
    } catch (error) {
      const failure = ConnectError.from(error);
      if (failure.code === Code.Unavailable) outage ??= `tasks[${index}] met an outage (${failure.rawMessage})`;
      return refused(index, failure.code, failure.rawMessage);
    }
  }
  async function lane(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      // Stored before anything is awaited: a later item may ask for it from then on.
      outcomes[index] = settle(index);
      await outcomes[index];
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return Promise.all(outcomes);
}

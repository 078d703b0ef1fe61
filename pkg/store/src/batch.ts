/**
 * Gathers the writes requested in one turn of the event loop into one call. A consumer handles the deliveries of a
 * fetched batch concurrently, so their Redis scripts can run as one call instead of one each: fewer commands for
 * the client to build and parse, and fewer for Redis to dispatch.
 */
import DataLoader from "dataloader";

export interface BatchOptions {
  /** Most items per call; 1 makes every item its own call (what a service does while its spans record, so that
   *  each task's Redis span stays in that task's trace). */
  maxBatch?: number;
  ttlSeconds?: number;
}

/**
 * Returns a function that queues one item and resolves with its own result; the items queued in the same turn go
 * to `run` together, at most `max` per call (DataLoader's batching; nothing is cached, so the same item twice is run
 * twice). `run` returns one result per item, in order, and must be idempotent per item: when a call of several
 * items fails with an error `itemFault` accepts (by default a Redis reply error: the script refused something, a key
 * of the wrong type, say), each item is run again alone, so that the fault fails only its own caller and not the
 * others it happened to share a call with. Any other failure (Redis unreachable) fails every caller at once, without
 * a second wait. With `max` 1 each item is its own call, at once.
 */
export function perTurnBatcher<Item, Result>(
  run: (items: readonly Item[]) => Promise<Result[]>,
  max: number,
  itemFault: (error: unknown) => boolean = isRedisReplyError,
): (item: Item) => Promise<Result> {
  if (max <= 1) return (item) => run([item]).then(([result]) => result as Result);
  const runAlone = (item: Item): Promise<Result | Error> =>
    run([item]).then(
      ([result]) => result as Result,
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
  const loader = new DataLoader<Item, Result>(
    async (items) => {
      try {
        return await run(items);
      } catch (error) {
        if (items.length === 1 || !itemFault(error)) throw error;
        return Promise.all(items.map(runAlone));
      }
    },
    { cache: false, maxBatchSize: max },
  );
  return (item) => loader.load(item);
}

/** An error Redis answered with (ioredis's ReplyError: WRONGTYPE, a script error), as opposed to a lost connection. */
export function isRedisReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === "ReplyError";
}

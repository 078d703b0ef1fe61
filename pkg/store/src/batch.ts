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
 * items fails, each item is run again alone, so that one item's fault (a key of the wrong type, say) fails only its
 * own caller and not the others it happened to share a call with. When Redis is down every caller sees the error.
 * With `max` 1 each item is its own call, at once.
 */
export function perTurnBatcher<Item, Result>(
  run: (items: readonly Item[]) => Promise<Result[]>,
  max: number,
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
        if (items.length === 1) throw error;
        return Promise.all(items.map(runAlone));
      }
    },
    { cache: false, maxBatchSize: max },
  );
  return (item) => loader.load(item);
}

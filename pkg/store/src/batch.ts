/**
 * Gathers the writes requested in one turn of the event loop into one call. A consumer handles the deliveries of a
 * fetched batch concurrently, so their Redis scripts can run as one call instead of one each: fewer commands for
 * the client to build and parse, and fewer for Redis to dispatch.
 */
import DataLoader from "dataloader";

/**
 * Returns a function that queues one item and resolves with its own result; the items queued in the same turn go
 * to `run` together, at most `max` per call (DataLoader's batching; nothing is cached, so the same item twice is run
 * twice). `run` returns one result per item, in order. A call that fails rejects every item in it, so each caller
 * handles (and retries) its own item as before.
 */
export function perTurnBatcher<Item, Result>(
  run: (items: readonly Item[]) => Promise<Result[]>,
  max: number,
): (item: Item) => Promise<Result> {
  const loader = new DataLoader<Item, Result>((items) => run(items), { cache: false, maxBatchSize: max });
  return (item) => loader.load(item);
}

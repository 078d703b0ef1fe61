/**
 * How the admin calls that act on many items (ReplayDeadLetters, RequeueTasks) meet an outage: items are handled one
 * after another, and the first that fails because Redis or NATS did not answer (UNAVAILABLE) ends the call there
 * (as does one handled but left to the requeue sweeper to queue, NATS having failed: `outageIn`). That item (unless
 * handled) and every later one get an "unavailable" outcome (the later ones not attempted) and the call answers
 * with every outcome, so the caller sees what was done before the outage: failing the whole call would hide it, and
 * a second call would then refuse those items for having just moved. Stopping, rather than trying the rest, is
 * because the dependency is most likely down for all of them and each attempt would wait for it (a publish retries
 * for up to 30 s).
 */
import { Code, ConnectError } from "@connectrpc/connect";

export interface BatchOptions<I, O> {
  /** The outcome of an item the outage stopped: the item that met it, and every later one (not attempted). */
  unavailable: (item: I, reason: string) => O;
  /** Names an item in the later items' reason ("task <id>"). */
  nameOf: (item: I) => string;
  /** The outage an outcome reveals although its item was handled (a generation started but left to the sweeper to
   *  queue, NATS having failed): the call stops after it too. */
  outageIn?: (outcome: O) => string | undefined;
}

export async function handleUntilUnavailable<I, O>(
  items: readonly I[],
  handle: (item: I) => Promise<O>,
  { unavailable, nameOf, outageIn }: BatchOptions<I, O>,
): Promise<O[]> {
  const outcomes: O[] = [];
  let outage: { reason: string; at: string } | undefined;
  for (const item of items) {
    if (outage) {
      outcomes.push(unavailable(item, `not attempted: ${outage.reason} (at ${outage.at}); call again`));
      continue;
    }
    try {
      const outcome = await handle(item);
      outcomes.push(outcome);
      const reason = outageIn?.(outcome);
      if (reason !== undefined) outage = { reason, at: nameOf(item) };
    } catch (error) {
      if (!(error instanceof ConnectError) || error.code !== Code.Unavailable) throw error;
      outage = { reason: error.rawMessage, at: nameOf(item) };
      outcomes.push(unavailable(item, error.rawMessage));
    }
  }
  return outcomes;
}

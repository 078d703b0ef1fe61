/**
 * SUCCEEDED should mean "the result can be fetched". The worker publishes the result (tasks.results) before
 * SUCCEEDED (events.status), but result-store and notifier consume independently, so the notifier could make
 * SUCCEEDED visible a moment before the result is stored. It therefore holds a SUCCEEDED update until the task's
 * result of that generation is in Redis — normally a few milliseconds — and applies it anyway after `maxWaitMs`,
 * so a slow or stopped result-store delays a watcher's SUCCEEDED but never hides it.
 */

import type { Redis } from "@tm/kit";
import { resultStored, type StatusOutcome } from "@tm/store";

/** Applies a first generation's SUCCEEDED once any result of the task is stored. `apply(true)` asks the status script
 *  to check that itself and answer "held" while there is none (one Redis call, not a check and then a write); it is
 *  asked again with the backoff below until it is not held, and after `maxWaitMs` the update is applied regardless. */
export async function applyOnceResultStored(
  apply: (requireStoredResult: boolean) => Promise<StatusOutcome>,
  maxWaitMs: number,
  signal?: AbortSignal,
): Promise<{ outcome: StatusOutcome; resultSeen: boolean }> {
  let outcome: StatusOutcome = "held";
  const notHeld = async () => {
    outcome = await apply(true);
    return outcome !== "held";
  };
  const resultSeen = await pollWithBackoff(notHeld, maxWaitMs, signal);
  return { outcome: resultSeen ? outcome : await apply(false), resultSeen };
}

/** Waits until the task's result of `generation` (or a later one) is stored; false after `maxWaitMs`. */
export function waitForResult(
  redis: Redis,
  taskId: string,
  generation: number,
  maxWaitMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return pollWithBackoff(() => resultStored(redis, taskId, generation), maxWaitMs, signal);
}

/** Calls `check` until it answers true (at once, then after 2, 4, 8 … at most 50 ms pauses); false once `maxWaitMs`
 *  has passed or `signal` aborted. */
async function pollWithBackoff(check: () => Promise<boolean>, maxWaitMs: number, signal?: AbortSignal) {
  const deadline = Date.now() + maxWaitMs;
  let pause = 2;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, Math.max(1, deadline - Date.now()))));
    pause = Math.min(pause * 2, 50);
  }
}

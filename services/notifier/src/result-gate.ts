/**
 * SUCCEEDED should mean "the result can be fetched". The worker publishes the result (tasks.results) before
 * SUCCEEDED (events.status), but result-store and notifier consume independently, so the notifier could make
 * SUCCEEDED visible a moment before the result is stored. It therefore holds a SUCCEEDED update until the task's
 * result of that generation is in Redis — normally a few milliseconds — and applies it anyway after `maxWaitMs`,
 * so a slow or stopped result-store delays a watcher's SUCCEEDED but never hides it.
 */

import type { Redis } from "@tm/kit";
import { resultStored } from "@tm/store";

export async function waitForResult(
  redis: Redis,
  taskId: string,
  generation: number,
  maxWaitMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + maxWaitMs;
  let pause = 2;
  for (;;) {
    if (await resultStored(redis, taskId, generation)) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, Math.max(1, deadline - Date.now()))));
    pause = Math.min(pause * 2, 50);
  }
}

/**
 * Claiming a submission's idempotency key. The key names the first submission's task for its TTL; with
 * SubmitTaskRequest.idempotency_key_reuse AFTER_FINISHED, a key whose task has finished moves to the new submission's
 * task instead (BullMQ's deduplication until the job completes; Temporal's workflow id reuse after close): at most one
 * unfinished task per key.
 */
import { isTerminal } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { claimIdempotencyKey, type IdempotencyClaim, readStatus, readTask, reclaimIdempotencyKey } from "@tm/store";
import type { RedisCall } from "./redis-call.js";

/** How many times a submission tries to move a key that other submissions keep moving first (each of them made a
 *  task the key then names: a lost round finds that one unfinished and answers it). */
const RECLAIM_ROUNDS = 3;

/** Whether the key's task has finished: its status is terminal, or its records expired after it was saved. A task
 *  without a status and never saved is a submission still under way (or interrupted): not finished. */
async function keyTaskFinished(rt: Runtime, redisCall: RedisCall, claim: IdempotencyClaim): Promise<boolean> {
  const status = await redisCall("reading the task status", () => readStatus(rt.redis, claim.owner));
  if (status) return isTerminal(status.state);
  if (!claim.saved) return false;
  return (await redisCall("reading the task", () => readTask(rt.redis, claim.owner))) === undefined;
}

/** Claims `key` for `taskId` (the new submission's); with `reuseAfterFinished`, moves it from a finished task. */
export async function claimSubmissionKey(
  rt: Runtime,
  redisCall: RedisCall,
  {
    key,
    taskId,
    ttlSeconds,
    reuseAfterFinished,
  }: { key: string; taskId: string; ttlSeconds: number; reuseAfterFinished: boolean },
): Promise<IdempotencyClaim> {
  const claim = () =>
    redisCall("claiming the idempotency key", () => claimIdempotencyKey(rt.redis, key, taskId, ttlSeconds));
  let held = await claim();
  for (let round = 0; reuseAfterFinished && !held.claimed && round < RECLAIM_ROUNDS; round++) {
    if (!(await keyTaskFinished(rt, redisCall, held))) break;
    const previous = held;
    const moved = await redisCall("claiming the idempotency key", () =>
      reclaimIdempotencyKey(rt.redis, key, previous, taskId, ttlSeconds),
    );
    if (moved) {
      rt.log.debug({ key, previous: previous.owner, taskId }, "an idempotency key moved from its finished task");
      return { owner: taskId, claimed: true, saved: false };
    }
    held = await claim();
  }
  return held;
}

/**
 * Starting a new generation of a stalled task (the gateway's RequeueTasks): an unfinished task whose message is gone
 * (discarded by a full stream, say) goes through the pipeline again under its own id.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { luaScript } from "./script.js";

// KEYS: task:<id>, task_status:<id>, task_cancel:<id>, tasks_unqueued, tasks_delayed; ARGV: the requeue's time (ms), the task id,
// the generation and the status version the decision was made on, "1" to clear the cancel marker instead of
// refusing for it, and the limit of automatic requeues ("0": an operator's requeue, not counted). Returns the new
// generation, -1 when the task record has expired, -2 when its generation or status changed meanwhile (the task
// moved, or another requeue or a replay came first) or a generation of it is still being queued (it is in
// tasks_unqueued: the status of a generation just claimed is written after the claim, so without this a second
// requeue reading in between would pass both checks) or still waits for its release (in tasks_delayed, even
// overdue: the gateway's releaser queues it), -3 when a cancellation has been requested, -4 when an
// automatic requeue finds the task requeued automatically `limit` times already.
const CLAIM_REQUEUE = luaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') ~= tonumber(ARGV[3]) then return -2 end
if tonumber(redis.call('HGET', KEYS[2], 'version') or '0') ~= tonumber(ARGV[4]) then return -2 end
if redis.call('ZSCORE', KEYS[4], ARGV[2]) or redis.call('ZSCORE', KEYS[5], ARGV[2]) then return -2 end
if ARGV[5] == '1' then redis.call('DEL', KEYS[3]) elseif redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
local limit = tonumber(ARGV[6])
if limit > 0 then
  if tonumber(redis.call('HGET', KEYS[1], 'autoRequeues') or '0') >= limit then return -4 end
  redis.call('HINCRBY', KEYS[1], 'autoRequeues', 1)
end
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
return generation
`);

export type RequeueClaim =
  | { claimed: true; generation: number }
  | { claimed: false; reason: "expired" | "moved_on" | "cancelling" | "auto_limit" };

const REFUSALS: Record<number, Exclude<RequeueClaim, { claimed: true }>["reason"]> = {
  [-1]: "expired",
  [-2]: "moved_on",
  [-3]: "cancelling",
  [-4]: "auto_limit",
};

export interface RequeueClaimOptions {
  /** Clear the cancel marker instead of refusing for it (a task the requeue sweeper failed "not queued"). */
  clearCancelMarker?: boolean;
  /** An automatic requeue (the gateway's stalled-task round): refused once the task has had this many, counted in
   *  the task's `autoRequeues`. Unset: an operator's requeue, neither limited nor counted. */
  autoLimit?: number;
}

/**
 * Starts the next generation of a task whose status was `expectedVersion` and whose record's generation was
 * `expectedGeneration` when the requeue was decided: the generation is incremented and the task entered in
 * tasks_unqueued (scored by `atMs`) in one script, only if neither has changed since (so of two operators requeuing
 * one task at once only one does, and a task that moved after it was judged stalled is left alone) and no cancel
 * was requested. As with a replay's claim, what follows (PENDING of the new generation, the tasks.ingest message) is
 * the requeue sweeper's to finish should the gateway die or NATS fail in between. `clearCancelMarker` is for a task
 * the requeue sweeper failed "not queued": its marker is the sweeper's (against a late message of the old
 * generation, which workers now skip as superseded), not a user's cancel, and goes with the new generation.
 */
export async function claimRequeue(
  redis: Redis,
  taskId: string,
  expectedGeneration: number,
  expectedVersion: number,
  atMs: number,
  { clearCancelMarker = false, autoLimit }: RequeueClaimOptions = {},
): Promise<RequeueClaim> {
  if (autoLimit !== undefined && !(Number.isInteger(autoLimit) && autoLimit > 0)) {
    throw new RangeError(`autoLimit must be a positive integer (got ${autoLimit})`);
  }
  const reply = Number(
    await CLAIM_REQUEUE.run(
      redis,
      [Keys.task(taskId), Keys.status(taskId), Keys.cancel(taskId), Keys.unqueued, Keys.delayed],
      [atMs, taskId, expectedGeneration, expectedVersion, clearCancelMarker ? "1" : "0", autoLimit ?? 0],
    ),
  );
  if (reply > 0) return { claimed: true, generation: reply };
  return { claimed: false, reason: REFUSALS[reply] ?? "moved_on" };
}

/**
 * PromoteTask: a delayed task runs now instead of at its time (BullMQ's job.promote()). Its tasks_delayed entry is
 * made due at once, and its record's runAt with it, in one script (promoteDelayed); the delayed-task releaser then
 * queues it as it queues every due task (the gateway runs a round at once, or any replica's next round does), so
 * promotion adds no second path into the pipeline (and nothing to get wrong about dedup ids, traces or the requeue
 * sweeper). A task that is
 * not waiting (never delayed, released already, finished, cancelled) is FAILED_PRECONDITION, saying which.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { isTerminal, publishAudit } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { promoteDelayed, readStatus, type TaskRecord } from "@tm/store";
import type { RedisCall } from "./redis-call.js";

export interface Promotion {
  previousRunAtMs: number;
  runAtMs: number;
}

export async function promoteTask(
  rt: Runtime,
  redisCall: RedisCall,
  task: TaskRecord,
  /** Who promoted it, for the audit event (the authenticated caller). */
  promotedBy: string | undefined,
): Promise<Promotion> {
  const { taskId } = task;
  const notWaiting = (why: string) =>
    new ConnectError(`task ${taskId} is not waiting for its time: ${why}`, Code.FailedPrecondition);
  if (task.runAt === undefined) throw notWaiting("it was not submitted with run_at or delay");
  // A cancelled task's entry can outlive its cancellation for a moment (it is taken out after the CANCELLED write).
  const status = await redisCall("reading the task status", () => readStatus(rt.redis, taskId));
  if (status && isTerminal(status.state)) throw notWaiting(`it is ${status.state}`);
  const nowMs = Date.now();
  const previousRunAtMs = await redisCall("promoting the task", () => promoteDelayed(rt.redis, taskId, nowMs));
  if (previousRunAtMs === undefined) throw notWaiting(`it was released already (it is ${status?.state ?? "PENDING"})`);
  await auditMovedTime(rt, taskId, "promoted", previousRunAtMs, nowMs, {
    ...(promotedBy === undefined ? {} : { promotedBy }),
  });
  rt.log.info({ taskId, previousRunAt: new Date(previousRunAtMs).toISOString() }, "delayed task promoted: due now");
  return { previousRunAtMs, runAtMs: nowMs };
}

/** Audits a delayed task's time moved (PromoteTask's "promoted", a debounce's "replaced"): from when to when, and who
 *  asked. A lost event is logged, not returned: the move stands. */
export async function auditMovedTime(
  rt: Runtime,
  taskId: string,
  action: "promoted" | "replaced",
  previousRunAtMs: number,
  runAtMs: number,
  by: Record<string, string>,
): Promise<void> {
  await publishAudit(rt.publisher, {
    taskId,
    service: rt.name,
    action,
    detail: { previousRunAt: new Date(previousRunAtMs).toISOString(), runAt: new Date(runAtMs).toISOString(), ...by },
    // One event per move: a second one to the same time (a debounce submitted twice alike) is a move too.
    discriminator: `${runAtMs}:${crypto.randomUUID()}`,
  }).catch((error: unknown) =>
    rt.log.warn({ err: error, taskId, action }, `could not publish the ${action} audit event`),
  );
}

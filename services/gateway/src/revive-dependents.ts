/**
 * When a dead letter is replayed, the tasks its failure had cancelled come back (Airflow's "clear downstream"): each
 * task CANCELLED because the replayed task ended FAILED or CANCELLED (its cancel reason "dependency <id> ended …",
 * task-dependencies.ts), and in turn each cancelled because one of those was, is revived as a new generation that waits
 * for its dependencies again (@tm/store reviveDependent, one script each), then runs once they SUCCEEDED, as at its
 * submission. A task cancelled for another reason (an operator's cancel, an expiry) stays cancelled, and so does one
 * with another dependency that FAILED (it could never run).
 *
 * Done after the replay has committed, dependents found through task_dependent_ids. Should Redis or NATS fail
 * midway, the tasks revived so far stay revived and the rest stay cancelled (submit those again); the error goes to the
 * log, not to the replay's outcome, which stands.
 */
import { publishAudit, publishStatus, StatusEventSchema, statusEvent } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { applyStatus, dependentsOf, readTask, reviveDependent } from "@tm/store";

/** The most tasks one replay revives (a wider graph: the rest stay cancelled, the log says so). */
export const REVIVE_LIMIT = 1_000;

/** Revives what the failure of `replayed` cancelled; returns the revived tasks' ids, in the order revived. */
export async function reviveDependents(rt: Runtime, replayed: string, limit = REVIVE_LIMIT): Promise<string[]> {
  const retentionSeconds = rt.config.TASK_RETENTION_SECONDS;
  const revived: string[] = [];
  const causes = [replayed];
  for (let cause = causes.shift(); cause !== undefined && revived.length < limit; cause = causes.shift()) {
    const { ids } = await dependentsOf(rt.redis, cause, limit);
    for (const taskId of ids) {
      if (revived.length >= limit) {
        rt.log.warn(
          { taskId: replayed, limit },
          "more dependents to revive than one replay revives: the rest stay cancelled",
        );
        break;
      }
      const task = await readTask(rt.redis, taskId);
      if (!task?.dependsOn?.includes(cause)) continue;
      const revival = await reviveDependent(rt.redis, task, cause, retentionSeconds);
      if (!revival.revived) continue;
      const { generation, waitingFor } = revival;
      // The new generation's PENDING; while it waits its stall clock starts when its records expire, as at its
      // submission (the releaser writes it itself should it release the task first).
      const update = { taskId, state: "PENDING" as const, source: rt.name, generation };
      const stallClockFromMs = waitingFor > 0 ? Date.parse(task.createdAt) + retentionSeconds * 1000 : undefined;
      const event = StatusEventSchema.parse(statusEvent(update));
      if (await applyStatus(rt.redis, event, retentionSeconds, { stallClockFromMs })) {
        await publishStatus(rt.publisher, update).catch((error: unknown) =>
          rt.log.warn({ err: error, taskId }, "could not publish a revived task's PENDING event"),
        );
      }
      await publishAudit(rt.publisher, {
        taskId,
        service: rt.name,
        action: "revived",
        detail: { generation, dependency: cause, waitingFor },
        discriminator: generation,
      }).catch((error: unknown) => rt.log.warn({ err: error, taskId }, "could not publish the revived audit event"));
      revived.push(taskId);
      causes.push(taskId);
    }
  }
  if (revived.length > 0)
    rt.log.info({ taskId: replayed, revived: revived.length }, "revived the tasks its failure cancelled");
  return revived;
}

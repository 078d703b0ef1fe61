/**
 * Queues a task's new generation once Redis has started it (claimReplay, claimRequeue): PENDING of that generation
 * (its version outranks every status of the older ones), then the task on tasks.ingest under msgId
 * `<id>:ingest:<generation>` (not deduplicated against an older generation's message), then out of tasks_unqueued.
 * Shared by dead-letter replay and the requeue of stalled tasks.
 *
 * The caller's audit event ("replayed", "requeued_stalled") goes out just before tasks.ingest, on the same
 * connection: nats-server reads one client's messages in order, so it is in EVENTS before the new generation is in
 * TASKS, and the task's history shows it before ingest's "ingested" (sent after the PubAck, ingest could audit first).
 * It is true even if the queueing then fails: the generation has started, and the sweeper queues it.
 * With REDIS_WAIT_REPLICAS, nothing goes out before the replicas hold the generation (claim and PENDING).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type AuditRecord, publishAudit, Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { markQueued, type TaskRecord } from "@tm/store";
import { dependency } from "./dependencies.js";
import { ingestMessageOf, ingestMsgId } from "./ingest-message-id.js";
import { recordStatus } from "./record-status.js";

/** Marks the error queueGeneration throws once the generation started (see isGenerationNotQueued). */
const NOT_QUEUED = Symbol("generation not queued");

/**
 * Whether queueGeneration failed after the generation was started (NATS or Redis down): the requeue sweeper queues
 * it once they answer, since the claim entered the task in tasks_unqueued. The error is UNAVAILABLE, so a caller that
 * lets it through reports an outage; the admin calls turn it into the task's outcome ("queue pending"). (A tagged
 * ConnectError rather than a subclass: ConnectError's instanceof only recognises its own prototype and name.)
 */
export function isGenerationNotQueued(error: unknown): error is ConnectError {
  return error instanceof ConnectError && NOT_QUEUED in error;
}

/**
 * The generation is committed when this is called: should a step fail, the error says so (isGenerationNotQueued), naming `what`
 * (e.g. "the replay of task X"); `afterwards` ends its message with what the caller should know. A lost audit event
 * is logged, not thrown: failing the call for want of a history line would invite a second replay or requeue (another
 * generation, the work run once more).
 */
export async function queueGeneration(
  rt: Runtime,
  task: TaskRecord,
  generation: number,
  audit: AuditRecord,
  what: string,
  afterwards = "",
): Promise<void> {
  const { taskId } = task;
  let audited: Promise<void> | undefined;
  try {
    await recordStatus(rt, { taskId, state: "PENDING", source: rt.name, generation });
    // With REDIS_WAIT_REPLICAS, before anything goes out: a generation queued (or audited) whose claim a failover then
    // lost would run under a record that no longer knows it. Not held in time: not queued, and the sweeper queues it.
    await rt.confirmRedisWrites();
    audited = publishAudit(rt.publisher, audit).catch((error: unknown) =>
      rt.log.warn({ err: error, taskId }, `could not publish the ${audit.action} audit event`),
    );
    await dependency("NATS", "queueing the task", () =>
      rt.publisher.publish(Subjects.ingest, ingestMessageOf(task, generation), {
        msgId: ingestMsgId(taskId, generation),
      }),
    );
  } catch (error) {
    await audited;
    const cause = error instanceof ConnectError ? error.rawMessage : String((error as Error)?.message ?? error);
    throw Object.assign(
      new ConnectError(
        `${what} started generation ${generation} but could not queue it (${cause}); the requeue sweeper queues it ` +
          `once NATS and Redis answer again${afterwards}`,
        Code.Unavailable,
        undefined,
        undefined,
        error,
      ),
      { [NOT_QUEUED]: generation },
    );
  }
  await audited;
  // Not awaited: should it fail, the sweeper finds the generation past PENDING (or republishes it, deduplicated).
  markQueued(rt.redis, [taskId]).catch((error: unknown) =>
    rt.log.debug({ err: error, taskId }, "could not take the task's new generation out of tasks_unqueued"),
  );
}

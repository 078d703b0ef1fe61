/**
 * Queues a task's new generation once Redis has started it (claimReplay, claimRequeue): PENDING of that generation
 * (its version outranks every status of the older ones), then the task on tasks.ingest under msgId
 * `<id>:ingest:<generation>` (not deduplicated against an older generation's message), then out of tasks_unqueued.
 * Shared by dead-letter replay and the requeue of stalled tasks.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { markQueued, type TaskRecord } from "@tm/store";
import { dependency } from "./dependencies.js";
import { ingestMessageOf, ingestMsgId } from "./ingest-message-id.js";
import { recordStatus } from "./record-status.js";

/**
 * The generation is committed when this is called: should a step fail (NATS or Redis down), the error says so
 * (UNAVAILABLE, naming `what`, e.g. "the replay of task X") and the requeue sweeper finishes the job, since the
 * claim entered the task in tasks_unqueued; `afterwards` ends that message with what the caller should know.
 */
export async function queueGeneration(
  rt: Runtime,
  task: TaskRecord,
  generation: number,
  what: string,
  afterwards = "",
): Promise<void> {
  const { taskId } = task;
  try {
    await recordStatus(rt, { taskId, state: "PENDING", source: rt.name, generation });
    await dependency("NATS", "queueing the task", () =>
      rt.publisher.publish(Subjects.ingest, ingestMessageOf(task, generation), {
        msgId: ingestMsgId(taskId, generation),
      }),
    );
  } catch (error) {
    const cause = error instanceof ConnectError ? error.rawMessage : String((error as Error)?.message ?? error);
    throw new ConnectError(
      `${what} started generation ${generation} but could not queue it (${cause}); the requeue sweeper queues it ` +
        `once NATS and Redis answer again${afterwards}`,
      Code.Unavailable,
      undefined,
      undefined,
      error,
    );
  }
  // Not awaited: should it fail, the sweeper finds the generation past PENDING (or republishes it, deduplicated).
  markQueued(rt.redis, [taskId]).catch((error: unknown) =>
    rt.log.debug({ err: error, taskId }, "could not take the task's new generation out of tasks_unqueued"),
  );
}

/**
 * Dead-letter replay: a dead-lettered task goes through the pipeline again as a new generation.
 *
 *   1. checks: the letter is a task message (tasks.ingest / tasks.schedule / tasks.worker.*[.<pool>]) that was not invalid,
 *      its task record still exists, the task has not succeeded or been cancelled, and no newer generation is in
 *      flight;
 *   2. claims the letter and starts the new generation in one Redis script (claimReplay): the letter is removed
 *      from dead_letter (LREM of its exact text: of two concurrent replays of the same letter only one proceeds,
 *      and a replayed letter is no longer listed; its audit event "replayed" keeps the record), task:<id>
 *      generation + 1 (only if still the generation checked in step 1: of two letters of one task replayed at once,
 *      only one starts a generation), the cancel marker cleared, the task entered in tasks_unqueued;
 *   3. applies and publishes PENDING with the new generation (its version outranks the old FAILED), audits
 *      "replayed", publishes the task on tasks.ingest under msgId `<id>:ingest:<generation>` (not deduplicated
 *      against the original), and takes it out of tasks_unqueued once acknowledged.
 * Once step 2 has run the replay is committed: if step 3 fails (NATS or Redis down) or the gateway dies during it,
 * the requeue sweeper queues the new generation under the same message id (or fails it, past the stream's
 * duplicate window), as for an interrupted submission, and the outcome says so (replayed, `queuePending`). Putting the
 * letter back instead would leave a task whose PENDING of the new generation was written but never queued, and a
 * second replay of the letter would be refused for that very PENDING.
 */
import { isTaskSubject, isTerminal, Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { claimReplay, type DeadLetterLine, readStatus, readTask } from "@tm/store";
import { dependency } from "./dependencies.js";
import { isGenerationNotQueued, queueGeneration } from "./queue-generation.js";
import { reviveDependents } from "./revive-dependents.js";

/** The task stages' subjects, the worker pools' included; tasks.results' letters are results, not tasks. */
const isReplayable = (subject: string) => isTaskSubject(subject) && subject !== Subjects.results;

export type ReplayOutcome =
  /** `queuePending`: the generation started but NATS or Redis failed while queueing it (why); the sweeper queues it.
   *  `revivedDependents`: the tasks its failure had cancelled, waiting for it again (revive-dependents.ts). */
  | {
      id: string;
      result: "replayed";
      taskId: string;
      generation: number;
      queuePending?: string;
      revivedDependents: string[];
    }
  | { id: string; result: "not_found"; taskId?: string; reason: string }
  | { id: string; result: "failed_precondition"; taskId?: string; reason: string }
  /** Redis or NATS did not answer before the letter was claimed (given by the admin call, batch-outcomes.ts). */
  | { id: string; result: "unavailable"; taskId?: string; reason: string };

/** `caller` is the authenticated operator (undefined with GATEWAY_AUTH_MODE=none); the audit event names them. */
export async function replayDeadLetter(
  rt: Runtime,
  id: string,
  line: DeadLetterLine,
  caller?: string,
): Promise<ReplayOutcome> {
  const letter = line.letter;
  if (!letter) return { id, result: "failed_precondition", reason: "the stored entry is not JSON" };
  const message = (letter.message ?? {}) as { taskId?: unknown; generation?: unknown };
  const taskId = letter.taskId ?? (typeof message.taskId === "string" ? message.taskId : undefined);
  const refuse = (reason: string): ReplayOutcome => ({
    id,
    result: "failed_precondition",
    ...(taskId ? { taskId } : {}),
    reason,
  });

  if (!isReplayable(letter.subject) || !taskId) {
    return refuse(`not a task message (subject ${letter.subject}); only task stages can be replayed`);
  }
  if (letter.reason === "invalid") {
    return refuse(`its body failed validation (${letter.error.slice(0, 200)}); replaying it would fail again`);
  }
  const [task, status] = await dependency("Redis", "reading the task", () =>
    Promise.all([readTask(rt.redis, taskId), readStatus(rt.redis, taskId)]),
  );
  if (!task) return refuse(`task ${taskId} has expired (its record is gone)`);
  if (status?.state === "SUCCEEDED" || status?.state === "CANCELLED") {
    return refuse(`task ${taskId} is ${status.state}`);
  }
  const letterGeneration = typeof message.generation === "number" ? message.generation : 0;
  if (status && !isTerminal(status.state) && status.generation > letterGeneration) {
    return refuse(`task ${taskId} is already running again as generation ${status.generation}`);
  }

  const claim = await dependency("Redis", "claiming the dead letter", () =>
    claimReplay(rt.redis, line.raw, taskId, task.generation, Date.now()),
  );
  if (!claim.claimed) {
    if (claim.reason === "gone") return { id, result: "not_found", taskId, reason: "already replayed or removed" };
    return refuse(
      claim.reason === "expired"
        ? `task ${taskId} has expired (its record is gone)`
        : `task ${taskId} was replayed meanwhile (from another of its dead letters)`,
    );
  }
  const { generation } = claim;
  const audit = {
    taskId,
    service: rt.name,
    action: "replayed",
    detail: {
      deadLetterId: id,
      generation,
      subject: letter.subject,
      reason: letter.reason,
      ...(caller === undefined ? {} : { replayedBy: caller }),
    },
    discriminator: generation,
  };
  let queuePending: string | undefined;
  try {
    await queueGeneration(
      rt,
      task,
      generation,
      audit,
      `the replay of task ${taskId}`,
      " (the letter is no longer listed)",
    );
  } catch (error) {
    // Committed: the sweeper queues it (and audits "requeued").
    if (!isGenerationNotQueued(error)) throw error;
    queuePending = error.rawMessage;
  }
  // The replay stands whatever happens here: a failure leaves the rest of its dependents cancelled (logged).
  const revivedDependents = await reviveDependents(rt, taskId).catch((error: unknown) => {
    rt.log.warn({ err: error, taskId }, "could not revive the tasks the replayed task's failure cancelled");
    return [];
  });
  return {
    id,
    result: "replayed",
    taskId,
    generation,
    ...(queuePending === undefined ? {} : { queuePending }),
    revivedDependents,
  };
}

/**
 * Discarding a dead letter (AdminService.DiscardDeadLetters, `taskctl dlq discard`): the letter is removed from
 * dead_letter by its exact text (LREM, as a replay's claim removes it), so of two operators discarding it, or one
 * replaying and one discarding, only one succeeds. Nothing else changes: the task stays FAILED (a letter whose task
 * was submitted again under a new id, or whose cause cannot be fixed, is only taken off the list of what still needs
 * a decision). Its task's history records the audit event "dead_letter_discarded".
 */
import { publishAudit } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { type DeadLetterLine, discardDeadLetter } from "@tm/store";
import type { RedisCall } from "./redis-call.js";

export type DiscardOutcome =
  | { id: string; result: "discarded"; taskId?: string }
  | { id: string; result: "not_found"; taskId?: string; reason: string }
  /** Redis did not answer at this letter or before it (given by the admin call, batch-outcomes.ts). */
  | { id: string; result: "unavailable"; taskId?: string; reason: string };

/** `caller` is the authenticated operator (undefined with GATEWAY_AUTH_MODE=none); the audit event names them. */
export async function discardLetter(
  rt: Runtime,
  redis: RedisCall,
  id: string,
  line: DeadLetterLine,
  caller?: string,
): Promise<DiscardOutcome> {
  const letter = line.letter;
  const taskId = letter?.taskId;
  const withTask = taskId ? { taskId } : {};
  const removed = await redis("discarding the dead letter", () => discardDeadLetter(rt.redis, line.raw));
  if (!removed) return { id, result: "not_found", ...withTask, reason: "already replayed or discarded" };
  // Removed. The audit event is not awaited: a discard needs only Redis, and a publish waits out NATS's absence for
  // up to its retry deadline (30 s), which a call of 500 letters would pay for each; one lost then is logged.
  void publishAudit(rt.publisher, {
    ...withTask,
    service: rt.name,
    action: "dead_letter_discarded",
    detail: {
      deadLetterId: id,
      ...(letter ? { subject: letter.subject, reason: letter.reason } : {}),
      ...(caller === undefined ? {} : { discardedBy: caller }),
    },
    discriminator: id,
  }).catch((error: unknown) =>
    rt.log.warn({ err: error, deadLetterId: id }, "could not publish the dead_letter_discarded audit event"),
  );
  rt.log.info({ deadLetterId: id, taskId }, "dead letter discarded");
  return { id, result: "discarded", ...withTask };
}

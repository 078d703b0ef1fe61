/**
 * deadletter: events.deadletter → Redis list dead_letter (newest first, at most 100,000), each letter with its
 * task's audit history attached so an operator sees what happened; stored once per letter id. Also turns the
 * server's MAX_DELIVERIES advisories (a stage crashed on its last delivery) into dead letters: see advisories.ts.
 */
import { publishAudit, Subjects } from "@tm/flow";
import { defineService, nonNegativeInt, positiveInt } from "@tm/kit";
import { appendDeadLetter, readHistory } from "@tm/store";
import { listenForMaxDeliveries } from "./advisories.js";
import { historyForLetter } from "./history.js";
import { deadLetterLabels } from "./labels.js";

export const deadletter = defineService({
  name: "deadletter",
  opsPort: 8088,
  config: {
    DEADLETTER_CONCURRENCY: positiveInt.default(16),
    /** How long a letter that ends a task waits for the task's final audit event to reach its history (history.ts). */
    DEADLETTER_HISTORY_WAIT_MS: nonNegativeInt.default(2_000),
  },
  async start(rt) {
    const stored = rt.meter.createCounter("tm_dead_letters_total", {
      description:
        "Dead letters consumed, by reason, task type and priority (other: not a task), and outcome: stored, or duplicate (already stored)",
    });
    await rt.consume(
      Subjects.deadletter,
      async (letter) => {
        const { taskId } = letter;
        const history = taskId
          ? await historyForLetter(letter, () => readHistory(rt.redis, taskId), rt.config.DEADLETTER_HISTORY_WAIT_MS)
          : undefined;
        const appended = await appendDeadLetter(rt.redis, { ...letter, ...(history ? { history } : {}) });
        if (appended && letter.taskId) {
          await publishAudit(rt.publisher, {
            taskId: letter.taskId,
            service: rt.name,
            action: "dead_letter_stored",
            detail: { id: letter.id, reason: letter.reason, subject: letter.subject },
            discriminator: letter.id,
          });
        }
        stored.add(1, {
          ...deadLetterLabels(letter, rt.config.TASK_TYPES),
          outcome: appended ? "stored" : "duplicate",
        });
      },
      { concurrency: rt.config.DEADLETTER_CONCURRENCY },
    );
    const advisories = await listenForMaxDeliveries(rt);
    rt.onStop("advisory listener", () => advisories.stop());
  },
});

/**
 * scheduler: tasks.schedule → tasks.worker.{high,medium,low}, or a worker pool's tasks.worker.<priority>.<pool> for a
 * type routed to one (TASK_ROUTES); status SCHEDULED.
 * A task cancelled while it waited is acknowledged and dropped here instead of being queued for a worker, and so is
 * the message of an older generation (a task requeued or replayed since: the newer generation's message does the work),
 * and a task past its expires_after (ended CANCELLED "expired" here, not queued).
 */
import {
  DEFAULT_POOL_LABEL,
  expiredAtMs,
  publishAudit,
  publishExpired,
  publishSkippedSuperseded,
  publishStatus,
  Subjects,
} from "@tm/flow";
import { defineService, positiveInt } from "@tm/kit";
import { whyNotRun } from "@tm/store";
import { routeFor } from "./route.js";

export const scheduler = defineService({
  name: "scheduler",
  opsPort: 8084,
  config: { SCHEDULER_CONCURRENCY: positiveInt.default(64) },
  async start(rt) {
    const scheduled = rt.meter.createCounter("tm_tasks_scheduled_total", {
      description: "Tasks routed to a worker queue",
    });
    await rt.consume(
      Subjects.schedule,
      async (task) => {
        // The cancel marker and the task's generation, in one round trip.
        const notRun = await whyNotRun(rt.redis, task.taskId, task.generation);
        if (notRun === "cancelled") {
          await publishAudit(rt.publisher, { taskId: task.taskId, service: rt.name, action: "skipped_cancelled" });
          return;
        }
        if (notRun === "superseded") {
          await publishSkippedSuperseded(rt.publisher, rt.name, task);
          return;
        }
        const expiredAt = expiredAtMs(task);
        if (expiredAt !== undefined) {
          await publishExpired(rt.publisher, rt.name, task, expiredAt);
          rt.log.info({ taskId: task.taskId, expiresAt: expiredAt }, "task expired before it started: cancelled");
          return;
        }
        const { subject, msgId } = routeFor(task, rt.config.TASK_ROUTES);
        // All three go out in one write and are awaited together; a failure of any fails the delivery, and its
        // redelivery republishes them under the same message ids. SCHEDULED is written first: nats-server stores a
        // client's messages to a single-replica stream in the order it reads them, so a worker's RUNNING can only
        // follow it on events.status. (Across a cluster's raft groups that is not guaranteed; an overtaken
        // SCHEDULED is then dropped by the notifier's version check: skipped, never a step backwards.)
        await Promise.all([
          publishStatus(rt.publisher, {
            taskId: task.taskId,
            state: "SCHEDULED",
            source: rt.name,
            generation: task.generation,
          }),
          rt.publisher.publish(subject, task, { msgId }),
          publishAudit(rt.publisher, {
            taskId: task.taskId,
            service: rt.name,
            action: "scheduled",
            detail: { subject },
            discriminator: task.generation,
          }),
        ]);
        scheduled.add(1, {
          type: task.type,
          priority: task.priority,
          pool: rt.config.TASK_ROUTES.poolOf(task.type) ?? DEFAULT_POOL_LABEL,
        });
      },
      // The cancel and generation check only reads.
      { concurrency: rt.config.SCHEDULER_CONCURRENCY, writesRedis: false },
    );
  },
});

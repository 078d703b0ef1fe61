/**
 * The delayed-task releaser: publishes each delayed task's tasks.ingest message when it is due. Every gateway replica
 * runs one; a task is released by exactly one of them, because taking it out of tasks_delayed is one Redis script
 * (`releaseDue`) that moves it to tasks_unqueued. From there on it is a submission awaiting its PubAck:
 *
 *   - still PENDING (its current generation): audited "released" and published under the id SubmitTask would have
 *     used (`<id>:ingest:<generation>`), in the trace it was submitted in;
 *   - cancelled meanwhile, expired, or moved on: only taken out of tasks_unqueued;
 *   - the publish failed (NATS went away): put back in tasks_delayed, due at once, for the next round;
 *   - the gateway died in between: the requeue sweeper finds the tasks_unqueued entry and queues it exactly once, as
 *     for any interrupted submission.
 * A round starts only when JetStream answers, so an outage delays due tasks (GetQueueStats counts them as overdue)
 * rather than failing their publishes one after another.
 *
 * Tasks that waited for dependencies (SubmitTaskRequest.depends_on) come through here too: the status script makes
 * one due when its last dependency SUCCEEDED. Each round first cancels those whose dependency failed
 * (task-dependencies.ts).
 */
import { extractTrace, publishAudit, Subjects } from "@tm/flow";
import { LogThrottle, type Runtime } from "@tm/kit";
import {
  anyDelayedDue,
  type DelayedEntry,
  Keys,
  markQueued,
  readStatus,
  readTask,
  releaseDue,
  returnToDelayed,
} from "@tm/store";
import { ingestMsgId, releasedMessageOf } from "./ingest-message-id.js";
import { recordStatus } from "./record-status.js";
import { redisCaller } from "./redis-call.js";
import { everyInterval } from "./rounds.js";
import { cancelFailedDependents } from "./task-dependencies.js";

/** Tasks taken per script call; a round repeats while it finds full batches. */
const BATCH = 200;
/** How long JetStream may take to answer before a round is skipped. */
const JETSTREAM_CHECK_MS = 2_000;

export type ReleaseAction = "released" | "dropped" | "returned";

export interface DelayedReleaserOptions {
  /** How often due tasks are looked for (GATEWAY_DELAYED_POLL_MS): a task is released up to this late. */
  pollMs: number;
  /** GATEWAY_REDIS_TIMEOUT_MS, for the cancels of tasks whose dependency failed. */
  redisTimeoutMs?: number;
  /** Why the gateway sheds load now (backlog-shedding.ts): due tasks then wait in tasks_delayed, as new submissions
   *  are refused, rather than add messages to a stream whose limits would discard waiting ones. */
  shedding?: () => string | undefined;
}

const DEFAULT_REDIS_TIMEOUT_MS = 3_000;

export interface DelayedReleaser {
  /** Runs one round (what the timer does every `pollMs`). Resolves with what it did. */
  release(): Promise<Record<ReleaseAction, number>>;
  stop(): Promise<void>;
}

export function startDelayedReleaser(rt: Runtime, options: DelayedReleaserOptions): DelayedReleaser {
  const released = rt.meter.createCounter("tm_tasks_delayed_released_total", {
    description:
      "Delayed tasks taken from tasks_delayed when due: outcome released (queued), dropped (cancelled or expired " +
      "meanwhile) or returned (the publish failed: released again next round)",
  });
  const lateness = rt.meter.createHistogram("tm_tasks_delayed_release_lateness_ms", {
    description:
      "How long after its time a delayed task was queued (GATEWAY_DELAYED_POLL_MS at most, unless an outage)",
    unit: "ms",
    advice: { explicitBucketBoundaries: [50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000] },
  });
  for (const outcome of ["released", "dropped", "returned"]) released.add(0, { outcome });
  const cancelled = rt.meter.createCounter("tm_tasks_cancelled_total", { description: "Tasks cancelled" });
  const redisCall = redisCaller(rt.redis, options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS);
  const cancelWarnings = new LogThrottle(60_000);

  async function releaseOne(entry: DelayedEntry, nowMs: number): Promise<ReleaseAction> {
    const { taskId } = entry;
    const [task, status] = await Promise.all([readTask(rt.redis, taskId), readStatus(rt.redis, taskId)]);
    // Only the submission (generation 0) is delayed, and a task revived to wait for its dependencies again (its
    // revivedGeneration): another generation was queued by a requeue meanwhile. The status of an older generation is
    // one a revival has not replaced yet (its PENDING is written after the revival's script): written below.
    const waitingGeneration = task && (task.generation === 0 || task.revivedGeneration === task.generation);
    const current = status && task && status.generation >= task.generation ? status : undefined;
    if (task === undefined || !waitingGeneration || (current !== undefined && current.state !== "PENDING")) {
      await markQueued(rt.redis, [taskId]);
      return "dropped";
    }
    const { generation } = task;
    const lateMs = Math.max(0, Date.now() - entry.dueMs);
    // The "released" audit event goes out before tasks.ingest, on the same connection: nats-server stores one client's
    // messages in the order it reads them, so the task's history shows "released" before ingest's "ingested" (sent
    // after the PubAck, ingest could audit first: seen once in CI). If the queueing then fails the task is released
    // again next round (rounds start only when JetStream answers), and that round's identical event (same message id)
    // is dropped within the stream's duplicate window (2 min).
    const audited = publishAudit(rt.publisher, {
      taskId,
      service: rt.name,
      action: "released",
      detail: {
        runAt: task.runAt ?? new Date(entry.dueMs).toISOString(),
        lateMs,
        generation,
        ...(task.dependsOn ? { dependsOn: task.dependsOn } : {}),
      },
      discriminator: generation,
    }).catch((error: unknown) => rt.log.warn({ err: error, taskId }, "could not publish the released audit event"));
    try {
      // The submission's PENDING write may have failed after its record was saved (the client was told so, and a
      // retry with its idempotency key leaves the task to this releaser): write it now.
      if (!current) {
        await recordStatus(rt, { taskId, state: "PENDING", source: rt.name, generation });
        await rt.confirmRedisWrites(); // with REDIS_WAIT_REPLICAS, held by the replicas before the task is queued
      }
      // In the submission's trace: one trace follows the task from SubmitTask, across the wait, to its result.
      // A task that waited for dependencies was due when the last one SUCCEEDED: its expiry and end-to-end latency
      // count from then, as a delayed task's from its time.
      const message = releasedMessageOf(task, generation, entry.dueMs);
      await rt.publisher.publish(Subjects.ingest, message, {
        msgId: ingestMsgId(taskId, generation),
        parent: extractTrace({ traceparent: task.traceparent }),
      });
    } catch (error) {
      rt.log.warn({ err: error, taskId }, "could not queue a delayed task; it is released again next round");
      await returnToDelayed(rt.redis, taskId, nowMs);
      await audited;
      return "returned";
    }
    await markQueued(rt.redis, [taskId]);
    lateness.record(lateMs);
    await audited;
    rt.log.debug({ taskId, lateMs }, "delayed task released");
    return "released";
  }

  async function jetStreamAnswers(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), JETSTREAM_CHECK_MS);
    });
    try {
      return await Promise.race([rt.nats.jsm.getAccountInfo().then(() => true), timeout]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async function release(): Promise<Record<ReleaseAction, number>> {
    const counts: Record<ReleaseAction, number> = { released: 0, dropped: 0, returned: 0 };
    // Tasks whose dependency did not succeed are cancelled first (they would never be due).
    await cancelFailedDependents(rt, redisCall, (from) => cancelled.add(1, { from })).catch((error: unknown) => {
      // Every round while Redis or NATS is out: a warning a minute, with the failures in between.
      const heldBack = cancelWarnings.pass("cancel");
      if (heldBack === undefined) return;
      rt.log.warn(
        { err: error, failuresSinceLastWarning: heldBack },
        "could not cancel the tasks whose dependency failed; tried again every round (this warning at most once a minute)",
      );
    });
    if (!(await anyDelayedDue(rt.redis, Date.now()))) return counts;
    const shed = options.shedding?.();
    if (shed) {
      rt.log.debug({ reason: shed }, "delayed tasks are due but the pipeline sheds load: released once it does not");
      return counts;
    }
    if (!(await jetStreamAnswers())) {
      rt.log.debug("delayed tasks are due but JetStream does not answer: released once it does");
      return counts;
    }
    for (;;) {
      const nowMs = Date.now();
      const entries = await releaseDue(rt.redis, nowMs, BATCH, rt.config.TASK_RETENTION_SECONDS);
      const outcomes = await Promise.allSettled(entries.map((entry) => releaseOne(entry, nowMs)));
      for (const [i, outcome] of outcomes.entries()) {
        if (outcome.status === "fulfilled") {
          counts[outcome.value] += 1;
          released.add(1, { outcome: outcome.value });
        } else {
          // Redis failed under it: the entry is in tasks_unqueued, where the requeue sweeper settles it.
          rt.log.warn({ err: outcome.reason, taskId: entries[i]?.taskId }, "could not release a delayed task");
        }
      }
      // A failed publish ends the round: the next ones would wait out the same outage.
      if (entries.length < BATCH || counts.returned > 0) return counts;
    }
  }

  const rounds = everyInterval(options.pollMs, release, (error) =>
    rt.log.debug({ err: error }, "delayed-task round skipped"),
  );
  // Woken at once when the status script makes tasks due (a dependency SUCCEEDED, a concurrency key's place freed):
  // they would otherwise wait for the next poll, up to GATEWAY_DELAYED_POLL_MS per hop of a chain. Its own
  // connection, which ioredis subscribes again after a reconnect; the poll stays, for delayed tasks' own times and
  // for a message lost while it was away.
  const wakes = rt.redis.duplicate();
  wakes.on("error", (error: unknown) => rt.log.debug({ err: error }, "the delayed-task wake-up connection failed"));
  wakes.on("message", () => rounds.now());
  void wakes
    .subscribe(Keys.delayedDueChannel)
    .catch((error: unknown) =>
      rt.log.warn({ err: error }, "could not subscribe to delayed-task wake-ups: polled only"),
    );

  return {
    release,
    async stop() {
      wakes.disconnect();
      await rounds.stop();
    },
  };
}

/**
 * The requeue sweeper: settles submissions that were saved in Redis but whose tasks.ingest message was never
 * acknowledged (the gateway crashed between the two writes, or NATS was down and the call failed). Without it such
 * a task stays PENDING for good. SubmitTask enters each new task in tasks_unqueued and removes it on the PubAck, so
 * the sweeper reads only the entries that have stayed longer than `afterMs`:
 *
 *   - the task moved on (another status than PENDING, a replayed generation) or its record expired: dropped;
 *   - still PENDING and young enough that the TASKS stream still remembers its message id: published again under
 *     the same id (`<id>:ingest:0`). If the first publish did land, the stream discards this one, so the task is
 *     queued exactly once either way;
 *   - older than that: a publish could no longer be deduplicated, so the task is not queued but FAILED with a reason
 *     (and then its cancel marker set, so that a message that did land after all is skipped by the next stage; a
 *     round cut short between the two leaves the entry, and the next round, finding that FAILED, sets the marker).
 *
 * One replica sweeps per round (a Redis lease); every step is idempotent, so a round cut short is finished by the
 * next.
 */
import { hostname } from "node:os";
import { publishAudit, Subjects } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  claimSweepLease,
  markCancelled,
  markQueued,
  readStatus,
  readTask,
  type StoredStatus,
  type TaskRecord,
  type UnqueuedEntry,
  unqueuedBefore,
} from "@tm/store";
import { ingestMsgId, releasedMessageOf } from "./ingest-message-id.js";
import { recordStatus } from "./record-status.js";
import { everyInterval } from "./rounds.js";

/** Entries settled per round at most; more wait for the next round. */
const ROUND_LIMIT = 200;

export type SweepAction = "drop" | "requeue" | "fail";

/** How the FAILED status the sweeper sets begins: a round that finds it on an entry still in the set finishes it. */
export const NOT_QUEUED_PREFIX = "not queued:";

/** The sweeper's own FAILED of the task's current generation: set by a round that could not finish (see `fail`). */
function failedByTheSweeper(task: TaskRecord, status: StoredStatus | undefined): boolean {
  return (
    status?.state === "FAILED" && status.generation === task.generation && status.error.startsWith(NOT_QUEUED_PREFIX)
  );
}

/**
 * What to do with an entry that has stayed unqueued: `requeueWithinMs` is the age up to which a publish is still
 * deduplicated against one that may have landed.
 */
export function sweepAction(
  entry: UnqueuedEntry,
  task: TaskRecord | undefined,
  status: StoredStatus | undefined,
  nowMs: number,
  requeueWithinMs: number,
): SweepAction {
  if (!task) return "drop"; // expired
  // FAILED by a round that was cut short before its cancel marker: finish it (the marker, then the audit event).
  if (failedByTheSweeper(task, status)) return "fail";
  // The task's current generation moved on (any state but PENDING). A status of an earlier generation is a replay
  // interrupted before its PENDING was written: requeued like a task without a status.
  if (status && status.generation >= task.generation && status.state !== "PENDING") return "drop";
  return nowMs - entry.createdMs <= requeueWithinMs ? "requeue" : "fail";
}

/**
 * The age up to which a requeue is deduplicated: three quarters of the stream's duplicate window, the rest a margin
 * for the clocks of the replicas (createdAt is the submitting replica's time) and a round's own duration.
 */
export function requeueWindowMs(duplicateWindowMs: number): number {
  return Math.floor(duplicateWindowMs * 0.75);
}

export interface RequeueSweeperOptions {
  /** How long a submission may stay unacknowledged before the sweeper takes it (GATEWAY_REQUEUE_AFTER_MS). */
  afterMs: number;
}

export interface RequeueSweeper {
  /** Runs one round (what the timer does every third of `afterMs`). Resolves with what it did. */
  sweep(): Promise<Record<SweepAction, number>>;
  stop(): Promise<void>;
}

export function startRequeueSweeper(rt: Runtime, options: RequeueSweeperOptions): RequeueSweeper {
  const { afterMs } = options;
  const requeueWithinMs = requeueWindowMs(rt.settings.duplicateWindowMs);
  if (afterMs >= requeueWithinMs) {
    throw new Error(
      `GATEWAY_REQUEUE_AFTER_MS (${afterMs}) must be below ${requeueWithinMs} ms (three quarters of the streams' ` +
        `duplicate window, ${rt.settings.duplicateWindowMs} ms): later, a requeued task could be queued twice`,
    );
  }
  const intervalMs = Math.max(100, Math.round(afterMs / 3));
  const owner = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
  const settled = rt.meter.createCounter("tm_tasks_requeued_total", {
    description:
      "Submissions whose tasks.ingest message was not acknowledged, settled by the requeue sweeper: " +
      "outcome requeued (published again) or not_queued (too old to requeue safely: FAILED)",
  });
  // Exported at 0 from the start: the first not_queued is then an increase the alert sees, not a new series.
  settled.add(0, { outcome: "requeued" });
  settled.add(0, { outcome: "not_queued" });

  async function requeue(
    task: TaskRecord,
    status: StoredStatus | undefined,
    { ageMs, enteredMs }: { ageMs: number; enteredMs: number },
  ): Promise<void> {
    const { taskId, generation } = task;
    // A crash between the task record and its status (one pipeline, two commands), or between a replay's new
    // generation and its PENDING, leaves no status of this generation: write PENDING (it outranks an older FAILED).
    if (!status || status.generation < generation) {
      await recordStatus(rt, { taskId, state: "PENDING", source: rt.name, generation });
    }
    // With REDIS_WAIT_REPLICAS: the record and status this publish relies on are on the replicas first (a replay or
    // requeue that could not confirm its claim left it to this round). Not held: the entry stays for the next round.
    await rt.confirmRedisWrites();
    // A release cut short (the entry was made when the task was taken from tasks_delayed): a task that waited for
    // dependencies keeps the time it became due, as the releaser would have sent it.
    const ack = await rt.publisher.publish(Subjects.ingest, releasedMessageOf(task, generation, enteredMs), {
      msgId: ingestMsgId(taskId, generation),
    });
    // A duplicate means the first publish had landed after all: nothing was queued twice, nothing to audit.
    if (!ack.duplicate) {
      await publishAudit(rt.publisher, {
        taskId: task.taskId,
        service: rt.name,
        action: "requeued",
        detail: { ageMs, generation, reason: "its submission was interrupted before the task was queued" },
        discriminator: generation,
      });
    }
    settled.add(1, { outcome: "requeued" });
    rt.log.info({ taskId: task.taskId, ageMs, duplicate: ack.duplicate }, "requeued an interrupted submission");
  }

  async function fail(task: TaskRecord, status: StoredStatus | undefined, ageMs: number): Promise<void> {
    const { taskId, generation } = task;
    let reason: string;
    if (failedByTheSweeper(task, status)) {
      // A round that applied FAILED but did not get as far as the marker (Redis or NATS failed, the gateway died):
      // the entry stayed in the set, and this round finishes the job. The marker matters: a message that landed
      // after all (only its PubAck was lost) and reaches a stage this late must be skipped, not run for a FAILED task.
      reason = status?.error ?? NOT_QUEUED_PREFIX;
    } else {
      reason = `${NOT_QUEUED_PREFIX} the submission was interrupted and ${Math.round(ageMs / 1000)} s later is too old to queue safely; submit it again`;
      // FAILED first, the marker only if it applied: when it did not, the task moved on since it was read (its
      // message had landed after all and a stage took it) or another replica's overlapping round failed it; a
      // marker set then would stop a task that is running normally.
      const failed = await recordStatus(rt, { taskId, state: "FAILED", source: rt.name, error: reason, generation });
      if (!failed.applied) return;
    }
    await markCancelled(rt.redis, taskId, reason, rt.config.TASK_RETENTION_SECONDS);
    await publishAudit(rt.publisher, {
      taskId,
      service: rt.name,
      action: "not_queued",
      detail: { ageMs, generation, reason },
      discriminator: generation,
    });
    settled.add(1, { outcome: "not_queued" });
    rt.log.warn({ taskId: task.taskId, ageMs }, "an interrupted submission was too old to requeue: marked FAILED");
  }

  async function settle(entry: UnqueuedEntry, nowMs: number): Promise<SweepAction> {
    const [task, status] = await Promise.all([readTask(rt.redis, entry.taskId), readStatus(rt.redis, entry.taskId)]);
    const action = sweepAction(entry, task, status, nowMs, requeueWithinMs);
    const ageMs = nowMs - entry.createdMs;
    if (action === "requeue" && task) await requeue(task, status, { ageMs, enteredMs: entry.createdMs });
    if (action === "fail" && task) await fail(task, status, ageMs);
    // Only once settled: a failure above leaves the entry for the next round.
    await markQueued(rt.redis, [entry.taskId]);
    return action;
  }

  async function sweep(): Promise<Record<SweepAction, number>> {
    const counts: Record<SweepAction, number> = { drop: 0, requeue: 0, fail: 0 };
    if (!(await claimSweepLease(rt.redis, owner, intervalMs))) return counts;
    const nowMs = Date.now();
    const entries = await unqueuedBefore(rt.redis, nowMs - afterMs, ROUND_LIMIT);
    const outcomes = await Promise.allSettled(entries.map((entry) => settle(entry, nowMs)));
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === "fulfilled") counts[outcome.value] += 1;
      else rt.log.warn({ err: outcome.reason, taskId: entries[i]?.taskId }, "could not settle an unqueued task");
    }
    return counts;
  }

  // One round at a time: a round waiting out a NATS outage is not joined by the next ones.
  const rounds = everyInterval(intervalMs, sweep, (error) => rt.log.debug({ err: error }, "requeue sweep skipped"));

  return { sweep, stop: () => rounds.stop() };
}

/**
 * Paused worker queues (AdminService PauseQueue / ResumeQueue, `taskctl pause|resume`): the hash queue_paused holds
 * one field per paused priority, with when and by whom. Workers read it every WORKER_PAUSE_POLL_MS and stop taking
 * tasks of a paused priority; its messages wait in the stream (nothing is lost or redelivered) until it is resumed.
 * A write and the read after it are issued together: one connection runs them in order, in one round trip.
 */
import { PRIORITIES, type Priority } from "@tm/flow";
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";

export interface QueuePause {
  priority: Priority;
  /** ISO time of the pause. */
  at: string;
  /** The operator who paused it (the authenticated caller), when known. */
  by?: string;
}

/** Pauses a priority's queue; pausing a paused one keeps its first pause (when and by whom). Answers every paused
 *  queue afterwards (read in the same round trip). */
export async function pauseQueue(
  redis: Redis,
  priority: Priority,
  by: string | undefined,
  at = new Date(),
): Promise<QueuePause[]> {
  const record = JSON.stringify({ at: at.toISOString(), ...(by === undefined ? {} : { by }) });
  const [, fields] = await Promise.all([
    redis.hsetnx(Keys.queuePaused, priority, record),
    redis.hgetall(Keys.queuePaused),
  ]);
  return pausesOf(fields);
}

/** Resumes a priority's queue: whether it was paused, and every queue still paused (read in the same round trip). */
export async function resumeQueue(
  redis: Redis,
  priority: Priority,
): Promise<{ wasPaused: boolean; paused: QueuePause[] }> {
  const [removed, fields] = await Promise.all([
    redis.hdel(Keys.queuePaused, priority),
    redis.hgetall(Keys.queuePaused),
  ]);
  return { wasPaused: removed === 1, paused: pausesOf(fields) };
}

/** The paused queues, high to low. Other fields are ignored; a paused one whose record is not JSON stays paused. */
export async function readPausedQueues(redis: Redis): Promise<QueuePause[]> {
  return pausesOf(await redis.hgetall(Keys.queuePaused));
}

function pausesOf(fields: Record<string, string>): QueuePause[] {
  const paused: QueuePause[] = [];
  for (const priority of PRIORITIES) {
    const raw = fields[priority];
    if (raw === undefined) continue;
    try {
      const { at, by } = JSON.parse(raw) as { at?: unknown; by?: unknown };
      paused.push({
        priority,
        at: typeof at === "string" ? at : "",
        ...(typeof by === "string" ? { by } : {}),
      });
    } catch {
      paused.push({ priority, at: "" });
    }
  }
  return paused;
}

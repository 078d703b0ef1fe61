/**
 * Deliveries handed back unstarted: a worker that stops (or is told to take no more tasks) NAKs the deliveries it
 * holds buffered so another worker takes them at once. JetStream counts each as a delivery, so without a record the
 * next worker would count it as an attempt: a task with max_attempts 1 would be failed as "interrupted" without
 * ever having run, and every other would lose one of its attempts. The worker records each hand-back here before its
 * NAK, per generation (a replay or requeue is a new message, counted afresh), and the next worker's attempt is the
 * delivery count less the hand-backs (read only on a redelivery; redeliveredAttempt). A hand-back that could not be
 * recorded (Redis down) counts as an attempt: never more runs than asked.
 *
 * The server does not always count a hand-back: nats-server 2.9 gives the delivery back (the next one has the same
 * count) when the NAKed message would go to a pull its worker had just stopped. The task's stored status covers that:
 * after an attempt k started (RUNNING k, also after its failure), the next is at least k + 1.
 *
 *   task_handbacks:<id>   hash: generation → deliveries handed back unstarted   TTL taskTtlSeconds from the last
 */
import type { Redis } from "ioredis";
import { Bounds, Keys } from "./keys.js";
import { startedAttempt } from "./status.js";

export interface HandedBack {
  taskId: string;
  generation: number;
}

/** Records one hand-back per entry (one round trip for all). */
export async function recordHandBacks(redis: Redis, deliveries: readonly HandedBack[]): Promise<void> {
  if (deliveries.length === 0) return;
  const pipeline = redis.pipeline();
  for (const { taskId, generation } of deliveries) {
    pipeline.hincrby(Keys.handBacks(taskId), String(generation), 1);
    pipeline.expire(Keys.handBacks(taskId), Bounds.taskTtlSeconds);
  }
  const replies = (await pipeline.exec()) ?? [];
  const failed = replies.find(([error]) => error !== null);
  if (failed) throw failed[0];
}

/** How many deliveries of the task's generation were handed back unstarted (0 when none were recorded). */
export async function handBacksOf(redis: Redis, taskId: string, generation: number): Promise<number> {
  return Number((await redis.hget(Keys.handBacks(taskId), String(generation))) ?? 0) || 0;
}

/**
 * The attempt of a redelivered task message (delivery `deliveryCount` > 1): its deliveries less those handed back
 * unstarted, and at least one more than the attempt its stored status says started last (one round trip).
 */
export async function redeliveredAttempt(
  redis: Redis,
  taskId: string,
  generation: number,
  deliveryCount: number,
): Promise<number> {
  const [handedBack, started] = await Promise.all([
    handBacksOf(redis, taskId, generation),
    startedAttempt(redis, taskId, generation),
  ]);
  return Math.max(1, deliveryCount - handedBack, (started ?? 0) + 1);
}

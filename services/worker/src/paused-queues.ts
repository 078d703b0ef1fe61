/**
 * Follows the operators' paused queues (queue_paused in Redis, set through AdminService PauseQueue / ResumeQueue):
 * read at start and every `pollMs`, applied to the dispatcher. Polling rather than a notification keeps it right
 * after a missed message, a Redis restart or a worker start; one small read per second per worker costs nothing.
 * While Redis cannot be read the last known state stays in force (a paused queue is not resumed by an outage).
 */
import { PRIORITIES } from "@tm/flow";
import type { Logger } from "@tm/kit";
import { readPausedQueues } from "@tm/store";
import type { Redis } from "ioredis";
import type { PriorityDispatcher } from "./dispatcher.js";
import { type Follower, pollEvery } from "./poll.js";

export function followPausedQueues(
  redis: Redis,
  dispatcher: Pick<PriorityDispatcher, "setPaused" | "paused">,
  pollMs: number,
  log: Logger,
): Follower {
  return pollEvery(pollMs, async (stopped) => {
    let paused: Set<string>;
    try {
      paused = new Set((await readPausedQueues(redis)).map((queue) => queue.priority));
    } catch (error) {
      log.debug({ err: error }, "could not read the paused queues; keeping the last known state");
      return;
    }
    if (stopped()) return;
    for (const priority of PRIORITIES) {
      const now = paused.has(priority);
      if (now === dispatcher.paused(priority)) continue;
      dispatcher.setPaused(priority, now);
      log.info({ priority }, now ? "queue paused: no new tasks of this priority start" : "queue resumed");
    }
  });
}

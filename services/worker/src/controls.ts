/**
 * Follows what operators set for this worker in Redis: the paused queues (queue_paused, AdminService PauseQueue /
 * ResumeQueue, for every worker) and its own quiet mark (worker_quiet:<id>, QuietWorker / ResumeWorker). Read at
 * start and every `pollMs` (one round trip), applied to the dispatcher. Polling rather than a notification keeps it
 * right after a missed message, a Redis restart or a worker start; one small read per second per worker costs
 * nothing. While Redis cannot be read the last known state stays in force (a paused queue is not resumed, nor a quiet
 * worker woken, by an outage).
 */
import { PRIORITIES } from "@tm/flow";
import type { Logger } from "@tm/kit";
import { readWorkerControls } from "@tm/store";
import type { Redis } from "ioredis";
import type { PriorityDispatcher } from "./dispatcher.js";
import { type Follower, pollEvery } from "./poll.js";

export function followControls(
  redis: Redis,
  workerId: string,
  dispatcher: Pick<PriorityDispatcher, "setPaused" | "paused" | "setQuiet" | "quiet">,
  pollMs: number,
  log: Logger,
): Follower {
  return pollEvery(pollMs, async (stopped) => {
    let controls: Awaited<ReturnType<typeof readWorkerControls>>;
    try {
      controls = await readWorkerControls(redis, workerId);
    } catch (error) {
      log.debug({ err: error }, "could not read the paused queues and quiet mark; keeping the last known state");
      return;
    }
    if (stopped()) return;
    const paused = new Set(controls.pausedQueues.map((queue) => queue.priority));
    for (const priority of PRIORITIES) {
      const now = paused.has(priority);
      if (now === dispatcher.paused(priority)) continue;
      dispatcher.setPaused(priority, now);
      log.info({ priority }, now ? "queue paused: no new tasks of this priority start" : "queue resumed");
    }
    if (controls.quiet !== dispatcher.quiet) {
      const handedBack = await dispatcher.setQuiet(controls.quiet);
      if (controls.quiet) {
        log.info({ handedBack }, "worker quiet: it takes no new tasks; what it held buffered went back to the queue");
      } else {
        log.info("worker resumed: it takes tasks again");
      }
    }
  });
}

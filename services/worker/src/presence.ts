/**
 * The worker's report of itself for operators (AdminService ListWorkers, `taskctl workers`): every
 * WORKER_REPORT_INTERVAL_MS it writes what it runs, what it holds buffered and which queues it keeps paused to
 * `worker:<id>` in Redis (TTL three intervals), and removes it when it stops. A missed report (Redis down) is logged
 * at debug and skipped: the next one replaces it, and one whose worker died expires.
 */
import { hostname } from "node:os";
import { PRIORITIES } from "@tm/flow";
import type { Logger } from "@tm/kit";
import {
  forgetWorker,
  MAX_REPORTED_ABANDONED,
  MAX_REPORTED_TASKS,
  readWorkerReport,
  reportWorker,
  type WorkerReport,
} from "@tm/store";
import type { Redis } from "ioredis";
import type { RunningTasks } from "./cancellation.js";
import type { PriorityDispatcher } from "./dispatcher.js";

/** How long a stopping worker tries to remove its report. */
const STOP_BUDGET_MS = 1_000;

/** This process's id among the workers unless WORKER_ID sets one: host:pid (a pod's name in Kubernetes, where
 *  every pid is 1). */
const HOST = hostname();
export const DEFAULT_WORKER_ID = `${HOST}:${process.pid}`;

export interface PresenceOptions {
  /** This worker's id (WORKER_ID). */
  id: string;
  redis: Redis;
  running: RunningTasks;
  dispatcher: Pick<PriorityDispatcher, "queued" | "paused" | "quiet">;
  concurrency: number;
  /** Handlers running on after their attempt ended (run-task.ts): how many, and the first `limit` of them. */
  abandoned: () => number;
  abandonedHandlers?: (limit: number) => Array<{ taskId: string; type: string; sinceMs: number }>;
  /** The deployment's own task types this worker loaded handlers for (WORKER_HANDLER_MODULES). */
  ownTaskTypes?: readonly string[];
  /** WORKER_POOL; undefined: the default pool. */
  pool?: string;
  /** Those of ownTaskTypes whose attempts run in worker threads (isolation "thread"). */
  threadTaskTypes?: readonly string[];
  intervalMs: number;
  log: Logger;
}

export function reportPresence({
  id,
  redis,
  running,
  dispatcher,
  concurrency,
  abandoned,
  abandonedHandlers,
  ownTaskTypes = [],
  pool,
  threadTaskTypes = [],
  intervalMs,
  log,
}: PresenceOptions) {
  const startedAtMs = Date.now();
  const ttlMs = intervalMs * 3;
  const report = (): WorkerReport => ({
    id,
    host: HOST,
    pid: process.pid,
    startedAtMs,
    concurrency,
    queued: PRIORITIES.reduce((sum, priority) => sum + dispatcher.queued(priority), 0),
    pausedQueues: PRIORITIES.filter((priority) => dispatcher.paused(priority)),
    runningCount: running.size,
    running: running.list(MAX_REPORTED_TASKS),
    abandoned: abandoned(),
    ...(abandonedHandlers ? { abandonedHandlers: abandonedHandlers(MAX_REPORTED_ABANDONED) } : {}),
    ...(ownTaskTypes.length > 0 ? { ownTaskTypes: [...ownTaskTypes] } : {}),
    ...(pool === undefined ? {} : { pool }),
    ...(threadTaskTypes.length > 0 ? { threadTaskTypes: [...threadTaskTypes] } : {}),
    quiet: dispatcher.quiet,
    seenAtMs: Date.now(),
  });
  let stopped = false;
  let writing: Promise<void> = Promise.resolve();
  const write = (first = false) => {
    writing = reportWorker(redis, report(), ttlMs, { first }).catch((error: unknown) =>
      log.debug({ err: error }, "could not report this worker to Redis; the next report replaces it"),
    );
    return writing;
  };
  const timer = setInterval(() => {
    if (!stopped) void write();
  }, intervalMs);
  timer.unref();
  /** Two live workers under one id (WORKER_ID set alike on two machines) would overwrite each other's reports and
   *  share a quiet mark: said at start, where it is easy to find. A former process of this id on this host (a
   *  restarted pod keeps its name, and its pid is 1 again) is no clash. */
  const warnOfClash = async () => {
    const other = await readWorkerReport(redis, id).catch(() => undefined);
    if (other && (other.host !== HOST || other.pid !== process.pid)) {
      log.warn(
        { id, otherHost: other.host, otherPid: other.pid, otherSeenAgoMs: Date.now() - other.seenAtMs },
        "another live worker reports under this id (WORKER_ID): give each worker its own, or their reports and quiet " +
          "marks mix",
      );
    }
  };
  return {
    /** The first report, written before the consumers start (a failure is logged, not thrown); it clears a quiet
     *  mark a former process of the same id left. */
    ready: warnOfClash().then(() => write(true)),
    /** Stops reporting and removes the report: the worker leaves the list at once. Bounded: with Redis down its
     *  commands would wait out the whole reconnect budget, and the report expires by itself anyway. */
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      const removed = (async () => {
        await writing; // a report still being written would otherwise land after the removal
        await forgetWorker(redis, id);
      })().catch((error: unknown) =>
        log.debug({ err: error }, "could not remove this worker's report; it expires by itself"),
      );
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([removed, new Promise((resolve) => (deadline = setTimeout(resolve, STOP_BUDGET_MS)))]);
      clearTimeout(deadline);
    },
  };
}

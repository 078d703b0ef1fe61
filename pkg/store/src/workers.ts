/**
 * The live workers (AdminService ListWorkers, `taskctl workers`; Celery's `inspect active`, Asynq's `server ls`,
 * BullMQ's `getWorkers`): each worker process writes what it is doing every few seconds to `worker:<id>` (JSON, TTL
 * three reports) and its id to the sorted set `workers` (scored by the report's time). A worker that stops removes
 * both; one that dies drops out of the list when its key expires, and every report trims the set of ids not reported
 * for that long, so the set holds at most the workers alive within one TTL.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";

/** A task running in a worker, as it reports it. */
export interface RunningTaskReport {
  taskId: string;
  type: string;
  priority: string;
  attempt: number;
  /** When this attempt's handler started (ms). */
  startedAtMs: number;
}

/** What a worker process reports about itself. */
export interface WorkerReport {
  /** host:pid (unique among live processes: a pod's host name, or a machine's with its pid). */
  id: string;
  host: string;
  pid: number;
  startedAtMs: number;
  concurrency: number;
  /** Deliveries buffered, waiting for a slot, a limit or a pause. */
  queued: number;
  /** Priorities an operator paused, as this worker applies them. */
  pausedQueues: string[];
  /** How many tasks it runs now; `running` lists at most MAX_REPORTED_TASKS of them. */
  runningCount: number;
  running: RunningTaskReport[];
  /** Handlers still running after their attempt ended (they ignored their AbortSignal); absent in older reports. */
  abandoned?: number;
  /** When it wrote this report (ms). */
  seenAtMs: number;
}

/** The most running tasks one report lists (a worker with a larger WORKER_CONCURRENCY reports the count). */
export const MAX_REPORTED_TASKS = 100;

/** Writes a worker's report and trims the ids not reported within `ttlMs` (one round trip). */
export async function reportWorker(redis: Redis, report: WorkerReport, ttlMs: number): Promise<void> {
  await redis
    .multi()
    .set(Keys.worker(report.id), JSON.stringify(report), "PX", ttlMs)
    .zadd(Keys.workers, report.seenAtMs, report.id)
    .zremrangebyscore(Keys.workers, "-inf", `(${report.seenAtMs - ttlMs}`)
    .exec();
}

/** Removes a stopping worker's report. */
export async function forgetWorker(redis: Redis, id: string): Promise<void> {
  await redis.multi().del(Keys.worker(id)).zrem(Keys.workers, id).exec();
}

/** The live workers' latest reports, by id; an id whose report expired or is not JSON is left out. */
export async function listWorkers(redis: Redis): Promise<WorkerReport[]> {
  const ids = await redis.zrange(Keys.workers, 0, -1);
  if (ids.length === 0) return [];
  const texts = await redis.mget(ids.map((id) => Keys.worker(id)));
  const reports: WorkerReport[] = [];
  for (const text of texts) {
    if (text === null) continue;
    try {
      const report = JSON.parse(text) as WorkerReport;
      if (typeof report?.id === "string" && Array.isArray(report.running)) reports.push(report);
    } catch {
      // Not one of ours (written by hand): left out.
    }
  }
  return reports.sort((a, b) => a.id.localeCompare(b.id));
}

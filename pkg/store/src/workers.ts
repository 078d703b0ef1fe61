/**
 * The live workers (AdminService ListWorkers, `taskctl workers`; Celery's `inspect active`, Asynq's `server ls`,
 * BullMQ's `getWorkers`): each worker process writes what it is doing every few seconds to `worker:<id>` (JSON, TTL
 * three reports) and its id to the sorted set `workers` (scored by the report's time). A worker that stops removes
 * both; one that dies drops out of the list when its key expires, and every report trims the set of ids not reported
 * for that long, so the set holds at most the workers alive within one TTL.
 *
 * An operator can make one worker quiet (QuietWorker, `taskctl workers quiet`; Sidekiq's and Asynq's quiet):
 * `worker_quiet:<id>` ({at, by}), set only while the worker's report exists and with its report's TTL, which every
 * report renews, so the mark lives as long as the worker and goes with it. The worker reads it with the paused
 * queues (readWorkerControls), and removes it when it starts (a new process takes tasks) and when it stops.
 */
import type { Redis } from "ioredis";
import { Keys } from "./keys.js";
import { type QueuePause, readPausedQueues } from "./queues.js";
import { luaScript } from "./script.js";

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
  /** The first MAX_REPORTED_ABANDONED of them, longest abandoned first: task, type, since (ms). */
  abandonedHandlers?: Array<{ taskId: string; type: string; sinceMs: number }>;
  /** The deployment's own task types it runs (loaded from WORKER_HANDLER_MODULES); absent when none. */
  ownTaskTypes?: string[];
  /** The worker pool it serves (WORKER_POOL); absent: the default pool. */
  pool?: string;
  /** Those of ownTaskTypes whose attempts run in worker threads; absent when none. */
  threadTaskTypes?: string[];
  /** Whether it takes no new tasks (an operator's QuietWorker), as it applies it; absent in older reports. */
  quiet?: boolean;
  /** When it wrote this report (ms). */
  seenAtMs: number;
}

/** The most running tasks one report lists (a worker with a larger WORKER_CONCURRENCY reports the count). */
export const MAX_REPORTED_TASKS = 100;

/** The most abandoned handlers one report lists (it counts them all in `abandoned`). */
export const MAX_REPORTED_ABANDONED = 20;

/**
 * Writes a worker's report and trims the ids not reported within `ttlMs` (one round trip); renews its quiet mark's
 * TTL with the report's. `first`: the process's first report, which clears a quiet mark a former process of the same
 * id left (a restarted pod keeps its name, and every pid there is 1).
 */
export async function reportWorker(
  redis: Redis,
  report: WorkerReport,
  ttlMs: number,
  { first = false }: { first?: boolean } = {},
): Promise<void> {
  const multi = redis.multi();
  if (first) multi.del(Keys.workerQuiet(report.id));
  await multi
    .set(Keys.worker(report.id), JSON.stringify(report), "PX", ttlMs)
    .pexpire(Keys.workerQuiet(report.id), ttlMs)
    .zadd(Keys.workers, report.seenAtMs, report.id)
    .zremrangebyscore(Keys.workers, "-inf", `(${report.seenAtMs - ttlMs}`)
    .exec();
}

/** Removes a stopping worker's report and its quiet mark. */
export async function forgetWorker(redis: Redis, id: string): Promise<void> {
  await redis.multi().del(Keys.worker(id)).del(Keys.workerQuiet(id)).zrem(Keys.workers, id).exec();
}

/** Who made a worker quiet, and when. */
export interface WorkerQuiet {
  at: string;
  by: string;
}

// KEYS: worker:<id>, worker_quiet:<id>; ARGV: '1' to quiet / '0' to resume, the mark (JSON).
// -1: no live worker has the id; otherwise 1 when it changed anything, 0 when it was so already.
const SET_WORKER_QUIET = luaScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return -1 end
local was = redis.call('EXISTS', KEYS[2]) == 1
if ARGV[1] == '1' then
  if was then return 0 end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
  return 1
end
if not was then return 0 end
redis.call('DEL', KEYS[2])
return 1
`);

/**
 * QuietWorker (true) / ResumeWorker (false): whether it changed anything, or "not-found" when no live worker has the
 * id (its report expired or was never written). The mark gets the report's TTL, so it cannot outlive the worker.
 */
export async function setWorkerQuiet(
  redis: Redis,
  id: string,
  quiet: boolean,
  mark: WorkerQuiet,
): Promise<boolean | "not-found"> {
  const reply = (await SET_WORKER_QUIET.run(
    redis,
    [Keys.worker(id), Keys.workerQuiet(id)],
    [quiet ? "1" : "0", JSON.stringify(mark)],
  )) as number;
  return reply === -1 ? "not-found" : reply === 1;
}

/** What a worker follows each poll (one round trip): the paused queues (fleet-wide) and whether it is quiet. */
export async function readWorkerControls(
  redis: Redis,
  id: string,
): Promise<{ pausedQueues: QueuePause[]; quiet: boolean }> {
  const [pausedQueues, quiet] = await Promise.all([readPausedQueues(redis), redis.exists(Keys.workerQuiet(id))]);
  return { pausedQueues, quiet: quiet === 1 };
}

/** A listed worker: its latest report, and an operator's quiet request when there is one. */
export type ListedWorker = WorkerReport & { quietRequest?: WorkerQuiet };

/** The live workers' latest reports with their quiet marks, by id (one MGET); an id whose report expired or is not
 *  JSON is left out. */
export async function listWorkers(redis: Redis): Promise<ListedWorker[]> {
  const ids = await redis.zrange(Keys.workers, 0, -1);
  if (ids.length === 0) return [];
  const texts = await redis.mget([...ids.map((id) => Keys.worker(id)), ...ids.map((id) => Keys.workerQuiet(id))]);
  const listed: ListedWorker[] = [];
  ids.forEach((_, i) => {
    const report = reportOf(texts[i] ?? null);
    if (!report) return;
    const quietRequest = markOf(texts[ids.length + i] ?? null);
    listed.push(quietRequest ? { ...report, quietRequest } : report);
  });
  return listed.sort((a, b) => a.id.localeCompare(b.id));
}

function markOf(text: string | null): WorkerQuiet | undefined {
  if (text === null) return undefined;
  try {
    const { at, by } = JSON.parse(text) as Partial<WorkerQuiet>;
    return { at: typeof at === "string" ? at : "", by: typeof by === "string" ? by : "" };
  } catch {
    return { at: "", by: "" }; // written by hand: still a request
  }
}

/** One worker's latest report (undefined: none, expired, or not one of ours). */
export async function readWorkerReport(redis: Redis, id: string): Promise<WorkerReport | undefined> {
  return reportOf(await redis.get(Keys.worker(id)));
}

function reportOf(text: string | null): WorkerReport | undefined {
  if (text === null) return undefined;
  try {
    const report = JSON.parse(text) as WorkerReport;
    return typeof report?.id === "string" && Array.isArray(report.running) ? report : undefined;
  } catch {
    return undefined; // Not one of ours (written by hand): left out.
  }
}

/**
 * AdminService ListWorkers (`taskctl workers`): the live workers and what each runs, from the reports they write to
 * Redis (@tm/store workers.ts). The gateway only reads them. QuietWorker / ResumeWorker (`taskctl workers quiet|resume`)
 * set or remove one worker's quiet mark, which that worker applies within its WORKER_PAUSE_POLL_MS; each change is
 * audited (`worker_quieted`, `worker_resumed`, no task id) and logged.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Priority, PrioritySchema, publishAudit } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import type { ListWorkersResponseSchema } from "@tm/proto";
import { type ListedWorker, listWorkers, setWorkerQuiet } from "@tm/store";
import { priorityToProto } from "./mapping.js";
import type { RedisCall } from "./redis-call.js";
import { invalid } from "./validation.js";

/** Longer than any host:pid (a host name is at most 253 characters). */
const MAX_WORKER_ID_LENGTH = 300;

const at = (ms: number) => timestampFromDate(new Date(ms));
const isPriority = (value: string): value is Priority => PrioritySchema.safeParse(value).success;

export function workerToProto(report: ListedWorker) {
  return {
    id: report.id,
    host: report.host,
    pid: report.pid,
    startedAt: at(report.startedAtMs),
    seenAt: at(report.seenAtMs),
    concurrency: report.concurrency,
    queued: report.queued,
    pausedQueues: report.pausedQueues.filter(isPriority).map(priorityToProto),
    runningCount: report.runningCount,
    abandoned: report.abandoned ?? 0,
    quiet: report.quiet === true,
    ownTaskTypes: report.ownTaskTypes ?? [],
    pool: report.pool ?? "",
    threadTaskTypes: report.threadTaskTypes ?? [],
    abandonedHandlers: (report.abandonedHandlers ?? []).map((handler) => ({
      taskId: handler.taskId,
      type: handler.type,
      since: at(handler.sinceMs),
    })),
    ...(report.quietRequest
      ? {
          quietRequested: {
            by: report.quietRequest.by,
            ...(Number.isNaN(Date.parse(report.quietRequest.at))
              ? {}
              : { at: timestampFromDate(new Date(report.quietRequest.at)) }),
          },
        }
      : {}),
    running: report.running.map((task) => ({
      taskId: task.taskId,
      type: task.type,
      priority: isPriority(task.priority) ? priorityToProto(task.priority) : undefined,
      attempt: task.attempt,
      startedAt: at(task.startedAtMs),
    })),
  };
}

export async function listWorkersResponse(
  redis: Parameters<typeof listWorkers>[0],
): Promise<MessageInitShape<typeof ListWorkersResponseSchema>> {
  return { workers: (await listWorkers(redis)).map(workerToProto) };
}

/** A worker id named by a request, or INVALID_ARGUMENT naming `worker_id`. */
function workerIdOf(id: string): string {
  if (!id) throw invalid("worker_id", "is required (taskctl workers lists the ids)");
  if (id.length > MAX_WORKER_ID_LENGTH)
    throw invalid("worker_id", `must be at most ${MAX_WORKER_ID_LENGTH} characters`);
  return id;
}

/** QuietWorker (true) / ResumeWorker (false). */
export async function setQuiet(
  rt: Runtime,
  redis: RedisCall,
  requestedId: string,
  quiet: boolean,
  caller: string | undefined,
): Promise<{ changed: boolean }> {
  const id = workerIdOf(requestedId);
  const mark = { at: new Date().toISOString(), by: caller ?? "" };
  const outcome = await redis(quiet ? "quieting the worker" : "resuming the worker", () =>
    setWorkerQuiet(rt.redis, id, quiet, mark),
  );
  if (outcome === "not-found") {
    throw new ConnectError(
      `no live worker ${JSON.stringify(id.slice(0, 100))} (taskctl workers lists them)`,
      Code.NotFound,
    );
  }
  if (outcome) {
    rt.log.info(
      { worker: id, by: mark.by },
      quiet ? "worker quieted: it takes no new tasks from its next poll" : "worker resumed",
    );
    const action = quiet ? "worker_quieted" : "worker_resumed";
    await publishAudit(rt.publisher, {
      service: rt.name,
      action,
      detail: { worker: id, ...(caller === undefined ? {} : { by: caller }) },
      discriminator: `${id}:${Date.now()}`,
    }).catch((error: unknown) =>
      rt.log.warn({ err: error, action }, "could not publish a worker change's audit event"),
    );
  }
  return { changed: outcome };
}

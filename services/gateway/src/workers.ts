/**
 * AdminService ListWorkers (`taskctl workers`): the live workers and what each runs, from the reports they write to
 * Redis (@tm/store workers.ts). The gateway only reads them.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Priority, PrioritySchema } from "@tm/flow";
import type { ListWorkersResponseSchema } from "@tm/proto";
import { listWorkers, type WorkerReport } from "@tm/store";
import { priorityToProto } from "./mapping.js";

const at = (ms: number) => timestampFromDate(new Date(ms));
const isPriority = (value: string): value is Priority => PrioritySchema.safeParse(value).success;

export function workerToProto(report: WorkerReport) {
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

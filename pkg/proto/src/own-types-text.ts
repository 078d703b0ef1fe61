import type { WorkerInfo } from "./gen/taskmanager/v1/admin_pb.js";

/** A worker's own task types as `taskctl workers` and the console show them: those whose attempts run in worker
 *  threads (WorkerInfo.thread_task_types) marked "(thread)". */
export function ownTaskTypesText(
  worker: Pick<WorkerInfo, "ownTaskTypes" | "threadTaskTypes">,
  separator: string,
): string {
  return worker.ownTaskTypes
    .map((type) => (worker.threadTaskTypes.includes(type) ? `${type} (thread)` : type))
    .join(separator);
}

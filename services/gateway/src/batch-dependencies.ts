/**
 * SubmitTaskRequest.depends_on_batch_items: a task of a SubmitTasks call waiting for earlier tasks of the same call,
 * named by their place since their ids are made by the gateway. Each is resolved to its id once that task's outcome
 * is known and added to depends_on, which then takes its usual path (task-dependencies.ts); a refused one refuses
 * this task too. Only earlier places may be named, so a call cannot make a cycle and no task waits for a later one.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { SubmitTaskRequest } from "@tm/proto";
import type { BatchOutcome } from "./submit-batch.js";
import { invalid, MAX_DEPENDENCIES } from "./validation.js";

const FIELD = "depends_on_batch_items";

/**
 * The request with its batch items' ids added to depends_on (and the field emptied), once those tasks were
 * accepted. INVALID_ARGUMENT for a place that is not earlier, one named twice, or more dependencies than a task may
 * have; a refused item refuses this task, FAILED_PRECONDITION naming it, or with its code when it was not attempted
 * (UNAVAILABLE, CANCELLED), so the client submits both again as it would any task not attempted.
 */
export async function withBatchDependencies(
  request: SubmitTaskRequest,
  index: number,
  outcomeOf: (earlier: number) => Promise<BatchOutcome>,
): Promise<SubmitTaskRequest> {
  const items = request.dependsOnBatchItems;
  if (items.length === 0) return request;
  const total = request.dependsOn.length + items.length;
  if (total > MAX_DEPENDENCIES) {
    throw invalid(FIELD, `with depends_on, ${total} tasks exceeds the limit of ${MAX_DEPENDENCIES}`);
  }
  for (const [k, item] of items.entries()) {
    if (item >= index) {
      throw invalid(
        `${FIELD}[${k}]`,
        `tasks[${item}] does not come before this task (tasks[${index}]): a task can wait only for earlier tasks of its call`,
      );
    }
    if (items.indexOf(item) !== k) throw invalid(`${FIELD}[${k}]`, `tasks[${item}] is named twice`);
  }
  const ids: string[] = [];
  for (const [k, item] of items.entries()) {
    const outcome = await outcomeOf(item);
    if (outcome.case === "error") throw refusedWith(`${FIELD}[${k}]`, item, outcome.value);
    const { taskId } = outcome.value;
    if (request.dependsOn.includes(taskId)) {
      throw invalid(`${FIELD}[${k}]`, `tasks[${item}] is task ${taskId}, which depends_on names too`);
    }
    ids.push(taskId);
  }
  return { ...request, dependsOn: [...request.dependsOn, ...ids], dependsOnBatchItems: [] };
}

/** This task refused because `item` was: not attempted when that one was not, else FAILED_PRECONDITION. */
function refusedWith(field: string, item: number, refusal: { code: number; message: string }): ConnectError {
  // The outcome's message starts with "tasks[item]: ".
  const detail = refusal.message.replace(/^tasks\[\d+\]: /, "");
  if (refusal.code === Code.Unavailable || refusal.code === Code.Canceled) {
    return new ConnectError(
      `not attempted: ${field}: tasks[${item}] was not accepted (${detail}); submit both again`,
      refusal.code,
    );
  }
  return new ConnectError(
    `${field}: tasks[${item}] was refused (${detail}), so this task could never run`,
    Code.FailedPrecondition,
  );
}

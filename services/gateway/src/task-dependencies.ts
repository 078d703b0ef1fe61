/**
 * Task dependencies (SubmitTaskRequest.depends_on), the gateway's part: a submission's dependencies are checked
 * before anything is written (each exists and the caller may see it; none has failed), and the tasks whose
 * dependency ended FAILED or CANCELLED are cancelled, their reason naming it. Waiting and releasing are Redis's
 * (@tm/store task-dependencies.ts): saveTask registers the task atomically with its dependencies' states, the status
 * script makes it due once the last one SUCCEEDED, and the delayed-task releaser queues it from there.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { isTerminal } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import {
  dependencyCancelReason,
  dependencyFailures,
  forgetDependencyFailure,
  readStatus,
  readTask,
  type TaskRecord,
} from "@tm/store";
import { cancelTask } from "./cancel-task.js";
import type { RedisCall } from "./redis-call.js";
import { invalid } from "./validation.js";

/**
 * Refuses a submission whose dependencies cannot be waited for: one that does not exist (or that the caller may not
 * see) is INVALID_ARGUMENT naming `depends_on[i]`, one already FAILED or CANCELLED is FAILED_PRECONDITION (unless the
 * task runs once they finished, whatever the outcome). saveTask checks the states again in the script that registers
 * the task, against a dependency failing meanwhile.
 */
export async function checkDependencies(
  redisCall: RedisCall,
  rt: Pick<Runtime, "redis">,
  { dependsOn: ids, dependencyPolicy }: { dependsOn: readonly string[]; dependencyPolicy?: "all-finished" },
  maySee: (task: TaskRecord) => boolean,
): Promise<void> {
  const found = await redisCall("reading the dependencies", () =>
    Promise.all(ids.map((id) => Promise.all([readTask(rt.redis, id), readStatus(rt.redis, id)]))),
  );
  for (const [i, [task, status]] of found.entries()) {
    if (!task || !maySee(task)) {
      throw invalid(`depends_on[${i}]`, `no task ${ids[i]} (never submitted, expired, or not yours)`);
    }
    // A task that runs once they finished, whatever the outcome, takes a failed one as finished.
    const failed = status !== undefined && isTerminal(status.state) && status.state !== "SUCCEEDED";
    if (failed && dependencyPolicy !== "all-finished") throw dependencyFailed(ids[i]!, status.state);
  }
}

/** FAILED_PRECONDITION: the task would only be cancelled, since `dependency` ended `state`. */
export function dependencyFailed(dependency: string, state: string): ConnectError {
  return new ConnectError(
    `depends_on: task ${dependency} is ${state}, so this task could never run (replay or resubmit that one first)`,
    Code.FailedPrecondition,
  );
}

/** Tasks cancelled per round at most; more wait for the next round. */
const ROUND_LIMIT = 100;

/**
 * Cancels the tasks whose dependency ended FAILED or CANCELLED (tasks_dependency_failed), as CancelTask would, with
 * the reason "dependency <id> <state>"; their own CANCELLED then settles the tasks waiting for them. An entry goes once
 * its task is cancelled or found finished; one that fails (Redis or NATS down) stays for the next round.
 */
export async function cancelFailedDependents(
  rt: Runtime,
  redisCall: RedisCall,
  count: (from: string) => void,
): Promise<number> {
  let cancelled = 0;
  for (const failure of await dependencyFailures(rt.redis, ROUND_LIMIT)) {
    const reason = dependencyCancelReason(failure.dependency, failure.state);
    const outcome = await cancelTask(rt, redisCall, failure.taskId, reason, count);
    if (outcome.result === "cancelled") {
      cancelled += 1;
      rt.log.info(
        { taskId: failure.taskId, dependency: failure.dependency, state: failure.state },
        "task cancelled: a dependency did not succeed",
      );
    }
    await forgetDependencyFailure(rt.redis, failure);
  }
  return cancelled;
}

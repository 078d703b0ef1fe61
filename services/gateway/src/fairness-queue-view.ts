/**
 * AdminService.GetFairnessQueue: one task type's fair share, for an operator asking whose turn it is and why a
 * tenant's tasks stay PENDING (taskctl fairness). Read from the type's sorted sets (pkg/store/src/fairness.ts).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { TaskTypes } from "@tm/flow";
import type { GetFairnessQueueRequest, GetFairnessQueueResponseSchema } from "@tm/proto";
import { readFairnessQueue } from "@tm/store";
import type { Redis } from "ioredis";
import type { RedisCall } from "./redis-call.js";
import { checkTaskType } from "./validation.js";

/** How many tasks and keys an answer lists (the counts are whole). */
export const FAIRNESS_LISTED = 100;

export async function getFairnessQueue(
  redis: Redis,
  redisCall: RedisCall,
  { windowOf, taskTypes }: { windowOf: (type: string) => number; taskTypes: TaskTypes },
  request: Pick<GetFairnessQueueRequest, "taskType">,
): Promise<MessageInitShape<typeof GetFairnessQueueResponseSchema>> {
  const type = checkTaskType("task_type", request.taskType, taskTypes);
  const view = await redisCall("reading the fairness queue", () => readFairnessQueue(redis, type, FAIRNESS_LISTED));
  return {
    window: windowOf(type),
    running: view.running,
    runningTotal: view.runningTotal,
    keys: view.keys.map((key) => ({
      key: key.key,
      waitingTotal: key.waiting,
      nextStart: key.nextStart,
      nextWeight: key.nextWeight,
    })),
    keysTotal: view.keysTotal,
    clock: view.clock,
  };
}

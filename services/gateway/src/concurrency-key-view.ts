/**
 * AdminService.GetConcurrencyKey: one concurrency key's tasks, for an operator asking why a tenant's tasks stay
 * PENDING (taskctl concurrency). Read from the key's two sorted sets (pkg/store/src/concurrency-keys.ts). With
 * GATEWAY_TASK_ISOLATION=caller a key is each application's own, so the request names whose (`owner`).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { concurrencyKeyProblem, type GetConcurrencyKeyRequest, type GetConcurrencyKeyResponseSchema } from "@tm/proto";
import { concurrencyRedisKey, readConcurrencyKey } from "@tm/store";
import type { Redis } from "ioredis";
import type { RedisCall } from "./redis-call.js";
import type { TaskIsolation } from "./task-isolation.js";
import { invalid } from "./validation.js";

/** How many task ids of each set an answer lists (the counts are whole). */
export const CONCURRENCY_TASKS_LISTED = 100;

export async function getConcurrencyKey(
  redis: Redis,
  redisCall: RedisCall,
  isolation: Pick<TaskIsolation, "enabled" | "concurrencyScopeOf">,
  request: Pick<GetConcurrencyKeyRequest, "key" | "owner">,
): Promise<MessageInitShape<typeof GetConcurrencyKeyResponseSchema>> {
  if (!request.key) throw invalid("key", "is required: the concurrency key its tasks were submitted with");
  const problem = concurrencyKeyProblem(request.key);
  if (problem) throw invalid("key", problem);
  if (isolation.enabled && !request.owner) {
    throw invalid(
      "owner",
      "is required with GATEWAY_TASK_ISOLATION=caller, where each application's keys are its own: the caller its tasks were submitted by (their submitted_by)",
    );
  }
  if (!isolation.enabled && request.owner) {
    throw invalid("owner", "applies only with GATEWAY_TASK_ISOLATION=caller: here every caller shares each key");
  }
  const scope = isolation.concurrencyScopeOf(request.owner || undefined);
  const key = concurrencyRedisKey({ concurrencyKey: request.key, ...(scope ? { concurrencyScope: scope } : {}) })!;
  return redisCall("reading the concurrency key", () => readConcurrencyKey(redis, key, CONCURRENCY_TASKS_LISTED));
}

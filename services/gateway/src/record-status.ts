/**
 * A status the gateway sets itself (PENDING of a submission, requeue or replay; CANCELLED; FAILED "not queued"):
 * written to Redis at once, through the status compare-and-set, so readers see it before the caller is answered, and
 * published on events.status only when it applied (the notifier then re-applies it, which the CAS ignores).
 */
import { publishStatus, StatusEventSchema, type StatusUpdate, statusEvent } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import { applyStatus, type StoredStatus, toStoredStatus } from "@tm/store";
import { dependency } from "./dependencies.js";
import type { RedisCall } from "./redis-call.js";

/** Failures come back as UNAVAILABLE naming the step; `redisCall` may bound the Redis write (redis-call.ts). */
export async function recordStatus(
  rt: Runtime,
  update: StatusUpdate,
  redisCall: RedisCall = (step, call) => dependency("Redis", step, call),
): Promise<{ applied: boolean; status: StoredStatus }> {
  const event = StatusEventSchema.parse(statusEvent(update));
  const applied = await redisCall("writing the status", () =>
    applyStatus(rt.redis, event, rt.config.TASK_RETENTION_SECONDS),
  );
  if (applied) await dependency("NATS", "publishing the status", () => publishStatus(rt.publisher, update));
  return { applied, status: toStoredStatus(event) };
}

/**
 * Tells a dependency outage from a failure of the message itself. A delivery that fails because Redis or NATS is
 * unreachable is held and run again by the consume loop (pkg/flow `isOutage`) rather than spending one of its
 * attempts: otherwise a Redis restart longer than the retry delays would dead-letter healthy messages.
 *
 * Only errors that the Redis and NATS clients raise for an unusable connection count. An error a task handler
 * raises for its own reasons (a refused HTTP call, a bad payload) is an ordinary failure and is retried as usual.
 */
import { isTransientNatsError } from "@tm/flow";

/** ioredis: the offline queue gave up, or the connection dropped with the command in flight. */
const REDIS_CONNECTION_MESSAGES = [
  "Connection is closed.",
  "Stream isn't writeable and enableOfflineQueue options is false",
  "Reached the max retries per request limit",
];
/**
 * Redis replies that mean "not serving (writes) now", not "this command is wrong": LOADING while the AOF is replayed
 * after a restart, READONLY from a demoted primary, OOM when `maxmemory` is reached under `noeviction` (what a task
 * store must run: evicting would drop tasks), NOREPLICAS when fewer replicas than `min-replicas-to-write` are in
 * sync. Held rather than retried as the message's failure, they cost no attempt and dead-letter nothing.
 */
const REDIS_NOT_READY_REPLIES = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY|OOM|NOREPLICAS)\b/;

export function isRedisOutage(error: unknown): boolean {
  const e = error as { name?: unknown; message?: unknown } | undefined;
  const name = String(e?.name ?? "");
  const message = String(e?.message ?? "");
  if (name === "MaxRetriesPerRequestError") return true;
  // Written, but not yet held by the replicas asked for (replica-acks.ts): run again once they (or a new primary) can.
  if (name === "ReplicaAckError") return true;
  if (REDIS_CONNECTION_MESSAGES.some((m) => message.startsWith(m))) return true;
  return name === "ReplyError" && REDIS_NOT_READY_REPLIES.test(message);
}

export function isNatsOutage(error: unknown): boolean {
  const code = String((error as { code?: unknown } | undefined)?.code ?? "");
  return code === "CONNECTION_CLOSED" || isTransientNatsError(error);
}

export function isOutage(error: unknown): boolean {
  return isRedisOutage(error) || isNatsOutage(error);
}

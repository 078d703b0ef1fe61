/**
 * Waits until Redis replicas hold a service's writes (Redis's WAIT), before the service acknowledges the message or
 * answers the call those writes were for. Redis replicates asynchronously: a failover promotes a replica that may
 * lack the primary's last writes (Sentinel's own window is about a second), and a task's status, result or audit
 * entry written in it would be lost with the message already acked. With REDIS_WAIT_REPLICAS set, a write not held
 * by that many replicas within REDIS_WAIT_TIMEOUT_MS fails as a Redis outage: the consume loop holds the delivery
 * and runs its handler again (every stage's writes are idempotent), by then against the new primary.
 *
 * WAIT covers every write sent before it on the connection, so callers share one: a caller whose writes were sent
 * while a WAIT was in flight waits for the next one, which all such callers share (at most two in flight).
 */
import type { Redis } from "ioredis";

export class ReplicaAckError extends Error {
  override readonly name = "ReplicaAckError";
}

export interface ReplicaAcks {
  /** Resolves once `replicas` replicas hold every write this connection sent before the call. */
  confirm(): Promise<void>;
}

/** No replicas asked for: confirm() resolves at once. */
export const NO_REPLICA_ACKS: ReplicaAcks = { confirm: () => Promise.resolve() };

export function replicaAcks(redis: Redis, replicas: number, timeoutMs: number): ReplicaAcks {
  if (replicas <= 0) return NO_REPLICA_ACKS;
  let inFlight: Promise<void> | undefined;
  let next: Promise<void> | undefined;

  const wait = async (): Promise<void> => {
    const acked = Number(await redis.wait(replicas, timeoutMs));
    if (acked < replicas) {
      throw new ReplicaAckError(
        `Redis replicas hold this write on ${acked} of the ${replicas} asked for (REDIS_WAIT_REPLICAS) after ` +
          `${timeoutMs} ms: a replica is down or behind, or a failover is under way`,
      );
    }
  };
  const start = (): Promise<void> => {
    const current = wait().finally(() => {
      if (inFlight === current) inFlight = undefined;
    });
    inFlight = current;
    return current;
  };

  return {
    confirm() {
      if (!inFlight) return start();
      // A WAIT sent before this caller's writes does not cover them: share the one sent after it.
      next ??= inFlight
        .catch(() => undefined)
        .then(() => {
          next = undefined;
          return start();
        });
      return next;
    },
  };
}

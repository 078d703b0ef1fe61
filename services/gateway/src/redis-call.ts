/**
 * Redis calls made on behalf of a gRPC caller. ioredis waits for as long as it takes: while the connection is being
 * re-established a command waits in the offline queue through the whole reconnect budget (tens of seconds), and a
 * command sent to a Redis that has stalled (CLIENT PAUSE, a long script, a failover, a hung host) waits until it
 * answers. A caller should hear UNAVAILABLE ("retry the call") well before that, as go-redis's 3 s read timeout
 * would tell it. So a call fails at once while the connection is lost, and after `timeoutMs` without an answer.
 *
 * The command itself is not withdrawn: it may still run once Redis answers. Every write the gateway makes for a
 * caller is safe to repeat or to leave done (a retried submission with its idempotency key completes the first).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type Redis, redisConnectionLost, withDeadline } from "@tm/kit";
import { dependency } from "./dependencies.js";

export type RedisCall = <T>(step: string, call: () => Promise<T>) => Promise<T>;

export function redisCaller(redis: Redis, timeoutMs: number): RedisCall {
  return <T>(step: string, call: () => Promise<T>): Promise<T> => {
    if (redisConnectionLost(redis)) {
      return Promise.reject(new ConnectError(`Redis unavailable while ${step}; retry the call`, Code.Unavailable));
    }
    return dependency("Redis", step, () =>
      withDeadline(
        call(),
        timeoutMs,
        () =>
          new ConnectError(
            `Redis unavailable while ${step}: no answer within ${timeoutMs} ms (GATEWAY_REDIS_TIMEOUT_MS); retry the call`,
            Code.Unavailable,
          ),
      ),
    );
  };
}

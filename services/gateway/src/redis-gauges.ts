/**
 * Gauges of the Redis server behind this gateway, from its INFO every REDIS_INFO_INTERVAL_MS: memory used and the
 * `maxmemory` limit (alert RedisMemoryHigh: at the limit, under noeviction, every write is refused), whether its
 * policy evicts (alert RedisEvicting: task records may be deleted to make room), and the replicas online (what
 * REDIS_WAIT_REPLICAS waits for). The gateway exports them because every deployment runs one; several replicas
 * export the same values, so dashboards and alerts take the max. A failed read (Redis down, a managed Redis that
 * refuses INFO) leaves the gauges out until the next read works, rather than showing stale values.
 */
import type { ObservableResult } from "@opentelemetry/api";
import type { Runtime } from "@tm/kit";
import { evicts, type RedisServerInfo, readRedisServerInfo } from "@tm/store";

export const REDIS_INFO_INTERVAL_MS = 15_000;

export interface RedisGauges {
  /** The latest INFO read, or undefined while none succeeded lately. */
  latest(): RedisServerInfo | undefined;
  stop(): void;
}

export function startRedisGauges(rt: Runtime, intervalMs = REDIS_INFO_INTERVAL_MS): RedisGauges {
  let latest: RedisServerInfo | undefined;
  const read = () =>
    readRedisServerInfo(rt.redis).then(
      (info) => {
        latest = info;
      },
      (error: unknown) => {
        latest = undefined;
        rt.log.debug({ err: error }, "could not read Redis's INFO");
      },
    );
  void read();
  const timer = setInterval(read, intervalMs);
  timer.unref();

  // Each gauge created by its literal name (the metric catalogue's check finds them so); observed only while a read
  // is fresh.
  const observe = (value: (info: RedisServerInfo) => number) => (result: ObservableResult) => {
    if (latest) result.observe(value(latest));
  };
  rt.meter
    .createObservableGauge("tm_redis_used_memory_bytes", {
      description: "Memory the Redis server uses (INFO used_memory)",
    })
    .addCallback(observe((i) => i.usedMemoryBytes));
  rt.meter
    .createObservableGauge("tm_redis_max_memory_bytes", {
      description: "The Redis server's maxmemory (0: no limit); at it, under noeviction, writes are refused",
    })
    .addCallback(observe((i) => i.maxMemoryBytes));
  rt.meter
    .createObservableGauge("tm_redis_evicting", {
      description: "1 when Redis's maxmemory-policy deletes keys to make room, else 0",
    })
    .addCallback(observe((i) => (evicts(i.maxMemoryPolicy) ? 1 : 0)));
  rt.meter
    .createObservableGauge("tm_redis_replicas_online", {
      description: "Replicas of the Redis server past their first sync",
    })
    .addCallback(observe((i) => i.replicasOnline));

  return {
    latest: () => latest,
    stop: () => clearInterval(timer),
  };
}

/**
 * Follows the fleet-wide limits operators set at run time (type_limits in Redis, through AdminService SetTypeLimit /
 * ClearTypeLimit, `taskctl limits`): read at start and every `pollMs`, merged with this worker's own
 * WORKER_TYPE_GLOBAL_CONCURRENCY and WORKER_TYPE_RATES, and applied to its TypeLimits. As for paused queues, polling
 * keeps every worker right after a missed message, a Redis restart or its own start, for one small read a second.
 * While Redis cannot be read the limits last applied stay in force.
 */
import type { Logger } from "@tm/kit";
import { readTypeLimits, type TypeLimitRecord, type TypeRate } from "@tm/store";
import type { Redis } from "ioredis";
import { type Follower, pollEvery } from "./poll.js";
import type { TypeLimits } from "./type-limits.js";

export interface FleetLimits {
  globalConcurrency: ReadonlyMap<string, number>;
  rates: ReadonlyMap<string, TypeRate>;
  /** Types an operator paused (only at run time: there is no variable for it). */
  paused?: ReadonlySet<string>;
}

/**
 * The fleet-wide limits in force: the worker's own, except for each type with a run-time entry, whose entry replaces
 * both of that type's (a kind it leaves out is no limit). Entries for types this worker has no handler for are
 * ignored (another worker build may run them).
 */
export function effectiveLimits(
  own: FleetLimits,
  runtime: readonly TypeLimitRecord[],
  knownTypes: readonly string[],
): FleetLimits {
  const globalConcurrency = new Map(own.globalConcurrency);
  const rates = new Map(own.rates);
  const paused = new Set<string>();
  for (const entry of runtime) {
    if (!knownTypes.includes(entry.type)) continue;
    if (entry.paused) paused.add(entry.type);
    if (entry.globalConcurrency === undefined) globalConcurrency.delete(entry.type);
    else globalConcurrency.set(entry.type, entry.globalConcurrency);
    if (entry.rate === undefined) rates.delete(entry.type);
    else rates.set(entry.type, entry.rate);
  }
  return { globalConcurrency, rates, paused };
}

/** A stable text of the limits, to tell a change from a poll that found the same. */
function fingerprint(limits: FleetLimits): string {
  const sorted = <V>(map: ReadonlyMap<string, V>) => [...map].sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([sorted(limits.globalConcurrency), sorted(limits.rates), [...(limits.paused ?? [])].sort()]);
}

export function followRuntimeLimits(
  redis: Redis,
  limits: Pick<TypeLimits, "update">,
  own: FleetLimits,
  knownTypes: readonly string[],
  pollMs: number,
  log: Logger,
): Follower {
  let applied = fingerprint(own);
  return pollEvery(pollMs, async (stopped) => {
    let runtime: TypeLimitRecord[];
    try {
      runtime = await readTypeLimits(redis);
    } catch (error) {
      log.debug({ err: error }, "could not read the run-time type limits; keeping the last applied");
      return;
    }
    if (stopped()) return;
    const next = effectiveLimits(own, runtime, knownTypes);
    const text = fingerprint(next);
    if (text === applied) return;
    applied = text;
    limits.update(next);
    log.info(
      {
        globalConcurrency: Object.fromEntries(next.globalConcurrency),
        rates: Object.fromEntries(next.rates),
        paused: [...(next.paused ?? [])],
        runtime: runtime.map((entry) => entry.type),
      },
      "fleet-wide type limits changed (taskctl limits): applied to every start from now on",
    );
  });
}

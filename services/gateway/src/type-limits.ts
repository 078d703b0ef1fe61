/**
 * AdminService SetTypeLimit / ClearTypeLimit / ListTypeLimits / PauseType / ResumeType (`taskctl limits`): fleet-wide
 * limits on a task type changed at run time, stored in `type_limits` (@tm/store) for every worker to read within
 * WORKER_PAUSE_POLL_MS. The gateway only checks and stores them; the workers enforce them
 * (services/worker/src/runtime-limits.ts). Each change is audited (`type_limit_set`, `type_limit_cleared`,
 * `type_paused`, `type_resumed`, no task id) and logged.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BUILT_IN_ONLY, publishAudit, type TaskTypes } from "@tm/flow";
import type { Runtime } from "@tm/kit";
import type { TypeLimit, TypeLimitSchema } from "@tm/proto";
import {
  clearTypeLimit,
  countTypeSlots,
  describeTypeBackoffs,
  readTypeLimits,
  setTypeLimit,
  setTypePaused,
  type TypeLimitRecord,
} from "@tm/store";
import type { RedisCall } from "./redis-call.js";
import { checkTaskType, invalid } from "./validation.js";

/** The workers' own bounds for the same settings (WORKER_TYPE_GLOBAL_CONCURRENCY, WORKER_TYPE_RATES). */
const MAX_CONCURRENCY = 10_000;
const MAX_PER_SECOND = 100_000;

/** The limits to store, each field checked and named; `set_at`, `set_by` and `running` are the gateway's. With
 *  `keepPause` the request's `paused` is ignored (the store keeps the type's own). */
export function parseTypeLimit(
  limit: TypeLimit | undefined,
  at: Date,
  by: string,
  { keepPause = false, taskTypes = BUILT_IN_ONLY }: { keepPause?: boolean; taskTypes?: TaskTypes } = {},
): TypeLimitRecord {
  if (!limit) throw invalid("limit", "is required");
  const type = checkTaskType("limit.type", limit.type, taskTypes);
  const { globalConcurrency, ratePerSecond, rateBurst } = limit;
  const paused = limit.paused && !keepPause;
  if (globalConcurrency > MAX_CONCURRENCY) {
    throw invalid(
      "limit.global_concurrency",
      `must be from 1 to ${MAX_CONCURRENCY} (0: none), not ${globalConcurrency}`,
    );
  }
  if (!(ratePerSecond >= 0 && ratePerSecond <= MAX_PER_SECOND)) {
    throw invalid(
      "limit.rate_per_second",
      `must be above 0 and at most ${MAX_PER_SECOND} (0: none), not ${ratePerSecond}`,
    );
  }
  if (rateBurst > MAX_CONCURRENCY) {
    throw invalid("limit.rate_burst", `must be from 1 to ${MAX_CONCURRENCY} (0: 1), not ${rateBurst}`);
  }
  if (rateBurst > 0 && ratePerSecond === 0) throw invalid("limit.rate_burst", "needs rate_per_second");
  if (globalConcurrency === 0 && ratePerSecond === 0 && !paused) {
    throw invalid(
      "limit",
      keepPause
        ? "sets neither global_concurrency nor rate_per_second, and keep_pause leaves the pause as it is (to pause: PauseType; to remove a type's limits: ClearTypeLimit)"
        : "sets none of global_concurrency, rate_per_second and paused (to remove a type's limits: ClearTypeLimit)",
    );
  }
  return {
    type,
    ...(globalConcurrency > 0 ? { globalConcurrency } : {}),
    ...(ratePerSecond > 0 ? { rate: { perSecond: ratePerSecond, burst: Math.max(1, rateBurst) } } : {}),
    ...(paused ? { paused: true } : {}),
    at: at.toISOString(),
    by,
  };
}

export function typeLimitToProto(record: TypeLimitRecord, running = 0): MessageInitShape<typeof TypeLimitSchema> {
  return {
    type: record.type,
    globalConcurrency: record.globalConcurrency ?? 0,
    ratePerSecond: record.rate?.perSecond ?? 0,
    rateBurst: record.rate?.burst ?? 0,
    ...(record.at ? { setAt: timestampFromDate(new Date(record.at)) } : {}),
    setBy: record.by,
    running,
    paused: record.paused === true,
  };
}

export function typeLimitHandlers(rt: Runtime, redis: RedisCall) {
  /** Audited after the change; a lost event is logged, not returned (the change stands). */
  async function audit(action: string, detail: Record<string, unknown>): Promise<void> {
    await publishAudit(rt.publisher, {
      service: rt.name,
      action,
      detail,
      discriminator: `${String(detail.type)}:${Date.now()}`,
    }).catch((error: unknown) => rt.log.warn({ err: error, action }, "could not publish a type limit's audit event"));
  }

  return {
    async setTypeLimit(limit: TypeLimit | undefined, caller: string | undefined, keepPause = false) {
      const parsed = parseTypeLimit(limit, new Date(), caller ?? "", { keepPause, taskTypes: rt.config.TASK_TYPES });
      const { previous, limit: record } = await redis("saving the type's limits", () =>
        setTypeLimit(rt.redis, parsed, { keepPause }),
      );
      const { type, globalConcurrency, rate, paused } = record;
      rt.log.info(
        { type, globalConcurrency, rate, paused, by: record.by },
        "task type limits set: the workers apply them within a poll",
      );
      await audit("type_limit_set", {
        type,
        ...(globalConcurrency === undefined ? {} : { globalConcurrency }),
        ...(rate === undefined ? {} : { rate }),
        ...(paused ? { paused } : {}),
        ...(caller === undefined ? {} : { setBy: caller }),
      });
      return {
        limit: typeLimitToProto(record),
        ...(previous ? { previous: typeLimitToProto(previous) } : {}),
      };
    },

    async clearTypeLimit(type: string, caller: string | undefined) {
      checkTaskType("type", type, rt.config.TASK_TYPES);
      const cleared = await redis("clearing the type's limits", () => clearTypeLimit(rt.redis, type));
      if (cleared) {
        rt.log.info({ type, by: caller ?? "" }, "task type limits cleared: the workers' own settings apply again");
        await audit("type_limit_cleared", { type, ...(caller === undefined ? {} : { clearedBy: caller }) });
      }
      return { cleared };
    },

    /** PauseType (true) / ResumeType (false): the pause alone, the type's other limits kept. */
    async setTypePaused(type: string, paused: boolean, caller: string | undefined) {
      checkTaskType("type", type, rt.config.TASK_TYPES);
      const { wasPaused, limit } = await redis(paused ? "pausing the type" : "resuming the type", () =>
        setTypePaused(rt.redis, type, paused, new Date().toISOString(), caller ?? ""),
      );
      if (wasPaused !== paused) {
        rt.log.info(
          { type, by: caller ?? "" },
          paused ? "task type paused: no worker starts one from its next poll" : "task type resumed",
        );
        await audit(paused ? "type_paused" : "type_resumed", {
          type,
          ...(caller === undefined ? {} : { [paused ? "pausedBy" : "resumedBy"]: caller }),
        });
      }
      return { wasPaused, ...(limit ? { limit: typeLimitToProto(limit) } : {}) };
    },

    async listTypeLimits() {
      const records = await redis("reading the type limits", () => readTypeLimits(rt.redis));
      const [running, backoffs] = await redis("counting fleet-wide slots and back-offs", () =>
        Promise.all([
          Promise.all(records.map((record) => (record.globalConcurrency ? countTypeSlots(rt.redis, record.type) : 0))),
          describeTypeBackoffs(rt.redis, rt.config.TASK_TYPES.names),
        ]),
      );
      return {
        limits: records.map((record, i) => typeLimitToProto(record, running[i])),
        backoffs: backoffs.map(({ type, remainingMs, by }) => ({
          type,
          remaining: durationFromMs(remainingMs),
          setBy: by,
        })),
      };
    },
  };
}

/**
 * CancelTask's include_children: a task's child tasks (task_children, a handler's ctx.submitTask), theirs, and so on,
 * level by level, each unfinished one cancelled as CancelTask cancels one (cancel-task.ts). Temporal's parent close
 * policy, asked for per call. Bounded (MAX_CANCELLED_DESCENDANTS) so that one call cannot walk a runaway fan-out for
 * ever; a child the caller may not see is neither cancelled nor walked through.
 */
import type { Runtime } from "@tm/kit";
import { childrenOf, readTask, type TaskRecord } from "@tm/store";
import { cancelTask } from "./cancel-task.js";
import type { RedisCall } from "./redis-call.js";

/** The most descendants one call reads (and so cancels). */
export const MAX_CANCELLED_DESCENDANTS = 1_000;
/** Cancellations run at once within a level. */
const CONCURRENCY = 32;

/** The reason a descendant is cancelled with. */
export function descendantReason(rootId: string, reason: string): string {
  return `parent ${rootId} cancelled${reason ? `: ${reason}` : ""}`;
}

/** Cancels the descendants of `rootId` the caller may see; answers how many it cancelled (unfinished ones). */
export async function cancelDescendants(
  rt: Runtime,
  redisCall: RedisCall,
  rootId: string,
  reason: string,
  maySee: (task: TaskRecord) => boolean,
  count: (from: string) => void,
): Promise<number> {
  const why = descendantReason(rootId, reason);
  const seen = new Set([rootId]);
  let cancelled = 0;
  let level = [rootId];
  while (level.length > 0 && seen.size <= MAX_CANCELLED_DESCENDANTS) {
    const next: string[] = [];
    for (const parent of level) {
      const left = MAX_CANCELLED_DESCENDANTS + 1 - seen.size;
      if (left <= 0) break;
      const { ids } = await redisCall("listing the task's children", () => childrenOf(rt.redis, parent, left));
      for (const id of ids) {
        if (seen.has(id)) continue;
        seen.add(id);
        next.push(id);
      }
    }
    const visible: string[] = [];
    for (let i = 0; i < next.length; i += CONCURRENCY) {
      const chunk = next.slice(i, i + CONCURRENCY);
      const outcomes = await Promise.all(
        chunk.map(async (id) => {
          const task = await redisCall("reading the task", () => readTask(rt.redis, id));
          if (!task || !maySee(task)) return false;
          visible.push(id);
          return (await cancelTask(rt, redisCall, id, why, count)).result === "cancelled";
        }),
      );
      cancelled += outcomes.filter(Boolean).length;
    }
    level = visible;
  }
  return cancelled;
}

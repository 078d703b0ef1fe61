/**
 * GATEWAY_TASK_ISOLATION: whether a TaskService caller sees only its own tasks. With "caller" (and authentication on),
 * a task belongs to the caller that submitted it (its `submitted_by`, which the gateway stamps and the client cannot
 * set): another caller's GetTask, StreamTaskStatus and CancelTask answer NOT_FOUND, exactly as for an unknown id, so a
 * task's existence does not leak; and idempotency keys are per caller, so two applications that happen to use the
 * same key get two tasks instead of one seeing the other's; so are concurrency keys (two applications naming the same
 * key get a limit each). Operators (admin callers) see every task. With "none" a
 * task id is a capability: whoever holds it may read or cancel the task.
 */
import { ConfigError } from "@tm/kit";
import type { CallContext } from "@tm/proto";
import type { TaskRecord } from "@tm/store";
import { callerOf, isAdminCaller } from "./auth/caller.js";

export type IsolationMode = "none" | "caller";

export interface TaskIsolation {
  readonly enabled: boolean;
  /** Whether the call's caller may see (read, follow, cancel) the task; `actingFor`: as that caller does (a child
   *  task's submission, on behalf of its parent's submitter). */
  maySee(ctx: CallContext, task: TaskRecord, actingFor?: string): boolean;
  /** The idempotency key as claimed in Redis: the caller's own when isolated. */
  idempotencyKeyOf(ctx: CallContext, key: string): string;
  /** Whether the caller's child tasks belong to their parent's submitter (GATEWAY_CHILD_SUBMITTERS). */
  submitsChildrenForParent(ctx: CallContext): boolean;
  /** Whose concurrency and fairness keys a task of `owner` (its submitted_by) counts under: the owner's own when isolated (two
   *  applications naming the same key then get a limit each); undefined when keys are shared. */
  concurrencyScopeOf(owner: string | undefined): string | undefined;
}

export function taskIsolation(
  mode: IsolationMode,
  authMode: string,
  childSubmitters: ReadonlySet<string> = new Set(),
): TaskIsolation {
  const submitsChildrenForParent = (ctx: CallContext) => {
    const caller = callerOf(ctx);
    return caller !== undefined && childSubmitters.has(caller);
  };
  if (mode === "none") {
    return {
      enabled: false,
      maySee: () => true,
      idempotencyKeyOf: (_ctx, key) => key,
      submitsChildrenForParent,
      concurrencyScopeOf: () => undefined,
    };
  }
  if (authMode === "none") {
    throw new ConfigError(
      "GATEWAY_TASK_ISOLATION=caller needs callers to tell apart: set GATEWAY_AUTH_MODE to api-key or jwt",
    );
  }
  return {
    enabled: true,
    maySee(ctx, task, actingFor) {
      return isAdminCaller(ctx) || task.metadata.submitted_by === (actingFor ?? callerOf(ctx));
    },
    submitsChildrenForParent,
    // The caller encoded, so that no caller name and key can spell another caller's (a JWT subject may hold ":").
    idempotencyKeyOf(ctx, key) {
      return `caller:${encodeURIComponent(callerOf(ctx) ?? "")}:${key}`;
    },
    // The task's owner, not the caller: a worker's child task counts under its parent's submitter's keys.
    concurrencyScopeOf(owner) {
      return `caller:${encodeURIComponent(owner ?? "")}`;
    },
  };
}

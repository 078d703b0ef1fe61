/**
 * With REDIS_WAIT_REPLICAS set, a call that changes something (CancelTask, a replay, a pause, a schedule, ...)
 * answers only once that many Redis replicas hold what it wrote (Redis's WAIT, rt.confirmRedisWrites), so that an
 * answered cancel cannot be undone by a failover that promotes a replica without it. A write not held in time fails
 * the call UNAVAILABLE naming the setting; every such call is safe to retry (the write was done, or is done again).
 *
 * Reads (Get*, List*) and streams are left alone: they wrote nothing to confirm, and WAIT would make them wait for
 * other calls' writes on the shared connection. SubmitTask and SubmitTasks confirm on their own path, before the task
 * is queued (task-service.ts), which is where it matters: a queued task whose record a failover lost.
 */
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { CallContext, ServiceHandlers } from "@tm/proto";
import { dependency } from "./dependencies.js";

type AnyHandler = (request: unknown, ctx: CallContext) => unknown;

const CONFIRMED_ON_THEIR_OWN_PATH = new Set(["submitTask", "submitTasks"]);

/** Whether a unary method changes state, by its name: every read of both services is Get* or List*. */
export function writesState(localName: string): boolean {
  return !/^(get|list)[A-Z]/.test(localName) && !CONFIRMED_ON_THEIR_OWN_PATH.has(localName);
}

export function confirmingWrites<S extends GenServiceMethods>(
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
  confirm: (() => Promise<void>) | undefined,
): ServiceHandlers<S> {
  if (!confirm) return handlers;
  const wrapped: Record<string, AnyHandler> = { ...(handlers as Record<string, AnyHandler>) };
  for (const method of service.methods) {
    const handler = wrapped[method.localName];
    if (method.methodKind !== "unary" || !handler || !writesState(method.localName)) continue;
    wrapped[method.localName] = async (request, ctx) => {
      const response = await handler(request, ctx);
      await dependency("Redis", "confirming the call's writes with the replicas", confirm);
      return response;
    };
  }
  return wrapped as ServiceHandlers<S>;
}

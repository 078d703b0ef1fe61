/**
 * The authenticated caller of a call, attached by the guard to the handler's CallContext. Kept beside the context
 * (a WeakMap) rather than in it, so the shared CallContext type of @tm/proto stays transport-only.
 */
import type { CallContext } from "@tm/proto";

const callers = new WeakMap<CallContext, string>();

export function attachCaller(ctx: CallContext, caller: string): void {
  callers.set(ctx, caller);
}

/** The caller's identity (api-key caller name or JWT sub); undefined when GATEWAY_AUTH_MODE=none. */
export function callerOf(ctx: CallContext): string | undefined {
  return callers.get(ctx);
}

/**
 * The authenticated caller of a call, attached by the guard to the handler's CallContext. Kept beside the context
 * (a WeakMap) rather than in it, so the shared CallContext type of @tm/proto stays transport-only.
 */
import type { CallContext } from "@tm/proto";

interface Caller {
  name: string;
  /** May use the AdminService (admin-access.ts): an operator, who also sees every caller's tasks. */
  admin: boolean;
}

const callers = new WeakMap<CallContext, Caller>();

export function attachCaller(ctx: CallContext, name: string, admin = false): void {
  callers.set(ctx, { name, admin });
}

/** The caller's identity (api-key caller name or JWT sub); undefined when GATEWAY_AUTH_MODE=none. */
export function callerOf(ctx: CallContext): string | undefined {
  return callers.get(ctx)?.name;
}

/** Whether the caller is an operator (GATEWAY_ADMIN_CALLERS, GATEWAY_JWT_ADMIN_SCOPE); false without authentication. */
export function isAdminCaller(ctx: CallContext): boolean {
  return callers.get(ctx)?.admin === true;
}

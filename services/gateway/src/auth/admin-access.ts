/**
 * Who may use the AdminService when callers authenticate: the callers named in GATEWAY_ADMIN_CALLERS, and (jwt) any
 * token carrying GATEWAY_JWT_ADMIN_SCOPE. An application's key submits and follows tasks; reading every task's
 * payload, replaying, discarding or requeuing is an operator's, so a stolen application key cannot do it. Nobody is
 * an admin unless configured (the gateway warns at start-up).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigError } from "@tm/kit";
import type { Identity } from "./authenticator.js";
import type { AuthConfig } from "./config.js";

export interface AdminAccess {
  /** Throws PERMISSION_DENIED, saying how to grant access, unless `identity` may use the AdminService. */
  check(identity: Identity): void;
  /** The same question, answered without throwing. */
  allows(identity: Identity): boolean;
  /** Whether anyone at all can be an admin (false: the AdminService refuses everyone). */
  readonly configured: boolean;
}

export function adminAccess(config: AuthConfig): AdminAccess {
  const callers = parseAdminCallers(config.GATEWAY_ADMIN_CALLERS);
  const scope = config.GATEWAY_JWT_ADMIN_SCOPE?.trim() || undefined;
  if (scope !== undefined && config.GATEWAY_AUTH_MODE !== "jwt") {
    throw new ConfigError(
      `GATEWAY_JWT_ADMIN_SCOPE applies to GATEWAY_AUTH_MODE=jwt (it is ${config.GATEWAY_AUTH_MODE}): name the admin callers in GATEWAY_ADMIN_CALLERS`,
    );
  }
  if (scope !== undefined && /\s/.test(scope)) {
    throw new ConfigError(`GATEWAY_JWT_ADMIN_SCOPE must be one scope without spaces (got "${scope.slice(0, 64)}")`);
  }
  const how = scope
    ? `list it in GATEWAY_ADMIN_CALLERS or give its token the scope "${scope}"`
    : "list it in GATEWAY_ADMIN_CALLERS";
  return {
    configured: callers.size > 0 || scope !== undefined,
    allows(identity) {
      return callers.has(identity.caller) || (scope !== undefined && identity.scopes.includes(scope));
    },
    check(identity) {
      if (this.allows(identity)) return;
      throw new ConnectError(
        `caller ${identity.caller} may not use the AdminService (operators only): ${how}`,
        Code.PermissionDenied,
      );
    },
  };
}

/** GATEWAY_ADMIN_CALLERS: comma-separated caller names, each as an API key's caller (JWT subjects are alike). */
export function parseAdminCallers(value: string | undefined): Set<string> {
  return parseCallerList("GATEWAY_ADMIN_CALLERS", value);
}

/** A list of callers in `variable` (GATEWAY_ADMIN_CALLERS, GATEWAY_CHILD_SUBMITTERS): comma-separated names. */
export function parseCallerList(variable: string, value: string | undefined): Set<string> {
  const callers = new Set<string>();
  for (const part of (value ?? "").split(",")) {
    const caller = part.trim();
    if (caller === "") continue;
    // A JWT subject may hold characters an API key's caller may not (an email, a URL): only length is checked.
    if (caller.length > 256) throw new ConfigError(`${variable}: a caller is at most 256 characters`);
    callers.add(caller);
  }
  return callers;
}

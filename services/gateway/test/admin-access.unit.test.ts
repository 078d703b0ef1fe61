import { Code } from "@connectrpc/connect";
import { ConfigError } from "@tm/kit";
import { describe, expect, test } from "vitest";
import { adminAccess, parseAdminCallers } from "../src/auth/admin-access.js";
import { authConfigShape } from "../src/auth/config.js";
import { rejection } from "./rejection.js";

type Config = Parameters<typeof adminAccess>[0];
const config = (overrides: Partial<Config>): Config => ({
  GATEWAY_AUTH_MODE: "api-key",
  GATEWAY_TASK_ISOLATION: "none",
  GATEWAY_RATE_LIMIT_PER_SEC: 100,
  GATEWAY_RATE_LIMIT_BURST: 200,
  ...overrides,
});
const who = (caller: string, scopes: string[] = []) => ({ caller, scopes });

describe("the AdminService's callers", () => {
  test("named in GATEWAY_ADMIN_CALLERS (trimmed, blanks ignored) pass; any other caller is PERMISSION_DENIED, told how", () => {
    const access = adminAccess(config({ GATEWAY_ADMIN_CALLERS: " ops , ,oncall" }));
    expect(access.configured).toBe(true);
    expect(() => access.check(who("ops"))).not.toThrow();
    expect(() => access.check(who("oncall"))).not.toThrow();
    const refused = rejection(() => access.check(who("reports", ["tasks.admin"])));
    expect(refused.code).toBe(Code.PermissionDenied);
    expect(refused.rawMessage).toBe(
      "caller reports may not use the AdminService (operators only): list it in GATEWAY_ADMIN_CALLERS",
    );
  });

  test("jwt: a token with GATEWAY_JWT_ADMIN_SCOPE passes whatever its subject; the refusal names the scope", () => {
    const access = adminAccess(config({ GATEWAY_AUTH_MODE: "jwt", GATEWAY_JWT_ADMIN_SCOPE: "tasks.admin" }));
    expect(access.configured).toBe(true);
    expect(() => access.check(who("alice@example.com", ["tasks.read", "tasks.admin"]))).not.toThrow();
    expect(rejection(() => access.check(who("svc-reports", ["tasks.read"]))).rawMessage).toBe(
      'caller svc-reports may not use the AdminService (operators only): list it in GATEWAY_ADMIN_CALLERS or give its token the scope "tasks.admin"',
    );
  });

  test("nothing configured: nobody passes (and the gateway says so at start-up: configured is false)", () => {
    const access = adminAccess(config({}));
    expect(access.configured).toBe(false);
    expect(rejection(() => access.check(who("ops"))).code).toBe(Code.PermissionDenied);
  });

  test("GATEWAY_JWT_ADMIN_SCOPE outside jwt mode, or with spaces, and an overlong caller stop the start, named", () => {
    expect(() => adminAccess(config({ GATEWAY_JWT_ADMIN_SCOPE: "tasks.admin" }))).toThrow(
      new ConfigError(
        "GATEWAY_JWT_ADMIN_SCOPE applies to GATEWAY_AUTH_MODE=jwt (it is api-key): name the admin callers in GATEWAY_ADMIN_CALLERS",
      ),
    );
    expect(() => adminAccess(config({ GATEWAY_AUTH_MODE: "jwt", GATEWAY_JWT_ADMIN_SCOPE: "a b" }))).toThrow(
      'GATEWAY_JWT_ADMIN_SCOPE must be one scope without spaces (got "a b")',
    );
    expect(() => parseAdminCallers("x".repeat(257))).toThrow(
      "GATEWAY_ADMIN_CALLERS: a caller is at most 256 characters",
    );
    expect([...parseAdminCallers(undefined)]).toEqual([]);
  });

  test("both variables are part of the gateway's configuration (an unknown variable would be ignored)", () => {
    expect(Object.keys(authConfigShape)).toEqual(
      expect.arrayContaining(["GATEWAY_ADMIN_CALLERS", "GATEWAY_JWT_ADMIN_SCOPE"]),
    );
  });
});

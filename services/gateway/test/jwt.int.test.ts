import { Code, ConnectError } from "@connectrpc/connect";
import { createAdminClient, createTaskClient } from "@tm/proto";
import { useInfra } from "@tm/testkit";
import { SignJWT } from "jose";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

const infra = useInfra();
const SECRET = "a-test-secret-that-is-long-enough-32";
const g = useGateway(infra, {
  GATEWAY_AUTH_MODE: "jwt",
  GATEWAY_JWT_SECRET: SECRET,
  GATEWAY_JWT_ISSUER: "tm-auth",
  GATEWAY_ADMIN_CALLERS: "oncall@example.com",
  GATEWAY_JWT_ADMIN_SCOPE: "tasks.admin",
  GATEWAY_RATE_LIMIT_PER_SEC: "1",
  GATEWAY_RATE_LIMIT_BURST: "2",
});

const tokenFor = (sub: string, issuer = "tm-auth", claims: Record<string, unknown> = {}) =>
  new SignJWT({ sub, ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(issuer)
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(SECRET));

async function codeOf(call: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  return call.then(
    () => ({ code: 0 as const, message: "" }),
    (error: unknown) => {
      const connectError = ConnectError.from(error);
      return { code: connectError.code, message: connectError.rawMessage };
    },
  );
}

test("jwt mode: the token's sub is the caller; a token from another issuer is refused without saying why", async () => {
  const client = createTaskClient({ baseUrl: g.gateway.baseUrl, apiKey: await tokenFor("svc-reports") });
  const { taskId } = await client.submitTask({ type: "echo" });
  const { task } = await client.getTask({ taskId });
  expect(task?.metadata.submitted_by).toBe("svc-reports");

  const foreign = createTaskClient({ baseUrl: g.gateway.baseUrl, apiKey: await tokenFor("svc-reports", "elsewhere") });
  expect(await codeOf(foreign.getTask({ taskId }))).toEqual({
    code: Code.Unauthenticated,
    message: "invalid credentials",
  });

  // The burst of 2 is used up (at 1 token/s a few quick calls meet the limit even on a slow machine); the metric
  // does not label by JWT subject (unbounded), only "jwt".
  let limited = { code: 0 as Code | 0, message: "" };
  for (let i = 0; i < 5 && limited.code !== Code.ResourceExhausted; i++)
    limited = await codeOf(client.getTask({ taskId }));
  expect(limited.code).toBe(Code.ResourceExhausted);
  expect(limited.message).toMatch(/^rate limit exceeded for caller svc-reports: 1 requests\/s/);
  const metrics = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
  expect(metrics).toMatch(/tm_rate_limited_total\{[^}]*caller="jwt"[^}]*\} 1/);
  expect(metrics).not.toContain('caller="svc-reports"');
});

test("jwt mode: the AdminService admits a token with the admin scope or a listed subject, and refuses others", async () => {
  const admin = async (sub: string, claims: Record<string, unknown> = {}) =>
    codeOf(
      createAdminClient({ baseUrl: g.gateway.baseUrl, apiKey: await tokenFor(sub, "tm-auth", claims) }).listDeadLetters(
        {},
      ),
    );
  expect(await admin("svc-ops", { scope: "tasks.read tasks.admin" })).toEqual({ code: 0, message: "" });
  expect(await admin("svc-ops-2", { scp: ["tasks.admin"] })).toEqual({ code: 0, message: "" });
  expect(await admin("oncall@example.com")).toEqual({ code: 0, message: "" });
  expect(await admin("svc-billing", { scope: "tasks.read" })).toEqual({
    code: Code.PermissionDenied,
    message:
      'caller svc-billing may not use the AdminService (operators only): list it in GATEWAY_ADMIN_CALLERS or give its token the scope "tasks.admin"',
  });
});

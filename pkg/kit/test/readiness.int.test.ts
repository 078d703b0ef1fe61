/**
 * /readyz answers from the dependencies themselves: 200 while NATS and Redis answer, 503 naming the one that does
 * not while it is down, and 200 again once it is back, without a restart. /healthz stays 200 throughout (the
 * process is alive; restarting it would not bring Redis back).
 */
import { serviceEnv, useInfra, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { defineService, type StartedService, startService } from "../src/service.js";

const infra = useInfra();
const idle = defineService({ name: "readiness-probe", opsPort: 0, async start() {} });
let service: StartedService<void>;

beforeAll(async () => {
  service = await startService(idle, serviceEnv(infra));
});
afterAll(async () => {
  await service?.stop();
});

async function probe(path: "/readyz" | "/healthz"): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${service.opsPort}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test.each([
  ["Redis", "redis", () => infra.redis],
  ["NATS", "nats", () => infra.nats],
] as const)("%s down: /readyz 503 naming it, /healthz 200; back: /readyz 200", async (_name, check, server) => {
  expect(await probe("/readyz")).toEqual({
    status: 200,
    body: { status: "ready", service: "readiness-probe", pid: process.pid, checks: { nats: "ok", redis: "ok" } },
  });
  await server().stop();
  try {
    let down = await probe("/readyz");
    await waitFor(`/readyz to report ${check} down`, async () => {
      down = await probe("/readyz");
      return down.status === 503;
    });
    expect(down.body.status).toBe("not ready");
    expect((down.body.checks as Record<string, string>)[check]).toMatch(/^failed/);
    expect((down.body.checks as Record<string, string>)[check === "nats" ? "redis" : "nats"]).toBe("ok");
    expect((await probe("/healthz")).status).toBe(200);
  } finally {
    await server().start();
  }
  await waitFor(`/readyz to report ${check} back`, async () => (await probe("/readyz")).status === 200, {
    timeoutMs: 15_000,
  });
});

import { ConfigError, type StartedService, startService } from "@tm/kit";
import { afterAll, beforeAll, expect, test } from "vitest";
import { enricher } from "../src/service.js";

let service: StartedService<Awaited<ReturnType<typeof enricher.start>>>;
let base: string;

beforeAll(async () => {
  service = await startService(enricher, { PORT: "0", LOG_LEVEL: "warn" });
  base = `http://127.0.0.1:${service.started.port}`;
});
afterAll(async () => {
  await service?.stop();
});

test("serves POST /enrich over HTTP and counts it in /metrics", async () => {
  const response = await fetch(`${base}/enrich`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      taskId: crypto.randomUUID(),
      type: "sleep",
      priority: "low",
      payload: { ms: 5 },
      createdAt: new Date().toISOString(),
    }),
  });
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ estimatedCost: 5, fieldCount: 1 });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  expect(metrics).toMatch(/tm_enrich_requests_total\{[^}]*status_code="200"[^}]*\} [1-9]/);
});

test("/healthz and /readyz answer 200 on the API port (no dependencies to check)", async () => {
  const health = await service.started.app.inject({ method: "GET", url: "/healthz" });
  expect(health.statusCode).toBe(200);
  expect(health.json()).toMatchObject({ status: "ok", service: "enricher" });
  const ready = await fetch(`${base}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toMatchObject({ status: "ready" });
});

test("a bad ENRICHER_FAILURE_RATE or ENRICHER_LATENCY_MS stops start-up naming the variable", async () => {
  await expect(startService(enricher, { PORT: "0", ENRICHER_FAILURE_RATE: "1.5" })).rejects.toThrow(
    /ENRICHER_FAILURE_RATE: must be between 0 and 1/,
  );
  await expect(startService(enricher, { PORT: "0", ENRICHER_LATENCY_MS: "soon" })).rejects.toBeInstanceOf(ConfigError);
  await expect(startService(enricher, { PORT: "0", ENRICHER_LATENCY_MS: "-1" })).rejects.toThrow(/ENRICHER_LATENCY_MS/);
});

test("a port already in use fails start-up with a clear message", async () => {
  await expect(startService(enricher, { PORT: String(service.started.port), LOG_LEVEL: "silent" })).rejects.toThrow(
    /port \d+ is already in use/,
  );
});

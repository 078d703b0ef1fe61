import { EnrichmentSchema, SIZE_LIMITS } from "@tm/flow";
import type { FastifyInstance } from "fastify";
import { afterEach, describe, expect, test } from "vitest";
import { BODY_LIMIT_BYTES, buildApp } from "../src/app.js";

const apps: FastifyInstance[] = [];
function app(options: Parameters<typeof buildApp>[0] = {}): FastifyInstance {
  const built = buildApp(options);
  apps.push(built);
  return built;
}
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function task(overrides: Record<string, unknown> = {}) {
  return {
    taskId: crypto.randomUUID(),
    type: "checksum",
    priority: "high",
    payload: { data: "abc", rounds: 2 },
    createdAt: "2026-01-02T03:04:05.000Z",
    ...overrides,
  };
}

function post(target: FastifyInstance, body: string, contentType = "application/json") {
  return target.inject({ method: "POST", url: "/enrich", headers: { "content-type": contentType }, payload: body });
}

describe("POST /enrich", () => {
  test("answers 200 with an enrichment matching the contract's schema", async () => {
    const sent = task();
    const response = await post(app(), JSON.stringify(sent));
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/application\/json/);
    const body = response.json();
    expect(EnrichmentSchema.parse(body)).toMatchObject({ fieldCount: 2, receivedAt: sent.createdAt });
    expect(body.estimatedCost).toBe(6);
    expect(body.payloadKeys).toEqual(["data", "rounds"]);
  });

  test("accepts optional metadata and a traceparent", async () => {
    const sent = task({
      metadata: { team: "a" },
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    expect((await post(app(), JSON.stringify(sent))).statusCode).toBe(200);
  });

  test("malformed JSON → 400 saying so", async () => {
    const response = await post(app(), '{"taskId": ');
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: "malformed JSON" });
    expect(response.json().message).toMatch(/JSON/i);
  });

  test("an empty JSON body → 400", async () => {
    const response = await post(app(), "");
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBeTruthy();
  });

  test("a missing field → 400 naming it", async () => {
    const { taskId: _omitted, ...rest } = task();
    const response = await post(app(), JSON.stringify(rest));
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: "invalid task" });
    expect(response.json().message).toMatch(/^taskId: /);
  });

  test("several bad fields → 400 naming each", async () => {
    const response = await post(app(), JSON.stringify(task({ taskId: "nope", priority: "urgent", createdAt: 5 })));
    expect(response.statusCode).toBe(400);
    const { message } = response.json();
    expect(message).toMatch(/taskId: must be a UUID/);
    expect(message).toMatch(/priority: /);
    expect(message).toMatch(/createdAt: /);
  });

  test("a payload that is not an object → 400 naming payload", async () => {
    for (const payload of ["text", [1, 2], null, 7]) {
      const response = await post(app(), JSON.stringify(task({ payload })));
      expect(response.statusCode).toBe(400);
      expect(response.json().message).toMatch(/payload: /);
    }
  });

  test("a JSON body that is not an object → 400", async () => {
    const response = await post(app(), "[1,2,3]");
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(/\(body\)/);
  });

  test("a non-JSON content type → 415", async () => {
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/xml"]) {
      const response = await post(app(), JSON.stringify(task()), contentType);
      expect(response.statusCode).toBe(415);
      expect(response.json()).toMatchObject({ error: "unsupported media type" });
    }
  });

  test("a body over 1 MiB → 413", async () => {
    const big = JSON.stringify(task({ payload: { blob: "x".repeat(BODY_LIMIT_BYTES) } }));
    const response = await post(app(), big);
    expect(response.statusCode).toBe(413);
    expect(response.json()).toMatchObject({ error: "body too large" });
  });

  test("a payload at the task schema's size limit is accepted", async () => {
    const blob = "x".repeat(SIZE_LIMITS.payloadBytes - 100);
    expect((await post(app(), JSON.stringify(task({ payload: { blob } })))).statusCode).toBe(200);
  });

  test("a body just under 1 MiB is read, then refused by the task schema naming the payload's limit", async () => {
    const skeleton = JSON.stringify(task({ payload: { blob: "" } }));
    const body = JSON.stringify(task({ payload: { blob: "x".repeat(BODY_LIMIT_BYTES - skeleton.length - 100) } }));
    const response = await post(app(), body);
    expect(response.statusCode).toBe(400);
    expect(JSON.stringify(response.json())).toMatch(/payload: must be at most 262144 bytes/);
  });

  test("failure rate 1 → every request answers 503 injected failure", async () => {
    const target = app({ failureRate: 1 });
    for (let i = 0; i < 3; i++) {
      const response = await post(target, JSON.stringify(task()));
      expect(response.statusCode).toBe(503);
      expect(response.json()).toEqual({ error: "injected failure" });
    }
  });

  test("a fractional failure rate fails the requests whose draw falls below it", async () => {
    const draws = [0.1, 0.9];
    const target = app({ failureRate: 0.5, random: () => draws.shift() ?? 0 });
    expect((await post(target, JSON.stringify(task()))).statusCode).toBe(503);
    expect((await post(target, JSON.stringify(task()))).statusCode).toBe(200);
  });

  test("the configured latency is added before the answer", async () => {
    const latencyMs = 120;
    const target = app({ latencyMs });
    await target.ready();
    const started = performance.now();
    const response = await post(target, JSON.stringify(task()));
    const elapsed = performance.now() - started;
    expect(response.statusCode).toBe(200);
    // Node timers have millisecond resolution and may fire up to 1 ms early relative to performance.now().
    expect(elapsed).toBeGreaterThanOrEqual(latencyMs - 1);
  });
});

describe("other routes", () => {
  test("an unknown route → 404 JSON", async () => {
    const response = await app().inject({ method: "GET", url: "/nope" });
    expect(response.statusCode).toBe(404);
    expect(response.json().message).toMatch(/GET \/nope/);
  });

  test("GET /enrich is not a route → 404", async () => {
    expect((await app().inject({ method: "GET", url: "/enrich" })).statusCode).toBe(404);
  });
});

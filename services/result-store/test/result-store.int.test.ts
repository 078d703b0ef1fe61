import { createPublisher, type Publisher, type ResultMessage, Subjects } from "@tm/flow";
import { type StartedService, startService } from "@tm/kit";
import { Keys, markCancelled } from "@tm/store";
import { freePort, useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { buildApp } from "../src/app.js";
import { resultStore } from "../src/service.js";

const infra = useInfra();
let nc: NatsConnection;
let redis: Redis;
let publisher: Publisher;
let service: StartedService<{ port: number }>;
let base: string;

beforeAll(async () => {
  service = await startService(resultStore, {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    LOG_LEVEL: "warn",
    PORT: "0",
  });
  base = `http://127.0.0.1:${service.started.port}`;
  nc = await connect({ servers: infra.nats.url });
  publisher = createPublisher(nc);
  redis = new Redis(infra.redis.url);
});
afterAll(async () => {
  await service?.stop();
  await nc?.drain();
  redis?.disconnect();
});

function result(taskId: string, output: unknown): ResultMessage {
  const now = new Date().toISOString();
  return {
    taskId,
    type: "echo",
    priority: "medium",
    output,
    attempts: 1,
    startedAt: now,
    completedAt: now,
    durationMs: 3,
    generation: 0,
  };
}

async function auditActions(taskId: string): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info("EVENTS", { subjects_filter: Subjects.audit });
  const actions: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const stored = await jsm.streams.getMessage("EVENTS", { seq }).catch(() => undefined);
    if (stored?.subject !== Subjects.audit) continue;
    const event = stored.json<{ taskId?: string; action: string }>();
    if (event.taskId === taskId) actions.push(event.action);
  }
  return actions;
}

test("a result is stored once (first write wins) and served with exactly the contract's fields", async () => {
  const taskId = crypto.randomUUID();
  await publisher.publish(Subjects.results, result(taskId, { n: 1 }), { msgId: `${taskId}:result:0` });
  // A second result for the same generation under another message id (not deduplicated by the stream).
  await publisher.publish(Subjects.results, result(taskId, { n: 2 }), { msgId: `${taskId}:result:0:again` });

  await waitFor("the result stored", async () => (await fetch(`${base}/results/${taskId}`)).status === 200);
  await waitFor("both results consumed", async () => {
    const info = await (await nc.jetstreamManager()).consumers.info("TASKS", "result-store-tasks-results");
    return info.num_pending === 0 && info.num_ack_pending === 0;
  });
  const response = await fetch(`${base}/results/${taskId}`);
  expect(response.headers.get("content-type")).toMatch(/application\/json/);
  const body = (await response.json()) as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(["attempts", "completedAt", "output", "taskId", "type"]);
  expect(body).toMatchObject({ taskId, type: "echo", output: { n: 1 }, attempts: 1 });
  await waitFor("the audit event", async () => (await auditActions(taskId)).includes("result_stored"));
  expect(await auditActions(taskId)).toEqual(["result_stored"]);
});

test("a result for a cancelled task is skipped", async () => {
  const taskId = crypto.randomUUID();
  await markCancelled(redis, taskId, "test");
  await publisher.publish(Subjects.results, result(taskId, { n: 1 }), { msgId: `${taskId}:result:0` });
  await waitFor("the skip audited", async () => (await auditActions(taskId)).includes("skipped_cancelled"));
  expect(await redis.exists(Keys.result(taskId))).toBe(0);
});

test("client mistakes get 4xx JSON naming the problem", async () => {
  const app = buildApp({ redis });
  const unknown = await app.inject({ method: "GET", url: `/results/${crypto.randomUUID()}` });
  expect(unknown.statusCode).toBe(404);
  expect(unknown.json()).toMatchObject({ error: "not_found" });

  const malformed = await app.inject({ method: "GET", url: "/results/not-a-uuid" });
  expect(malformed.statusCode).toBe(400);
  expect(malformed.json()).toEqual({ error: "invalid_id", message: "id: must be a UUID" });

  const noRoute = await app.inject({ method: "GET", url: "/nothing/here" });
  expect(noRoute.statusCode).toBe(404);
  expect(noRoute.json()).toMatchObject({ error: "not_found" });

  for (const url of ["/results/", "/results/%ZZ", `/results/${"a".repeat(5_000)}`, "/results/x?y=%"]) {
    const odd = await app.inject({ method: "GET", url });
    expect(odd.statusCode, url).toBeGreaterThanOrEqual(400);
    expect(odd.statusCode, url).toBeLessThan(500);
    expect(odd.json(), url).toHaveProperty("error");
  }

  const wrongMethod = await app.inject({ method: "POST", url: `/results/${crypto.randomUUID()}`, payload: "x" });
  expect(wrongMethod.statusCode).toBeLessThan(500);
  expect(wrongMethod.json()).toHaveProperty("error");
  await app.close();
});

test("ops routes share the API port", async () => {
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
  expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/tm_results_total/);
});

test("Redis down → 503 JSON, quickly", async () => {
  // Nothing listens on this port: the client keeps reconnecting, as it would during a Redis outage.
  const down = new Redis(`redis://127.0.0.1:${await freePort()}`, { maxRetriesPerRequest: 1 });
  down.on("error", () => undefined);
  const app = buildApp({ redis: down });
  const started = Date.now();
  const response = await app.inject({ method: "GET", url: `/results/${crypto.randomUUID()}` });
  expect(response.statusCode).toBe(503);
  expect(response.json()).toMatchObject({ error: "unavailable" });
  expect(Date.now() - started).toBeLessThan(2_500);
  await app.close();
  down.disconnect();
});

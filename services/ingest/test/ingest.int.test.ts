import { enricher } from "@tm/enricher";
import { createPublisher, type Publisher, Subjects, type TaskMessageInput } from "@tm/flow";
import { type StartedService, startService } from "@tm/kit";
import { markCancelled, saveTask, type TaskRecord } from "@tm/store";
import { useInfra, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ingest } from "../src/service.js";

const MAX_DELIVER = 5;
const infra = useInfra();
let nc: NatsConnection;
let redis: Redis;
let publisher: Publisher;
let ingestService: StartedService<unknown>;
let enricherService: StartedService<{ port: number }> | undefined;
let enricherPort: number;

/** Everything published on the subjects ingest writes to, in arrival order. */
const seen: Array<{ subject: string; body: Record<string, unknown> }> = [];

async function startEnricher(port: string): Promise<void> {
  enricherService = await startService(enricher, { PORT: port, LOG_LEVEL: "warn" });
  enricherPort = enricherService.started.port;
}

async function stopEnricher(): Promise<void> {
  await enricherService?.stop();
  enricherService = undefined;
}

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
  redis = new Redis(infra.redis.url);
  // Core subscriptions see every JetStream publish on these subjects; drain() ends them.
  for (const subject of ["events.>", Subjects.schedule]) {
    const sub = nc.subscribe(subject);
    void (async () => {
      for await (const msg of sub) seen.push({ subject: msg.subject, body: msg.json() });
    })();
  }
  await startEnricher("0");
  ingestService = await startService(ingest, {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    LOG_LEVEL: "silent",
    OPS_PORT: "0",
    ENRICHER_URL: `http://127.0.0.1:${enricherPort}`,
    ENRICHER_TIMEOUT_MS: "1000",
    FLOW_ACK_WAIT_MS: "2000",
    FLOW_MAX_DELIVER: String(MAX_DELIVER),
    // 3 s of retries in all: room for the enricher-comes-back test to restart it between attempts on a slow machine.
    FLOW_RETRY_DELAYS_MS: "300,600,900,1200",
  });
  publisher = createPublisher(nc);
});
afterAll(async () => {
  await ingestService?.stop();
  await stopEnricher();
  await nc?.drain();
  redis?.disconnect();
});

function newTask(overrides: Partial<TaskMessageInput> = {}): TaskMessageInput {
  return {
    taskId: crypto.randomUUID(),
    type: "sleep",
    priority: "high",
    payload: { ms: 10 },
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

async function submit(task: TaskMessageInput): Promise<string> {
  await publisher.publish(Subjects.ingest, task, { msgId: `${task.taskId}:ingest` });
  return task.taskId;
}

function eventsOf(taskId: string, subject: string) {
  return seen.filter((m) => m.subject === subject && m.body.taskId === taskId).map((m) => m.body);
}
const statuses = (taskId: string) => eventsOf(taskId, Subjects.status);
const audits = (taskId: string, action: string) => eventsOf(taskId, Subjects.audit).filter((a) => a.action === action);
const deadLetters = (taskId: string) => eventsOf(taskId, Subjects.deadletter);
const scheduled = (taskId: string) => eventsOf(taskId, Subjects.schedule);

test("a task comes out on tasks.schedule enriched, with INGESTED and an ingested audit", async () => {
  const taskId = await submit(newTask({ metadata: { team: "blue" } }));
  await waitFor("the enriched task on tasks.schedule", () => scheduled(taskId).length > 0);
  const [enriched] = scheduled(taskId);
  expect(enriched).toMatchObject({
    taskId,
    type: "sleep",
    priority: "high",
    payload: { ms: 10 },
    metadata: { team: "blue" },
    generation: 0,
    enrichment: { fieldCount: 1, estimatedCost: 10, payloadKeys: ["ms"] },
  });
  await waitFor("INGESTED status", () => statuses(taskId).some((s) => s.state === "INGESTED"));
  await waitFor("ingested audit", () => audits(taskId, "ingested").length === 1);
  const ready = await fetch(`http://127.0.0.1:${ingestService.opsPort}/readyz`);
  expect(ready.status).toBe(200);
});

test("a cancelled task is acknowledged and skipped", async () => {
  const task = newTask();
  await markCancelled(redis, task.taskId, "test");
  await submit(task);
  await waitFor("skipped_cancelled audit", () => audits(task.taskId, "skipped_cancelled").length === 1);
  // Processed in order on the same consumer: a later task getting through shows the cancelled one is done with.
  const later = await submit(newTask());
  await waitFor("a later task ingested", () => scheduled(later).length > 0);
  expect(scheduled(task.taskId)).toEqual([]);
  expect(statuses(task.taskId)).toEqual([]);
});

test("an older generation's message (the task requeued since) is acknowledged and skipped", async () => {
  const task = newTask({ generation: 0 });
  await saveTask(redis, { ...task, metadata: {}, generation: 1 } as TaskRecord);
  await submit(task);
  await waitFor("skipped_superseded audit", () => audits(task.taskId, "skipped_superseded").length === 1);
  expect(audits(task.taskId, "skipped_superseded")[0]).toMatchObject({ service: "ingest", detail: { generation: 0 } });
  const later = await submit(newTask());
  await waitFor("a later task ingested", () => scheduled(later).length > 0);
  expect(scheduled(task.taskId)).toEqual([]);
  expect(statuses(task.taskId)).toEqual([]);
  // The current generation's message goes through.
  await publisher.publish(Subjects.ingest, { ...task, generation: 1 }, { msgId: `${task.taskId}:ingest:1` });
  await waitFor("the current generation scheduled", () => scheduled(task.taskId).length === 1);
  expect(scheduled(task.taskId)[0]).toMatchObject({ generation: 1 });
});

test("an unknown type is dead-lettered as rejected after exactly one attempt, and FAILED", async () => {
  const taskId = await submit(newTask({ type: "teleport" }));
  await waitFor("dead letter", () => deadLetters(taskId).length > 0);
  const [dead] = deadLetters(taskId);
  expect(dead).toMatchObject({ reason: "rejected", attempts: 1, subject: Subjects.ingest });
  expect(dead?.error).toMatch(/unknown task type "teleport"/);
  await waitFor("FAILED status", () => statuses(taskId).some((s) => s.state === "FAILED"));
  expect(statuses(taskId).find((s) => s.state === "FAILED")).toMatchObject({ attempt: 1, error: dead?.error });
  expect(audits(taskId, "enrich_retry")).toEqual([]);
  expect(scheduled(taskId)).toEqual([]);
});

test("a schema-invalid message is dead-lettered as invalid", async () => {
  const taskId = crypto.randomUUID();
  const body = { taskId, type: "echo", priority: "urgent", payload: "nope", createdAt: "yesterday" };
  await nc.jetstream().publish(Subjects.ingest, JSON.stringify(body), { msgID: `${taskId}:raw` });
  await waitFor("invalid dead letter", () => deadLetters(taskId).length > 0);
  const [dead] = deadLetters(taskId);
  expect(dead).toMatchObject({ reason: "invalid", attempts: 1, message: body });
  expect(dead?.error).toMatch(/priority/);
  expect(dead?.error).toMatch(/payload/);
  expect(statuses(taskId)).toEqual([]);
});

test("enricher down: retried with enrich_retry audits, then FAILED and dead-lettered as exhausted", async () => {
  await stopEnricher(); // ENRICHER_URL now points at a closed port: connection refused
  const taskId = await submit(newTask());
  await waitFor("exhausted dead letter", () => deadLetters(taskId).length > 0, { timeoutMs: 10_000 });
  const [dead] = deadLetters(taskId);
  expect(dead).toMatchObject({ reason: "exhausted", attempts: MAX_DELIVER });
  expect(dead?.error).toMatch(/ECONNREFUSED/);
  const retries = audits(taskId, "enrich_retry");
  expect(retries.map((a) => (a.detail as { attempt: number }).attempt)).toEqual([1, 2, 3, 4]);
  await waitFor("FAILED status", () => statuses(taskId).some((s) => s.state === "FAILED"));
  expect(statuses(taskId).find((s) => s.state === "FAILED")).toMatchObject({ attempt: MAX_DELIVER });
  expect(audits(taskId, "failed")).toHaveLength(1);
  expect(scheduled(taskId)).toEqual([]);
});

test("a cancelled task is skipped at once even while the enricher is down (the cancel check decides first)", async () => {
  await stopEnricher(); // the enricher call, made side by side with the cancel check, is refused
  const task = newTask();
  await markCancelled(redis, task.taskId, "test");
  await submit(task);
  await waitFor("skipped_cancelled audit", () => audits(task.taskId, "skipped_cancelled").length === 1);
  expect(audits(task.taskId, "enrich_retry")).toEqual([]);
  expect(deadLetters(task.taskId)).toEqual([]);
  expect(statuses(task.taskId)).toEqual([]);
});

test("a task past its expires_after is not enriched: CANCELLED expired at once, even while the enricher is down", async () => {
  await stopEnricher(); // an enricher call would be refused and retried: none is made
  const dueAt = new Date(Date.now() - 10_000).toISOString();
  const task = newTask({ createdAt: dueAt, expiresAfterMs: 5_000 });
  await submit(task);
  await waitFor("the expired audit", () => audits(task.taskId, "expired").length === 1);
  expect(statuses(task.taskId)).toEqual([
    expect.objectContaining({
      state: "CANCELLED",
      source: "ingest",
      error: `expired: not started by ${new Date(Date.parse(dueAt) + 5_000).toISOString()} (expires_after 5000 ms)`,
    }),
  ]);
  expect(audits(task.taskId, "enrich_retry")).toEqual([]);
  expect(scheduled(task.taskId)).toEqual([]);
  expect(deadLetters(task.taskId)).toEqual([]);
  // A task due later than that is enriched as usual (here: retried while the enricher is down).
  const fresh = await submit(newTask({ expiresAfterMs: 60_000 }));
  await waitFor("the fresh task's enrich retry", () => audits(fresh, "enrich_retry").length > 0);
});

test("the enricher coming back before attempts run out lets the task through", async () => {
  await stopEnricher(); // independent of the test before: the enricher is down whatever ran first
  const taskId = await submit(newTask({ type: "echo", payload: { a: 1 } }));
  await waitFor("a first failed attempt", () => audits(taskId, "enrich_retry").length > 0);
  await startEnricher(String(enricherPort));
  await waitFor("the enriched task on tasks.schedule", () => scheduled(taskId).length > 0, { timeoutMs: 10_000 });
  await waitFor("INGESTED status", () => statuses(taskId).some((s) => s.state === "INGESTED"));
  expect(deadLetters(taskId)).toEqual([]);
  expect(statuses(taskId).some((s) => s.state === "FAILED")).toBe(false);
  expect(audits(taskId, "enrich_retry").length).toBeLessThan(MAX_DELIVER);
});

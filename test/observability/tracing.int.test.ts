/**
 * Tracing across the real pipeline, in one process: every service is started in-process with startService against
 * real nats-server and redis-server, spans go to an in-memory exporter (no auto-instrumentation: the spans checked
 * here are the ones our code makes, and `tm.service` tells the services apart). One task submitted over gRPC must
 * give ONE trace, with a publish and a process span per hop, each process span a child of its publish span, the
 * enricher call inside ingest's span, and a retried attempt as a second process span of the same trace.
 */
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createTaskClient, Priority, type StreamTaskStatusResponse, type TaskClient, TaskState } from "@tm/proto";
import { type NatsServer, REPO_ROOT, type RedisServer, startNats, startRedis, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startService, type Telemetry } from "../../pkg/kit/src/index.js";
import { startTelemetry } from "../../pkg/kit/src/telemetry-start.js";
import { audit } from "../../services/audit/src/service.js";
import { deadletter } from "../../services/deadletter/src/service.js";
import { enricher } from "../../services/enricher/src/service.js";
import { gateway } from "../../services/gateway/src/service.js";
import { ingest } from "../../services/ingest/src/service.js";
import { notifier } from "../../services/notifier/src/service.js";
import { resultStore } from "../../services/result-store/src/service.js";
import { scheduler } from "../../services/scheduler/src/service.js";
import { worker } from "../../services/worker/src/service.js";
import { collectStream, FAST_FLOW } from "../support/pipeline.js";

/** @opentelemetry/api's SpanKind and SpanStatusCode values, as plain numbers for readable assertions. */
const SpanKind = { SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 } as const;
const STATUS_ERROR = 2;

/** The handler module the docs give: its word-count-all submits child tasks. */
const EXAMPLE_HANDLERS = join(REPO_ROOT, "docs", "examples", "handlers.mjs");
const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let nats: NatsServer;
let redis: RedisServer;
const stops: Array<() => Promise<void>> = [];
let client: TaskClient;

beforeAll(async () => {
  // Registered before any service starts: startService then reuses this provider (telemetry() is idempotent).
  telemetry = startTelemetry({
    serviceName: "tracing-test",
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    instrument: false,
  });
  [nats, redis] = await Promise.all([startNats(), startRedis()]);
  const env: NodeJS.ProcessEnv = {
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    LOG_LEVEL: "error",
    OPS_PORT: "0",
    PORT: "0",
    GRPC_PORT: "0",
    ...FAST_FLOW,
    TASK_TYPES: "slugify,word-count,word-total,word-count-all",
  };
  const enricherService = await startService(enricher, env);
  stops.push(enricherService.stop);
  env.ENRICHER_URL = `http://127.0.0.1:${enricherService.started.port}`;
  for (const definition of [notifier, audit, deadletter, resultStore, ingest, scheduler]) {
    stops.push((await startService(definition as Parameters<typeof startService>[0], env)).stop);
  }
  const gatewayService = await startService(gateway, env);
  stops.push(gatewayService.stop);
  const gatewayUrl = `http://127.0.0.1:${gatewayService.started.grpcPort}`;
  client = createTaskClient({ baseUrl: gatewayUrl });
  // After the gateway, which its handlers' child tasks go through (the example's word-count-all submits some).
  stops.push(
    (await startService(worker, { ...env, WORKER_HANDLER_MODULES: EXAMPLE_HANDLERS, WORKER_GATEWAY_URL: gatewayUrl }))
      .stop,
  );
}, 60_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  await Promise.all([nats?.dispose(), redis?.dispose()]);
  await telemetry?.shutdown();
});

const attr = (span: ReadableSpan, key: string) => span.attributes[key];
const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

/**
 * Every span of the trace a task's spans belong to, once its last hops are in: the result stored and every status
 * event published in the trace processed by the notifier. The task's spans must never spread over several traces.
 */
async function traceOf(taskId: string): Promise<ReadableSpan[]> {
  let spans: ReadableSpan[] = [];
  await waitFor(
    `the spans of ${taskId}`,
    () => {
      const tagged = exporter.getFinishedSpans().filter((s) => attr(s, "task.id") === taskId);
      const traceIds = [...new Set(tagged.map((s) => s.spanContext().traceId))];
      expect(traceIds.length, "traces holding the task's spans").toBeLessThanOrEqual(1);
      spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceIds[0]);
      const statusPublished = named(spans, "events.status publish").length;
      return (
        named(spans, "tasks.results process").length > 0 &&
        statusPublished > 0 &&
        named(spans, "events.status process").length === statusPublished
      );
    },
    { timeoutMs: 20_000 },
  );
  return spans;
}

function expectHop(spans: ReadableSpan[], subject: string, consumer: string): ReadableSpan[] {
  const publishes = named(spans, `${subject} publish`);
  const processes = named(spans, `${subject} process`);
  expect(publishes.length, `${subject} publish spans`).toBeGreaterThan(0);
  expect(processes.length, `${subject} process spans`).toBeGreaterThan(0);
  const publishIds = new Set(publishes.map((s) => s.spanContext().spanId));
  for (const publish of publishes) {
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(publish.attributes).toMatchObject({ "messaging.system": "nats", "messaging.destination.name": subject });
    expect(attr(publish, "messaging.message.id")).toBeTruthy();
  }
  for (const process of processes) {
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.destination.name": subject,
      "messaging.operation.type": "process",
      "tm.service": consumer,
    });
    // The process span continues the publish span carried in the message.
    expect(publishIds.has(process.parentSpanContext?.spanId ?? ""), `${subject} process parent`).toBe(true);
    // Its wait in the stream is a sibling span under the same publish span, ending when the delivery arrived.
    const wait = named(spans, `${subject} wait`).find(
      (w) =>
        w.parentSpanContext?.spanId === process.parentSpanContext?.spanId &&
        attr(w, "messaging.nats.delivery_count") === attr(process, "messaging.nats.delivery_count"),
    );
    expect(wait, `${subject} wait span`).toBeDefined();
    expect(typeof attr(wait!, "messaging.nats.waited_ms")).toBe("number");
  }
  return processes;
}

describe("one trace per task across the pipeline", () => {
  test("client → gateway → ingest (+enricher) → scheduler → worker → result-store, and the status events", async () => {
    const { taskId } = await client.submitTask({ type: "echo", payload: { hi: 1 }, priority: Priority.HIGH });
    // Followed here rather than with collectStream: the time its last message arrived is wanted below.
    const updates: StreamTaskStatusResponse[] = [];
    let lastMessageAt = 0;
    for await (const update of client.streamTaskStatus({ taskId })) {
      updates.push(update);
      lastMessageAt = Date.now();
    }
    expect(updates.at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const spans = await traceOf(taskId);

    // The client's call is the root (this process registered an SDK: @tm/proto's clients then make a CLIENT span
    // per call), the gateway's handler span its child, and every publish of the task descends from that.
    const [call] = spans.filter((s) => !s.parentSpanContext);
    expect(spans.filter((s) => !s.parentSpanContext)).toHaveLength(1);
    expect(call?.name).toBe("taskmanager.v1.TaskService/SubmitTask");
    expect(call?.kind).toBe(SpanKind.CLIENT);
    expect(call?.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "taskmanager.v1.TaskService",
      "rpc.method": "SubmitTask",
      "rpc.grpc.status_code": 0,
    });
    const [root] = named(spans, "taskmanager.v1.TaskService/SubmitTask").filter((s) => s.kind === SpanKind.SERVER);
    expect(root?.parentSpanContext?.spanId).toBe(call?.spanContext().spanId);
    // The status stream's call (in a trace of its own: no span was active) lasted until its last message, not
    // until its response headers.
    const streamCall = exporter
      .getFinishedSpans()
      .filter((s) => s.name === "taskmanager.v1.TaskService/StreamTaskStatus" && s.kind === SpanKind.CLIENT)
      .at(-1);
    expect(streamCall, "the StreamTaskStatus call's span").toBeDefined();
    expect(attr(streamCall!, "rpc.grpc.status_code")).toBe(0);
    const endedAtMs = streamCall!.endTime[0] * 1000 + streamCall!.endTime[1] / 1e6;
    expect(endedAtMs).toBeGreaterThanOrEqual(lastMessageAt - 1);

    const [ingestProcess] = expectHop(spans, "tasks.ingest", "ingest");
    expectHop(spans, "tasks.schedule", "scheduler");
    expectHop(spans, "tasks.worker.high", "worker");
    expectHop(spans, "tasks.results", "result-store");
    expectHop(spans, "events.status", "notifier");
    expect(
      named(spans, "tasks.ingest publish").every((s) => s.parentSpanContext?.spanId === root?.spanContext().spanId),
    ).toBe(true);

    const enrich = named(spans, "enricher enrich");
    expect(enrich).toHaveLength(1);
    expect(enrich[0]?.parentSpanContext?.spanId).toBe(ingestProcess?.spanContext().spanId);
    expect(enrich[0]?.kind).toBe(SpanKind.CLIENT);

    // Publishers say who they are.
    const publishers = new Set(spans.filter((s) => s.name.endsWith(" publish")).map((s) => attr(s, "tm.service")));
    expect([...publishers].sort()).toEqual(expect.arrayContaining(["gateway", "ingest", "scheduler", "worker"]));
  });

  test("a caller that traces its own work gets the task's spans under its span (the client sends traceparent)", async () => {
    const caller = trace.getTracer("tracing-test-caller");
    const { taskId, parent } = await caller.startActiveSpan("caller work", async (span) => {
      try {
        const { taskId } = await client.submitTask({ type: "echo", payload: { traced: true } });
        return { taskId, parent: span.spanContext() };
      } finally {
        span.end();
      }
    });
    await collectStream(client, taskId);
    const spans = await traceOf(taskId);
    // The caller's trace, not a new one the gateway started: SubmitTask's span is the caller span's child.
    expect(spans.every((s) => s.spanContext().traceId === parent.traceId)).toBe(true);
    const [submit] = named(spans, "taskmanager.v1.TaskService/SubmitTask").filter((s) => s.kind === SpanKind.CLIENT);
    expect(submit?.parentSpanContext?.spanId).toBe(parent.spanId);
    const [served] = named(spans, "taskmanager.v1.TaskService/SubmitTask").filter((s) => s.kind === SpanKind.SERVER);
    expect(served?.parentSpanContext?.spanId).toBe(submit?.spanContext().spanId);
    expect(spans.filter((s) => !s.parentSpanContext).map((s) => s.name)).toEqual(["caller work"]);
  });

  test("a handler's child tasks (ctx.submitTasks) continue its trace: their SubmitTasks spans are children of its attempt", async () => {
    const { taskId } = await client.submitTask({ type: "word-count-all", payload: { texts: ["a b", "c"] } });
    expect((await collectStream(client, taskId)).at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const spans = await traceOf(taskId);
    // The children's hops are in this trace too: the parent's attempt is the process span that carries its id.
    const attempt = expectHop(spans, "tasks.worker.medium", "worker").find((s) => attr(s, "task.id") === taskId);
    const { task: parent } = await client.getTask({ taskId });
    expect(parent?.traceId).toBe(attempt?.spanContext().traceId);
    // Three children (two parts and their total) in one SubmitTasks call made within the attempt's span: each task's
    // span continues the call's trace (a batch from anything but a handler starts one trace per task).
    // The worker's call (CLIENT) and the gateway's handling of it (SERVER).
    const calls = named(spans, "taskmanager.v1.TaskService/SubmitTasks").filter((s) => s.kind === SpanKind.SERVER);
    expect(calls).toHaveLength(1);
    const [workerCall] = named(spans, "taskmanager.v1.TaskService/SubmitTasks").filter(
      (s) => s.kind === SpanKind.CLIENT,
    );
    expect(calls[0]?.parentSpanContext?.spanId).toBe(workerCall?.spanContext().spanId);
    const submits = named(spans, "SubmitTasks task");
    expect(submits).toHaveLength(3);
    expect(submits.every((s) => s.parentSpanContext?.spanId === calls[0]?.spanContext().spanId)).toBe(true);
    const inAttempt = (span: ReadableSpan): boolean => {
      for (let at: ReadableSpan | undefined = span; at; ) {
        const parentId: string | undefined = at.parentSpanContext?.spanId;
        if (parentId === attempt?.spanContext().spanId) return true;
        at = spans.find((s) => s.spanContext().spanId === parentId);
      }
      return false;
    };
    expect(submits.every(inAttempt)).toBe(true);
    // GetTask of each child: its parent, and the parent's trace.
    const childIds = [...new Set(spans.map((s) => attr(s, "task.id")).filter((id) => id && id !== taskId))];
    expect(childIds).toHaveLength(3);
    for (const childId of childIds) {
      const { task } = await client.getTask({ taskId: String(childId) });
      expect(task).toMatchObject({ parentTaskId: taskId, traceId: parent?.traceId });
    }
  });

  test("a refused call's span says so: the gRPC status code and the gateway's message", async () => {
    const unknown = crypto.randomUUID();
    await expect(client.getTask({ taskId: unknown })).rejects.toThrow(/not found/);
    const refused = exporter
      .getFinishedSpans()
      .find(
        (s) =>
          s.name === "taskmanager.v1.TaskService/GetTask" &&
          s.kind === SpanKind.CLIENT &&
          s.status.code === STATUS_ERROR,
      );
    expect(refused?.attributes["rpc.grpc.status_code"]).toBe(Code.NotFound);
    expect(refused?.status.message).toBe(`task ${unknown} not found`);
  });

  test("a retried task shows both attempts as process spans of the same trace", async () => {
    const { taskId } = await client.submitTask({ type: "flaky", payload: { failures: 1 }, priority: Priority.LOW });
    const updates = await collectStream(client, taskId);
    expect(updates.at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const spans = await traceOf(taskId);

    const attempts = expectHop(spans, "tasks.worker.low", "worker").sort(
      (a, b) => Number(attr(a, "messaging.nats.delivery_count")) - Number(attr(b, "messaging.nats.delivery_count")),
    );
    expect(attempts.map((s) => attr(s, "messaging.nats.delivery_count"))).toEqual([1, 2]);
    expect(attempts[0]?.status.code, "the first attempt failed").toBe(STATUS_ERROR);
    expect(attempts[1]?.status.code).not.toBe(STATUS_ERROR);
    // Both deliveries are of the one message the scheduler published.
    expect(attempts[0]?.parentSpanContext?.spanId).toBe(attempts[1]?.parentSpanContext?.spanId);
  });
});

/**
 * Traces and logs as deployed: every service a spawned process started with `node --import @tm/kit/telemetry`,
 * exporting spans over OTLP/HTTP to a receiver in this test, logging at debug level.
 *   - spans of every service arrive with the right `service.name` resource, and each task's spans share one trace
 *     (the preload, the ESM loader hook and the exporter work);
 *   - the auto-instrumentations really produce spans under ESM: gRPC server (gateway), HTTP client (ingest → enricher),
 *     HTTP server (enricher), ioredis;
 *   - @fastify/otel: the enricher's POST /enrich and the result-store's GET /results/:id get a request span and a
 *     handler span carrying the route, and the http server span is named by it; /healthz, /readyz and /metrics
 *     (the ops routes on the same apps) get no span at all;
 *   - every log line that mentions the task carries the task's trace_id and a span_id;
 *   - with many tasks in flight, each Redis span is in the trace of the task it works on (auto-pipelining sends the
 *     commands of many tasks in one batch).
 */
import { randomBytes } from "node:crypto";
import { Priority, TaskState } from "@tm/proto";
import { waitFor } from "@tm/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline } from "../support/pipeline.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./otlp-receiver.js";

/** The services a succeeded task passes through (the deadletter service only sees a failed one). */
const ECHO_SERVICES = ["gateway", "ingest", "enricher", "scheduler", "worker", "result-store", "notifier", "audit"];

let receiver: OtlpReceiver;
let pipeline: Pipeline;
const lines: Array<{ service: string; line: string }> = [];
let echoId: string;
let failId: string;
/** The trace of the test's GET /results/:id (sent with its own traceparent, so its spans are easy to find). */
const READ_TRACE_ID = randomBytes(16).toString("hex");
const OPS_PATH = /^\/(healthz|readyz|metrics)/;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  pipeline = await startPipeline({
    // A short batch delay so spans arrive within the test's patience (default 5 s).
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100", LOG_LEVEL: "debug" },
  });
  for (const [service, spawned] of pipeline.services) spawned.process.onLine((line) => lines.push({ service, line }));
  echoId = (await pipeline.client.submitTask({ type: "echo", payload: { a: 1 }, priority: Priority.HIGH })).taskId;
  failId = (await pipeline.client.submitTask({ type: "fail", payload: {}, priority: Priority.LOW })).taskId;
  const [echoEnd, failEnd] = await Promise.all(
    [echoId, failId].map(async (id) => (await collectStream(pipeline.client, id)).at(-1)?.status?.state),
  );
  expect([echoEnd, failEnd]).toEqual([TaskState.SUCCEEDED, TaskState.FAILED]);
  // The ops routes a probe or Prometheus calls, on the two fastify apps that serve them next to their API...
  for (const base of [pipeline.enricherUrl, pipeline.resultStoreUrl]) {
    for (const path of ["/healthz", "/readyz", "/metrics"]) await (await fetch(`${base}${path}`)).text();
  }
  // ... then a result read: once its spans are in, any span of those calls would be too (a process exports its spans
  // in order, within OTEL_BSP_SCHEDULE_DELAY = 100 ms).
  const resultUrl = `${pipeline.resultStoreUrl}/results/${echoId}`;
  await waitFor("the echo task's result", async () => (await fetch(resultUrl)).status === 200);
  const traceparent = `00-${READ_TRACE_ID}-${randomBytes(8).toString("hex")}-01`;
  expect((await fetch(resultUrl, { headers: { traceparent } })).status).toBe(200);
}, 90_000);

afterAll(async () => {
  await pipeline?.dispose();
  await receiver?.close();
});

/** The one trace holding the task's spans, once the given services have all exported a span into it. */
async function traceOf(taskId: string, services: readonly string[]): Promise<ReceivedSpan[]> {
  let spans: ReceivedSpan[] = [];
  await waitFor(
    `spans of ${taskId} from ${services.join(", ")}`,
    () => {
      const traceIds = new Set(receiver.spans.filter((s) => s.attributes["task.id"] === taskId).map((s) => s.traceId));
      expect(traceIds.size, "traces holding the task's spans").toBeLessThanOrEqual(1);
      spans = receiver.spans.filter((s) => traceIds.has(s.traceId));
      const present = new Set(spans.map((s) => s.service));
      return services.every((s) => present.has(s));
    },
    { timeoutMs: 20_000 },
  );
  return spans;
}

describe("telemetry of spawned services", () => {
  test("every service exports spans under its service.name, joined into the task's one trace", async () => {
    const echo = await traceOf(echoId, ECHO_SERVICES);
    const failed = await traceOf(failId, ["gateway", "worker", "deadletter"]);
    expect(new Set(echo.map((s) => s.traceId)).size).toBe(1);
    expect(new Set(failed.map((s) => s.traceId)).size).toBe(1);
    expect(echo[0]?.traceId).not.toBe(failed[0]?.traceId);
    // One root: the gateway's gRPC server span (the client sent no trace context).
    const roots = echo.filter((s) => !s.parentSpanId);
    expect(roots.map((s) => `${s.service} ${s.name}`)).toEqual(["gateway grpc.taskmanager.v1.TaskService/SubmitTask"]);
    // Every other span's parent is in the trace: nothing dangles.
    const ids = new Set(echo.map((s) => s.spanId));
    expect(echo.filter((s) => s.parentSpanId && !ids.has(s.parentSpanId)).map((s) => s.name)).toEqual([]);
  });

  test("a SubmitTasks batch: each task its own trace, rooted at a span linked to the batch call's", async () => {
    const { outcomes } = await pipeline.client.submitTasks({
      tasks: [1, 2, 3].map((n) => ({ type: "echo", payload: { n } })),
    });
    const ids = outcomes.map((o) => (o.outcome.case === "accepted" ? o.outcome.value.taskId : ""));
    expect(ids.every(Boolean)).toBe(true);
    const traces = await Promise.all(ids.map((id) => traceOf(id, ["gateway", "ingest", "worker", "result-store"])));
    expect(new Set(traces.map((spans) => spans[0]?.traceId)).size).toBe(3);
    for (const [index, spans] of traces.entries()) {
      const roots = spans.filter((s) => !s.parentSpanId);
      expect(roots.map((s) => `${s.service} ${s.name}`)).toEqual(["gateway SubmitTasks task"]);
      expect(roots[0]?.attributes["tm.batch.index"]).toBe(index);
      // Linked to the call's gRPC server span, in a trace of its own.
      const [linked] = roots[0]?.links ?? [];
      const call = receiver.spans.find((s) => s.spanId === linked?.spanId);
      expect(call?.name).toBe("grpc.taskmanager.v1.TaskService/SubmitTasks");
      expect(call?.traceId).toBe(linked?.traceId);
      expect(call?.traceId).not.toBe(spans[0]?.traceId);
    }
  });

  test("the auto-instrumentations work under ESM: grpc, http client and server, and ioredis spans in the trace", async () => {
    const spans = await traceOf(echoId, ECHO_SERVICES);
    const scopes = (service: string) => new Set(spans.filter((s) => s.service === service).map((s) => s.scope));
    expect(scopes("gateway")).toContain("@opentelemetry/instrumentation-grpc");
    expect(scopes("ingest")).toContain("@opentelemetry/instrumentation-http");
    expect(scopes("enricher")).toContain("@opentelemetry/instrumentation-http");
    expect(scopes("result-store")).toContain("@opentelemetry/instrumentation-ioredis");
    // The worker's own Redis call (the cancel check) is in the task's trace, although the echo and the fail task ran
    // side by side and auto-pipelining may have sent both checks in one batch (pkg/kit/src/redis-context.ts).
    const workerRedis = spans.filter(
      (s) => s.service === "worker" && s.scope === "@opentelemetry/instrumentation-ioredis",
    );
    expect(workerRedis.map((s) => s.name)).toContain("exists");
    // Script calls (status, audit, result) record their SHA and keys, not their arguments: no task data (events,
    // the result's output) reaches the trace backend through a Redis span (pkg/kit/src/redis-statement.ts).
    const redisStatements = spans
      .filter((s) => s.scope === "@opentelemetry/instrumentation-ioredis")
      .map((s) => ({ name: s.name, text: String(s.attributes["db.query.text"]) }));
    const scripts = redisStatements.filter((s) => s.name === "evalsha");
    expect(scripts.length, "evalsha spans in the task's trace").toBeGreaterThanOrEqual(5);
    for (const { text } of scripts)
      expect(text).toMatch(/^evalsha [0-9a-f]{40} \d+ \S+( \S+)* \[\d+ other arguments\]$/);
    for (const { text } of redisStatements) expect(text).not.toMatch(/[{}"]/);
    // The enricher's server span continues ingest's HTTP client span, under ingest's explicit enricher span.
    const server = spans.find((s) => s.service === "enricher" && s.kind === 2 /* SERVER in OTLP */);
    const client = spans.find((s) => s.spanId === server?.parentSpanId);
    expect(client?.service).toBe("ingest");
    expect(spans.find((s) => s.spanId === client?.parentSpanId)?.name).toBe("enricher enrich");
  });

  test("under concurrency each Redis span is in the trace of the task whose keys it names (auto-pipelining batches commands of many tasks)", async () => {
    const burst = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const { taskId } = await pipeline.client.submitTask({
          type: "echo",
          payload: { i },
          priority: Priority.MEDIUM,
        });
        await collectStream(pipeline.client, taskId);
        return taskId;
      }),
    );
    const traces = new Map<string, string>();
    for (const taskId of burst) traces.set(taskId, (await traceOf(taskId, ECHO_SERVICES))[0]?.traceId ?? "");
    const taskTraces = new Set(traces.values());
    const named = receiver.spans
      .filter((s) => s.scope === "@opentelemetry/instrumentation-ioredis" && taskTraces.has(s.traceId))
      .map((s) => ({ span: s, taskId: burst.find((id) => String(s.attributes["db.query.text"]).includes(id)) }))
      .filter((s) => s.taskId !== undefined);
    expect(named.length, "Redis spans in the burst's traces that name a task").toBeGreaterThanOrEqual(burst.length * 5);
    const misplaced = named
      .filter(({ span, taskId }) => span.traceId !== traces.get(taskId as string))
      .map(({ span, taskId }) => `${span.service} ${span.name} of ${taskId}`);
    expect(misplaced, "Redis spans in another task's trace").toEqual([]);
  });

  test("@fastify/otel: request and handler spans with the route under the http server span; none for ops routes", async () => {
    const fastifySpans = (spans: ReceivedSpan[], service: string) =>
      spans.filter((s) => s.service === service && s.scope === "@fastify/otel");
    let read: ReceivedSpan[] = [];
    await waitFor(
      "the result read's spans",
      () => {
        read = receiver.spans.filter((s) => s.traceId === READ_TRACE_ID);
        return fastifySpans(read, "result-store").length === 2;
      },
      { timeoutMs: 20_000 },
    );
    const echo = await traceOf(echoId, ECHO_SERVICES);
    for (const [service, spans, method, route] of [
      ["enricher", echo, "POST", "/enrich"],
      ["result-store", read, "GET", "/results/:id"],
    ] as const) {
      // The http instrumentation's SERVER span (kind 2 in OTLP), named by the route @fastify/otel reported.
      const server = spans.find((s) => s.service === service && s.kind === 2);
      expect(server?.name, service).toBe(`${method} ${route}`);
      expect(server?.attributes["http.route"], service).toBe(route);
      // Under it @fastify/otel's request span (INTERNAL: kind 1) and under that the route handler's span; no span
      // per lifecycle hook (instrumentHooks: false), though the enricher has an onResponse hook.
      const own = fastifySpans(spans, service);
      expect(own, `${service}: ${own.map((s) => s.name).join(", ")}`).toHaveLength(2);
      const request = own.find((s) => s.name === "request");
      expect(request?.kind, service).toBe(1);
      expect(request?.parentSpanId, service).toBe(server?.spanId);
      expect(request?.attributes["http.route"], service).toBe(route);
      const handler = own.find((s) => s.attributes["fastify.type"] === "request-handler");
      expect(handler?.name, service).toMatch(/^handler - /);
      expect(handler?.parentSpanId, service).toBe(request?.spanId);
      expect(handler?.attributes["http.route"], service).toBe(route);
    }
    // The result-store's Redis read runs inside the handler span.
    const handlerId = read.find((s) => s.attributes["fastify.type"] === "request-handler")?.spanId;
    expect(
      read.filter((s) => s.scope === "@opentelemetry/instrumentation-ioredis").map((s) => s.parentSpanId),
    ).toContain(handlerId);
    // Health, readiness and metrics requests (polled at start-up, and called above) made no span anywhere.
    const paths = (s: ReceivedSpan) => [
      s.attributes["url.path"],
      s.attributes["http.route"],
      s.attributes["http.target"],
    ];
    const ops = receiver.spans.filter((s) => paths(s).some((p) => OPS_PATH.test(String(p ?? ""))));
    expect(ops.map((s) => `${s.service} ${s.scope} ${s.name}`)).toEqual([]);
  });

  test("every log line about the task carries its trace_id and a span_id", async () => {
    const [traceId] = new Set((await traceOf(echoId, ECHO_SERVICES)).map((s) => s.traceId));
    const about = lines
      .filter(({ line }) => line.includes(echoId))
      .map(({ service, line }) => ({ ...parse(line), service }));
    // At debug level the gateway logs the accepted task and each consuming stage each delivery it handled.
    expect(new Set(about.map((l) => l.service))).toEqual(
      new Set(["gateway", "ingest", "scheduler", "worker", "result-store", "notifier", "audit"]),
    );
    for (const line of about) {
      expect(line.trace_id, `${line.service}: ${line.msg}`).toBe(traceId);
      expect(line.span_id, `${line.service}: ${line.msg}`).toMatch(/^[0-9a-f]{16}$/);
    }
    const handled = about.filter((l) => l.msg === "delivery handled");
    expect(handled.every((l) => l.taskId === echoId && typeof l.subject === "string" && l.attempt === 1)).toBe(true);
  });
});

interface LogLine {
  msg?: string;
  trace_id?: string;
  span_id?: string;
  taskId?: string;
  subject?: string;
  attempt?: number;
}

function parse(line: string): LogLine {
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    throw new Error(`not a JSON log line: ${line}`);
  }
}

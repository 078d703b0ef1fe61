/**
 * The metrics the dashboards and alerts use, as the deployed services export them: a pipeline of spawned
 * processes runs known tasks (3 echo at high priority, 1 fail at low, 1 flaky at medium that fails its first attempt,
 * 1 echo at low delayed by DELAY_MS),
 * then each service's /metrics is scraped and the catalogue's series are found with the right labels and values.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Priority, type SubmitTaskRequestSchema, TaskState } from "@tm/proto";
import { freePort, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { findMetric, METRIC_CATALOGUE } from "../../pkg/configcheck/src/index.js";
import { collectStream, type Pipeline, type ServiceName, startPipeline } from "../support/pipeline.js";
import { parsePrometheusText, type Sample, sumOf } from "./prometheus-text.js";

/** The known run's delayed task waits this long: far longer than its trip through the pipeline once released. */
const DELAY_MS = 3_000;

/** Labels every series may carry besides the catalogue's: the histogram bucket bound and the OTel scope. */
const EXPOSITION_LABELS = new Set(["le", "otel_scope_name", "otel_scope_version", "otel_scope_schema_url"]);
const CONSUMING = ["ingest", "scheduler", "worker", "result-store", "notifier", "audit", "deadletter"] as const;

let pipeline: Pipeline;
/** The gateway's web port (Connect, gRPC-Web), fixed so the test can call it. */
let webPort: number;

beforeAll(async () => {
  webPort = await freePort();
  pipeline = await startPipeline({
    perService: {
      gateway: { GATEWAY_WEB_PORT: String(webPort), GATEWAY_DELAYED_POLL_MS: "100" },
      // Per-type limits, so that their gauges are exported (the flaky task reserves its starts in Redis, each attempt of
      // the fail task takes a fleet-wide slot and gives it back).
      worker: {
        WORKER_TYPE_CONCURRENCY: "checksum=8",
        WORKER_TYPE_RATES: "flaky=1000/s:10",
        WORKER_TYPE_GLOBAL_CONCURRENCY: "fail=2",
      },
    },
  });
  const tasks: Array<MessageInitShape<typeof SubmitTaskRequestSchema>> = [
    ...Array.from({ length: 3 }, (_, i) => ({ type: "echo", payload: { i }, priority: Priority.HIGH })),
    { type: "fail", payload: {}, priority: Priority.LOW },
    { type: "flaky", payload: { failures: 1 }, priority: Priority.MEDIUM },
    {
      type: "echo",
      payload: { delayed: 1 },
      priority: Priority.LOW,
      schedule: { case: "delay", value: create(DurationSchema, { seconds: BigInt(DELAY_MS / 1000) }) },
    },
  ];
  const ids = await Promise.all(tasks.map(async (t) => (await pipeline.client.submitTask(t)).taskId));
  const ends = await Promise.all(
    ids.map(async (id) => (await collectStream(pipeline.client, id)).at(-1)?.status?.state),
  );
  expect(ends).toEqual([
    TaskState.SUCCEEDED,
    TaskState.SUCCEEDED,
    TaskState.SUCCEEDED,
    TaskState.FAILED,
    TaskState.SUCCEEDED,
    TaskState.SUCCEEDED,
  ]);
}, 90_000);

afterAll(async () => {
  await pipeline?.dispose();
});

async function scrape(service: ServiceName): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${pipeline.services.get(service)!.opsPort}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

/** Scrapes until `check` passes: a metric is recorded just after the status a test waited for is published. */
async function eventually(service: ServiceName, check: (samples: Sample[]) => void): Promise<void> {
  let lastError: unknown;
  await waitFor(
    `${service} metrics`,
    async () => {
      try {
        check(await scrape(service));
        return true;
      } catch (error) {
        lastError = error;
        return false;
      }
    },
    { timeoutMs: 15_000 },
  ).catch(() => {
    throw lastError;
  });
}

describe("metrics of a known run", () => {
  test("gateway: tm_tasks_submitted_total by type, priority and outcome", async () => {
    const samples = await scrape("gateway");
    expect(sumOf(samples, "tm_tasks_submitted_total", { type: "echo", priority: "high", outcome: "accepted" })).toBe(3);
    expect(sumOf(samples, "tm_tasks_submitted_total", { type: "fail", priority: "low", outcome: "accepted" })).toBe(1);
    expect(sumOf(samples, "tm_tasks_submitted_total", { type: "flaky", priority: "medium" })).toBe(1);
    expect(sumOf(samples, "tm_tasks_submitted_total", { type: "echo", priority: "low" })).toBe(1);
    // The delayed task, released once, a little after its time.
    expect(sumOf(samples, "tm_tasks_delayed_released_total", { outcome: "released" })).toBe(1);
    expect(sumOf(samples, "tm_tasks_delayed_released_total", { outcome: "returned" })).toBe(0);
    expect(sumOf(samples, "tm_tasks_delayed_release_lateness_ms_count")).toBe(1);
  });

  test("worker: processed, end-to-end, attempt duration, in flight, dead letters, retries", async () => {
    await eventually("worker", (samples) => {
      const processed = (where: Record<string, string>) => sumOf(samples, "tm_tasks_processed_total", where);
      expect(processed({ type: "echo", priority: "high", outcome: "succeeded" })).toBe(3);
      expect(processed({ type: "fail", priority: "low", outcome: "retried" })).toBe(4);
      expect(processed({ type: "fail", priority: "low", outcome: "failed" })).toBe(1);
      expect(processed({ type: "flaky", priority: "medium", outcome: "retried" })).toBe(1);
      expect(processed({ type: "flaky", priority: "medium", outcome: "succeeded" })).toBe(1);
      expect(sumOf(samples, "tm_task_end_to_end_ms_count")).toBe(6);
      expect(sumOf(samples, "tm_task_end_to_end_ms_count", { type: "echo", priority: "high" })).toBe(3);
      expect(sumOf(samples, "tm_task_end_to_end_ms_count", { type: "fail", priority: "low" })).toBe(1);
      // The delayed task counts from its release time, not its submission: its requested wait is not latency.
      expect(sumOf(samples, "tm_task_end_to_end_ms_count", { type: "echo", priority: "low" })).toBe(1);
      expect(sumOf(samples, "tm_task_end_to_end_ms_sum", { type: "echo", priority: "low" })).toBeLessThan(DELAY_MS);
      // The failed task waited out four retry delays (100+150+200+250 ms in FAST_FLOW) before it ended.
      expect(sumOf(samples, "tm_task_end_to_end_ms_sum", { type: "fail" })).toBeGreaterThanOrEqual(700);
      expect(sumOf(samples, "tm_task_duration_ms_count", { type: "echo" })).toBe(4);
      expect(sumOf(samples, "tm_task_duration_ms_count", { type: "fail" })).toBe(5);
      expect(sumOf(samples, "tm_tasks_dead_lettered_total", { subject: "tasks.worker.low", reason: "exhausted" })).toBe(
        1,
      );
      // Retries by stage, subject, and the task's type and priority.
      const retried = (where: Record<string, string>) => sumOf(samples, "tm_tasks_retried_total", where);
      expect(retried({ stage: "worker", subject: "tasks.worker.low" })).toBe(4);
      expect(retried({ stage: "worker", subject: "tasks.worker.low", type: "fail", priority: "low" })).toBe(4);
      expect(retried({ stage: "worker", subject: "tasks.worker.medium", type: "flaky", priority: "medium" })).toBe(1);
      expect(retried({ stage: "worker" })).toBe(5);
      // The other types start at zero on every worker subject (at that subject's priority only).
      const series = samples.filter((s) => s.name === "tm_tasks_retried_total");
      expect(series.find((s) => s.labels.subject === "tasks.worker.high" && s.labels.type === "flaky")?.value).toBe(0);
      expect(series.filter((s) => s.labels.subject === "tasks.worker.high").map((s) => s.labels.priority)).toEqual(
        Array(5).fill("high"),
      );
      expect(samples.some((s) => s.name === "tm_worker_in_flight")).toBe(true);
      expect(sumOf(samples, "tm_worker_in_flight")).toBe(0);
    });
  });

  test("every consuming stage: stage processing time and consumer lag gauges", async () => {
    for (const service of CONSUMING) {
      await eventually(service, (samples) => {
        expect(sumOf(samples, "tm_stage_processing_ms_count", { stage: service }), service).toBeGreaterThan(0);
        const pending = samples.filter((s) => s.name === "tm_consumer_pending");
        const ackPending = samples.filter((s) => s.name === "tm_consumer_ack_pending");
        expect(pending.length, `${service} tm_consumer_pending`).toBeGreaterThan(0);
        expect(ackPending.length, `${service} tm_consumer_ack_pending`).toBeGreaterThan(0);
        // Everything was handled: no backlog is left.
        expect(pending.every((s) => s.value === 0)).toBe(true);
      });
    }
  });

  test("notifier: tm_status_updates_total; enricher: http_server_request_duration in seconds", async () => {
    const notifier = await scrape("notifier");
    expect(sumOf(notifier, "tm_status_updates_total", { state: "SUCCEEDED", outcome: "applied" })).toBe(5);
    const enricher = await scrape("enricher");
    // The /enrich calls, with the route @fastify/otel gives the http instrumentation.
    const enrich = { http_request_method: "POST", http_response_status_code: "200", http_route: "/enrich" };
    expect(sumOf(enricher, "http_server_request_duration_count", enrich)).toBe(6);
    expect(sumOf(enricher, "http_server_request_duration_sum", enrich)).toBeLessThan(5); // seconds, not ms
    // Ops routes (/metrics is being scraped right now, /readyz was polled at start-up) are not measured.
    expect(sumOf(enricher, "http_server_request_duration_count")).toBe(6);
  });

  test("gateway: a request the web port rejects before any RPC handler is counted by HTTP status", async () => {
    // connect-node refuses an unsupported content type before interceptors run, so tm_rpc_server_duration_ms cannot
    // see it (OBSERVABILITY.md); the web port is a node http server, so the http instrumentation's metric does.
    const response = await fetch(`http://127.0.0.1:${webPort}/taskmanager.v1.TaskService/SubmitTask`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "not a request",
    });
    expect(response.status).toBe(415);
    await eventually("gateway", (samples) => {
      const refused = { http_request_method: "POST", http_response_status_code: "415" };
      expect(sumOf(samples, "http_server_request_duration_count", refused)).toBe(1);
      expect(samples.some((s) => s.name.startsWith("tm_rpc_server_duration_ms") && s.labels.server === "web")).toBe(
        false,
      );
    });
  });

  test("every catalogued series a service exports carries exactly the catalogue's labels", async () => {
    const seen = new Set<string>();
    for (const service of ["gateway", "enricher", ...CONSUMING] as ServiceName[]) {
      for (const sample of await scrape(service)) {
        const metric = findMetric(sample.name);
        if (!metric) continue;
        seen.add(metric.name);
        const labels = Object.keys(sample.labels).filter((l) => !EXPOSITION_LABELS.has(l));
        // http_route only where a route matched: not on a 404, nor on the gateway's web port (connect-node routes
        // by itself), whose series carry every other label.
        const expected = metric.labels.filter((l) => l !== "http_route" || labels.includes("http_route"));
        expect(labels.sort(), `${service} ${sample.name}`).toEqual(expected.sort());
        expect(metric.services, `${sample.name} exported by ${service}`).toEqual(
          expect.arrayContaining(metric.name.startsWith("http_") ? [] : [service]),
        );
      }
    }
    // Not those exported only in a case this run does not have (TLS, creds files): their own tests check them.
    const expected = METRIC_CATALOGUE.filter((m) => m.name !== "up" && !m.onlyWhen).map((m) => m.name);
    expect([...seen].sort()).toEqual(expected.sort());
  });
});

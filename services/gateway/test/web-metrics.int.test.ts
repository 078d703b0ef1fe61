/**
 * The web port's calls (Connect and gRPC-Web, connect-node) are recorded in tm_rpc_server_duration_ms like the gRPC
 * port's, with the same method and code values and `server` telling the two apart: a real gateway against real NATS
 * and Redis, unary calls and server streams over the web port (one ending by itself, one failing, one the client
 * leaves), then the exact series on /metrics.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { type StreamTaskStatusResponse, TaskService, TaskState } from "@tm/proto";
import { useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

const METRIC = "tm_rpc_server_duration_ms";
const TASK_SERVICE = "taskmanager.v1.TaskService";
/** How long the test holds each stream open before it ends: the recorded duration must cover it. */
const HELD_MS = 300;

const infra = useInfra();
const g = useGateway(infra);

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/**
 * The samples of one metric on the gateway's /metrics. (test/observability/prometheus-text.ts reads the whole format,
 * but lies outside this package's rootDir; a label value here never contains a quote or a brace.)
 */
async function scrape(name: string): Promise<Sample[]> {
  const text = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, "gm"))].map(([, labels = "", value]) => ({
    labels: Object.fromEntries([...labels.matchAll(/([a-z_]+)="([^"]*)"/g)].map(([, k = "", v = ""]) => [k, v])),
    value: Number(value),
  }));
}

const key = (labels: Record<string, string>) => `${labels.server} ${labels.method} ${labels.code}`;

/** A metric's series by key (a histogram's buckets also by `le`). */
async function snapshot(name: string): Promise<Record<string, number>> {
  const now: Record<string, number> = {};
  for (const { labels, value } of await scrape(name)) {
    now[labels.le === undefined ? key(labels) : `${key(labels)} le=${labels.le}`] = value;
  }
  return now;
}

/**
 * What a metric's series gained since `before`: the process's meter provider is shared by every service started in
 * it (and, in a test worker that runs several files, by their gateways too), so the test counts its own calls.
 */
async function seriesSince(name: string, before: Record<string, number>): Promise<Record<string, number>> {
  const gained: Record<string, number> = {};
  for (const [k, value] of Object.entries(await snapshot(name))) {
    if (value !== (before[k] ?? 0)) gained[k] = value - (before[k] ?? 0);
  }
  return gained;
}

test("unary calls and server streams over the web port are timed by method, code and server", async () => {
  const web = `http://127.0.0.1:${g.gateway.started.webPort}`;
  // What the web console uses (Connect protocol, JSON) and what a gRPC-Web browser client uses.
  const connect = createClient(
    TaskService,
    createConnectTransport({ baseUrl: web, httpVersion: "1.1", useBinaryFormat: false }),
  );
  const grpcWeb = createClient(TaskService, createGrpcWebTransport({ baseUrl: web, httpVersion: "1.1" }));
  const grpc = g.client;
  const countsBefore = await snapshot(`${METRIC}_count`);
  const bucketsBefore = await snapshot(`${METRIC}_bucket`);
  const sumsBefore = await snapshot(`${METRIC}_sum`);

  // Unary over the web port: one accepted, one rejected.
  const { taskId } = await connect.submitTask({ type: "echo" });
  const invalid = await connect.submitTask({ type: "teleport" }).catch((error: unknown) => ConnectError.from(error));
  expect(invalid).toMatchObject({ code: Code.InvalidArgument });

  // A gRPC-Web stream that ends by itself: the task is cancelled (a terminal state) while the stream is open.
  const seen: StreamTaskStatusResponse[] = [];
  const streamed = (async () => {
    for await (const message of grpcWeb.streamTaskStatus({ taskId })) seen.push(message);
  })();
  await waitFor("the current status", () => seen.length >= 1);
  await new Promise((resolve) => setTimeout(resolve, HELD_MS));
  await connect.cancelTask({ taskId, reason: "metrics test" });
  await streamed;
  expect(seen.map((m) => m.status?.state)).toEqual([TaskState.PENDING, TaskState.CANCELLED]);

  // A stream that fails (unknown task), and one the client leaves after its first message.
  const unknown = await (async () => {
    for await (const _ of connect.streamTaskStatus({ taskId: crypto.randomUUID() })) break;
  })().catch((error: unknown) => ConnectError.from(error));
  expect(unknown).toMatchObject({ code: Code.NotFound });
  const { taskId: leftId } = await grpc.submitTask({ type: "echo" });
  const leave = new AbortController();
  const left = (async () => {
    for await (const _ of connect.streamTaskStatus({ taskId: leftId }, { signal: leave.signal })) {
      setTimeout(() => leave.abort(), HELD_MS);
    }
  })().catch((error: unknown) => ConnectError.from(error));
  expect(await left).toMatchObject({ code: Code.Canceled });

  // The gRPC port's call (the submission above) and every web call, each once, under its own server. A stream is
  // recorded when it ends on the server, just after the client saw it end: poll.
  const expected = {
    [`grpc ${TASK_SERVICE}/SubmitTask OK`]: 1,
    [`web ${TASK_SERVICE}/SubmitTask OK`]: 1,
    [`web ${TASK_SERVICE}/SubmitTask INVALID_ARGUMENT`]: 1,
    [`web ${TASK_SERVICE}/CancelTask OK`]: 1,
    [`web ${TASK_SERVICE}/StreamTaskStatus OK`]: 1,
    [`web ${TASK_SERVICE}/StreamTaskStatus NOT_FOUND`]: 1,
    [`web ${TASK_SERVICE}/StreamTaskStatus CANCELLED`]: 1,
  };
  let counts: Record<string, number> = {};
  await waitFor(
    "every call recorded",
    async () => {
      counts = await seriesSince(`${METRIC}_count`, countsBefore);
      return Object.keys(counts).length >= Object.keys(expected).length;
    },
    { timeoutMs: 5_000 },
  ).catch(() => undefined);
  expect(counts).toEqual(expected);

  // The same label names on both servers, and the histogram's buckets under the same labels plus `le`.
  for (const series of await scrape(`${METRIC}_count`)) {
    const labels = Object.keys(series.labels).filter((l) => !l.startsWith("otel_scope_"));
    expect(labels.sort(), key(series.labels)).toEqual(["code", "method", "server"]);
  }
  const buckets = await seriesSince(`${METRIC}_bucket`, bucketsBefore);
  for (const [k, count] of Object.entries(expected)) expect(buckets[`${k} le=+Inf`], k).toBe(count);

  // Streams are timed to their end, not to their first message.
  const sums = await seriesSince(`${METRIC}_sum`, sumsBefore);
  expect(sums[`web ${TASK_SERVICE}/StreamTaskStatus OK`]).toBeGreaterThanOrEqual(HELD_MS);
  expect(sums[`web ${TASK_SERVICE}/StreamTaskStatus CANCELLED`]).toBeGreaterThanOrEqual(HELD_MS);
});

/** The client against a real enricher (in-process, real HTTP): how each kind of failure is classified. */
import { createServer, type Server } from "node:http";
import { enricher } from "@tm/enricher";
import { EnrichmentSchema, PermanentError, type TaskMessage } from "@tm/flow";
import { startService } from "@tm/kit";
import { freePort } from "@tm/testkit";
import { afterAll, expect, test } from "vitest";
import { createEnricherClient, EnricherRejectedError, EnricherUnavailableError } from "../src/enricher-client.js";

const stops: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  await Promise.all(stops.map((stop) => stop()));
});

async function startEnricher(env: Record<string, string> = {}): Promise<string> {
  const service = await startService(enricher, { PORT: "0", LOG_LEVEL: "silent", ...env });
  stops.push(() => service.stop());
  return `http://127.0.0.1:${service.started.port}`;
}

/** Listens on a free loopback port (closed after the file's tests) and returns the port. */
async function listenLocally(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  stops.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as { port: number }).port;
}

function task(overrides: Partial<TaskMessage> = {}): TaskMessage {
  return {
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "medium",
    payload: { hello: "world" },
    metadata: {},
    createdAt: new Date().toISOString(),
    generation: 0,
    ...overrides,
  };
}

test("returns the enricher's enrichment", async () => {
  const client = createEnricherClient({ baseUrl: `${await startEnricher()}/`, timeoutMs: 2_000 });
  const enrichment = await client.enrich(task());
  expect(EnrichmentSchema.parse(enrichment)).toMatchObject({ fieldCount: 1 });
});

test("a 4xx answer is permanent and carries the enricher's explanation", async () => {
  const client = createEnricherClient({ baseUrl: await startEnricher(), timeoutMs: 2_000 });
  const error = await client.enrich(task({ payload: "not an object" as never })).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(EnricherRejectedError);
  expect(error).toBeInstanceOf(PermanentError);
  expect((error as Error).message).toMatch(/HTTP 400.*payload/);
});

test("a 5xx answer is retryable", async () => {
  const client = createEnricherClient({
    baseUrl: await startEnricher({ ENRICHER_FAILURE_RATE: "1" }),
    timeoutMs: 2_000,
  });
  const error = await client.enrich(task()).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(EnricherUnavailableError);
  expect(error).not.toBeInstanceOf(PermanentError);
  expect((error as Error).message).toMatch(/HTTP 503.*injected failure/);
});

test("no answer within the timeout is retryable, and the call returns at the timeout", async () => {
  const client = createEnricherClient({
    baseUrl: await startEnricher({ ENRICHER_LATENCY_MS: "1000" }),
    timeoutMs: 150,
  });
  const started = performance.now();
  const error = await client.enrich(task()).catch((e: unknown) => e);
  expect(performance.now() - started).toBeLessThan(900);
  expect(error).toBeInstanceOf(EnricherUnavailableError);
  expect((error as Error).message).toMatch(/no answer within 150 ms/);
});

test("a refused connection is retryable and names the cause", async () => {
  const client = createEnricherClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, timeoutMs: 2_000 });
  const error = await client.enrich(task()).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(EnricherUnavailableError);
  expect((error as Error).message).toMatch(/ECONNREFUSED/);
});

test("an answer that is not a valid enrichment is retryable", async () => {
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ payloadBytes: -1 }));
  });
  const port = await listenLocally(server);
  const client = createEnricherClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
  const error = await client.enrich(task()).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(EnricherUnavailableError);
  expect((error as Error).message).toMatch(/invalid enrichment: payloadBytes/);
});

test("an aborted signal ends a call in progress (shutdown), as a retryable failure", async () => {
  const client = createEnricherClient({
    baseUrl: await startEnricher({ ENRICHER_LATENCY_MS: "1000" }),
    timeoutMs: 5_000,
  });
  const controller = new AbortController();
  const call = client.enrich(task(), controller.signal).catch((e: unknown) => e);
  controller.abort(new Error("consumer stopping"));
  const error = await call;
  expect(error).toBeInstanceOf(EnricherUnavailableError);
  expect((error as Error).message).toMatch(/aborted: Error: consumer stopping/);
  client.close();
});

test("keeps its connection to the enricher alive between calls", async () => {
  const sockets = new Set<unknown>();
  const server = createServer((request, response) => {
    sockets.add(request.socket);
    const at = new Date().toISOString();
    const enrichment = {
      payloadBytes: 2,
      payloadSha256: "0".repeat(64),
      fieldCount: 1,
      receivedAt: at,
      enrichedAt: at,
    };
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(enrichment));
  });
  const port = await listenLocally(server);
  const client = createEnricherClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
  for (let i = 0; i < 3; i++) await client.enrich(task());
  expect(sockets.size).toBe(1);
  client.close();
});

test("an answer far larger than any enrichment is cut off as a retryable failure, not buffered", async () => {
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(`{"padding":"${"x".repeat(2 * 1024 * 1024)}"}`);
  });
  const port = await listenLocally(server);
  const client = createEnricherClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
  const error = await client.enrich(task()).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(EnricherUnavailableError);
  expect((error as Error).message).toMatch(/answer larger than 1048576 bytes/);
  client.close();
});

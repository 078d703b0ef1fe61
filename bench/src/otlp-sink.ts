/**
 * A stand-in for the OpenTelemetry collector when the pipeline runs with `--telemetry export`: an HTTP server that
 * accepts every OTLP export (POST /v1/traces, /v1/metrics, ...) with 200 and discards it, counting requests and bytes.
 * The services then pay what they pay when deployed (spans recorded, batched, serialised and sent) without a
 * collector's own CPU on the two cores. It runs in the benchmark process, so its cost is the driver's, not the system's.
 * With `keepSpans` it also decodes and keeps the spans (for `--breakdown`; the other runs only count bytes).
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type ReceivedSpan, spansOfTraceExport } from "@tm/testkit";

export interface OtlpSink {
  url: string;
  /** Requests and body bytes received so far, by path. */
  received(): Record<string, { requests: number; bytes: number }>;
  /** The spans received so far (always empty without `keepSpans`); the array keeps filling until close. */
  spans(): readonly ReceivedSpan[];
  close(): Promise<void>;
}

export async function startOtlpSink(options: { keepSpans?: boolean } = {}): Promise<OtlpSink> {
  const received: Record<string, { requests: number; bytes: number }> = {};
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    received[path] ??= { requests: 0, bytes: 0 };
    const entry = received[path];
    entry.requests++;
    const keep = options.keepSpans === true && path === "/v1/traces";
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      entry.bytes += chunk.length;
      if (keep) chunks.push(chunk);
    });
    req.on("end", () => {
      if (keep) {
        try {
          spans.push(...spansOfTraceExport(Buffer.concat(chunks), String(req.headers["content-type"])));
        } catch (error) {
          // An export it cannot read is refused (the exporter logs it), not a crash of the benchmark.
          res.writeHead(400, { "content-type": "text/plain" }).end((error as Error).message);
          return;
        }
      }
      res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/json" });
      res.end();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => structuredClone(received),
    spans: () => spans,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

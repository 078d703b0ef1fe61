/**
 * A stand-in for the OpenTelemetry collector when the pipeline runs with `--telemetry export`: an HTTP server that
 * accepts every OTLP export (POST /v1/traces, /v1/metrics, ...) with 200 and discards it, counting requests and bytes.
 * The services then pay what they pay when deployed (spans recorded, batched, serialised and sent) without a
 * collector's own CPU on the two cores. It runs in the benchmark process, so its cost is the driver's, not the system's.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface OtlpSink {
  url: string;
  /** Requests and body bytes received so far, by path. */
  received(): Record<string, { requests: number; bytes: number }>;
  close(): Promise<void>;
}

export async function startOtlpSink(): Promise<OtlpSink> {
  const received: Record<string, { requests: number; bytes: number }> = {};
  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    received[path] ??= { requests: 0, bytes: 0 };
    const entry = received[path];
    entry.requests++;
    req.on("data", (chunk: Buffer) => {
      entry.bytes += chunk.length;
    });
    req.on("end", () => {
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

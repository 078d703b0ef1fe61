/**
 * A tiny OTLP/HTTP receiver for tests: keeps the spans services export (`POST /v1/traces`; the kit's trace exporter
 * sends protobuf, JSON is read too; decoded by @tm/testkit's spansOfTraceExport), answers everything else (metrics)
 * with 200 and ignores it.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type ReceivedSpan, spansOfTraceExport } from "@tm/testkit";

export type { ReceivedSpan };

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const body = Buffer.concat(chunks);
        const type = String(req.headers["content-type"]);
        try {
          spans.push(...spansOfTraceExport(body, type));
        } catch (error) {
          res.writeHead(415).end((error as Error).message);
          return;
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

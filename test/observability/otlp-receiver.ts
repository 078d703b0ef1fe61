/**
 * A tiny OTLP/HTTP receiver for tests: keeps the spans services export (`POST /v1/traces`; the kit's trace exporter
 * sends protobuf, JSON is read too), answers everything else (metrics) with 200 and ignores it. The protobuf is read
 * with @bufbuild/protobuf's wire reader for the few fields the tests look at (opentelemetry/proto/trace/v1).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

export interface ReceivedSpan {
  service: string;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpTraces {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: Array<{
      scope?: { name?: string };
      spans?: Array<{
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        attributes?: OtlpAttribute[];
      }>;
    }>;
  }>;
}

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
        if (type.includes("json")) spans.push(...flatten(JSON.parse(body.toString("utf8")) as OtlpTraces));
        else if (type.includes("protobuf")) spans.push(...flatten(decodeTraces(body)));
        else {
          res.writeHead(415).end(`this receiver reads OTLP protobuf or JSON, not ${type}`);
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

function flatten(body: OtlpTraces): ReceivedSpan[] {
  return (body.resourceSpans ?? []).flatMap((rs) => {
    const service = String(attributes(rs.resource?.attributes)["service.name"] ?? "");
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((span) => ({
        service,
        scope: ss.scope?.name ?? "",
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? "",
        name: span.name,
        kind: span.kind,
        attributes: attributes(span.attributes),
      })),
    );
  });
}

function attributes(list: OtlpAttribute[] = []): Record<string, unknown> {
  return Object.fromEntries(
    list.map(({ key, value }) => [
      key,
      value.stringValue ??
        (value.intValue !== undefined ? Number(value.intValue) : (value.doubleValue ?? value.boolValue)),
    ]),
  );
}

/** ExportTraceServiceRequest (protobuf) → the JSON shape above, for the fields the tests read. */
function decodeTraces(bytes: Uint8Array): OtlpTraces {
  const resourceSpans: ResourceSpans[] = [];
  fields(bytes, (no, r) => {
    if (no !== 1) return false;
    resourceSpans.push(resourceSpansOf(r.bytes()));
    return true;
  });
  return { resourceSpans };
}

type ResourceSpans = NonNullable<OtlpTraces["resourceSpans"]>[number];
type ScopeSpans = NonNullable<ResourceSpans["scopeSpans"]>[number];

function resourceSpansOf(bytes: Uint8Array): ResourceSpans {
  const attributes: OtlpAttribute[] = [];
  const scopeSpans: ScopeSpans[] = [];
  fields(bytes, (no, r) => {
    if (no === 1) {
      fields(r.bytes(), (resourceNo, rr) => {
        if (resourceNo !== 1) return false;
        attributes.push(keyValue(rr.bytes()));
        return true;
      });
    } else if (no === 2) scopeSpans.push(scopeSpansOf(r.bytes()));
    else return false;
    return true;
  });
  return { resource: { attributes }, scopeSpans };
}

function scopeSpansOf(bytes: Uint8Array): ScopeSpans {
  let name = "";
  const spans: Span[] = [];
  fields(bytes, (no, r) => {
    if (no === 1) {
      fields(r.bytes(), (scopeNo, sr) => {
        if (scopeNo !== 1) return false;
        name = sr.string();
        return true;
      });
    } else if (no === 2) spans.push(span(r.bytes()));
    else return false;
    return true;
  });
  return { scope: { name }, spans };
}

type Span = NonNullable<
  NonNullable<NonNullable<OtlpTraces["resourceSpans"]>[number]["scopeSpans"]>[number]["spans"]
>[number];

function span(bytes: Uint8Array): Span {
  const out: Span = { traceId: "", spanId: "", name: "", kind: 0, attributes: [] };
  fields(bytes, (no, r) => {
    if (no === 1) out.traceId = hex(r.bytes());
    else if (no === 2) out.spanId = hex(r.bytes());
    else if (no === 4) out.parentSpanId = hex(r.bytes());
    else if (no === 5) out.name = r.string();
    else if (no === 6) out.kind = r.int32();
    else if (no === 9) out.attributes?.push(keyValue(r.bytes()));
    else return false;
    return true;
  });
  return out;
}

function keyValue(bytes: Uint8Array): OtlpAttribute {
  const kv: OtlpAttribute = { key: "", value: {} };
  fields(bytes, (no, r) => {
    if (no === 1) kv.key = r.string();
    else if (no === 2) kv.value = anyValue(r.bytes());
    else return false;
    return true;
  });
  return kv;
}

function anyValue(bytes: Uint8Array): OtlpValue {
  const value: OtlpValue = {};
  fields(bytes, (no, r) => {
    if (no === 1) value.stringValue = r.string();
    else if (no === 2) value.boolValue = r.bool();
    else if (no === 3) value.intValue = String(r.int64());
    else if (no === 4) value.doubleValue = r.double();
    else return false; // arrays, key-value lists and bytes: not read by the tests
    return true;
  });
  return value;
}

/** Calls `read` for each field of a message; a field it does not consume (returns false) is skipped. */
function fields(bytes: Uint8Array, read: (fieldNo: number, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    const start = reader.pos;
    if (!read(fieldNo, reader)) {
      reader.pos = start;
      reader.skip(wireType as WireType, fieldNo);
    }
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
